//! Readiness and liveness rules: thresholds, `start_period`, what `ready`
//! gates, and what a failing liveness check does.

use super::*;
use crate::config::{CheckConfig, CheckKind, Condition, Dependency, OnFailure, Purpose};

fn check(purpose: Purpose) -> CheckConfig {
    let mut c = CheckConfig::new(
        purpose,
        CheckKind::Tcp {
            host: "127.0.0.1".into(),
            port: 80,
        },
    );
    c.period = Duration::from_secs(5);
    c
}

fn with_check(mut p: ProgramConfig, c: CheckConfig) -> ProgramConfig {
    p.checks.push(c);
    p
}

/// Advances 1 s (the first run, or a not-yet-ready rerun) and reports.
fn report_after(w: &mut World, d: Duration, name: &str, passed: bool) {
    w.advance(d);
    w.checks_report(name, passed);
}

#[test]
fn readiness_gates_dependants_and_waiting_clients() {
    let db = with_check(prog("db", &[]), check(Purpose::Readiness));
    let mut web = prog("web", &[]);
    web.depends_on = vec![Dependency::on("db", Condition::Ready)];
    let mut w = World::new(config([db, web]));
    w.boot();
    let client = w.act(Verb::Start, "db", true);
    assert_eq!(w.state("db"), State::Running);
    assert!(!w.answered(client), "RUNNING but not ready yet");
    assert_eq!(w.state("web"), State::Stopped);
    assert_eq!(w.description("web"), "waiting for db");
    assert!(w
        .description("db")
        .ends_with(", not ready (not checked yet)"));
    report_after(&mut w, Duration::from_secs(1), "db", false);
    assert!(w
        .description("db")
        .ends_with(", not ready (tcp 127.0.0.1:80: Connection refused (os error 111))"));
    assert!(!w.answered(client));
    report_after(&mut w, Duration::from_secs(1), "db", true);
    assert_eq!(
        w.act_answer(client).as_ref().map(|r| r[0].ok).ok(),
        Some(true)
    );
    assert!(w.planner.program("db").is_some_and(|p| p.ready()));
    assert_eq!(
        w.state("web"),
        State::Running,
        "web waited for db to be ready"
    );
}

#[test]
fn thresholds_count_consecutive_results() {
    let mut c = check(Purpose::Readiness);
    c.success_threshold = 2;
    c.failure_threshold = 2;
    let mut w = World::new(config([with_check(prog("db", &[]), c)]));
    w.boot();
    let ready = |w: &World| w.planner.program("db").is_some_and(|p| p.ready());
    report_after(&mut w, Duration::from_secs(1), "db", true);
    assert!(!ready(&w), "one pass of two");
    report_after(&mut w, Duration::from_secs(1), "db", true);
    assert!(ready(&w));
    report_after(&mut w, Duration::from_secs(5), "db", false);
    assert!(ready(&w), "one failure of two");
    report_after(&mut w, Duration::from_secs(5), "db", true);
    report_after(&mut w, Duration::from_secs(5), "db", false);
    assert!(ready(&w), "the pass in between reset the count");
    report_after(&mut w, Duration::from_secs(5), "db", false);
    assert!(!ready(&w));
    let info = w.planner.program("db").expect("db").info(w.now);
    let c = &info.checks[0];
    assert_eq!((c.runs, c.failures, c.passing), (6, 3, false));
    assert_eq!(c.last_ms, Some(1));
    assert_eq!(c.check, "tcp 127.0.0.1:80");
}

#[test]
fn a_failing_liveness_check_restarts_the_program() {
    let c = check(Purpose::Liveness);
    let mut w = World::new(config([with_check(prog("web", &[]), c)]));
    w.boot();
    for _ in 0..2 {
        report_after(&mut w, Duration::from_secs(5), "web", false);
    }
    assert!(w.signals_to("web").is_empty(), "two failures of three");
    report_after(&mut w, Duration::from_secs(5), "web", false);
    assert_eq!(w.signals_to("web"), [Signal::SIGTERM]);
    w.exit("web", ExitStatus::Signal(15));
    assert_eq!(w.spawns, ["web", "web"], "started again");
    assert_eq!(w.state("web"), State::Running);
}

