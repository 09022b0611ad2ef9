//! Unit tests of the state machine's restarts by a failing liveness check.

use super::*;

/// Feeds a failed liveness check to a RUNNING machine at `t` and the
/// process's end right after; returns the effects of that end.
fn unhealthy_then_exit(m: &mut Machine, t: Instant) -> Vec<Effect> {
    let stop = m.on(Input::Unhealthy, t);
    assert_eq!(
        stop,
        vec![
            Effect::Signal {
                pid: pid(10),
                signal: Signal::SIGTERM,
                group: false
            },
            Effect::Timer(t + Duration::from_secs(10))
        ],
        "a failed liveness check stops with stopsignal and arms stopwaitsecs"
    );
    assert!(m.restart_pending());
    m.on(Input::Exited(ExitStatus::Signal(15)), t)
}

#[test]
fn unhealthy_restart_is_counted_like_a_crash() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    let t1 = t0 + Duration::from_secs(60);
    assert_eq!(
        unhealthy_then_exit(&mut m, t1),
        vec![Effect::Spawn],
        "the first one restarts at once"
    );
    assert_eq!(m.restarts(), 1, "counted as an automatic restart");
    assert_eq!(m.last_exit(), Some(ExitStatus::Signal(15)));
}

#[test]
fn repeated_unhealthy_restarts_back_off_until_a_check_passes() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    let mut t = t0 + Duration::from_secs(60);
    assert_eq!(unhealthy_then_exit(&mut m, t), vec![Effect::Spawn]);
    for delay in [1, 2, 3] {
        m.on(Input::Spawned(pid(10)), t);
        m.on(Input::Tick, t + Duration::from_secs(1));
        t += Duration::from_secs(60);
        assert_eq!(
            unhealthy_then_exit(&mut m, t),
            vec![Effect::Timer(t + Duration::from_secs(delay))],
            "no passing check in between: each restart waits longer"
        );
        assert_eq!(m.state.kind(), State::Exited);
        m.on(Input::Tick, t + Duration::from_secs(delay));
        t += Duration::from_secs(delay);
    }
    assert_eq!(m.restarts(), 4);
    m.on(Input::Spawned(pid(10)), t);
    m.on(Input::Tick, t + Duration::from_secs(1));
    assert_eq!(m.on(Input::Healthy, t + Duration::from_secs(2)), vec![]);
    t += Duration::from_secs(60);
    assert_eq!(
        unhealthy_then_exit(&mut m, t),
        vec![Effect::Spawn],
        "a passing check resets the delay"
    );
}

#[test]
fn stop_during_unhealthy_restart_keeps_it_stopped() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    m.on(Input::Unhealthy, t0 + Duration::from_secs(5));
    m.on(Input::Stop, t0 + Duration::from_secs(5));
    assert!(!m.restart_pending());
    assert_eq!(
        m.on(
            Input::Exited(ExitStatus::Signal(15)),
            t0 + Duration::from_secs(6)
        ),
        vec![]
    );
    assert_eq!(m.state.kind(), State::Stopped);
    assert_eq!(m.restarts(), 0);
}

#[test]
fn unhealthy_restart_does_not_happen_during_shutdown() {
    let t0 = Instant::now();
    let mut m = running(policy(), t0);
    m.on(Input::Unhealthy, t0 + Duration::from_secs(5));
    m.on(Input::DisableAutorestart, t0 + Duration::from_secs(5));
    assert_eq!(
        m.on(
            Input::Exited(ExitStatus::Signal(15)),
            t0 + Duration::from_secs(6)
        ),
        vec![]
    );
    assert_eq!(m.state.kind(), State::Stopped);
}

#[test]
fn unhealthy_without_a_process_does_nothing() {
    let t0 = Instant::now();
    let mut m = Machine::new(policy());
    assert_eq!(m.on(Input::Unhealthy, t0), vec![]);
    assert_eq!(m.state.kind(), State::Stopped);
}
