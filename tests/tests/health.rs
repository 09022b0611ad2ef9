//! Readiness and liveness checks against the real daemon: a readiness check
//! holding back `start --wait` and a dependant, a failing liveness check
//! restarting its program, and `on_failure = "shutdown"` ending the daemon.
//!
//! The checked programs are `testprog http PORT STATUSFILE`: an HTTP server
//! whose answer the test changes by writing a status into a file.

use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{program_toml, wait_until, Daemon};

const T: Duration = Duration::from_secs(15);

/// A port nothing listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `api`: serves HTTP on `port` after `delay` seconds, with the status in
/// `{dir}/status`, and has `checks` (TOML lines of one check).
fn api(port: u16, delay: &str, check: &str) -> String {
    let port = port.to_string();
    program_toml(
        "api",
        &[
            "sleep",
            delay,
            "http",
            &port,
            "{dir}/status",
            "sleep",
            "forever",
        ],
        &format!("startsecs = 0\n[[programs.api.checks]]\n{check}"),
    )
}

#[test]
fn readiness_holds_back_dependants_and_start_wait() {
    let port = free_port();
    let check = format!("http = \"http://127.0.0.1:{port}/healthz\"\nperiod = 0.5\ntimeout = 0.5");
    let mut config = api(port, "1", &check);
    config += &program_toml(
        "web",
        &["sleep", "forever"],
        "startsecs = 0\ndepends_on = [\"api\"]",
    );
    let d = Daemon::start(&config);

    let api = d.wait_state("api", State::Running, T);
    assert!(!api.ready);
    let waiting = d.status("web").expect("web");
    assert_eq!(
        (waiting.state, waiting.description.as_str()),
        (State::Stopped, "waiting for api")
    );

    let web = d.wait_state("web", State::Running, T);
    assert!(web.pid.is_some());
    let api = d.status("api").expect("api");
    assert!(api.ready, "web started before api was ready: {api:?}");
    assert!(
        !api.description.contains("not ready"),
        "{}",
        api.description
    );
    let ready = d.ctl(&["health", "--ready"]);
    assert_eq!(ready.status.code(), Some(0), "{ready:?}");

    // A restart answers only once the new process is ready again (it serves
    // after 1 s: RUNNING at once, ready a second later).
    let out = d.ctl(&["restart", "api"]);
    assert!(out.status.success(), "{out:?}");
    let api = d.status("api").expect("api");
    assert!(api.ready, "restart answered before api was ready: {api:?}");
    assert!(api.uptime_secs.is_some());
}

#[test]
fn not_ready_says_why_in_status() {
    let port = free_port();
    let check = format!("tcp = {port}\nperiod = 0.2\ntimeout = 0.2");
    let d = Daemon::start(&api(port, "forever", &check));
    let api = wait_until("api to report its failing check", T, || {
        d.status("api")
            .filter(|p| p.description.contains("not ready (tcp"))
    });
    assert!(!api.ready);
    let expected = format!(", not ready (tcp 127.0.0.1:{port}: Connection refused (os error 111))");
    assert!(api.description.ends_with(&expected), "{}", api.description);
    assert_eq!(
        d.metric("nsvisor_program_ready{name=\"api\",group=\"api\"}"),
        Some(0.0)
    );
    let c = d.status("api").expect("api").checks[0].clone();
    assert_eq!(c.check, format!("tcp 127.0.0.1:{port}"));
    assert_eq!((c.purpose.as_str(), c.passing), ("readiness", false));
    assert!(c.runs >= 1 && c.failures == c.runs, "{c:?}");
}

#[test]
fn a_failing_liveness_check_restarts_its_program() {
    let port = free_port();
    let check = format!(
        "purpose = \"liveness\"\nhttp = \"http://127.0.0.1:{port}/\"\nperiod = 0.3\nfailure_threshold = 2\nstart_period = 2"
    );
    let d = Daemon::start(&api(port, "0", &check));
    let first = d.wait_state("api", State::Running, T).pid.expect("pid");
    std::fs::write(d.dir().join("status"), "503").expect("write status");
    let restarted = wait_until("api to be restarted", T, || {
        d.status("api")
            .filter(|p| p.state == State::Running && p.pid.is_some_and(|pid| pid != first))
    });
    assert!(d
        .stderr()
        .contains("restarting: liveness check failed (http GET http://127.0.0.1:"));
    // The new process fails too, but not within its start_period of 2 s.
    assert_eq!(restarted.state, State::Running);
    assert_eq!(restarted.restarts, 1, "counted like any restart");
}

