//! One test per cross-program rule.

use super::*;
use crate::config::{Condition, Dependency};
use crate::supervisor::program::Gate;
use nsvisor_proto::ErrorKind;

fn code(c: i32) -> ExitStatus {
    ExitStatus::Code(c)
}

/// The results of a successful action answer, as (name, ok, message).
fn results(w: &World, client: ClientId) -> Vec<(String, bool, String)> {
    match w.act_answer(client) {
        Ok(r) => r
            .iter()
            .map(|r| (r.name.clone(), r.ok, r.message.clone()))
            .collect(),
        Err(e) => panic!("client {client}: error {e:?}"),
    }
}

fn owned(v: &[(&str, bool, &str)]) -> Vec<(String, bool, String)> {
    v.iter()
        .map(|(n, ok, m)| (n.to_string(), *ok, m.to_string()))
        .collect()
}

#[test]
fn boot_starts_by_tier_dependants_once_dependencies_run() {
    let mut db = prog("db", &[]);
    db.startsecs = Duration::from_secs(2);
    let mut cache = prog("cache", &[]);
    cache.priority = 5;
    let web = prog("web", &["db"]);
    let mut off = prog("off", &[]);
    off.autostart = false;
    let mut w = World::new(config([db, cache, web, off]));
    w.boot();
    assert_eq!(
        w.spawns,
        ["cache", "db"],
        "priority 5 before 999; web waits"
    );
    assert_eq!(w.description("web"), "waiting for db");
    w.advance(Duration::from_millis(1999));
    assert_eq!(
        w.spawns,
        ["cache", "db"],
        "db is not RUNNING before startsecs"
    );
    w.advance(Duration::from_millis(1));
    assert_eq!(w.spawns, ["cache", "db", "web"]);
    assert_eq!(w.state("web"), State::Running);
    assert_eq!(w.state("off"), State::Stopped);
}

#[test]
fn explicit_start_pulls_in_dependencies_and_answers_once_running() {
    let mut progs: Vec<ProgramConfig> = vec![
        prog("db", &[]),
        prog("cache", &[]),
        prog("web", &["db", "cache"]),
    ];
    for p in &mut progs {
        p.autostart = false;
        p.startsecs = Duration::from_secs(1);
    }
    let mut w = World::new(config(progs));
    w.boot();
    assert!(w.spawns.is_empty());
    let client = w.act(Verb::Start, "web", true);
    assert_eq!(w.spawns, ["db", "cache"], "dependencies first");
    assert!(!w.answered(client), "no answer before anything happened");
    w.advance(Duration::from_secs(1));
    assert_eq!(w.spawns, ["db", "cache", "web"]);
    assert!(!w.answered(client), "web is only STARTING");
    w.advance(Duration::from_secs(1));
    assert_eq!(results(&w, client), owned(&[("web", true, "started")]));
}

#[test]
fn a_dependency_going_fatal_leaves_the_dependant_stopped_saying_why() {
    let mut db = prog("db", &[]);
    db.startretries = 0;
    let mut web = prog("web", &["db"]);
    web.autostart = false;
    let mut w = World::new(config([db, web]));
    w.failing.insert("db".into());
    let client = w.act(Verb::Start, "web", true);
    assert_eq!(w.state("db"), State::Fatal);
    assert_eq!(w.state("web"), State::Stopped);
    assert_eq!(w.description("web"), "dependency db is FATAL");
    assert_eq!(
        results(&w, client),
        owned(&[("web", false, "dependency db is FATAL")])
    );
    assert_eq!(w.spawns, ["db"], "web never spawned");
}

#[test]
fn a_dependency_exiting_for_good_blocks_the_dependant() {
    let mut db = prog("db", &[]);
    db.startsecs = Duration::from_secs(1);
    db.autorestart = AutoRestart::Never;
    let mut w = World::new(config([db, prog("web", &["db"])]));
    w.boot();
    assert_eq!(w.state("db"), State::Starting);
    // It passes startsecs only after web's start was asked for.
    w.advance(Duration::from_millis(500));
    w.advance(Duration::from_millis(500));
    assert_eq!(w.state("web"), State::Running);
    w.exit("web", code(1));
    // web restarts at once (first quick exit), but db ends for good first:
    w.exit("db", code(0));
    assert_eq!(w.state("db"), State::Exited);
    w.exit("web", code(1));
    w.advance(Duration::from_secs(5));
    assert_eq!(w.state("web"), State::Exited, "no restart without db");
    assert_eq!(w.description("web"), "dependency db is EXITED");
}

