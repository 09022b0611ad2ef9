//! Signals delivered to the daemon, turned into one stream for the supervisor.
//!
//! Every signal that can be caught has a handler: as PID 1 the kernel drops
//! a signal without one, and otherwise most would kill the daemon (and orphan
//! its programs). What a signal means — forwarded to the `--` command, acted
//! on (shutdown, reload, reopen logs, job control), or logged and ignored —
//! is the planner's decision; here they are only caught:
//! - SIGKILL and SIGSTOP cannot be caught.
//! - SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS: caught when a process
//!   sends them (kill(2)), while a real fault of the daemon still kills it
//!   with a core dump instead of looping in a handler; SIGPIPE: caught
//!   without ever raising another SIGPIPE. `sys/signal.rs` has the handler
//!   of these seven and says why signal-hook cannot be used for them.
//! - every other one, 1 to 31, and the real-time signals SIGRTMIN..=SIGRTMAX:
//!   through signal-hook, with the sender's pid.
//! - SIGTTIN and SIGTTOU outside single-command mode are set to ignored
//!   instead: the terminal sends them to a daemon in the background that reads
//!   or writes it, and with a handler that returns, the write would be
//!   retried (and the signal sent) forever. In single-command mode they are
//!   job control and caught.
//!
//! SIGPIPE and SIGXFSZ that the kernel sends for the daemon's own writes (to
//! a closed pipe, past the file-size limit) come "from" the daemon's own pid:
//! they are dropped here, as they concern the daemon and not its command.
//! SIGCHLD only wakes the supervisor, which reaps (DESIGN rule 3). Programs
//! get default dispositions back in the child before exec (`sys::spawn_child`).
//! Called by `lib.rs::run` before anything is spawned.

use std::fmt;

use futures::stream::{BoxStream, StreamExt};
use nix::sys::signal::Signal;
use signal_hook::iterator::exfiltrator::WithRawSiginfo;
use signal_hook_tokio::SignalsInfo;

use crate::sys;

/// A signal the daemon caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caught {
    /// One of the 31 standard signals.
    Named(Signal),
    /// A real-time signal, by number (SIGRTMIN..=SIGRTMAX), which
    /// [`Signal`] cannot name.
    Realtime(i32),
}

impl Caught {
    /// The signal numbered `number`, if the daemon can catch it.
    pub fn from_number(number: i32) -> Option<Caught> {
        if let Ok(signal) = Signal::try_from(number) {
            return Some(Caught::Named(signal));
        }
        (libc::SIGRTMIN()..=libc::SIGRTMAX())
            .contains(&number)
            .then_some(Caught::Realtime(number))
    }

    /// Its number.
    pub fn number(self) -> i32 {
        match self {
            Caught::Named(signal) => signal as i32,
            Caught::Realtime(number) => number,
        }
    }

    /// The standard signal, if it is one.
    pub fn named(self) -> Option<Signal> {
        match self {
            Caught::Named(signal) => Some(signal),
            Caught::Realtime(_) => None,
        }
    }
}

impl From<Signal> for Caught {
    fn from(signal: Signal) -> Caught {
        Caught::Named(signal)
    }
}

impl fmt::Display for Caught {
    /// `SIGUSR1`, `SIGRTMIN+3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Caught::Named(signal) => f.write_str(signal.as_str()),
            Caught::Realtime(number) => write!(f, "SIGRTMIN+{}", number - libc::SIGRTMIN()),
        }
    }
}

/// One signal as it reached the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Which.
    pub signal: Caught,
    /// The pid of the process that sent it (`None` when the kernel did).
    pub sender: Option<i32>,
}

/// The caught signals, in the order they are noticed.
pub type SignalStream = BoxStream<'static, Received>;

