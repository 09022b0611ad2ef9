//! Hostile programs: one that forks a thousand children and exits, one that
//! closes its stdout early, one whose children leave its process group, one
//! that ignores every catchable signal. Each is handled as docs/reliability.md
//! ("Hostile programs") documents.

use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{getpgid, getsid, Pid};
use nsvisor_proto::{ExitStatus, State};
use nsvisor_tests::{
    is_alive, ppid_of, proc_state, program_toml, read_lines, read_records, wait_record, wait_until,
    Daemon, KillOnDrop,
};

const T: Duration = Duration::from_secs(15);

/// Waits until `file` lists `n` pids, and returns them (killed on drop).
fn pids_in(file: &std::path::Path, n: usize) -> KillOnDrop {
    let lines = wait_until(&format!("{n} pids in {}", file.display()), T, || {
        let lines = read_lines(file);
        (lines.len() == n).then_some(lines)
    });
    KillOnDrop(lines.iter().map(|l| l.parse().expect("a pid")).collect())
}

/// Waits until none of `pids` exists any more, not even as a zombie.
fn wait_reaped(pids: &[u32]) {
    wait_until("the processes to be gone and reaped", T, || {
        pids.iter().all(|p| proc_state(*p).is_none()).then_some(())
    });
}

#[test]
fn a_thousand_children_left_behind_are_adopted_left_alone_and_reaped() {
    let d = Daemon::start(&program_toml(
        "bomb",
        &["grandchildren", "1000", "{dir}/gc", "exit", "0"],
        "startsecs = 0\nautorestart = \"never\"",
    ));
    let info = d.wait_state("bomb", State::Exited, T);
    assert_eq!(info.exit_status, Some(ExitStatus::Code(0)));
    let kids = pids_in(&d.dir().join("gc"), 1000);
    let daemon = d.pid();
    wait_until("the children to be adopted by the daemon", T, || {
        kids.0
            .iter()
            .all(|k| ppid_of(*k) == Some(daemon))
            .then_some(())
    });
    // The program has exited: the daemon does not signal what it left.
    assert!(kids.0.iter().all(|k| is_alive(*k)), "left alone");
    let (status, body) = d.post("/v1/programs/bomb/stop", "");
    assert_eq!(status, 200, "{body}");
    assert!(
        kids.0.iter().all(|k| is_alive(*k)),
        "stop does not touch them"
    );
    let before = d.metric("nsvisor_orphans_reaped_total").unwrap_or(0.0);
    // They still make up the program's process group: kill it, and the
    // daemon reaps every one of them.
    let pgid = getpgid(Some(Pid::from_raw(kids.0[0] as i32))).expect("pgid");
    killpg(pgid, Signal::SIGKILL).expect("killpg");
    wait_reaped(&kids.0);
    let reaped = d.metric("nsvisor_orphans_reaped_total").unwrap_or(0.0);
    assert_eq!(
        reaped - before,
        1000.0,
        "every child counted as an orphan reaped"
    );
    assert_eq!(d.status("bomb").map(|i| i.state), Some(State::Exited));
}

#[test]
fn a_program_that_closes_its_stdout_keeps_running_and_its_stderr_is_still_read() {
    let d = Daemon::start(&program_toml(
        "quiet",
        &[
            "print-lines",
            "1",
            "--prefix",
            "out-",
            "close-stdout",
            "stderr-lines",
            "1",
            "--prefix",
            "err-",
            "record",
            "{dir}/rec",
            "sleep",
            "forever",
        ],
        "startsecs = 1",
    ));
    let rec = d.dir().join("rec");
    let first = wait_record(&rec, "start", T);
    // Past startsecs with its stdout closed: a closed stream is no exit.
    let info = d.wait_state("quiet", State::Running, T);
    assert_eq!(info.pid, Some(first.pid));
    let tail = |stream: &str| {
        d.request("GET", &format!("/v1/programs/quiet/logs/{stream}"), "")
            .text()
    };
    wait_until("both lines in the tails", T, || {
        (tail("stdout") == "out-line 1\n" && tail("stderr") == "err-line 1\n").then_some(())
    });
    // The next process gets new pipes: its stdout is read again.
    let (status, body) = d.post("/v1/programs/quiet/restart", "");
    assert_eq!(status, 200, "{body}");
    wait_until("the second process's stdout line", T, || {
        (tail("stdout") == "out-line 1\nout-line 1\n").then_some(())
    });
    let starts = read_records(&rec)
        .into_iter()
        .filter(|r| r.event == "start")
        .count();
    assert_eq!(starts, 2);
}