#[test]
fn an_automatic_restart_waits_for_its_dependencies() {
    let mut db = prog("db", &[]);
    db.startsecs = Duration::from_secs(1);
    let mut w = World::new(config([db, prog("web", &["db"])]));
    w.boot();
    w.advance(Duration::from_secs(1));
    assert_eq!(w.state("web"), State::Running);
    w.advance(Duration::from_secs(5));
    w.exit("db", code(1)); // db restarts: STARTING for 1 s
    assert_eq!(w.state("db"), State::Starting);
    w.exit("web", code(1)); // web's restart is due now, but db is not RUNNING
    assert_eq!(w.state("web"), State::Exited);
    assert_eq!(w.description("web"), "waiting for db");
    w.advance(Duration::from_secs(1));
    assert_eq!(w.state("db"), State::Running);
    assert_eq!(w.state("web"), State::Running, "started once db is RUNNING");
}

#[test]
fn stop_all_goes_tier_by_tier_and_answers_once_everything_is_down() {
    let mut w = World::new(config([
        prog("db", &[]),
        prog("web", &["db"]),
        prog("worker", &["web"]),
    ]));
    w.boot();
    let client = w.act(Verb::Stop, "all", true);
    assert_eq!(w.signals_to("worker"), [Signal::SIGTERM]);
    assert!(w.signals_to("web").is_empty(), "web waits for worker");
    w.exit("worker", code(0));
    assert_eq!(w.signals_to("web"), [Signal::SIGTERM]);
    assert!(w.signals_to("db").is_empty());
    w.exit("web", code(0));
    assert!(!w.answered(client));
    w.exit("db", code(0));
    assert_eq!(
        results(&w, client),
        owned(&[
            ("db", true, "stopped"),
            ("web", true, "stopped"),
            ("worker", true, "stopped")
        ])
    );
}

#[test]
fn stop_in_backoff_is_answered_at_once() {
    let mut w = World::new(config([prog("web", &[])]));
    w.failing.insert("web".into());
    w.boot();
    assert_eq!(w.state("web"), State::Backoff);
    let client = w.act(Verb::Stop, "web", true);
    assert_eq!(results(&w, client), owned(&[("web", true, "stopped")]));
    assert_eq!(w.state("web"), State::Stopped);
    w.advance(Duration::from_secs(10));
    assert_eq!(w.spawns, ["web"], "the pending retry is cancelled");
}

#[test]
fn reload_adds_removes_changes_and_leaves_alone() {
    let mut w = World::new(config([
        prog("same", &[]),
        prog("changed", &[]),
        prog("gone", &[]),
    ]));
    w.boot();
    let same_pid = w.pid("same");
    let mut changed = prog("changed", &[]);
    changed.command = vec!["/bin/changed".into(), "--new".into()].into();
    let client = w.reload(config([prog("same", &[]), changed, prog("new", &[])]));
    match w.answers.get(&client).map(Vec::as_slice) {
        Some([Got::Reload(Ok(diff))]) => {
            assert_eq!(diff.added, ["new"]);
            assert_eq!(diff.changed, ["changed"]);
            assert_eq!(diff.removed, ["gone"]);
        }
        other => panic!("reload answer: {other:?}"),
    }
    assert_eq!(w.state("new"), State::Running);
    assert!(w.signals_to("same").is_empty());
    assert_eq!(w.pid("same"), same_pid, "untouched");
    assert_eq!(w.signals_to("changed"), [Signal::SIGTERM]);
    assert_eq!(w.signals_to("gone"), [Signal::SIGTERM]);
    w.exit("changed", code(0));
    assert_eq!(w.state("changed"), State::Running, "started again");
    assert_eq!(
        w.planner.program("changed").map(|p| p.cfg.command.to_vec()),
        Some(vec!["/bin/changed".to_string(), "--new".to_string()])
    );
    w.exit("gone", code(0));
    assert!(w.planner.program("gone").is_none(), "dropped once down");
    assert!(w.other.iter().any(|e| e == "DropLogs(\"gone\")"));
}

