//! Program states seen from outside: every supervisord transition, start/stop
//! through the API, backoff delays, FATAL, `stopsignal`, and SIGKILL after
//! `stopwaitsecs`.
//!
//! Each test starts the real daemon on a small config of `testprog` programs and
//! watches `GET /v1/programs/{name}`, the event stream, and the record files
//! `testprog` writes (start times, signals received, exits).

use std::time::{Duration, Instant};

use nsvisor_proto::{ActionResult, ExitStatus, State};
use nsvisor_tests::{program_toml, read_records, Daemon, Record};

const T: Duration = Duration::from_secs(10);

fn starts(records: &[Record]) -> Vec<&Record> {
    records.iter().filter(|r| r.event == "start").collect()
}

fn actions(status: u16, body: &serde_json::Value) -> Vec<ActionResult> {
    serde_json::from_value(body.clone())
        .unwrap_or_else(|e| panic!("status {status}: not a list of ActionResult ({e}): {body}"))
}

#[test]
fn start_goes_stopped_starting_running_after_startsecs() {
    let d = Daemon::start(&program_toml(
        "a",
        &["record", "{dir}/a.rec", "sleep", "forever"],
        "autostart = false\nstartsecs = 1",
    ));
    let info = d.status("a").expect("program a exists");
    assert_eq!(info.state, State::Stopped);
    assert_eq!(info.pid, None);

    let mut events = d.events();
    let t0 = Instant::now();
    let (status, body) = d.post("/v1/programs/a/start", "");
    let took = t0.elapsed();
    let results = actions(status, &body);
    assert_eq!(status, 200, "{body}");
    assert!(results[0].ok, "{body}");
    assert_eq!(results[0].program.state, State::Running);
    assert!(
        took >= Duration::from_millis(950),
        "start answered after {took:?}, before startsecs"
    );

    let starting = events.wait_for("a STOPPED→STARTING", T, |e| e.name == "a");
    assert_eq!(
        (starting.from, starting.to),
        (State::Stopped, State::Starting)
    );
    let running = events.wait_for("a →RUNNING", T, |e| e.name == "a");
    assert_eq!(
        (running.from, running.to),
        (State::Starting, State::Running)
    );
    let waited = running.time_ms - starting.time_ms;
    assert!(
        waited >= 950,
        "RUNNING {waited} ms after STARTING, startsecs is 1 s"
    );

    let recs = read_records(&d.dir().join("a.rec"));
    assert_eq!(starts(&recs).len(), 1);
    assert_eq!(
        Some(recs[0].pid),
        starting.pid,
        "the event names the spawned pid"
    );
    assert_eq!(d.status("a").and_then(|i| i.pid), Some(recs[0].pid));
}

#[test]
fn exit_from_running_with_autorestart_never_is_exited() {
    let d = Daemon::start(&program_toml(
        "a",
        &[
            "record",
            "{dir}/a.rec",
            "wait-file",
            "{dir}/go",
            "exit",
            "3",
        ],
        "startsecs = 0\nautorestart = \"never\"",
    ));
    let running = d.wait_state("a", State::Running, T);
    assert!(running.pid.is_some());
    std::fs::write(d.dir().join("go"), "").expect("write go");
    let exited = d.wait_state("a", State::Exited, T);
    assert_eq!(exited.exit_status, Some(ExitStatus::Code(3)));
    assert_eq!(exited.pid, None);
    assert_eq!(exited.restarts, 0);
    assert_eq!(starts(&read_records(&d.dir().join("a.rec"))).len(), 1);
}

#[test]
fn autorestart_unexpected_restarts_only_unexpected_codes() {
    let mut config = program_toml(
        "expected",
        &["record", "{dir}/expected.rec", "exit", "3"],
        "startsecs = 0\nautorestart = \"unexpected\"\nexitcodes = [0, 3]",
    );
    config += &program_toml(
        "crash",
        &[
            "record",
            "{dir}/crash.rec",
            "wait-file",
            "{dir}/go",
            "fail-starts",
            "1",
            "4",
            "sleep",
            "forever",
        ],
        "startsecs = 0\nautorestart = \"unexpected\"\nexitcodes = [0, 3]",
    );
    let d = Daemon::start(&config);
    let first = d.wait_state("crash", State::Running, T);
    let expected = d.wait_state("expected", State::Exited, T);
    assert_eq!(expected.exit_status, Some(ExitStatus::Code(3)));

    // Only now let `crash` exit with 4: it must come back (restarts = 1, new pid).
    std::fs::write(d.dir().join("go"), "").expect("write go");
    let again = nsvisor_tests::wait_until("crash to be restarted", T, || {
        d.status("crash")
            .filter(|i| i.state == State::Running && i.restarts == 1)
    });
    assert_ne!(again.pid, first.pid);
    assert_eq!(again.exit_status, Some(ExitStatus::Code(4)));
    nsvisor_tests::wait_until("crash's second start record", T, || {
        (starts(&read_records(&d.dir().join("crash.rec"))).len() == 2).then_some(())
    });

    // `expected` exited before `crash` did, with a code in exitcodes: never restarted.
    let expected = d.status("expected").expect("expected exists");
    assert_eq!((expected.state, expected.restarts), (State::Exited, 0));
    assert_eq!(
        starts(&read_records(&d.dir().join("expected.rec"))).len(),
        1
    );
}

