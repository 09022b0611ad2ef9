//! `[[programs.NAME.checks]]`: kinds, defaults, timing, and errors.

use std::time::Duration;

use super::helpers::{assert_at, error, ok};
use crate::config::{CheckConfig, CheckKind, OnFailure, Purpose};

fn checks(body: &str) -> Vec<CheckConfig> {
    let c = ok(&format!("[programs.web]\ncommand = \"x\"\n{body}"));
    c.programs["web"].checks.clone()
}

#[test]
fn tcp_and_http_checks_with_defaults() {
    let got = checks(
        "[[programs.web.checks]]\ntcp = 8080\n[[programs.web.checks]]\npurpose = \"liveness\"\nhttp = \"http://localhost:9000/healthz?full=1\"\n",
    );
    let tcp = CheckConfig::new(
        Purpose::Readiness,
        CheckKind::Tcp {
            host: "127.0.0.1".into(),
            port: 8080,
        },
    );
    let http = CheckConfig::new(
        Purpose::Liveness,
        CheckKind::Http {
            host: "localhost".into(),
            port: 9000,
            path: "/healthz?full=1".into(),
            status: (200, 399),
        },
    );
    assert_eq!(got, [tcp, http]);
    assert_eq!(got[0].period, Duration::from_secs(10));
    assert_eq!(got[0].timeout, Duration::from_secs(1));
    assert_eq!((got[0].success_threshold, got[0].failure_threshold), (1, 3));
    assert_eq!(got[1].on_failure, OnFailure::Restart);
}

#[test]
fn every_timing_key_and_action() {
    let got = checks(
        "checks = [{ purpose = \"liveness\", tcp = \"10.0.0.2:53\", period = 2.5, timeout = 0.5, start_period = 30, success_threshold = 2, failure_threshold = 5, on_failure = \"shutdown\" }, { http = \"http://h/\", status = \"200-204\" }, { http = \"http://h:81\", status = 418 }]\n",
    );
    assert_eq!(
        got[0].kind,
        CheckKind::Tcp {
            host: "10.0.0.2".into(),
            port: 53
        }
    );
    assert_eq!(got[0].period, Duration::from_millis(2500));
    assert_eq!(got[0].timeout, Duration::from_millis(500));
    assert_eq!(got[0].start_period, Duration::from_secs(30));
    assert_eq!((got[0].success_threshold, got[0].failure_threshold), (2, 5));
    assert_eq!(got[0].on_failure, OnFailure::Shutdown);
    assert!(
        matches!(&got[1].kind, CheckKind::Http { port: 80, path, status: (200, 204), .. } if path == "/")
    );
    assert!(matches!(
        &got[2].kind,
        CheckKind::Http {
            port: 81,
            status: (418, 418),
            ..
        }
    ));
}