#[test]
fn a_rejected_reload_changes_nothing() {
    let mut w = World::new(config([prog("web", &[])]));
    w.boot();
    w.next_client += 1;
    let client = w.next_client;
    w.on(Event::Reloaded {
        client: Some(client),
        config: Err(ApiError::new(ErrorKind::InvalidConfig, "bad")),
    });
    assert!(matches!(
        w.answers[&client].as_slice(),
        [Got::Reload(Err(e))] if e.kind == ErrorKind::InvalidConfig
    ));
    assert!(w.signals.is_empty());
    assert_eq!(w.state("web"), State::Running);
}

#[test]
fn a_critical_program_ending_on_its_own_shuts_down_with_its_code() {
    let mut app = prog("app", &[]);
    app.critical = true;
    app.autorestart = AutoRestart::Never;
    let mut w = World::new(config([app, prog("side", &[])]));
    w.boot();
    w.exit("app", code(3));
    assert!(w.planner.shutting_down());
    assert_eq!(w.signals_to("side"), [Signal::SIGTERM]);
    w.exit("side", code(0));
    assert_eq!(w.planner.exit_code(), Some(3));
}

#[test]
fn a_critical_program_stopped_by_hand_does_not_shut_down() {
    let mut app = prog("app", &[]);
    app.critical = true;
    let mut w = World::new(config([app]));
    w.boot();
    w.act(Verb::Stop, "app", false);
    w.exit("app", code(143));
    assert!(!w.planner.shutting_down());
    assert_eq!(w.state("app"), State::Stopped);
}

#[test]
fn a_second_sigterm_during_shutdown_cuts_nobodys_grace() {
    let mut slow = prog("slow", &[]);
    slow.stopwaitsecs = Duration::from_secs(10);
    let mut w = World::new(config([slow]));
    w.boot();
    w.signal(Signal::SIGTERM);
    assert_eq!(w.signals_to("slow"), [Signal::SIGTERM]);
    w.advance(Duration::from_secs(5));
    w.signal(Signal::SIGTERM);
    w.signal(Signal::SIGINT);
    assert_eq!(w.signals_to("slow"), [Signal::SIGTERM], "nothing more");
    w.advance(Duration::from_millis(4999));
    assert_eq!(
        w.signals_to("slow"),
        [Signal::SIGTERM],
        "still within grace"
    );
    w.advance(Duration::from_millis(1));
    assert_eq!(w.signals_to("slow"), [Signal::SIGTERM, Signal::SIGKILL]);
    w.exit("slow", ExitStatus::Signal(9));
    assert_eq!(w.planner.exit_code(), Some(0));
}

#[test]
fn shutdown_stops_dependants_first_and_cancels_pending_starts() {
    let mut w = World::new(config([
        prog("db", &[]),
        prog("web", &["db"]),
        prog("retry", &[]),
    ]));
    w.failing.insert("retry".into());
    w.boot();
    assert_eq!(w.state("retry"), State::Backoff);
    w.signal(Signal::SIGQUIT);
    assert_eq!(w.state("retry"), State::Stopped, "retry cancelled at once");
    assert!(w.signals_to("db").is_empty());
    w.exit("web", code(0));
    assert_eq!(w.signals_to("db"), [Signal::SIGTERM]);
    w.exit("db", code(0));
    w.advance(Duration::from_secs(30));
    assert_eq!(w.planner.exit_code(), Some(0));
    assert_eq!(w.spawns, ["db", "retry", "web"], "nothing spawned after");
}

#[test]
fn clients_get_one_answer_each_with_the_right_outcome() {
    let mut w = World::new(config([prog("web", &[])]));
    w.boot();
    let unknown = w.act(Verb::Start, "ghost", true);
    assert!(matches!(w.act_answer(unknown), Err(e) if e.kind == ErrorKind::NotFound));
    let no_wait = w.act(Verb::Restart, "web", false);
    assert_eq!(results(&w, no_wait), owned(&[("web", true, "requested")]));
    let waiting_stop = w.act(Verb::Stop, "web", true);
    let waiting_start = w.act(Verb::Start, "web", true);
    w.exit("web", code(0));
    // The restart's start, then the later start: one answer each.
    assert_eq!(
        results(&w, waiting_start),
        owned(&[("web", true, "started")])
    );
    assert!(
        !w.answered(waiting_stop) || results(&w, waiting_stop)[0].1,
        "a stop is never answered as failed"
    );
    w.signal(Signal::SIGTERM);
    let late = w.act(Verb::Start, "web", true);
    assert!(matches!(w.act_answer(late), Err(e) if e.kind == ErrorKind::ShuttingDown));
    w.exit_all_signalled();
    assert_eq!(w.planner.exit_code(), Some(0));
    assert!(w.answered(waiting_stop), "every waiter answered by the end");
}