#[test]
fn failed_starts_back_off_longer_each_time_then_fatal_until_started_again() {
    // Exits at once (even with code 0, an exit while STARTING is a failed start).
    // Starts 1..=3 fail; startretries = 2 allows 2 retries after the first: FATAL.
    let d = Daemon::start(&program_toml(
        "flaky",
        &[
            "record",
            "{dir}/flaky.rec",
            "fail-starts",
            "3",
            "0",
            "sleep",
            "forever",
        ],
        "startsecs = 1\nstartretries = 2",
    ));
    let fatal = d.wait_state("flaky", State::Fatal, Duration::from_secs(20));
    assert_eq!(fatal.pid, None);
    let recs = read_records(&d.dir().join("flaky.rec"));
    let times: Vec<u64> = starts(&recs).iter().map(|r| r.ms).collect();
    assert_eq!(times.len(), 3, "1 start + 2 retries: {recs:?}");
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // supervisord's backoff: 1 s, then 2 s. Generous upper bounds only catch nonsense.
    assert!(
        (950..3000).contains(&gaps[0]),
        "first backoff {} ms",
        gaps[0]
    );
    assert!(
        (1950..4000).contains(&gaps[1]),
        "second backoff {} ms",
        gaps[1]
    );
    assert!(gaps[1] > gaps[0], "backoff must grow: {gaps:?}");

    // FATAL is left only by an explicit start; the 4th start succeeds.
    let mut events = d.events();
    let (status, body) = d.post("/v1/programs/flaky/start", "");
    let results = actions(status, &body);
    assert!(results[0].ok, "{body}");
    assert_eq!(results[0].program.state, State::Running);
    let ev = events.wait_for("flaky to leave FATAL", T, |e| e.name == "flaky");
    assert_eq!((ev.from, ev.to), (State::Fatal, State::Starting));
    events.wait_for("flaky to be RUNNING", T, |e| {
        e.name == "flaky" && e.to == State::Running
    });
}

#[test]
fn starting_exit_is_backoff_and_stop_in_backoff_is_immediate() {
    let d = Daemon::start(&program_toml(
        "a",
        &["record", "{dir}/a.rec", "exit", "1"],
        "autostart = false\nstartsecs = 1\nstartretries = 100",
    ));
    let mut events = d.events();
    let (status, body) = d.post("/v1/programs/a/start?wait=false", "");
    assert_eq!(status, 200, "{body}");
    // The third failed start waits 3 s before the next try: a stop that
    // waited for it, or for anything else, would answer seconds later.
    let mut backoffs = Vec::new();
    while backoffs.len() < 3 {
        let ev = events.wait_for("a →BACKOFF", T, |e| e.name == "a");
        match (ev.from, ev.to) {
            (State::Stopped | State::Backoff, State::Starting) => {}
            (State::Starting, State::Backoff) => backoffs.push(ev),
            other => panic!("unexpected transition {other:?}: {:?}", events.seen),
        }
    }
    let t0 = Instant::now();
    let (status, body) = d.post("/v1/programs/a/stop", "");
    let took = t0.elapsed();
    let results = actions(status, &body);
    assert!(results[0].ok, "{body}");
    assert_eq!(results[0].program.state, State::Stopped);
    let stopped = events.wait_for("a →STOPPED", T, |e| e.name == "a");
    assert_eq!(
        (stopped.from, stopped.to),
        (State::Backoff, State::Stopped),
        "straight from BACKOFF: {:?}",
        events.seen
    );
    let after = stopped.time_ms - backoffs[2].time_ms;
    assert!(
        after < 1500 && took < Duration::from_millis(1500),
        "STOPPED {after} ms into a 3 s backoff, the stop answered after {took:?}"
    );
    assert_eq!(starts(&read_records(&d.dir().join("a.rec"))).len(), 3);
    assert_eq!(d.status("a").map(|i| i.state), Some(State::Stopped));
}

