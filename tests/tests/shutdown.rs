//! Graceful shutdown: SIGTERM, SIGINT and SIGQUIT stop every program (in
//! parallel within a tier), a second SIGTERM does not cut anyone's grace short,
//! the daemon exits only after its programs, with 0; a `critical` program
//! ending for good shuts the daemon down with that program's status.

use std::time::Duration;

use nix::sys::signal::Signal;
use nsvisor_proto::State;
use nsvisor_tests::{
    log_lines, proc_state, program_toml, read_records, wait_record, wait_until, Daemon, Record,
};

const T: Duration = Duration::from_secs(10);

fn has(recs: &[Record], event: &str) -> bool {
    recs.iter().any(|r| r.event == event)
}

#[test]
fn second_sigterm_does_not_cut_the_grace_short() {
    let mut d = Daemon::start(&program_toml(
        "slow",
        &[
            "term-exit",
            "7",
            "--after",
            "1.5",
            "record",
            "{dir}/slow.rec",
            "sleep",
            "forever",
        ],
        "startsecs = 0\nstopwaitsecs = 10",
    ));
    let pid = d.wait_state("slow", State::Running, T).pid.expect("a pid");
    let rec = d.dir().join("slow.rec");
    wait_record(&rec, "start", T);
    d.signal(Signal::SIGTERM);
    wait_until("slow to get TERM", T, || {
        has(&read_records(&rec), "signal TERM").then_some(())
    });
    d.signal(Signal::SIGTERM);

    let status = d.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "requested shutdown exits 0");
    let recs = read_records(&rec);
    let term = recs.iter().find(|r| r.event == "signal TERM").map(|r| r.ms);
    let exit = recs.iter().find(|r| r.event == "exit 7").map(|r| r.ms);
    let (Some(term), Some(exit)) = (term, exit) else {
        panic!("slow did not exit by itself after its grace: {recs:?}");
    };
    assert!(exit - term >= 1450, "exited {} ms after TERM", exit - term);
    let terms = recs.iter().filter(|r| r.event == "signal TERM").count();
    assert_eq!(terms, 1, "the second SIGTERM only logs: {recs:?}");
    assert_eq!(proc_state(pid), None, "the daemon exited after its program");
}

#[test]
fn sigint_and_sigquit_shut_down_gracefully_and_exit_0() {
    for (sig, name) in [(Signal::SIGINT, "SIGINT"), (Signal::SIGQUIT, "SIGQUIT")] {
        let mut d = Daemon::start(&program_toml(
            "slow",
            &[
                "term-exit",
                "0",
                "--after",
                "0.5",
                "record",
                "{dir}/slow.rec",
                "sleep",
                "forever",
            ],
            "startsecs = 0\nstopwaitsecs = 10",
        ));
        let pid = d.wait_state("slow", State::Running, T).pid.expect("a pid");
        let rec = d.dir().join("slow.rec");
        wait_record(&rec, "start", T);
        d.signal(sig);
        let status = d.wait_exit(Duration::from_secs(20));
        assert_eq!(
            status.code(),
            Some(0),
            "{name}: a requested shutdown exits 0"
        );
        let events: Vec<String> = read_records(&rec).into_iter().map(|r| r.event).collect();
        assert_eq!(
            events,
            ["start", "signal TERM", "exit 0"],
            "{name}: slow got its stopsignal and ended by itself"
        );
        assert_eq!(proc_state(pid), None, "{name}: slow was reaped");
        let why = format!("INFO shutting down (received {name})");
        assert!(
            log_lines(&d.stderr()).contains(&why),
            "{name}: the log says why:\n{}",
            d.stderr()
        );
    }
}

#[test]
fn programs_of_one_tier_stop_in_parallel() {
    let names = ["p1", "p2", "p3", "p4"];
    let config: String = names
        .iter()
        .map(|n| {
            let rec = format!("{{dir}}/{n}.rec");
            let args = [
                "term-exit",
                "0",
                "--after",
                "1",
                "record",
                &rec,
                "sleep",
                "forever",
            ];
            program_toml(n, &args, "startsecs = 0")
        })
        .collect();
    let mut d = Daemon::start(&config);
    for n in names {
        d.wait_state(n, State::Running, T);
        wait_record(&d.dir().join(format!("{n}.rec")), "start", T);
    }
    assert_eq!(d.terminate().code(), Some(0));

    let recs: Vec<Vec<Record>> = names
        .iter()
        .map(|n| read_records(&d.dir().join(format!("{n}.rec"))))
        .collect();
    let time = |r: &[Record], ev: &str| {
        r.iter()
            .find(|x| x.event == ev)
            .unwrap_or_else(|| panic!("no {ev:?} in {r:?}"))
            .ms
    };
    let last_term = recs.iter().map(|r| time(r, "signal TERM")).max();
    let first_exit = recs.iter().map(|r| time(r, "exit 0")).min();
    // Each program exits 1 s after its TERM: if any TERM came after some exit,
    // the stops were (partly) one after the other.
    assert!(
        last_term < first_exit,
        "TERMs were not sent together: {recs:?}"
    );
}

#[test]
fn daemon_exits_only_after_its_programs() {
    let mut d = Daemon::start(&program_toml(
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
    ));
    let pid = d.wait_state("slow", State::Running, T).pid.expect("a pid");
    wait_record(&d.dir().join("slow.rec"), "start", T);
    assert_eq!(d.terminate().code(), Some(0));
    let recs = read_records(&d.dir().join("slow.rec"));
    assert!(has(&recs, "exit 0"), "slow ended by itself: {recs:?}");
    assert_eq!(
        proc_state(pid),
        None,
        "slow was reaped before the daemon exited"
    );
}

#[test]
fn critical_program_exit_shuts_down_with_its_code() {
    let mut config = program_toml(
        "main",
        &["wait-file", "{dir}/go", "exit", "5"],
        "startsecs = 0\nautorestart = \"never\"\ncritical = true",
    );
    config += &program_toml(
        "helper",
        &[
            "term-exit",
            "0",
            "record",
            "{dir}/helper.rec",
            "sleep",
            "forever",
        ],
        "startsecs = 0",
    );
    let mut d = Daemon::start(&config);
    d.wait_state("main", State::Running, T);
    wait_record(&d.dir().join("helper.rec"), "start", T);
    std::fs::write(d.dir().join("go"), "").expect("write go");
    let status = d.wait_exit(T);
    assert_eq!(status.code(), Some(5), "the critical program's code");
    let recs = read_records(&d.dir().join("helper.rec"));
    assert!(
        has(&recs, "signal TERM") && has(&recs, "exit 0"),
        "helper was stopped: {recs:?}"
    );
}

#[test]
fn critical_program_killed_by_signal_gives_128_plus_n() {
    let mut d = Daemon::start(&program_toml(
        "main",
        &["wait-file", "{dir}/go", "kill-self", "KILL"],
        "startsecs = 0\nautorestart = \"never\"\ncritical = true",
    ));
    d.wait_state("main", State::Running, T);
    std::fs::write(d.dir().join("go"), "").expect("write go");
    assert_eq!(d.wait_exit(T).code(), Some(128 + 9));
}
