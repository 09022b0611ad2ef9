//! The init contract: orphans of programs are reaped (as PID 1 of a new PID
//! namespace, and as a child subreaper otherwise), and as PID 1 the daemon
//! exits only after its programs did (its exit would SIGKILL them).
//!
//! The program is `testprog orphans N`: each orphan writes "orphan-exit" to the
//! record file just before it exits, so once all N lines are there, every
//! orphan is exiting or a zombie, and nothing but the daemon can reap it.

use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{
    children_of, proc_state, program_toml, read_records, require_root, wait_record, wait_until,
    Daemon,
};

const T: Duration = Duration::from_secs(10);
const ORPHANS: usize = 100;

/// Waits until all orphans have recorded their exit, then until the daemon has
/// no child left but the program itself (no zombies either).
fn assert_orphans_reaped(d: &Daemon, rec: &std::path::Path) {
    wait_until("every orphan to exit", T, || {
        let n = read_records(rec)
            .iter()
            .filter(|r| r.event == "orphan-exit")
            .count();
        (n == ORPHANS).then_some(())
    });
    let daemon = d.daemon_pid();
    let left = wait_until("the daemon to reap every orphan", T, || {
        let children = children_of(daemon);
        (children.len() == 1).then_some(children)
    });
    assert_ne!(
        proc_state(left[0]),
        Some('Z'),
        "the remaining child is the program"
    );
    let metrics = d.request("GET", "/metrics", "").text();
    let reaped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("nsvisor_orphans_reaped_total "))
        .unwrap_or_else(|| panic!("no nsvisor_orphans_reaped_total in:\n{metrics}"));
    assert_eq!(reaped.trim(), ORPHANS.to_string(), "orphans counted");
}

fn orphan_maker() -> String {
    let n = ORPHANS.to_string();
    program_toml(
        "maker",
        &[
            "record",
            "{dir}/maker.rec",
            "orphans",
            &n,
            "--linger",
            "0.2",
            "sleep",
            "forever",
        ],
        "startsecs = 0",
    )
}

#[test]
fn as_pid1_orphans_are_reaped() {
    if !require_root("as_pid1_orphans_are_reaped") {
        return;
    }
    let d = Daemon::builder().config(&orphan_maker()).pid1(true).start();
    let health = d.get("/v1/health").1;
    assert_eq!(
        health["pid"], 1,
        "nsvisor is PID 1 of its namespace: {health}"
    );
    d.wait_state("maker", State::Running, T);
    assert_orphans_reaped(&d, &d.dir().join("maker.rec"));
}

#[test]
fn as_subreaper_orphans_are_reaped() {
    let d = Daemon::start(&orphan_maker());
    d.wait_state("maker", State::Running, T);
    assert_orphans_reaped(&d, &d.dir().join("maker.rec"));
}

#[test]
fn as_pid1_sigterm_waits_for_programs() {
    if !require_root("as_pid1_sigterm_waits_for_programs") {
        return;
    }
    let mut d = Daemon::builder()
        .config(&program_toml(
            "slow",
            &[
                "term-exit",
                "0",
                "--after",
                "1",
                "record",
                "{dir}/slow.rec",
                "sleep",
                "forever",
            ],
            "startsecs = 0",
        ))
        .pid1(true)
        .start();
    d.wait_state("slow", State::Running, T);
    wait_record(&d.dir().join("slow.rec"), "start", T);
    let status = d.terminate();
    assert_eq!(status.code(), Some(0), "requested shutdown exits 0");
    // Had nsvisor exited first, the kernel would have SIGKILLed `slow` before it
    // could record its exit.
    let recs = read_records(&d.dir().join("slow.rec"));
    assert!(
        recs.iter().any(|r| r.event == "exit 0"),
        "slow exited by itself before the daemon: {recs:?}"
    );
}
