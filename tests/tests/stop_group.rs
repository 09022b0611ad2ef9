//! `stopasgroup` / `killasgroup`: stopping a program takes its whole process
//! group down, grandchildren included; without them only the main process gets
//! the signal.
//!
//! The program is `testprog grandchildren N FILE ...`: it forks N children that
//! stay in its process group and writes their pids to FILE.

use std::path::Path;
use std::time::Duration;

use nsvisor_proto::{ExitStatus, State};
use nsvisor_tests::{
    is_alive, proc_state, program_toml, read_lines, wait_until, Daemon, KillOnDrop,
};

const T: Duration = Duration::from_secs(10);

/// Waits until `file` lists `n` pids, and returns them (killed on drop).
fn grandchildren(file: &Path, n: usize) -> KillOnDrop {
    let pids = wait_until("the grandchildren's pids", T, || {
        let lines = read_lines(file);
        (lines.len() == n).then_some(lines)
    });
    let pids: Vec<u32> = pids.iter().map(|l| l.parse().expect("a pid")).collect();
    assert!(
        pids.iter().all(|p| is_alive(*p)),
        "grandchildren run: {pids:?}"
    );
    KillOnDrop(pids)
}

/// Waits until none of `pids` exists any more, not even as a zombie.
fn wait_gone(pids: &[u32]) {
    wait_until("the grandchildren to be gone and reaped", T, || {
        pids.iter().all(|p| proc_state(*p).is_none()).then_some(())
    });
}

#[test]
fn stopasgroup_stops_grandchildren() {
    let d = Daemon::start(&program_toml(
        "group",
        &["grandchildren", "3", "{dir}/gc", "sleep", "forever"],
        "startsecs = 0\nstopasgroup = true",
    ));
    d.wait_state("group", State::Running, T);
    let gc = grandchildren(&d.dir().join("gc"), 3);
    let (status, body) = d.post("/v1/programs/group/stop", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(d.status("group").map(|i| i.state), Some(State::Stopped));
    wait_gone(&gc.0);
}

#[test]
fn killasgroup_kills_grandchildren_after_stopwaitsecs() {
    // The main process ignores TERM; its grandchildren would die of TERM, but
    // without stopasgroup they do not get it: they die of the group SIGKILL.
    let d = Daemon::start(&program_toml(
        "group",
        &[
            "ignore-term",
            "grandchildren",
            "2",
            "{dir}/gc",
            "sleep",
            "forever",
        ],
        "startsecs = 0\nkillasgroup = true\nstopwaitsecs = 1",
    ));
    d.wait_state("group", State::Running, T);
    let gc = grandchildren(&d.dir().join("gc"), 2);
    let (status, body) = d.post("/v1/programs/group/stop", "");
    assert_eq!(status, 200, "{body}");
    let info = d.status("group").expect("group exists");
    assert_eq!(info.state, State::Stopped);
    assert_eq!(info.exit_status, Some(ExitStatus::Signal(9)));
    wait_gone(&gc.0);
}

#[test]
fn without_stopasgroup_only_the_main_process_is_signalled() {
    let d = Daemon::start(&program_toml(
        "solo",
        &["grandchildren", "2", "{dir}/gc", "sleep", "forever"],
        "startsecs = 0",
    ));
    let pid = d.wait_state("solo", State::Running, T).pid.expect("a pid");
    let gc = grandchildren(&d.dir().join("gc"), 2);
    let (status, body) = d.post("/v1/programs/solo/stop", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(proc_state(pid), None, "the main process is gone and reaped");
    assert!(
        gc.0.iter().all(|p| is_alive(*p)),
        "grandchildren were not signalled"
    );
}
