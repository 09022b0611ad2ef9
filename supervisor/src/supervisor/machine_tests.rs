//! Unit tests of the program state machine: every transition of DESIGN §3.

use super::*;

#[path = "machine_health_tests.rs"]
mod health;

fn policy() -> Policy {
    Policy {
        autorestart: AutoRestart::Unexpected,
        exitcodes: vec![0].into(),
        startsecs: Duration::from_secs(1),
        startretries: 3,
        stopsignal: Signal::SIGTERM,
        stopwaitsecs: Duration::from_secs(10),
        stopasgroup: false,
        killasgroup: false,
    }
}

fn pid(n: i32) -> Pid {
    Pid::from_raw(n)
}

/// A machine in RUNNING with pid 10, started at `t0`.
fn running(p: Policy, t0: Instant) -> Machine {
    let mut m = Machine::new(p);
    assert_eq!(m.on(Input::Start, t0), vec![Effect::Spawn]);
    m.on(Input::Spawned(pid(10)), t0);
    m.on(Input::Tick, t0 + m.policy.startsecs);
    assert_eq!(m.state.kind(), State::Running);
    m
}

#[test]
fn start_spawns_then_starting_until_startsecs() {
    let t0 = Instant::now();
    let mut m = Machine::new(policy());
    assert_eq!(m.on(Input::Start, t0), vec![Effect::Spawn]);
    assert_eq!(
        m.state.kind(),
        State::Stopped,
        "state changes only once the spawn is reported"
    );
    assert_eq!(
        m.on(Input::Spawned(pid(10)), t0),
        vec![Effect::Timer(t0 + Duration::from_secs(1))]
    );
    assert_eq!(
        m.state,
        ProgramState::Starting {
            pid: pid(10),
            since: t0
        }
    );
    assert_eq!(m.on(Input::Tick, t0 + Duration::from_millis(999)), vec![]);
    assert_eq!(
        m.state.kind(),
        State::Starting,
        "a tick before startsecs changes nothing"
    );
    m.on(Input::Tick, t0 + Duration::from_secs(1));
    assert_eq!(
        m.state,
        ProgramState::Running {
            pid: pid(10),
            since: t0
        }
    );
}

#[test]
fn startsecs_zero_is_running_at_once() {
    let t0 = Instant::now();
    let mut m = Machine::new(Policy {
        startsecs: Duration::ZERO,
        ..policy()
    });
    m.on(Input::Start, t0);
    assert_eq!(m.on(Input::Spawned(pid(3)), t0), vec![]);
    assert_eq!(m.state.kind(), State::Running);
}

#[test]
fn exit_while_starting_backs_off_even_with_expected_code() {
    let t0 = Instant::now();
    let mut m = Machine::new(policy());
    m.on(Input::Start, t0);
    m.on(Input::Spawned(pid(10)), t0);
    let t1 = t0 + Duration::from_millis(100);
    let effects = m.on(Input::Exited(ExitStatus::Code(0)), t1);
    assert_eq!(effects, vec![Effect::Timer(t1 + Duration::from_secs(1))]);
    assert_eq!(
        m.state,
        ProgramState::Backoff {
            attempt: 1,
            until: t1 + Duration::from_secs(1)
        }
    );
}

#[test]
fn backoff_grows_one_second_per_attempt_then_fatal_after_startretries() {
    let mut now = Instant::now();
    let mut m = Machine::new(policy());
    m.on(Input::Start, now);
    let mut delays = Vec::new();
    for attempt in 1..=3u32 {
        m.on(Input::Spawned(pid(10 + attempt as i32)), now);
        m.on(Input::Exited(ExitStatus::Code(1)), now);
        let ProgramState::Backoff { attempt: a, until } = m.state.clone() else {
            panic!(
                "expected BACKOFF after attempt {attempt}, got {:?}",
                m.state
            )
        };
        assert_eq!(a, attempt);
        delays.push(until - now);
        assert_eq!(
            m.on(Input::Tick, until - Duration::from_millis(1)),
            vec![],
            "no retry before the delay"
        );
        assert_eq!(m.on(Input::Tick, until), vec![Effect::Spawn]);
        now = until;
    }
    assert_eq!(
        delays,
        vec![
            Duration::from_secs(1),
            Duration::from_secs(2),
            Duration::from_secs(3)
        ]
    );
    m.on(Input::Spawned(pid(20)), now);
    assert_eq!(
        m.on(Input::Exited(ExitStatus::Code(1)), now),
        vec![Effect::Finished]
    );
    assert_eq!(m.state.kind(), State::Fatal);
    assert_eq!(m.restarts, 3);
}

#[test]
fn spawn_failure_counts_as_failed_start() {
    let t0 = Instant::now();
    let mut m = Machine::new(Policy {
        startretries: 0,
        ..policy()
    });
    m.on(Input::Start, t0);
    assert_eq!(
        m.on(Input::SpawnFailed("no such file".into()), t0),
        vec![Effect::Finished]
    );
    assert_eq!(
        m.state,
        ProgramState::Fatal {
            reason: "no such file".into()
        }
    );
}