#[test]
fn a_program_cannot_leave_its_session_and_children_that_do_escape_stopasgroup() {
    let d = Daemon::start(&program_toml(
        "runaway",
        &[
            "record",
            "{dir}/rec",
            "setsid",
            "grandchildren",
            "2",
            "{dir}/gc",
            "--setsid",
            "sleep",
            "forever",
        ],
        "startsecs = 0\nstopasgroup = true",
    ));
    let rec = d.dir().join("rec");
    // nsvisor made the program a session leader, which cannot start another.
    let main = wait_record(&rec, "setsid EPERM", T).pid;
    let kids = pids_in(&d.dir().join("gc"), 2);
    let main_sid = getsid(Some(Pid::from_raw(main as i32))).expect("sid");
    for k in &kids.0 {
        let sid = getsid(Some(Pid::from_raw(*k as i32))).expect("sid");
        assert_ne!(
            sid, main_sid,
            "child {k} left the program's session and group"
        );
    }
    let (status, body) = d.post("/v1/programs/runaway/stop", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.status("runaway").map(|i| i.state), Some(State::Stopped));
    // The group signal does not reach them: they run on, adopted by the daemon.
    let daemon = d.pid();
    wait_until("the escaped children to be adopted", T, || {
        kids.0
            .iter()
            .all(|k| ppid_of(*k) == Some(daemon))
            .then_some(())
    });
    assert!(kids.0.iter().all(|k| is_alive(*k)));
    for k in &kids.0 {
        nix::sys::signal::kill(Pid::from_raw(*k as i32), Signal::SIGKILL).expect("kill");
    }
    wait_reaped(&kids.0);
}

#[test]
fn a_program_that_ignores_every_signal_is_killed_after_stopwaitsecs() {
    let mut d = Daemon::start(&program_toml(
        "stubborn",
        &["ignore-all", "record", "{dir}/rec", "sleep", "forever"],
        "startsecs = 0\nstopwaitsecs = 1",
    ));
    let rec = d.dir().join("rec");
    let pid = wait_record(&rec, "start", T).pid;
    d.wait_state("stubborn", State::Running, T);
    for sig in ["TERM", "INT", "QUIT", "HUP", "USR1", "USR2", "ALRM", "PIPE"] {
        let (status, body) = d.post(
            "/v1/programs/stubborn/signal",
            &format!("{{\"signal\":\"{sig}\"}}"),
        );
        assert_eq!(status, 200, "{sig}: {body}");
    }
    let info = d.status("stubborn").expect("stubborn");
    assert_eq!(
        (info.state, info.pid),
        (State::Running, Some(pid)),
        "unmoved"
    );

    let t0 = Instant::now();
    let (status, body) = d.post("/v1/programs/stubborn/stop", "");
    let took = t0.elapsed();
    assert_eq!(status, 200, "{body}");
    let info = d.status("stubborn").expect("stubborn");
    assert_eq!(info.state, State::Stopped);
    assert_eq!(info.exit_status, Some(ExitStatus::Signal(9)), "SIGKILLed");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "stopped after stopwaitsecs: {took:?}"
    );

    // At shutdown too: the daemon exits 0 once SIGKILL has done it.
    let (status, body) = d.post("/v1/programs/stubborn/start", "");
    assert_eq!(status, 200, "{body}");
    wait_until("the second process to ignore every signal", T, || {
        let starts = read_records(&rec)
            .into_iter()
            .filter(|r| r.event == "start");
        (starts.count() == 2).then_some(())
    });
    let t0 = Instant::now();
    let exit = d.terminate();
    assert!(exit.success(), "{exit}");
    assert!(t0.elapsed() >= Duration::from_secs(1));
}