#[test]
fn bad_checks_are_errors_at_their_place() {
    let at = |body: &str| error(&format!("[programs.web]\ncommand = \"x\"\n{body}"));
    assert_at(
        &at("[[programs.web.checks]]\nperiod = 5\n"),
        3,
        1,
        "a check needs its kind: tcp = \"HOST:PORT\", http = \"http://HOST:PORT/PATH\", exec = [\"COMMAND\", ...], log = \"REGEX\", notify = \"ready\"|\"watchdog\" or ready_fd = N",
    );
    assert_at(
        &at("[[programs.web.checks]]\ntcp = 1\nhttp = \"http://h/\"\n"),
        3,
        1,
        "a check has one kind: tcp, http, exec, log, notify or ready_fd",
    );
    assert_at(
        &at("[[programs.web.checks]]\nhttp = \"https://h/\"\n"),
        4,
        8,
        "http: invalid URL \"https://h/\": https is not supported",
    );
    assert_at(
        &at("[[programs.web.checks]]\ntcp = \"h:99999\"\n"),
        4,
        7,
        "tcp: invalid address \"h:99999\": the port must be 1 to 65535, not \"99999\"",
    );
    assert_at(
        &at("[[programs.web.checks]]\ntcp = 1\npurpose = \"liveliness\"\n"),
        5,
        11,
        "purpose: unknown purpose \"liveliness\", expected \"readiness\" or \"liveness\" (did you mean \"liveness\"?)",
    );
    assert_at(
        &at("[[programs.web.checks]]\ntcp = 1\non_failure = \"stop\"\n"),
        5,
        14,
        "on_failure: only liveness checks act on failure",
    );
    assert_at(
        &at("[[programs.web.checks]]\ntcp = 1\nperiod = 0\n"),
        5,
        10,
        "period: must be at least 0.1 s",
    );
    assert_at(
        &at("[[programs.web.checks]]\ntcp = 1\nintreval = 1\n"),
        5,
        1,
        "unknown key \"intreval\" in a check",
    );
    assert_at(
        &at("[[programs.web.checks]]\nhttp = \"http://h/\"\nstatus = \"600\"\n"),
        5,
        10,
        "status: invalid status range \"600\"",
    );
    assert_at(
        &at("[[programs.web.checks]]\nlog = \"ready (\"\n"),
        4,
        7,
        "log: invalid regular expression: regex parse error:",
    );
    assert_at(
        &at("[[programs.web.checks]]\nlog = \"x\"\npurpose = \"liveness\"\n"),
        5,
        11,
        "purpose: log, notify = \"ready\" and ready_fd checks say when a program is ready; only \"readiness\" fits here",
    );
    assert_at(
        &at("[[programs.web.checks]]\nlog = \"x\"\nperiod = 5\n"),
        5,
        10,
        "period: not used by this kind of check (the program says when it is ready; `timeout` is how long it has)",
    );
    assert_at(
        &at("[[programs.web.checks]]\nlog = \"x\"\nstream = \"stdrr\"\n"),
        5,
        10,
        "stream: unknown stream \"stdrr\", expected \"stdout\", \"stderr\" or \"both\" (did you mean \"stderr\"?)",
    );
    assert_at(
        &at("[[programs.web.checks]]\ntcp = 1\nstream = \"stdout\"\n"),
        5,
        10,
        "stream: only log checks read a stream",
    );
    assert_at(
        &at("[[programs.web.checks]]\nnotify = \"redy\"\n"),
        4,
        10,
        "notify: unknown notify check \"redy\", expected \"ready\" (READY=1) or \"watchdog\" (WATCHDOG=1) (did you mean \"ready\"?)",
    );
    assert_at(
        &at("[[programs.web.checks]]\nnotify = \"watchdog\"\ntimeout = 3\n"),
        5,
        11,
        "timeout: not used by this kind of check (the program pings every `period`",
    );
    assert_at(
        &at("[[programs.web.checks]]\nready_fd = 2\n"),
        4,
        12,
        "ready_fd:",
    );
}

#[test]
fn log_notify_and_ready_fd_checks_with_their_defaults() {
    let got = checks(
        "[[programs.web.checks]]\nlog = \"ready to accept\"\nstream = \"stderr\"\ntimeout = 30\n\
         [[programs.web.checks]]\nnotify = \"ready\"\n\
         [[programs.web.checks]]\nnotify = \"watchdog\"\nperiod = 20\nfailure_threshold = 1\non_failure = \"stop\"\n\
         [[programs.web.checks]]\nready_fd = 3\n",
    );
    assert_eq!(
        got[0].kind,
        CheckKind::Log {
            pattern: "ready to accept".into(),
            stream: Some(nsvisor_proto::StreamKind::Stderr)
        }
    );
    assert_eq!(
        (got[0].purpose, got[0].timeout, got[0].failure_threshold),
        (Purpose::Readiness, Duration::from_secs(30), 1)
    );
    assert_eq!(got[1].kind, CheckKind::NotifyReady);
    assert_eq!(
        (got[1].purpose, got[1].timeout),
        (Purpose::Readiness, Duration::from_secs(60))
    );
    assert_eq!(got[2].kind, CheckKind::NotifyWatchdog);
    assert_eq!(
        (
            got[2].purpose,
            got[2].period,
            got[2].failure_threshold,
            got[2].on_failure
        ),
        (
            Purpose::Liveness,
            Duration::from_secs(20),
            1,
            OnFailure::Stop
        )
    );
    assert_eq!(got[3].kind, CheckKind::ReadyFd { fd: 3 });
}