#[test]
fn fatal_leaves_only_by_explicit_start() {
    let t0 = Instant::now();
    let mut m = Machine::new(Policy {
        startretries: 0,
        ..policy()
    });
    m.on(Input::Start, t0);
    m.on(Input::SpawnFailed("x".into()), t0);
    assert_eq!(m.on(Input::Tick, t0 + Duration::from_secs(100)), vec![]);
    assert_eq!(m.state.kind(), State::Fatal);
    assert_eq!(m.on(Input::Start, t0), vec![Effect::Spawn]);
    m.on(Input::Spawned(pid(5)), t0);
    assert_eq!(m.state.kind(), State::Starting);
}

#[test]
fn running_resets_backoff() {
    let t0 = Instant::now();
    let mut m = Machine::new(policy());
    m.on(Input::Start, t0);
    m.on(Input::Spawned(pid(1)), t0);
    m.on(Input::Exited(ExitStatus::Code(1)), t0);
    assert_eq!(m.backoff, 1);
    m.on(Input::Tick, t0 + Duration::from_secs(1));
    m.on(Input::Spawned(pid(2)), t0 + Duration::from_secs(1));
    m.on(Input::Tick, t0 + Duration::from_secs(2));
    assert_eq!(m.state.kind(), State::Running);
    assert_eq!(m.backoff, 0);
}

#[test]
fn exit_while_running_expected_code_does_not_restart_with_unexpected() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(
        m.on(Input::Exited(ExitStatus::Code(0)), t1),
        vec![Effect::Finished]
    );
    assert_eq!(
        m.state,
        ProgramState::Exited {
            status: ExitStatus::Code(0),
            restart_at: None
        }
    );
}

#[test]
fn exit_while_running_unexpected_code_restarts_at_once() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    let t1 = t0 + Duration::from_secs(5);
    assert_eq!(
        m.on(Input::Exited(ExitStatus::Code(2)), t1),
        vec![Effect::Spawn]
    );
    assert_eq!(m.state.kind(), State::Exited);
    assert_eq!(m.restarts, 1);
    m.on(Input::Spawned(pid(11)), t1);
    assert_eq!(m.state.kind(), State::Starting);
}

#[test]
fn killed_by_signal_is_unexpected() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    assert_eq!(
        m.on(
            Input::Exited(ExitStatus::Signal(9)),
            t0 + Duration::from_secs(5)
        ),
        vec![Effect::Spawn]
    );
}

#[test]
fn autorestart_always_and_never() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_secs(5);
    let mut always = running(
        Policy {
            autorestart: AutoRestart::Always,
            ..policy()
        },
        t0,
    );
    assert_eq!(
        always.on(Input::Exited(ExitStatus::Code(0)), t1),
        vec![Effect::Spawn]
    );
    let mut never = running(
        Policy {
            autorestart: AutoRestart::Never,
            ..policy()
        },
        t0,
    );
    assert_eq!(
        never.on(Input::Exited(ExitStatus::Code(3)), t1),
        vec![Effect::Finished]
    );
}

#[test]
fn crash_loop_after_running_is_delayed_more_each_time() {
    let mut now = Instant::now();
    let mut m = Machine::new(Policy {
        autorestart: AutoRestart::Always,
        startsecs: Duration::ZERO,
        ..policy()
    });
    m.on(Input::Start, now);
    let mut delays = Vec::new();
    for i in 0..5 {
        m.on(Input::Spawned(pid(100 + i)), now);
        now += Duration::from_millis(10);
        let effects = m.on(Input::Exited(ExitStatus::Code(1)), now);
        let ProgramState::Exited {
            restart_at: Some(at),
            ..
        } = m.state
        else {
            panic!("expected a pending restart, got {:?}", m.state)
        };
        delays.push(at - now);
        if at > now {
            assert_eq!(effects, vec![Effect::Timer(at)]);
            assert_eq!(m.on(Input::Tick, at), vec![Effect::Spawn]);
            now = at;
        } else {
            assert_eq!(effects, vec![Effect::Spawn]);
        }
    }
    let secs: Vec<u64> = delays.iter().map(|d| d.as_secs()).collect();
    assert_eq!(secs, vec![0, 1, 2, 3, 4]);
}

#[test]
fn long_run_resets_crash_delay() {
    let t0 = Instant::now();
    let mut m = running(
        Policy {
            autorestart: AutoRestart::Always,
            ..policy()
        },
        t0,
    );
    m.quick_exits = 7;
    assert_eq!(
        m.on(
            Input::Exited(ExitStatus::Code(1)),
            t0 + Duration::from_secs(60)
        ),
        vec![Effect::Spawn]
    );
    assert_eq!(m.quick_exits, 0);
}