/// Installs the handlers (`single_command`: `nsvisor -- CMD` without
/// programs, where SIGTTIN and SIGTTOU are job control); returns the stream
/// of caught signals. Dropping it stops the delivery (the handlers stay, and
/// signal-hook's do nothing more). Must be called inside the tokio runtime.
pub fn register(single_command: bool) -> std::io::Result<SignalStream> {
    if !single_command {
        for signal in [Signal::SIGTTIN, Signal::SIGTTOU] {
            sys::ignore_signal(signal)?;
        }
    }
    let hooked = SignalsInfo::<WithRawSiginfo>::new(hooked_signals(single_command))?;
    let records = std::os::unix::net::UnixDatagram::from(sys::install_signal_handler()?);
    let records = tokio::net::UnixDatagram::from_std(records)?;
    let own = std::process::id() as i32;
    let hooked = hooked.map(|info| (info.si_signo, sys::signal_sender(&info)));
    let recorded = futures::stream::unfold(records, |records| async move {
        let mut record = [0u8; sys::RECORD_LEN];
        match records.recv(&mut record).await {
            Ok(_) => {
                let (number, pid) = sys::decode_record(&record);
                Some(((number, Some(pid)), records))
            }
            Err(e) => {
                tracing::error!("cannot read the signal handler's records: {e}");
                None
            }
        }
    });
    let stream = futures::stream::select(hooked, recorded)
        .filter_map(move |(number, sender)| futures::future::ready(received(number, sender, own)))
        .boxed();
    Ok(stream)
}

/// The signals signal-hook catches: 1 to 31 but the uncatchable ones and
/// those of `sys::install_signal_handler` (and SIGTTIN/SIGTTOU outside
/// single-command mode), then the real-time ones.
fn hooked_signals(single_command: bool) -> Vec<i32> {
    let skipped = |s: &i32| {
        [libc::SIGKILL, libc::SIGSTOP].contains(s)
            || sys::HANDLED_SIGNALS.contains(s)
            || (!single_command && [libc::SIGTTIN, libc::SIGTTOU].contains(s))
    };
    (1..32)
        .filter(|s| !skipped(s))
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
        .collect()
}

/// A caught signal, unless it is the kernel's answer to one of the
/// daemon's own writes (SIGPIPE, SIGXFSZ with the daemon as sender).
/// The sender is unknown (`None`) when the kernel sent the signal or the
/// sender is outside the daemon's PID namespace.
fn received(number: i32, sender: Option<i32>, own_pid: i32) -> Option<Received> {
    let signal = Caught::from_number(number)?;
    // A sender outside the daemon's PID namespace (`docker kill`) shows as 0.
    let sender = sender.filter(|pid| *pid > 0);
    let own_write = matches!(signal, Caught::Named(Signal::SIGPIPE | Signal::SIGXFSZ));
    if own_write && sender == Some(own_pid) {
        tracing::debug!("{signal} for a write of the daemon's own: not forwarded");
        return None;
    }
    Some(Received { signal, sender })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catchable_signal_is_caught_in_single_command_mode() {
        let single = hooked_signals(true);
        for n in 1..32 {
            let expected = ![9, 19].contains(&n) && !sys::HANDLED_SIGNALS.contains(&n);
            assert_eq!(single.contains(&n), expected, "signal {n}");
        }
        assert!(single.contains(&libc::SIGRTMIN()) && single.contains(&libc::SIGRTMAX()));
        let supervisor = hooked_signals(false);
        assert!(!supervisor.contains(&libc::SIGTTOU) && !supervisor.contains(&libc::SIGTTIN));
        assert!(supervisor.contains(&libc::SIGTSTP) && supervisor.contains(&libc::SIGSTKFLT));
    }

    #[test]
    fn names_and_numbers() {
        let rt = Caught::from_number(libc::SIGRTMIN() + 3);
        assert_eq!(rt.map(|c| c.to_string()).as_deref(), Some("SIGRTMIN+3"));
        assert_eq!(rt.map(Caught::number), Some(libc::SIGRTMIN() + 3));
        let abrt = Caught::from_number(6);
        assert_eq!(abrt.map(|c| c.to_string()).as_deref(), Some("SIGABRT"));
        assert_eq!(Caught::from_number(libc::SIGRTMAX() + 1), None);
    }

    #[test]
    fn own_sigpipe_is_dropped_and_others_kept() {
        let pipe = Signal::SIGPIPE as i32;
        assert_eq!(received(pipe, Some(42), 42), None);
        assert_eq!(
            received(pipe, Some(7), 42),
            Some(Received {
                signal: Caught::Named(Signal::SIGPIPE),
                sender: Some(7)
            })
        );
        assert!(received(Signal::SIGUSR1 as i32, Some(42), 42).is_some());
        let from_outside = received(Signal::SIGUSR1 as i32, Some(0), 1);
        assert_eq!(from_outside.and_then(|r| r.sender), None);
    }
}