#[test]
fn on_failure_shutdown_ends_the_daemon_with_1() {
    let port = free_port();
    let check = format!(
        "purpose = \"liveness\"\ntcp = {port}\nperiod = 0.2\nfailure_threshold = 1\non_failure = \"shutdown\""
    );
    let mut d = Daemon::start(&api(port, "forever", &check));
    let status = d.wait_exit(T);
    assert_eq!(status.code(), Some(1), "stderr: {}", d.stderr());
    assert!(d.stderr().contains(&format!(
        "shutting down (liveness check of api failed (tcp 127.0.0.1:{port}: Connection refused"
    )));
}

#[test]
fn health_ready_exit_codes_for_probes() {
    let port = free_port();
    let check = format!("http = \"http://127.0.0.1:{port}/\"\nperiod = 0.3");
    let d = Daemon::start(&api(port, "forever", &check));
    d.wait_state("api", State::Running, T);
    let live = d.ctl(&["health"]);
    assert_eq!(live.status.code(), Some(0), "{live:?}");
    let ready = d.ctl(&["health", "--ready"]);
    assert_eq!(ready.status.code(), Some(3), "{ready:?}");
    let text = String::from_utf8_lossy(&ready.stdout);
    assert!(text.starts_with("not ready: nsvisor "), "{text}");
    assert!(text.trim_end().ends_with("; not ready: api"), "{text}");
}

#[test]
fn an_exec_check_passes_fails_at_its_timeout_and_never_delays_shutdown() {
    // Ready once {dir}/go exists: before that the check waits for it and is
    // killed at its timeout.
    let config = program_toml(
        "db",
        &["sleep", "forever"],
        "startsecs = 0\n[[programs.db.checks]]\nexec = [\"{testprog}\", \"wait-file\", \"{dir}/go\"]\ntimeout = 0.3\nperiod = 0.5\n",
    ) + &program_toml(
        "hang",
        &["sleep", "forever"],
        "startsecs = 0\n[[programs.hang.checks]]\npurpose = \"liveness\"\nexec = [\"{testprog}\", \"sleep\", \"forever\"]\ntimeout = 60\n",
    );
    let mut d = Daemon::start(&config);
    let db = wait_until("db's check to time out", T, || {
        d.status("db")
            .filter(|p| p.description.contains("no answer within 0.3 s"))
    });
    assert!(!db.ready);
    let expected = format!(
        ", not ready (exec {} wait-file {}/go: no answer within 0.3 s)",
        nsvisor_tests::testprog().display(),
        d.dir().display()
    );
    assert!(db.description.ends_with(&expected), "{}", db.description);
    std::fs::write(d.dir().join("go"), "").expect("write go");
    wait_until("db to be ready", T, || d.status("db").filter(|p| p.ready));
    assert_eq!(d.metric("nsvisor_orphans_reaped_total"), Some(0.0));
    // hang's check runs (sleeping forever, its timeout 60 s) when we stop.
    wait_until("hang's check to be running", T, || {
        (procs_named_sleep_forever(&d) >= 2).then_some(())
    });
    let t0 = std::time::Instant::now();
    let status = d.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "shutdown waited {:?} for a running check",
        t0.elapsed()
    );
}

/// Processes of testprog sleeping forever whose parent is the daemon.
fn procs_named_sleep_forever(d: &Daemon) -> usize {
    let daemon = d.daemon_pid().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let dir = e.path();
            let cmd = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().nth(1));
            cmd.ends_with(b"sleep\0forever\0") && ppid == Some(daemon.as_str())
        })
        .count()
}

