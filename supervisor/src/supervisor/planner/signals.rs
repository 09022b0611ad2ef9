//! What a signal caught by the daemon means (`signals.rs` catches them all).
//!
//! - Single-command mode (`nsvisor -- CMD`, no programs): every signal is the
//!   command's and is forwarded to it (its process group unless
//!   `--single-child`), real-time ones too. SIGTSTP, SIGTTIN and SIGTTOU are
//!   forwarded and then stop the daemon itself, and a stop of the command by
//!   one of them (Ctrl-Z at a terminal goes to the command's group, which
//!   holds the terminal) stops the daemon too, so a shell sees its job stop.
//!   The SIGCONT that continues the daemon (`fg`, `bg`) gives the terminal
//!   back to the command if the daemon's group now holds it (`fg`), then is
//!   forwarded. While the daemon is stopped it reaps nothing; a stop by
//!   SIGSTOP (a debugger) is left to whoever sent it. As PID 1 the daemon
//!   cannot stop itself: only the command stops.
//! - Supervisor mode: SIGTERM, SIGINT, SIGQUIT shut down; SIGHUP reloads;
//!   SIGUSR2 reopens the log files. Any other signal goes to the `--`
//!   command if there is one (sidecar mode), else it is logged and ignored.

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::time::Instant;

use super::{Effect, Planner, MAIN_PROGRAM};
use crate::signals::{Caught, Received};
use crate::supervisor::program::Role;

impl Planner {
    pub(super) fn signal(&mut self, received: Received, now: Instant) {
        let Received { signal, sender } = received;
        if self.single_command {
            return self.command_signal(signal);
        }
        match signal.named() {
            Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) => {
                self.begin_shutdown(0, &format!("received {signal}"), now)
            }
            Some(Signal::SIGHUP) if self.shutdown.is_some() => {
                tracing::info!("received SIGHUP: not reloading, the daemon is shutting down");
            }
            Some(Signal::SIGHUP) => self.out.push(Effect::LoadConfig),
            Some(Signal::SIGUSR2) => self.out.push(Effect::ReopenLogs),
            _ if self
                .programs
                .get(MAIN_PROGRAM)
                .is_some_and(|p| p.role == Role::Main) =>
            {
                self.forward(signal)
            }
            // A terminal sends SIGWINCH at every resize: not worth a line each.
            Some(Signal::SIGWINCH) => tracing::debug!("received SIGWINCH: ignored"),
            _ => {
                let from = sender.map(|pid| format!(" from pid {pid}"));
                let from = from.unwrap_or_default();
                tracing::info!("received {signal}{from}: ignored (it means nothing to nsvisor)");
            }
        }
    }

    /// Single-command mode: forwarding and job control.
    fn command_signal(&mut self, signal: Caught) {
        match signal.named() {
            Some(Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU) => {
                self.forward(signal);
                self.suspend(format!("received {signal}"));
            }
            Some(Signal::SIGCONT) => {
                if std::mem::take(&mut self.suspended) {
                    if let Some(pid) = self.command_pid() {
                        self.out.push(Effect::Foreground(pid));
                    }
                }
                self.forward(signal);
            }
            _ => self.forward(signal),
        }
    }

    /// The command was stopped by `by` (single-command mode).
    pub(super) fn command_stopped(&mut self, by: Signal) {
        let job_control = matches!(by, Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU);
        if self.single_command && job_control && !self.suspended {
            self.suspend(format!("the command was stopped by {by}"));
        }
    }

    fn suspend(&mut self, why: String) {
        self.suspended = true;
        self.out.push(Effect::Suspend { why });
    }

    /// The `--` command's pid while it runs.
    fn command_pid(&self) -> Option<Pid> {
        self.programs
            .get(MAIN_PROGRAM)
            .filter(|p| p.role == Role::Main)
            .and_then(|p| p.machine.state().pid())
    }

    /// The command whose stops are job control: single-command mode only.
    pub fn job_control_pid(&self) -> Option<Pid> {
        self.command_pid().filter(|_| self.single_command)
    }

    /// Forwards a signal to the main program (its group unless `--single-child`).
    fn forward(&mut self, signal: Caught) {
        if let Some(pid) = self.command_pid() {
            self.out.push(Effect::Forward {
                pid,
                signal,
                group: !self.single_child,
            });
        }
    }
}
