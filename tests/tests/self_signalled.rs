//! Checks the program signals itself, against the real daemon: `log` (a line
//! matching a regular expression), `notify` (systemd's protocol, spoken by
//! Debian's `systemd-notify` and by a few lines of Python) and `ready_fd`
//! (s6's newline on a file descriptor).
//!
//! Each program waits for `{dir}/go` before it signals, so the test sees it
//! not ready first, then ready.

use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{program_toml, wait_until, Daemon};

const T: Duration = Duration::from_secs(15);

/// A `sh -c SCRIPT` program with `extra` TOML lines.
fn shell(name: &str, script: &str, extra: &str) -> String {
    format!(
        "[programs.{name}]\ncommand = [\"sh\", \"-c\", {}]\nstartsecs = 0\n{extra}\n\n",
        toml_string(script)
    )
}

fn toml_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

const WAIT_GO: &str = "while [ ! -e {dir}/go ]; do sleep 0.05; done";

/// Not ready (with `waiting`), then `go`, then ready with `detail`.
fn not_ready_then_ready(d: &Daemon, name: &str, waiting: &str, detail: &str) {
    let p = d.wait_state(name, State::Running, T);
    assert!(!p.ready);
    assert!(
        p.description.ends_with(&format!(", not ready ({waiting})")),
        "{}",
        p.description
    );
    let early = d.ctl(&["wait", name, "--for", "ready", "--timeout", "0.3"]);
    assert_eq!(early.status.code(), Some(6), "{early:?}");
    std::fs::write(d.dir().join("go"), "").expect("write go");
    let waited = d.ctl(&["wait", name, "--for", "ready", "--timeout", "10"]);
    assert_eq!(waited.status.code(), Some(0), "{waited:?}");
    let p = d.status(name).expect("program");
    assert!(p.ready);
    let last = p.checks[0].last.clone().unwrap_or_default();
    assert!(last.starts_with(detail), "{last}");
    assert_eq!((p.checks[0].runs, p.checks[0].failures), (1, 0));
}

#[test]
fn a_log_check_passes_on_the_first_matching_line() {
    let script = format!(
        "echo booting; {WAIT_GO}; echo 'db: ready to accept connections' >&2; exec sleep 1000"
    );
    let mut config = shell(
        "db",
        &script,
        "[[programs.db.checks]]\nlog = \"ready to accept connections$\"\nstream = \"stderr\"",
    );
    config += &program_toml(
        "web",
        &["sleep", "forever"],
        "startsecs = 0\ndepends_on = [\"db\"]",
    );
    let d = Daemon::start(&config);
    assert_eq!(d.status("web").map(|p| p.state), Some(State::Stopped));
    not_ready_then_ready(
        &d,
        "db",
        "waiting for log stderr /ready to accept connections$/",
        "log matched \"db: ready to accept connections\" after ",
    );
    d.wait_state("web", State::Running, T);
    // The line still reaches the log as usual.
    let tail = d.ctl(&["tail", "db", "--stderr"]);
    assert!(String::from_utf8_lossy(&tail.stdout).contains("db: ready to accept connections"));
}