#[test]
fn readiness_changes_are_events() {
    let port = free_port();
    let check = format!("http = \"http://127.0.0.1:{port}/\"\nperiod = 0.3\nfailure_threshold = 1");
    let d = Daemon::start(&api(port, "1", &check));
    let mut events = d.events();
    let ready = events.wait_for("api to become ready", T, |e| {
        e.name == "api" && e.ready.is_some()
    });
    assert_eq!(
        (ready.from, ready.to, ready.ready),
        (State::Running, State::Running, Some(true))
    );
    let detail = ready.detail.expect("a detail");
    assert!(
        detail.starts_with(&format!("http GET http://127.0.0.1:{port}/ → 200 after ")),
        "{detail}"
    );
    std::fs::write(d.dir().join("status"), "500").expect("write status");
    let lost = events.wait_for("api to lose readiness", T, |e| {
        e.name == "api" && e.ready.is_some()
    });
    assert_eq!(lost.ready, Some(false));
    assert!(lost.detail.is_some_and(|d| d.contains("→ 500 after")));
}

/// `GET path` over plain TCP: the status and the body.
fn probe(port: u16, method: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the health listener");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

#[test]
fn the_health_listener_answers_probes_and_nothing_else() {
    let (port, listen) = (free_port(), free_port());
    let check = format!("http = \"http://127.0.0.1:{port}/\"\nperiod = 0.3\nfailure_threshold = 1");
    let config = format!("[supervisor]\nhealth_listen = \"127.0.0.1:{listen}\"\n\n")
        + &api(port, "forever", &check);
    let d = Daemon::start(&config);
    d.wait_state("api", State::Running, T);
    assert_eq!(probe(listen, "GET", "/livez"), (200, "ok\n".into()));
    assert_eq!(
        probe(listen, "GET", "/readyz"),
        (503, "not ready: api\n".into())
    );
    let (status, body) = probe(listen, "GET", "/readyz/api");
    assert_eq!(status, 503);
    assert!(body.starts_with("api: not ready (RUNNING: pid "), "{body}");
    assert_eq!(probe(listen, "GET", "/readyz/nope").0, 404);
    assert_eq!(probe(listen, "POST", "/livez").0, 405);
    assert_eq!(
        probe(listen, "GET", "/v1/programs").0,
        404,
        "the control API is not here"
    );
}

#[test]
fn nsvisorctl_wait_for_conditions_with_exit_codes() {
    let port = free_port();
    let check = format!("http = \"http://127.0.0.1:{port}/\"\nperiod = 0.3");
    let mut config = api(port, "1", &check);
    config += &program_toml(
        "never",
        &["sleep", "forever"],
        &format!(
        "startsecs = 0\n[[programs.never.checks]]\ntcp = {}\nperiod = 0.3\nfailure_threshold = 100",
        free_port()
    ),
    );
    config += &program_toml(
        "job",
        &["exit", "3"],
        "startsecs = 0\nautorestart = \"never\"",
    );
    config += &program_toml(
        "ok",
        &["exit", "0"],
        "startsecs = 0\nautorestart = \"never\"",
    );
    config += "[programs.broken]\ncommand = \"/nonexistent/broken\"\nstartretries = 0\n";
    let d = Daemon::start(&config);
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).to_string();

    let out = d.ctl(&["wait", "api", "--for", "ready", "--timeout", "10"]);
    assert_eq!(
        (out.status.code(), text(&out).as_str()),
        (Some(0), "api: ready\n")
    );
    assert!(d.status("api").is_some_and(|p| p.ready));

    let out = d.ctl(&["wait", "ok", "--for", "completed", "--timeout", "10"]);
    assert_eq!(
        (out.status.code(), text(&out).as_str()),
        (Some(0), "ok: completed\n")
    );
    let out = d.ctl(&["wait", "job", "--for", "completed", "--timeout", "10"]);
    assert_eq!(
        (out.status.code(), text(&out).as_str()),
        (Some(1), "job: ERROR (it exited with exit status 3)\n")
    );
    let out = d.ctl(&["wait", "broken", "--for", "running", "--timeout", "10"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        text(&out).starts_with("broken: ERROR (it is FATAL: "),
        "{}",
        text(&out)
    );

    let t0 = std::time::Instant::now();
    let out = d.ctl(&["wait", "never", "--timeout", "0.5"]);
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    assert!(t0.elapsed() >= Duration::from_millis(500));
    assert!(
        text(&out).starts_with("never: not ready (RUNNING pid "),
        "{}",
        text(&out)
    );

    let out = d.ctl(&["wait", "ghost"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
}
