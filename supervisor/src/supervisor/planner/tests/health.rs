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

fn passive(kind: CheckKind) -> CheckConfig {
    let purpose = if kind == CheckKind::NotifyWatchdog {
        Purpose::Liveness
    } else {
        Purpose::Readiness
    };
    let mut c = CheckConfig::new(purpose, kind);
    c.timeout = Duration::from_secs(30);
    if purpose == Purpose::Readiness {
        c.failure_threshold = 1;
    }
    c
}

/// The program signals check `index` of its current process.
fn signal(w: &mut World, name: &str, index: usize, epoch_offset: i64) {
    let epoch = w.planner.program(name).expect("program").health.epoch;
    w.on(Event::CheckDone {
        name: name.into(),
        index,
        epoch: (epoch as i64 + epoch_offset) as u64,
        passed: true,
        took: Duration::from_millis(120),
        detail: "log matched \"ready\" after 120 ms".into(),
    });
}

fn notify(w: &mut World, name: &str, text: &[u8]) {
    w.on(Event::Notify {
        name: name.into(),
        message: crate::health::notify::NotifyMessage::parse(text),
    });
}

#[test]
fn a_self_signalled_check_is_never_run_and_passes_when_signalled() {
    let log = CheckKind::Log {
        pattern: "ready".into(),
        stream: None,
    };
    let db = with_check(prog("db", &[]), passive(log));
    let mut web = prog("web", &[]);
    web.depends_on = vec![Dependency::on("db", Condition::Ready)];
    let mut w = World::new(config([db, web]));
    w.boot();
    let client = w.act(Verb::Restart, "db", true);
    w.exit("db", ExitStatus::Signal(15));
    w.advance(Duration::from_secs(10));
    assert!(
        w.check_runs.is_empty(),
        "nothing to run: {:?}",
        w.check_runs
    );
    assert!(!w.answered(client));
    assert!(
        w.description("db")
            .ends_with(", not ready (waiting for log /ready/)"),
        "{}",
        w.description("db")
    );
    assert_eq!(w.state("web"), State::Stopped);
    signal(&mut w, "db", 0, -1);
    assert!(
        !w.answered(client),
        "a signal of an earlier process is ignored"
    );
    signal(&mut w, "db", 0, 0);
    assert_eq!(
        w.act_answer(client).as_ref().map(|r| r[0].ok).ok(),
        Some(true)
    );
    assert_eq!(w.state("web"), State::Running);
    w.advance(Duration::from_secs(60));
    assert!(w.check_runs.is_empty());
    assert!(w.planner.program("db").is_some_and(|p| p.ready()));
}

#[test]
fn a_self_signalled_check_gives_up_waiters_at_its_timeout_and_passes_later() {
    let db = with_check(prog("db", &[]), passive(CheckKind::NotifyReady));
    let mut w = World::new(config([db]));
    w.boot();
    let client = w.act(Verb::Restart, "db", true);
    w.exit("db", ExitStatus::Signal(15));
    w.advance(Duration::from_secs(29));
    assert!(!w.answered(client));
    w.advance(Duration::from_secs(1));
    let answer = w.act_answer(client);
    let result = &answer.as_ref().expect("answered")[0];
    assert!(!result.ok);
    assert_eq!(result.message, "not ready: no READY=1 within 30 s");
    notify(&mut w, "db", b"READY=1\nSTATUS=serving");
    assert!(w.planner.program("db").is_some_and(|p| p.ready()));
    assert!(
        w.description("db").ends_with(", status \"serving\""),
        "{}",
        w.description("db")
    );
}

#[test]
fn a_missed_watchdog_ping_fails_the_liveness_check() {
    let mut c = passive(CheckKind::NotifyWatchdog);
    c.period = Duration::from_secs(10);
    c.failure_threshold = 1;
    let mut w = World::new(config([with_check(prog("web", &[]), c)]));
    w.boot();
    for _ in 0..3 {
        w.advance(Duration::from_secs(5));
        notify(&mut w, "web", b"WATCHDOG=1");
        w.advance(Duration::from_secs(5));
    }
    assert!(w.signals_to("web").is_empty(), "pinged every period");
    w.advance(Duration::from_secs(10));
    assert_eq!(
        w.signals_to("web"),
        [Signal::SIGTERM],
        "a period without a ping"
    );
    let info = w.planner.program("web").expect("web").info(w.now);
    assert_eq!(
        info.checks[0].last.as_deref(),
        Some("no WATCHDOG=1 within 10 s")
    );
}

#[test]
fn watchdog_trigger_fails_at_once() {
    let mut c = passive(CheckKind::NotifyWatchdog);
    c.period = Duration::from_secs(10);
    let mut w = World::new(config([with_check(prog("web", &[]), c)]));
    w.boot();
    w.advance(Duration::from_secs(1));
    notify(&mut w, "web", b"WATCHDOG=trigger");
    assert_eq!(w.signals_to("web"), [Signal::SIGTERM]);
}
