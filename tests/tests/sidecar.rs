//! Sidecar mode (`nsvisor -c FILE -- CMD`, with `--grace` as CMD's stop
//! grace), critical programs that go FATAL, `priority` order, and the demo
//! config users start with.

use std::ffi::OsStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::Signal;
use nsvisor_proto::State;
use nsvisor_tests::{
    is_alive, program_toml, read_records, testprog, wait_record, wait_until, Daemon, Record,
};

const T: Duration = Duration::from_secs(15);

fn has(recs: &[Record], event: &str) -> bool {
    recs.iter().any(|r| r.event == event)
}

/// `-c FILE -- testprog record {dir}/main.rec <args>` with one sidecar program.
/// `{dir}` in `main_args` is replaced by the daemon's temp dir.
fn sidecar(main_args: &[&str]) -> Daemon {
    let b = Daemon::builder().config(&program_toml(
        "side",
        &[
            "term-exit",
            "0",
            "record",
            "{dir}/side.rec",
            "sleep",
            "forever",
        ],
        "startsecs = 0",
    ));
    let rec = b.dir().join("main.rec");
    let dir = b.dir().display().to_string();
    let main_args: Vec<String> = main_args.iter().map(|a| a.replace("{dir}", &dir)).collect();
    let d = b
        .args([
            "--".as_ref(),
            testprog().as_os_str(),
            "record".as_ref(),
            rec.as_os_str(),
        ])
        .args(&main_args)
        .start();
    wait_record(&d.dir().join("side.rec"), "start", T);
    wait_record(&rec, "start", T);
    d
}

#[test]
fn command_runs_beside_the_programs_and_its_exit_ends_everything() {
    let mut d = sidecar(&["wait-file", "{dir}/go", "exit", "7"]);
    let main = d.wait_state("main", State::Running, T);
    assert!(
        main.pid.is_some(),
        "the command is shown as program \"main\": {main:?}"
    );
    d.wait_state("side", State::Running, T);
    std::fs::write(d.dir().join("go"), "").expect("write go");
    assert_eq!(
        d.wait_exit(T).code(),
        Some(7),
        "the command's code: {}",
        d.stderr()
    );
    let side = read_records(&d.dir().join("side.rec"));
    assert!(
        has(&side, "signal TERM") && has(&side, "exit 0"),
        "the sidecar was stopped gracefully: {side:?}"
    );
}

#[test]
fn sigterm_stops_command_and_programs_and_exits_0() {
    let mut d = sidecar(&["term-exit", "0", "sleep", "forever"]);
    d.signal(Signal::SIGTERM);
    assert_eq!(
        d.wait_exit(T).code(),
        Some(0),
        "a requested shutdown: {}",
        d.stderr()
    );
    let main = read_records(&d.dir().join("main.rec"));
    assert!(
        has(&main, "signal TERM"),
        "the command got SIGTERM: {main:?}"
    );
    let side = read_records(&d.dir().join("side.rec"));
    assert!(
        has(&side, "signal TERM"),
        "the sidecar got SIGTERM: {side:?}"
    );
}

#[test]
fn grace_is_how_long_the_command_gets_before_sigkill() {
    let b = Daemon::builder().config(&program_toml(
        "side",
        &["term-exit", "0", "sleep", "forever"],
        "startsecs = 0",
    ));
    let rec = b.dir().join("main.rec");
    let mut d = b
        .args(["--grace", "1", "--"])
        .args([testprog().as_os_str(), OsStr::new("ignore-term")])
        .args([OsStr::new("record"), rec.as_os_str()])
        .args(["sleep", "forever"])
        .start();
    let pid = d.wait_state("main", State::Running, T).pid.expect("a pid");
    wait_record(&rec, "start", T);
    d.signal(Signal::SIGTERM);
    let term = wait_record(&rec, "signal TERM", T);
    wait_until("the command to be killed", T, || {
        (!is_alive(pid)).then_some(())
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as u64;
    let after = now - term.ms;
    assert!(
        after >= 950,
        "killed {after} ms after SIGTERM, before the 1 s grace"
    );
    assert!(
        after < 3000,
        "killed only {after} ms after SIGTERM, the grace is 1 s"
    );
    assert_eq!(d.wait_exit(T).code(), Some(0), "a requested shutdown");
}

#[test]
fn other_signals_go_to_the_command() {
    let mut d = sidecar(&["trap", "USR1", "term-exit", "0", "sleep", "forever"]);
    let rec = d.dir().join("main.rec");
    d.signal(Signal::SIGUSR1);
    wait_until("the command to get USR1", T, || {
        read_records(&rec)
            .iter()
            .any(|r| r.event == "signal USR1")
            .then_some(())
    });
    assert!(d.is_running(), "USR1 does not stop the daemon");
    assert!(
        !has(&read_records(&d.dir().join("side.rec")), "signal USR1"),
        "sidecars do not get it"
    );
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(T).code(), Some(0));
}

#[test]
fn critical_program_going_fatal_exits_with_127_when_its_command_is_missing() {
    let mut config = String::from(
        "[programs.app]\ncommand = \"nsvisor-test-no-such-command\"\nstartretries = 1\ncritical = true\n",
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
    let mut d = Daemon::builder().config(&config).spawn();
    assert_eq!(d.wait_exit(T).code(), Some(127), "stderr: {}", d.stderr());
    assert!(
        d.stderr().contains("nsvisor-test-no-such-command"),
        "the error names the command: {}",
        d.stderr()
    );
}

#[test]
fn higher_priority_stops_first() {
    let mut config = String::new();
    for (name, prio) in [("late", 20), ("early", 10)] {
        config += &program_toml(
            name,
            &[
                "term-exit",
                "0",
                "record",
                &format!("{{dir}}/{name}.rec"),
                "sleep",
                "forever",
            ],
            &format!("startsecs = 0\npriority = {prio}"),
        );
    }
    let mut d = Daemon::start(&config);
    // (Start order is spawn order, which the programs' own records cannot
    // show reliably; the stop order can: early gets TERM only once late is gone.)
    wait_record(&d.dir().join("early.rec"), "start", T);
    wait_record(&d.dir().join("late.rec"), "start", T);
    assert_eq!(d.terminate().code(), Some(0));
    let early_term = wait_record(&d.dir().join("early.rec"), "signal TERM", T);
    let late_exit = wait_record(&d.dir().join("late.rec"), "exit 0", T);
    assert!(
        late_exit.ms <= early_term.ms,
        "late had exited before early got TERM: {late_exit:?} {early_term:?}"
    );
}

#[test]
fn demo_config_runs_as_documented() {
    let demo =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/demo.toml"))
            .expect("configs/demo.toml");
    let b = Daemon::builder();
    let socket = b.dir().join("nsvisor.sock");
    let config = demo.replacen(
        "[supervisor]",
        &format!("[supervisor]\nsocket = \"{}\"", socket.display()),
        1,
    );
    let mut d = b.config(&config).start();
    for name in ["clock", "greeter", "worker", "crasher"] {
        d.wait_state(name, State::Running, T);
    }
    assert_eq!(
        d.status("oneshot").map(|p| p.state),
        Some(State::Exited),
        "greeter runs only after oneshot completed"
    );
    wait_until("oneshot to finish", T, || {
        d.status("oneshot")
            .filter(|p| p.state == State::Exited)
            .map(|_| ())
    });
    wait_until("crasher to be restarted", T, || {
        d.status("crasher").filter(|p| p.restarts >= 1).map(|_| ())
    });
    assert_eq!(d.terminate().code(), Some(0), "stderr: {}", d.stderr());
}