#[test]
fn failures_within_start_period_do_not_count() {
    let mut c = check(Purpose::Liveness);
    c.failure_threshold = 1;
    c.start_period = Duration::from_secs(20);
    let mut w = World::new(config([with_check(prog("web", &[]), c)]));
    w.boot();
    report_after(&mut w, Duration::from_secs(1), "web", false);
    report_after(&mut w, Duration::from_secs(5), "web", false);
    report_after(&mut w, Duration::from_secs(5), "web", false);
    assert!(w.signals_to("web").is_empty(), "11 s after the spawn");
    report_after(&mut w, Duration::from_secs(10), "web", false);
    assert_eq!(
        w.signals_to("web"),
        [Signal::SIGTERM],
        "21 s after the spawn"
    );
}

#[test]
fn on_failure_stop_shutdown_and_ignore() {
    let with_action = |action| {
        let mut c = check(Purpose::Liveness);
        c.failure_threshold = 1;
        c.on_failure = action;
        with_check(prog("web", &[]), c)
    };
    let mut w = World::new(config([with_action(OnFailure::Stop)]));
    w.boot();
    report_after(&mut w, Duration::from_secs(1), "web", false);
    w.exit("web", ExitStatus::Signal(15));
    assert_eq!(w.state("web"), State::Stopped);
    assert_eq!(w.spawns, ["web"]);

    let mut w = World::new(config([with_action(OnFailure::Shutdown)]));
    w.boot();
    report_after(&mut w, Duration::from_secs(1), "web", false);
    assert!(w.planner.shutting_down());
    w.exit("web", ExitStatus::Signal(15));
    assert_eq!(w.planner.exit_code(), Some(1));

    let mut w = World::new(config([with_action(OnFailure::Ignore)]));
    w.boot();
    report_after(&mut w, Duration::from_secs(1), "web", false);
    assert!(w.signals.is_empty());
    assert_eq!(w.state("web"), State::Running);
}

#[test]
fn results_of_an_earlier_process_are_ignored() {
    let mut c = check(Purpose::Liveness);
    c.failure_threshold = 1;
    let mut w = World::new(config([with_check(prog("web", &[]), c)]));
    w.boot();
    w.advance(Duration::from_secs(1));
    let stale = w.check_runs.clone();
    assert_eq!(stale.len(), 1);
    w.exit("web", code_1());
    assert_eq!(w.spawns, ["web", "web"]);
    // The old process's run answers now: nothing happens.
    w.check_runs.clear();
    let (name, index, epoch) = stale[0].clone();
    w.on(Event::CheckDone {
        name,
        index,
        epoch,
        took: Duration::from_millis(1),
        passed: false,
        detail: "late".into(),
    });
    assert!(w.signals.is_empty());
}

fn code_1() -> ExitStatus {
    ExitStatus::Code(1)
}

#[test]
fn a_client_waiting_for_readiness_is_answered_when_the_check_gives_up() {
    let mut c = check(Purpose::Readiness);
    c.failure_threshold = 2;
    let mut w = World::new(config([with_check(prog("api", &[]), c)]));
    let client = w.act(Verb::Start, "api", true);
    report_after(&mut w, Duration::from_secs(1), "api", false);
    assert!(!w.answered(client), "one failure of two");
    report_after(&mut w, Duration::from_secs(1), "api", false);
    let why = "not ready: tcp 127.0.0.1:80: Connection refused (os error 111)";
    match w.act_answer(client) {
        Ok(r) => assert_eq!((r[0].ok, r[0].message.as_str()), (false, why)),
        Err(e) => panic!("{e:?}"),
    }
    assert_eq!(
        w.state("api"),
        State::Running,
        "it keeps running, not ready"
    );
}

#[test]
fn the_health_summary_tells_alive_from_ready() {
    let mut live = check(Purpose::Liveness);
    live.failure_threshold = 1;
    live.on_failure = OnFailure::Ignore;
    let mut w = World::new(config([
        with_check(prog("api", &[]), check(Purpose::Readiness)),
        with_check(prog("worker", &[]), live),
    ]));
    w.boot();
    let h = w.planner.health(0);
    assert!(h.healthy && !h.ready);
    assert_eq!(h.not_ready, ["api"]);
    report_after(&mut w, Duration::from_secs(1), "api", true);
    w.checks_report("worker", true);
    let h = w.planner.health(0);
    assert!(h.healthy && h.ready, "{h:?}");
    report_after(&mut w, Duration::from_secs(5), "worker", false);
    let h = w.planner.health(0);
    assert!(!h.healthy && !h.ready);
    assert_eq!(h.failing, ["worker"]);
    assert!(h.not_running.is_empty());
}

