//! Single-command mode (`nsvisor -- CMD ARGS...`), the tini contract: exit with
//! CMD's status (128+N when killed by signal N, 126 not executable, 127 not
//! found), forward signals to CMD, and clean up what CMD leaves in its process
//! group (SIGTERM, then SIGKILL after `--grace` / `shutdown_grace`).

use std::os::unix::fs::PermissionsExt;
use std::process::ExitStatus;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nsvisor_tests::{
    is_alive, proc_state, read_lines, read_records, testprog, wait_record, wait_until, Daemon,
    KillOnDrop,
};

const T: Duration = Duration::from_secs(15);

/// Runs `nsvisor -c <empty config> -- testprog args...` and waits for it to exit.
fn run_testprog(args: &[&str]) -> (Daemon, ExitStatus) {
    let mut d = Daemon::builder()
        .args(["--".as_ref(), testprog().as_os_str()])
        .args(args)
        .spawn();
    let status = d.wait_exit(T);
    (d, status)
}

fn code(status: ExitStatus) -> Option<i32> {
    status.code()
}

#[test]
fn exit_codes_pass_through() {
    for expected in [0, 1, 3, 255] {
        let (d, status) = run_testprog(&["exit", &expected.to_string()]);
        assert_eq!(code(status), Some(expected), "stderr: {}", d.stderr());
    }
}

#[test]
fn killed_by_signal_exits_128_plus_n() {
    for (sig, expected) in [("KILL", 128 + 9), ("TERM", 128 + 15)] {
        let (d, status) = run_testprog(&["kill-self", sig]);
        assert_eq!(
            code(status),
            Some(expected),
            "kill-self {sig}; stderr: {}",
            d.stderr()
        );
    }
}

#[test]
fn not_executable_exits_126() {
    let b = Daemon::builder();
    let file = b.dir().join("not-executable");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").expect("write file");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let mut d = b.args(["--".as_ref(), file.as_os_str()]).spawn();
    assert_eq!(code(d.wait_exit(T)), Some(126), "stderr: {}", d.stderr());
}

#[test]
fn missing_command_exits_127() {
    let b = Daemon::builder();
    let missing = b.dir().join("does-not-exist");
    let mut d = b.args(["--".as_ref(), missing.as_os_str()]).spawn();
    assert_eq!(code(d.wait_exit(T)), Some(127), "stderr: {}", d.stderr());

    let mut d = Daemon::builder()
        .args(["--", "nsvisor-no-such-command-in-path"])
        .spawn();
    assert_eq!(code(d.wait_exit(T)), Some(127), "stderr: {}", d.stderr());
}

/// Starts `-- testprog record {dir}/cmd.rec <args> ready-file {dir}/ready sleep forever`
/// and waits until the command is ready.
fn start_ready(args: &[&str]) -> Daemon {
    let b = Daemon::builder();
    let rec = b.dir().join("cmd.rec");
    let ready = b.dir().join("ready");
    let d = b
        .args([
            "--".as_ref(),
            testprog().as_os_str(),
            "record".as_ref(),
            rec.as_os_str(),
        ])
        .args(args)
        .args([
            "ready-file".as_ref(),
            ready.as_os_str(),
            "sleep".as_ref(),
            "forever".as_ref(),
        ])
        .spawn();
    wait_until("the command to be ready", T, || {
        ready.exists().then_some(())
    });
    d
}

#[test]
fn sigterm_is_forwarded_and_the_status_reflects_it() {
    let mut d = start_ready(&[]);
    d.signal(Signal::SIGTERM);
    assert_eq!(
        code(d.wait_exit(T)),
        Some(128 + 15),
        "stderr: {}",
        d.stderr()
    );

    let mut d = start_ready(&["term-exit", "42"]);
    d.signal(Signal::SIGTERM);
    assert_eq!(code(d.wait_exit(T)), Some(42), "stderr: {}", d.stderr());
    let recs = read_records(&d.dir().join("cmd.rec"));
    assert!(recs.iter().any(|r| r.event == "signal TERM"), "{recs:?}");
}

#[test]
fn other_signals_are_forwarded() {
    let mut d = start_ready(&["trap", "USR1", "term-exit", "0"]);
    let rec = d.dir().join("cmd.rec");
    d.signal(Signal::SIGUSR1);
    wait_until("the command to get USR1", T, || {
        read_records(&rec)
            .iter()
            .any(|r| r.event == "signal USR1")
            .then_some(())
    });
    d.signal(Signal::SIGTERM);
    assert_eq!(code(d.wait_exit(T)), Some(0), "stderr: {}", d.stderr());
}

#[test]
fn leftovers_of_the_command_group_are_terminated() {
    let b = Daemon::builder();
    let gc = b.dir().join("gc");
    let mut d = b
        .args([
            "--".as_ref(),
            testprog().as_os_str(),
            "grandchildren".as_ref(),
            "2".as_ref(),
        ])
        .args([gc.as_os_str(), "exit".as_ref(), "0".as_ref()])
        .spawn();
    let status = d.wait_exit(T);
    let pids: Vec<u32> = read_lines(&gc)
        .iter()
        .map(|l| l.parse().expect("a pid"))
        .collect();
    let _guard = KillOnDrop(pids.clone());
    assert_eq!(code(status), Some(0), "stderr: {}", d.stderr());
    assert_eq!(pids.len(), 2);
    for pid in pids {
        assert_eq!(proc_state(pid), None, "grandchild {pid} was left running");
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64
}

/// CMD exits 0 and leaves a child in its group that ignores SIGTERM: the child
/// gets SIGTERM at once and SIGKILL one grace later, set by `--grace 1` or by
/// `[supervisor] shutdown_grace = 1` (the default, 5 s, would fail the bound).
#[test]
fn a_leftover_ignoring_sigterm_is_killed_after_the_grace_not_before() {
    for (how, args, config) in [
        ("--grace 1", &["--grace", "1"][..], ""),
        (
            "shutdown_grace = 1",
            &[][..],
            "[supervisor]\nshutdown_grace = 1\n",
        ),
    ] {
        let b = Daemon::builder();
        let rec = b.dir().join("cmd.rec");
        let gc = b.dir().join("gc");
        let mut d = b
            .config(config)
            .args(args)
            .args(["--".as_ref(), testprog().as_os_str()])
            .args(["ignore-term".as_ref(), "record".as_ref(), rec.as_os_str()])
            .args(["grandchildren".as_ref(), "1".as_ref(), gc.as_os_str()])
            .args(["--keep-traps", "exit", "0"])
            .spawn();
        let leftover: u32 = wait_until("the leftover's pid", T, || {
            read_lines(&gc).first().and_then(|l| l.parse().ok())
        });
        let _guard = KillOnDrop(vec![leftover]);
        let term = wait_record(&rec, "signal TERM", T);
        assert_eq!(term.pid, leftover, "{how}: the leftover got SIGTERM");
        wait_until("the leftover to be killed", T, || {
            (!is_alive(leftover)).then_some(())
        });
        let after = unix_ms() - term.ms;
        assert!(
            after >= 950,
            "{how}: killed {after} ms after SIGTERM, before the 1 s grace"
        );
        assert!(
            after < 3000,
            "{how}: killed only {after} ms after SIGTERM, the grace is 1 s"
        );
        assert_eq!(
            d.wait_exit(T).code(),
            Some(0),
            "{how}: CMD's status; stderr: {}",
            d.stderr()
        );
    }
}
