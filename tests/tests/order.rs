//! Start and stop order: a program starts only once everything in its
//! `depends_on` is RUNNING (or meets the condition the table form gives it,
//! such as a one-shot migration completing successfully), and on shutdown it
//! stops before what it depends on; without `depends_on`, lower `priority`
//! starts first.
//!
//! Times come from the record files `testprog` writes (wall-clock ms of its
//! start, of each signal received, of its exit); the order of spawns from the
//! daemon's log, which it writes in order.

use std::path::Path;
use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{log_lines, program_toml, read_records, wait_record, Daemon};

const T: Duration = Duration::from_secs(10);

/// The time of the first record of `event` in `file` (already written).
fn time_of(file: &Path, event: &str) -> u64 {
    let recs = read_records(file);
    recs.iter()
        .find(|r| r.event == event)
        .unwrap_or_else(|| panic!("no {event:?} in {}: {recs:?}", file.display()))
        .ms
}

#[test]
fn depends_on_orders_start_and_reverse_orders_stop() {
    let stops_slowly = |rec: &'static str| {
        // `record` after the trap: its "start" line means TERM is handled.
        [
            "term-exit",
            "0",
            "--after",
            "0.3",
            "record",
            rec,
            "sleep",
            "forever",
        ]
    };
    // `web` is defined first and has the lower priority: only depends_on holds it back.
    let mut config = program_toml(
        "web",
        &stops_slowly("{dir}/web.rec"),
        "startsecs = 0\npriority = 1\ndepends_on = [\"db\"]",
    );
    config += &program_toml(
        "db",
        &stops_slowly("{dir}/db.rec"),
        "startsecs = 1\npriority = 2",
    );
    let mut d = Daemon::start(&config);
    d.wait_state("web", State::Running, T);
    d.wait_state("db", State::Running, T);

    let dir = d.dir().to_path_buf();
    let db_start = wait_record(&dir.join("db.rec"), "start", T).ms;
    let web_start = wait_record(&dir.join("web.rec"), "start", T).ms;
    assert!(
        web_start >= db_start + 950,
        "web started {} ms after db, before db was RUNNING (startsecs 1 s)",
        web_start as i64 - db_start as i64
    );

    let status = d.terminate();
    assert_eq!(status.code(), Some(0), "requested shutdown exits 0");
    let web_exit = time_of(&dir.join("web.rec"), "exit 0");
    let db_term = time_of(&dir.join("db.rec"), "signal TERM");
    assert!(
        db_term >= web_exit,
        "db got TERM {} ms before web (its dependent) exited",
        web_exit - db_term
    );
    time_of(&dir.join("db.rec"), "exit 0");
}

#[test]
fn lower_priority_starts_first() {
    // Neither name order nor file order is priority order.
    let programs = [("b", 30), ("d", 10), ("a", 20), ("c", -5)];
    let config: String = programs
        .iter()
        .map(|(name, prio)| {
            program_toml(
                name,
                &["sleep", "forever"],
                &format!("startsecs = 0\npriority = {prio}"),
            )
        })
        .collect();
    let d = Daemon::start(&config);
    let mut pids = Vec::new();
    for (name, _) in programs {
        pids.push((
            name,
            d.wait_state(name, State::Running, T).pid.expect("a pid"),
        ));
    }
    let spawned = nsvisor_tests::wait_until("four spawns in the daemon's log", T, || {
        let lines: Vec<String> = log_lines(&d.stderr())
            .into_iter()
            .filter(|l| l.starts_with("INFO spawned program="))
            .collect();
        (lines.len() >= programs.len()).then_some(lines)
    });
    let expected: Vec<String> = ["c", "d", "a", "b"]
        .iter()
        .map(|name| {
            let pid = pids.iter().find(|(n, _)| n == name).expect("started").1;
            format!("INFO spawned program=\"{name}\" pid={pid}")
        })
        .collect();
    assert_eq!(spawned, expected, "spawned in priority order");
}

/// A one-shot migration (testprog: sleep, then exit with `code`) and a web
/// program that waits for it to complete successfully.
fn migration_config(code: &str) -> String {
    let mut config = program_toml(
        "migrate",
        &["record", "{dir}/migrate.rec", "sleep", "0.5", "exit", code],
        "startsecs = 0\nautorestart = \"never\"",
    );
    config += &program_toml(
        "web",
        &["record", "{dir}/web.rec", "sleep", "forever"],
        "startsecs = 0\ndepends_on = { migrate = \"completed_successfully\" }",
    );
    config
}

#[test]
fn web_starts_once_its_migration_completed_successfully() {
    let d = Daemon::start(&migration_config("0"));
    let web = d.wait_state("web", State::Running, T);
    assert_eq!(d.status("migrate").map(|p| p.state), Some(State::Exited));
    let dir = d.dir().to_path_buf();
    let migrate_exit = wait_record(&dir.join("migrate.rec"), "exit 0", T).ms;
    let web_start = wait_record(&dir.join("web.rec"), "start", T).ms;
    assert!(
        web_start >= migrate_exit,
        "web started at {web_start}, before the migration ended at {migrate_exit}"
    );
    assert!(web.pid.is_some());
}

#[test]
fn web_stays_stopped_when_its_migration_fails_and_says_why() {
    let d = Daemon::start(&migration_config("3"));
    d.wait_state("migrate", State::Exited, T);
    let web = nsvisor_tests::wait_until("web to say why it is not started", T, || {
        d.status("web")
            .filter(|p| p.description.starts_with("dependency"))
    });
    assert_eq!(web.state, State::Stopped);
    assert_eq!(
        web.description,
        "dependency migrate did not complete successfully (exit status 3)"
    );
    assert!(!d.dir().join("web.rec").exists(), "web never ran");
}
