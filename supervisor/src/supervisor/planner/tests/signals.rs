//! The rules about signals delivered to the daemon: forwarding to the
//! single-command program, job control, and signals without a meaning in
//! supervisor mode.

use super::*;

#[test]
fn single_command_mode_forwards_every_signal_and_lingers() {
    let mut w = single_command();
    w.signal(Signal::SIGHUP);
    w.signal(Signal::SIGTERM);
    assert_eq!(
        w.signals,
        [
            ("main".into(), Signal::SIGHUP, true),
            ("main".into(), Signal::SIGTERM, true)
        ]
    );
    assert!(!w.planner.shutting_down(), "the command decides");
    w.exit("main", ExitStatus::Signal(15));
    assert!(w.other.iter().any(|e| e.starts_with("Linger(")));
    assert_eq!(w.planner.exit_code(), Some(143));
}

/// A planner for `nsvisor -- /bin/app`, booted.
fn single_command() -> World {
    let main = crate::config::main_program(vec!["/bin/app".into()], &Default::default());
    let mut c = config([]);
    c.path = Default::default();
    let mut w = World::with_main(c, Some(main));
    w.boot();
    w
}

#[test]
fn single_command_mode_forwards_the_synchronous_and_realtime_signals() {
    let mut w = single_command();
    for signal in [
        Signal::SIGILL,
        Signal::SIGSEGV,
        Signal::SIGPIPE,
        Signal::SIGSTKFLT,
    ] {
        w.signal(signal);
    }
    let main: ProgramName = "main".into();
    assert_eq!(
        w.signals,
        [
            (main.clone(), Signal::SIGILL, true),
            (main.clone(), Signal::SIGSEGV, true),
            (main.clone(), Signal::SIGPIPE, true),
            (main, Signal::SIGSTKFLT, true)
        ]
    );
    w.signal_caught(crate::signals::Caught::Realtime(libc::SIGRTMIN() + 2));
    assert!(
        w.other.contains(&"Forward SIGRTMIN+2".to_string()),
        "{:?}",
        w.other
    );
}

#[test]
fn job_control_stops_the_daemon_after_the_command_and_sigcont_resumes_both() {
    let mut w = single_command();
    let pid = w.planner.job_control_pid().expect("the command runs");
    let suspend = |why: &str| format!("Suspend {{ why: {why:?} }}");
    w.other.clear();
    // Sent to the daemon: forwarded, then the daemon stops.
    w.signal(Signal::SIGTSTP);
    assert_eq!(w.signals, [("main".into(), Signal::SIGTSTP, true)]);
    assert_eq!(w.other, [suspend("received SIGTSTP")]);
    // The command's own stop, reported while the daemon is stopped: nothing more.
    w.on(Event::CommandStopped(Signal::SIGTSTP));
    assert_eq!(w.other.len(), 1);
    // SIGCONT: the terminal back to the command, then forwarded.
    w.signal(Signal::SIGCONT);
    assert_eq!(w.other[1..], [format!("Foreground({pid:?})")]);
    assert_eq!(
        w.signals.last(),
        Some(&("main".into(), Signal::SIGCONT, true))
    );
    w.other.clear();
    // Ctrl-Z at a terminal stops the command's group: the daemon follows.
    w.on(Event::CommandStopped(Signal::SIGTSTP));
    assert_eq!(w.other, [suspend("the command was stopped by SIGTSTP")]);
    w.signal(Signal::SIGCONT);
    w.other.clear();
    // A stop by SIGSTOP (a debugger) is not job control.
    w.on(Event::CommandStopped(Signal::SIGSTOP));
    assert!(w.other.is_empty(), "{:?}", w.other);
}

#[test]
fn supervisor_mode_ignores_signals_without_a_meaning() {
    let mut w = World::new(config([prog("web", &[])]));
    w.boot();
    w.other.clear();
    for signal in [
        Signal::SIGUSR1,
        Signal::SIGABRT,
        Signal::SIGSEGV,
        Signal::SIGTSTP,
        Signal::SIGCONT,
        Signal::SIGPIPE,
        Signal::SIGWINCH,
    ] {
        w.signal(signal);
    }
    w.signal_caught(crate::signals::Caught::Realtime(libc::SIGRTMIN()));
    w.on(Event::CommandStopped(Signal::SIGTSTP));
    assert!(w.signals.is_empty(), "{:?}", w.signals);
    assert!(w.other.is_empty(), "{:?}", w.other);
    assert!(!w.planner.shutting_down());
    assert_eq!(w.planner.job_control_pid(), None);
}