#[test]
fn a_log_check_that_never_matches_answers_restart_with_why() {
    let config = shell(
        "db",
        "echo starting; exec sleep 1000",
        "[[programs.db.checks]]\nlog = \"^ready$\"\ntimeout = 0.5",
    );
    let d = Daemon::start(&config);
    d.wait_state("db", State::Running, T);
    let out = d.ctl(&["restart", "db"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "db: ERROR (not ready: no line matched /^ready$/ within 0.5 s)"
    );
    let p = d.status("db").expect("db");
    assert_eq!((p.state, p.ready), (State::Running, false));
}

#[test]
fn notify_ready_and_status_from_systemd_notify() {
    let script = format!(
        "{WAIT_GO}; systemd-notify --ready --status='Accepting connections'; exec sleep 1000"
    );
    let d = Daemon::start(&shell(
        "db",
        &script,
        "[[programs.db.checks]]\nnotify = \"ready\"",
    ));
    not_ready_then_ready(
        &d,
        "db",
        "waiting for notify READY=1",
        "notify READY=1 after ",
    );
    let p = d.status("db").expect("db");
    assert!(
        p.description
            .ends_with(", status \"Accepting connections\""),
        "{}",
        p.description
    );
}

/// Python's few lines of the protocol: send `msg` to `$NOTIFY_SOCKET`.
fn py_notify(msg: &str) -> String {
    format!(
        "python3 -c 'import os,socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b\"{msg}\", os.environ[\"NOTIFY_SOCKET\"])'"
    )
}

#[test]
fn a_watchdog_that_stops_pinging_restarts_the_program() {
    // Pings every 0.1 s until {dir}/go exists, then stops pinging.
    let ping = py_notify("WATCHDOG=1");
    let script = format!(
        "test -n \"$WATCHDOG_USEC\" || exit 9; echo usec=$WATCHDOG_USEC; while [ ! -e {{dir}}/go ]; do {ping}; sleep 0.1; done; exec sleep 1000"
    );
    let d = Daemon::start(&shell(
        "worker",
        &script,
        "[[programs.worker.checks]]\nnotify = \"watchdog\"\nperiod = 0.5\nfailure_threshold = 2",
    ));
    let first = d.wait_state("worker", State::Running, T).pid.expect("pid");
    wait_until("two watchdog periods passed", T, || {
        d.status("worker")
            .filter(|p| p.checks[0].runs >= 2)
            .map(|_| ())
    });
    let p = d.status("worker").expect("worker");
    assert_eq!(
        (p.pid, p.checks[0].failures),
        (Some(first), 0),
        "pinged: alive"
    );
    std::fs::write(d.dir().join("go"), "").expect("write go");
    let again = wait_until("worker to be restarted", T, || {
        d.status("worker")
            .filter(|p| p.state == State::Running && p.pid.is_some_and(|pid| pid != first))
    });
    assert_eq!(again.restarts, 1);
    assert!(d
        .stderr()
        .contains("restarting: liveness check failed (no WATCHDOG=1 within 0.5 s)"));
    let tail = d.ctl(&["tail", "worker"]);
    assert!(String::from_utf8_lossy(&tail.stdout).contains("usec=500000"));
}

#[test]
fn ready_fd_passes_on_a_newline() {
    let script = format!("{WAIT_GO}; echo >&3; exec sleep 1000");
    let d = Daemon::start(&shell(
        "db",
        &script,
        "[[programs.db.checks]]\nready_fd = 3",
    ));
    not_ready_then_ready(
        &d,
        "db",
        "waiting for ready_fd 3",
        "ready_fd 3: newline after ",
    );
}

#[test]
fn notify_sockets_are_removed_at_shutdown() {
    let d = Daemon::start(&shell(
        "db",
        &format!("{}; exec sleep 1000", py_notify("READY=1")),
        "[[programs.db.checks]]\nnotify = \"ready\"",
    ));
    let mut d = d;
    wait_until("db to be ready", T, || d.status("db").filter(|p| p.ready));
    let dirs: Vec<_> = std::fs::read_dir(d.dir())
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".notify"))
        .map(|e| e.path())
        .collect();
    assert_eq!(dirs.len(), 1, "one notify directory");
    assert_eq!(std::fs::read_dir(&dirs[0]).expect("notify dir").count(), 1);
    assert_eq!(d.terminate().code(), Some(0));
    assert!(!dirs[0].exists(), "{} left behind", dirs[0].display());
}

#[test]
fn a_program_running_as_another_user_can_use_its_notify_socket() {
    let d = Daemon::start(&shell(
        "db",
        &format!("{}; exec sleep 1000", py_notify("READY=1")),
        "user = \"nobody\"\n[[programs.db.checks]]\nnotify = \"ready\"",
    ));
    let p = wait_until("db (as nobody) to be ready", T, || {
        d.status("db").filter(|p| p.ready)
    });
    assert_eq!(p.state, State::Running);
}