#[test]
fn a_stopsignal_other_than_term_is_what_the_program_gets() {
    let d = Daemon::start(&program_toml(
        "a",
        &[
            "exit-on",
            "INT",
            "0",
            "trap",
            "TERM",
            "record",
            "{dir}/a.rec",
            "sleep",
            "forever",
        ],
        "startsecs = 0\nstopsignal = \"INT\"\nstopwaitsecs = 10",
    ));
    d.wait_state("a", State::Running, T);
    nsvisor_tests::wait_record(&d.dir().join("a.rec"), "start", T);
    let t0 = Instant::now();
    let (status, body) = d.post("/v1/programs/a/stop", "");
    let took = t0.elapsed();
    let results = actions(status, &body);
    assert!(results[0].ok, "{body}");
    assert_eq!(
        results[0].program.exit_status,
        Some(ExitStatus::Code(0)),
        "a ended by itself on INT, not by SIGKILL: {body}"
    );
    assert!(took < Duration::from_secs(5), "stop took {took:?}");
    let recs = read_records(&d.dir().join("a.rec"));
    let seen: Vec<&str> = recs.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(seen, ["start", "signal INT", "exit 0"], "no TERM, only INT");
}

#[test]
fn stop_goes_through_stopping_to_stopped() {
    let d = Daemon::start(&program_toml(
        "a",
        &[
            "record",
            "{dir}/a.rec",
            "term-exit",
            "0",
            "--after",
            "0.3",
            "ready-file",
            "{dir}/a.ready",
            "sleep",
            "forever",
        ],
        "startsecs = 0",
    ));
    d.wait_state("a", State::Running, T);
    nsvisor_tests::wait_until("a to be ready", T, || {
        d.dir().join("a.ready").exists().then_some(())
    });
    let mut events = d.events();
    let (status, body) = d.post("/v1/programs/a/stop", "");
    let results = actions(status, &body);
    assert!(results[0].ok, "{body}");
    assert_eq!(results[0].program.state, State::Stopped);

    let stopping = events.wait_for("a →STOPPING", T, |e| e.name == "a");
    assert_eq!(
        (stopping.from, stopping.to),
        (State::Running, State::Stopping)
    );
    let stopped = events.wait_for("a →STOPPED", T, |e| e.name == "a");
    assert_eq!(
        (stopped.from, stopped.to),
        (State::Stopping, State::Stopped)
    );
    assert_eq!(stopped.exit_status, Some(ExitStatus::Code(0)));

    let recs = read_records(&d.dir().join("a.rec"));
    let events_seen: Vec<&str> = recs.iter().map(|r| r.event.as_str()).collect();
    assert_eq!(events_seen, ["start", "signal TERM", "exit 0"]);
}

#[test]
fn program_ignoring_term_is_killed_after_stopwaitsecs() {
    let d = Daemon::start(&program_toml(
        "stubborn",
        &[
            "record",
            "{dir}/s.rec",
            "ignore-term",
            "ready-file",
            "{dir}/s.ready",
            "sleep",
            "forever",
        ],
        "startsecs = 0\nstopwaitsecs = 1",
    ));
    d.wait_state("stubborn", State::Running, T);
    nsvisor_tests::wait_until("stubborn to be ready", T, || {
        d.dir().join("s.ready").exists().then_some(())
    });
    let mut events = d.events();
    let t0 = Instant::now();
    let (status, body) = d.post("/v1/programs/stubborn/stop", "");
    let took = t0.elapsed();
    let results = actions(status, &body);
    assert!(results[0].ok, "{body}");
    assert_eq!(results[0].program.exit_status, Some(ExitStatus::Signal(9)));

    let stopping = events.wait_for("→STOPPING", T, |e| e.to == State::Stopping);
    let stopped = events.wait_for("→STOPPED", T, |e| e.to == State::Stopped);
    let grace = stopped.time_ms - stopping.time_ms;
    assert!(
        grace >= 950,
        "SIGKILL after {grace} ms, stopwaitsecs is 1 s"
    );
    assert!(
        grace < 2000,
        "SIGKILL only after {grace} ms, stopwaitsecs is 1 s"
    );
    assert!(took < Duration::from_secs(3), "stop took {took:?}");

    let recs = read_records(&d.dir().join("s.rec"));
    assert!(
        recs.iter().any(|r| r.event == "signal TERM"),
        "TERM was sent first: {recs:?}"
    );
    assert!(
        !recs.iter().any(|r| r.event.starts_with("exit")),
        "{recs:?}"
    );
}