fn exec_check(purpose: Purpose) -> CheckConfig {
    let mut c = CheckConfig::new(
        purpose,
        CheckKind::Exec {
            command: vec!["/bin/check".into(), "--fast".into()],
        },
    );
    c.period = Duration::from_secs(5);
    c.timeout = Duration::from_secs(2);
    c
}

/// The actor's part for the exec check run under way: its process `pid`.
fn spawn_exec(w: &mut World, name: &str, pid: i32) -> Pid {
    let (n, index, epoch) = w
        .check_runs
        .iter()
        .position(|(n, _, _)| n == name)
        .map(|i| w.check_runs.remove(i))
        .expect("a check run");
    let pid = Pid::from_raw(pid);
    w.check_procs.insert(pid);
    w.on(Event::CheckSpawned {
        name: n,
        index,
        epoch,
        result: Ok(pid),
    });
    pid
}

#[test]
fn an_exec_check_passes_on_exit_0_through_the_reaper() {
    let mut w = World::new(config([with_check(
        prog("db", &[]),
        exec_check(Purpose::Readiness),
    )]));
    w.boot();
    w.advance(Duration::from_secs(1));
    let pid = spawn_exec(&mut w, "db", 900);
    assert_eq!(w.planner.exit_code(), None);
    w.check_procs.remove(&pid);
    w.on(Event::Reaped(vec![(pid, ExitStatus::Code(0))]));
    assert!(w.planner.program("db").is_some_and(|p| p.ready()));
    assert_eq!(
        w.planner.orphans_reaped(),
        0,
        "the check's exit is not an orphan"
    );
}

#[test]
fn a_hanging_exec_check_is_killed_at_its_timeout_and_fails() {
    let mut c = exec_check(Purpose::Liveness);
    c.failure_threshold = 1;
    c.on_failure = OnFailure::Ignore;
    let mut w = World::new(config([with_check(prog("db", &[]), c)]));
    w.boot();
    w.advance(Duration::from_secs(1));
    let pid = spawn_exec(&mut w, "db", 901);
    w.advance(Duration::from_millis(1999));
    assert!(w.check_procs.contains(&pid), "not before its timeout");
    w.advance(Duration::from_millis(1));
    assert!(
        !w.check_procs.contains(&pid),
        "SIGKILL to its group at the timeout"
    );
    w.on(Event::Reaped(vec![(pid, ExitStatus::Signal(9))]));
    let p = w.planner.program("db").expect("db");
    assert!(!p.alive());
    assert_eq!(
        p.health.checks[0].last(),
        Some("exec /bin/check --fast: no answer within 2 s")
    );
}

#[test]
fn a_shutdown_kills_running_exec_checks_and_waits_for_them() {
    let mut w = World::new(config([with_check(
        prog("db", &[]),
        exec_check(Purpose::Readiness),
    )]));
    w.boot();
    w.advance(Duration::from_secs(1));
    let pid = spawn_exec(&mut w, "db", 902);
    w.signal(Signal::SIGTERM);
    assert!(!w.check_procs.contains(&pid), "killed at once");
    w.exit("db", ExitStatus::Code(0));
    assert_eq!(w.planner.exit_code(), None, "the check is not reaped yet");
    w.on(Event::Reaped(vec![(pid, ExitStatus::Signal(9))]));
    assert_eq!(w.planner.exit_code(), Some(0));
}

#[test]
fn an_exec_check_that_cannot_start_fails_with_why() {
    let mut c = exec_check(Purpose::Readiness);
    c.failure_threshold = 1;
    let mut w = World::new(config([with_check(prog("db", &[]), c)]));
    let client = w.act(Verb::Start, "db", true);
    w.advance(Duration::from_secs(1));
    let (name, index, epoch) = w.check_runs.remove(0);
    w.on(Event::CheckSpawned {
        name,
        index,
        epoch,
        result: Err((
            "cannot execute /bin/check: No such file or directory (os error 2)".into(),
            None,
        )),
    });
    let why = "not ready: exec /bin/check --fast: cannot execute /bin/check: No such file or directory (os error 2)";
    match w.act_answer(client) {
        Ok(r) => assert_eq!(r[0].message, why),
        Err(e) => panic!("{e:?}"),
    }
}