#[test]
fn a_waiter_still_waiting_at_the_end_of_shutdown_is_told_why() {
    let mut db = prog("db", &[]);
    db.startsecs = Duration::from_secs(5);
    let mut w = World::new(config([db]));
    w.boot();
    let client = w.act(Verb::Start, "db", true);
    w.signal(Signal::SIGTERM);
    w.exit("db", code(0));
    assert_eq!(
        results(&w, client),
        owned(&[("db", false, "stopped before it was running")])
    );
}

#[test]
fn a_spawn_reported_after_its_stop_tier_began_is_stopped_at_once() {
    // The actor spawns synchronously; this models a shutdown decided between
    // the spawn effect and its result (a critical program failing to spawn
    // in the same batch).
    let mut crit = prog("crit", &[]);
    crit.critical = true;
    crit.startretries = 0;
    let mut w = World::new(config([crit.clone(), prog("other", &[])]));
    w.failing.insert("crit".into());
    let effects = w.planner.on(Event::Boot, w.now);
    let spawns: Vec<ProgramName> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Spawn { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(spawns, ["crit", "other"]);
    // crit's failure first: the shutdown begins while other is being spawned.
    w.on(Event::SpawnFailed {
        name: "crit".into(),
        error: "not found".into(),
        code: 127,
        pid: None,
    });
    assert!(w.planner.shutting_down());
    assert_eq!(w.planner.exit_code(), None, "other is being spawned");
    w.live.insert(Pid::from_raw(7), "other".into());
    w.on(Event::Spawned {
        name: "other".into(),
        pid: Pid::from_raw(7),
        wall: SystemTime::UNIX_EPOCH,
    });
    assert_eq!(w.signals_to("other"), [Signal::SIGTERM]);
    w.exit("other", code(0));
    assert_eq!(w.planner.exit_code(), Some(127));
}

#[test]
fn a_sandboxed_program_starts_once_its_sandbox_is_built() {
    let mut w = World::new(config([sandboxed(prog("web", &[]), 2)]));
    w.boot();
    assert!(w.spawns.is_empty());
    assert_eq!(w.description("web"), "waiting for its network sandbox");
    assert_eq!(w.sandbox_asks.len(), 1);
    w.sandbox_answer("web", true);
    assert_eq!(w.state("web"), State::Running);
    // A restart reuses the sandbox: no second request.
    w.exit("web", code(1));
    assert_eq!(w.spawns, ["web", "web"]);
    assert!(w.sandbox_asks.is_empty());
}

#[test]
fn a_finished_shutdown_lets_go_of_every_sandbox() {
    use crate::supervisor::program::Sandbox;
    let mut w = World::new(config([sandboxed(prog("web", &[]), 2)]));
    w.boot();
    w.sandbox_answer("web", true);
    w.on(Event::Shutdown);
    let held = |w: &World| {
        matches!(
            w.planner.program("web").map(|p| &p.sandbox),
            Some(Sandbox::Ready(_))
        )
    };
    assert!(held(&w), "held while web is still stopping");
    w.exit_all_signalled();
    assert_eq!(w.planner.exit_code(), Some(0));
    assert!(!held(&w), "the namespace fd would keep the sandbox alive");
}

#[test]
fn a_sandbox_that_cannot_be_built_blocks_the_start_with_the_error() {
    let mut w = World::new(config([sandboxed(prog("web", &[]), 2)]));
    let client = w.act(Verb::Start, "web", true);
    w.sandbox_answer("web", false);
    let why = "program \"web\": cannot bind 0.0.0.0:80: Address in use";
    assert_eq!(results(&w, client), owned(&[("web", false, why)]));
    assert_eq!(w.description("web"), why);
    // Starting again asks again.
    w.act(Verb::Start, "web", false);
    assert_eq!(w.sandbox_asks.len(), 1);
}

#[test]
fn signals_to_the_daemon() {
    let mut w = World::new(config([prog("web", &[])]));
    w.boot();
    w.signal(Signal::SIGHUP);
    w.signal(Signal::SIGUSR2);
    w.other.retain(|e| !e.starts_with("Publish"));
    assert_eq!(w.other, ["LoadConfig", "ReopenLogs"]);
    assert!(w.signals.is_empty(), "no program gets them");
}

#[test]
fn restart_all_restarts_dependants_after_their_dependencies() {
    let mut db = prog("db", &[]);
    db.startsecs = Duration::from_secs(1);
    let mut w = World::new(config([db, prog("web", &["db"])]));
    w.boot();
    w.advance(Duration::from_secs(1));
    let client = w.act(Verb::Restart, "all", true);
    w.exit("web", code(0));
    w.exit("db", code(0));
    assert_eq!(w.state("db"), State::Starting);
    assert_eq!(
        w.planner.program("web").map(|p| p.gate.clone()),
        Some(Gate::WaitingForDeps)
    );
    w.advance(Duration::from_secs(1));
    assert_eq!(
        results(&w, client),
        owned(&[("db", true, "started"), ("web", true, "started")])
    );
}

/// `prog` depending on `deps` with their conditions.
fn prog_on(name: &str, deps: &[(&str, Condition)]) -> ProgramConfig {
    let mut p = prog(name, &[]);
    p.depends_on = deps.iter().map(|(d, c)| Dependency::on(*d, *c)).collect();
    p
}

/// A one-shot job: RUNNING at once, never restarted, exit 0 expected.
fn oneshot(name: &str) -> ProgramConfig {
    let mut p = prog(name, &[]);
    p.autorestart = AutoRestart::Never;
    p
}

#[test]
fn a_successful_one_shot_migration_starts_its_dependant() {
    let web = prog_on("web", &[("migrate", Condition::CompletedSuccessfully)]);
    let mut w = World::new(config([oneshot("migrate"), web]));
    w.boot();
    assert_eq!(w.spawns, ["migrate"]);
    assert_eq!(w.state("migrate"), State::Running);
    assert_eq!(w.description("web"), "waiting for migrate");
    w.exit("migrate", code(0));
    assert_eq!(w.state("migrate"), State::Exited);
    assert_eq!(w.spawns, ["migrate", "web"]);
    assert_eq!(w.state("web"), State::Running);
    // web's automatic restarts do not run the migration again.
    w.exit("web", code(1));
    assert_eq!(w.spawns, ["migrate", "web", "web"]);
}

#[test]
fn a_failed_one_shot_migration_leaves_its_dependant_stopped_saying_why() {
    let web = prog_on("web", &[("migrate", Condition::CompletedSuccessfully)]);
    let mut w = World::new(config([oneshot("migrate"), web]));
    w.boot();
    let client = w.act(Verb::Start, "web", true);
    w.exit("migrate", code(2));
    let why = "dependency migrate did not complete successfully (exit status 2)";
    assert_eq!(w.description("web"), why);
    assert_eq!(results(&w, client), owned(&[("web", false, why)]));
    assert_eq!(w.spawns, ["migrate"]);
    // Starting web by hand runs the migration again first.
    let again = w.act(Verb::Start, "web", true);
    assert_eq!(w.spawns, ["migrate", "migrate"]);
    w.exit("migrate", code(0));
    assert_eq!(results(&w, again), owned(&[("web", true, "started")]));
}

#[test]
fn completed_takes_any_exit_status() {
    let after = prog_on("report", &[("job", Condition::Completed)]);
    let mut w = World::new(config([oneshot("job"), after]));
    w.boot();
    w.exit("job", code(7));
    assert_eq!(w.state("report"), State::Running);
}

#[test]
fn started_needs_a_process_running_needs_startsecs() {
    let mut db = prog("db", &[]);
    db.startsecs = Duration::from_secs(3);
    let mut w = World::new(config([
        db,
        prog_on("early", &[("db", Condition::Started)]),
        prog_on("late", &[("db", Condition::Running)]),
    ]));
    w.boot();
    assert_eq!(w.state("db"), State::Starting);
    assert_eq!(w.state("early"), State::Running, "db has a process");
    assert_eq!(w.state("late"), State::Stopped);
    w.advance(Duration::from_secs(3));
    assert_eq!(w.state("late"), State::Running);
}

#[test]
fn a_completed_dependency_is_not_run_again_by_an_explicit_start() {
    let mut web = prog_on("web", &[("migrate", Condition::CompletedSuccessfully)]);
    web.autostart = false;
    let mut w = World::new(config([oneshot("migrate"), web]));
    w.boot();
    w.exit("migrate", code(0));
    let client = w.act(Verb::Start, "web", true);
    assert_eq!(results(&w, client), owned(&[("web", true, "started")]));
    assert_eq!(w.spawns, ["migrate", "web"]);
}