#[test]
fn stop_running_sends_stopsignal_then_kill_after_stopwaitsecs() {
    let t0 = Instant::now();
    let mut m = running(
        Policy {
            stopsignal: Signal::SIGQUIT,
            stopasgroup: true,
            killasgroup: true,
            ..policy()
        },
        t0,
    );
    let t1 = t0 + Duration::from_secs(2);
    let kill_at = t1 + Duration::from_secs(10);
    assert_eq!(
        m.on(Input::Stop, t1),
        vec![
            Effect::Signal {
                pid: pid(10),
                signal: Signal::SIGQUIT,
                group: true
            },
            Effect::Timer(kill_at),
        ]
    );
    assert_eq!(m.state.kind(), State::Stopping);
    assert_eq!(
        m.on(Input::Tick, kill_at - Duration::from_millis(1)),
        vec![],
        "not killed before stopwaitsecs"
    );
    assert_eq!(
        m.on(Input::Tick, kill_at),
        vec![Effect::Signal {
            pid: pid(10),
            signal: Signal::SIGKILL,
            group: true
        }]
    );
    assert_eq!(
        m.on(Input::Tick, kill_at + Duration::from_secs(1)),
        vec![],
        "SIGKILL is sent once"
    );
    assert_eq!(m.on(Input::Exited(ExitStatus::Signal(9)), kill_at), vec![]);
    assert_eq!(m.state, ProgramState::Stopped);
}

#[test]
fn stop_while_starting_stops() {
    let t0 = Instant::now();
    let mut m = Machine::new(policy());
    m.on(Input::Start, t0);
    m.on(Input::Spawned(pid(4)), t0);
    m.on(Input::Stop, t0);
    assert_eq!(m.state.kind(), State::Stopping);
    m.on(Input::Exited(ExitStatus::Signal(15)), t0);
    assert_eq!(m.state.kind(), State::Stopped);
}

#[test]
fn stop_in_backoff_is_stopped_at_once() {
    let t0 = Instant::now();
    let mut m = Machine::new(policy());
    m.on(Input::Start, t0);
    m.on(Input::SpawnFailed("x".into()), t0);
    assert_eq!(m.state.kind(), State::Backoff);
    assert_eq!(m.on(Input::Stop, t0), vec![]);
    assert_eq!(m.state, ProgramState::Stopped);
    assert_eq!(
        m.on(Input::Tick, t0 + Duration::from_secs(5)),
        vec![],
        "the old backoff timer is stale"
    );
}

#[test]
fn stop_cancels_pending_restart() {
    let t0 = Instant::now();
    let mut m = running(
        Policy {
            autorestart: AutoRestart::Always,
            startsecs: Duration::ZERO,
            ..policy()
        },
        t0,
    );
    m.quick_exits = 3;
    m.on(Input::Exited(ExitStatus::Code(1)), t0);
    let ProgramState::Exited {
        restart_at: Some(at),
        ..
    } = m.state
    else {
        panic!("expected a pending restart, got {:?}", m.state)
    };
    m.on(Input::Stop, t0);
    assert_eq!(m.on(Input::Tick, at), vec![]);
    assert_eq!(
        m.state,
        ProgramState::Exited {
            status: ExitStatus::Code(1),
            restart_at: None
        }
    );
}

#[test]
fn restart_stops_then_spawns() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    let effects = m.on(Input::Restart, t0);
    assert!(matches!(
        effects[0],
        Effect::Signal {
            signal: Signal::SIGTERM,
            ..
        }
    ));
    assert_eq!(
        m.on(Input::Exited(ExitStatus::Signal(15)), t0),
        vec![Effect::Spawn]
    );
    assert_eq!(m.state.kind(), State::Stopped);
}

#[test]
fn restart_of_stopped_program_starts_it() {
    let mut m = Machine::new(policy());
    assert_eq!(m.on(Input::Restart, Instant::now()), vec![Effect::Spawn]);
}

#[test]
fn start_while_stopping_starts_after_exit() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    m.on(Input::Stop, t0);
    assert_eq!(m.on(Input::Start, t0), vec![]);
    assert_eq!(
        m.on(Input::Exited(ExitStatus::Code(0)), t0),
        vec![Effect::Spawn]
    );
}

#[test]
fn no_restarts_when_disabled_for_shutdown() {
    let t0 = Instant::now();
    let mut m = running(
        Policy {
            autorestart: AutoRestart::Always,
            ..policy()
        },
        t0,
    );
    assert_eq!(m.on(Input::DisableAutorestart, t0), vec![]);
    assert_eq!(
        m.on(
            Input::Exited(ExitStatus::Code(1)),
            t0 + Duration::from_secs(3)
        ),
        vec![Effect::Finished]
    );
}

#[test]
fn start_while_running_does_nothing() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    assert_eq!(m.on(Input::Start, t0), vec![]);
    assert_eq!(m.state.kind(), State::Running);
}

#[test]
fn stray_exit_in_stopped_is_ignored() {
    let mut m = Machine::new(policy());
    assert_eq!(
        m.on(Input::Exited(ExitStatus::Code(1)), Instant::now()),
        vec![]
    );
    assert_eq!(m.state, ProgramState::Stopped);
}
