//! The planner's vocabulary: the [`Event`]s it is told about and the
//! [`Effect`]s it asks the actor to carry out, with what they carry (client
//! ids and answers, state changes). Plain data, no behaviour.

use std::time::{Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use nsvisor_proto::{ActionResult, ApiError, ExitStatus, ReloadResult, State};

use crate::config::{Config, NetworkConfig, ProgramName, SandboxSpec};
use crate::signals::{Caught, Received};
use crate::supervisor::handle::Action;
use crate::supervisor::program::Netns;

/// Identifies a client waiting for an answer; the actor keeps its reply channel.
pub type ClientId = u64;

/// What happened, as the planner sees it.
#[derive(Debug)]
pub enum Event {
    /// The daemon started: start the autostart programs in tier order.
    Boot,
    /// A spawn effect succeeded.
    Spawned {
        /// Program.
        name: ProgramName,
        /// Its process.
        pid: Pid,
        /// Wall-clock time of the spawn (for `status`).
        wall: SystemTime,
    },
    /// A spawn effect failed.
    SpawnFailed {
        /// Program.
        name: ProgramName,
        /// Why, in words.
        error: String,
        /// Shell-style code (127 not found, 126 not executable, else 1).
        code: i32,
        /// The child that failed after the fork, to be reaped.
        pid: Option<Pid>,
    },
    /// The reaper collected these statuses in one pass (handled together:
    /// the rules between programs run once for the batch).
    Reaped(Vec<(Pid, ExitStatus)>),
    /// A timer armed for this program fired.
    Tick(ProgramName),
    /// A check's timer fired ([`Effect::CheckTimer`]).
    CheckDue {
        /// Program.
        name: ProgramName,
        /// Which of its checks.
        index: usize,
        /// Which of its processes.
        epoch: u64,
    },
    /// The actor spawned an `exec` check's process (or could not).
    CheckSpawned {
        /// Program.
        name: ProgramName,
        /// Which of its checks.
        index: usize,
        /// Which of its processes.
        epoch: u64,
        /// The check's process, or why it could not start (and the child
        /// that failed after the fork, to be reaped).
        result: Result<Pid, (String, Option<Pid>)>,
    },
    /// An `exec` check's deadline passed ([`Effect::CheckDeadline`]).
    CheckDeadline(Pid),
    /// A check ran ([`Effect::RunCheck`]).
    CheckDone {
        /// Program.
        name: ProgramName,
        /// Which of its checks.
        index: usize,
        /// Which of its processes.
        epoch: u64,
        /// Whether it passed.
        passed: bool,
        /// How long it took.
        took: std::time::Duration,
        /// What happened, in words.
        detail: String,
    },
    /// A program sent a message to its notify socket (`sd_notify`).
    Notify {
        /// Program.
        name: ProgramName,
        /// What it said.
        message: crate::health::notify::NotifyMessage,
    },
    /// A signal reached the daemon (other than SIGCHLD, which only reaps).
    Signal(Received),
    /// The `--` command (single-command mode) was stopped by this signal;
    /// the actor looks after every SIGCHLD.
    CommandStopped(Signal),
    /// A client asks for an action.
    Act {
        /// Who asks.
        client: ClientId,
        /// What (a signal is sent by the actor itself: its answer is the
        /// syscall's outcome).
        verb: Action,
        /// On what.
        target: String,
        /// Answer once the goal is reached (else at once).
        wait: bool,
    },
    /// A client asks for a graceful shutdown.
    Shutdown,
    /// A reload was read off the supervisor's task: apply it (or report why not).
    Reloaded {
        /// Who asked (`None`: SIGHUP).
        client: Option<ClientId>,
        /// The new config, or why it cannot be used (boxed: it is large and rare).
        config: Result<Box<Config>, ApiError>,
    },
    /// The network task answered a sandbox request.
    SandboxReady {
        /// Program.
        name: ProgramName,
        /// The request answered (from [`Effect::EnsureSandbox`]).
        ticket: u64,
        /// Its namespace, or the error.
        result: Result<Netns, String>,
    },
}

/// A client's answer.
#[derive(Debug)]
pub enum Answer {
    /// To [`Event::Act`].
    Act(Result<Vec<ActionResult>, ApiError>),
    /// To [`Event::Reloaded`].
    Reload(Result<ReloadResult, ApiError>),
}

/// A program's state changed (for the event stream and the daemon log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Program.
    pub name: ProgramName,
    /// Before.
    pub from: State,
    /// After.
    pub to: State,
    /// Its process, if it has one now.
    pub pid: Option<Pid>,
    /// How its process ended, when this change is its end.
    pub exit_status: Option<ExitStatus>,
    /// For a change of readiness (the state stays): ready now or not, and
    /// what the last check said.
    pub ready: Option<(bool, String)>,
}

impl Change {
    /// Whether this change is a stop, as supervisord counts them for its
    /// `stop` time: the program went down (STOPPED, EXITED, FATAL, BACKOFF)
    /// or its process ended.
    pub fn is_stop(&self) -> bool {
        let down = matches!(
            self.to,
            State::Stopped | State::Exited | State::Fatal | State::Backoff
        );
        self.ready.is_none() && self.from != self.to && (down || self.exit_status.is_some())
    }
}

/// What the actor must do.
#[derive(Debug)]
pub enum Effect {
    /// Spawn the program now (entering `netns`, its built sandbox, if given;
    /// a program that joins a named namespace opens it itself), then report
    /// [`Event::Spawned`] or [`Event::SpawnFailed`].
    Spawn {
        /// Program.
        name: ProgramName,
        /// Its sandbox's namespace.
        netns: Option<Netns>,
    },
    /// Send a signal to a process (its group when `group`).
    Signal {
        /// Program it belongs to (for messages).
        name: ProgramName,
        /// Target pid (also the pgid: programs lead their own group).
        pid: Pid,
        /// Signal.
        signal: Signal,
        /// To the whole process group.
        group: bool,
    },
    /// Forward a signal the daemon caught to the `--` command (its group
    /// when `group`).
    Forward {
        /// The command's pid (also its pgid).
        pid: Pid,
        /// Signal, a real-time one too.
        signal: Caught,
        /// To the whole process group.
        group: bool,
    },
    /// Job control: stop the daemon itself (SIGSTOP) until a SIGCONT.
    Suspend {
        /// Why, for the log.
        why: String,
    },
    /// Job control, after a SIGCONT: give the terminal back to the
    /// command's process group if the daemon's group holds it.
    Foreground(Pid),
    /// Report [`Event::Tick`] for this program at `at`.
    Timer {
        /// When.
        at: Instant,
        /// Program.
        name: ProgramName,
    },
    /// Report [`Event::CheckDue`] at `at`.
    CheckTimer {
        /// When.
        at: Instant,
        /// Program.
        name: ProgramName,
        /// Which of its checks.
        index: usize,
        /// Which of its processes.
        epoch: u64,
    },
    /// Report [`Event::CheckDeadline`] for an `exec` check's process at `at`.
    CheckDeadline {
        /// When.
        at: Instant,
        /// The check's process.
        pid: Pid,
    },
    /// Run a check (inside the program's sandbox when `netns` is given),
    /// then report [`Event::CheckDone`]; for an `exec` check, spawn it and
    /// report [`Event::CheckSpawned`] (its exit comes through the reaper).
    RunCheck {
        /// Program.
        name: ProgramName,
        /// Which of its checks (`cfg.checks[index]`).
        index: usize,
        /// Which of its processes.
        epoch: u64,
        /// The sandbox's namespace.
        netns: Option<Netns>,
    },
    /// Answer a waiting client (exactly once per client).
    Answer {
        /// Who.
        client: ClientId,
        /// What (boxed, like the sandbox request: effects are queued by
        /// the thousand at start-up, so every variant stays small).
        answer: Box<Answer>,
    },
    /// Build the program's sandbox, then report [`Event::SandboxReady`].
    EnsureSandbox {
        /// Program.
        name: ProgramName,
        /// Its spec.
        spec: Box<SandboxSpec>,
        /// The network it joins.
        network: Box<NetworkConfig>,
        /// Identifies the request in the answer.
        ticket: u64,
    },
    /// The program no longer uses its sandbox (removed, or new network settings).
    ReleaseSandbox(ProgramName),
    /// The program's output settings changed, or it was removed: its log
    /// pumps and tail buffers go (new ones are made at its next spawn).
    DropLogs(ProgramName),
    /// Publish a state change.
    Publish(Change),
    /// The main program exited: terminate what is left of its process group.
    Linger(Pid),
    /// Read and parse the config file again off the supervisor's task, then
    /// report [`Event::Reloaded`] (SIGHUP).
    LoadConfig,
    /// Reopen every log file (SIGUSR2).
    ReopenLogs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(from: State, to: State, exit: Option<ExitStatus>) -> Change {
        Change {
            name: ProgramName::from("p"),
            from,
            to,
            pid: None,
            exit_status: exit,
            ready: None,
        }
    }

    #[test]
    fn a_stop_is_going_down_or_a_process_ending() {
        assert!(change(
            State::Stopping,
            State::Stopped,
            Some(ExitStatus::Signal(15))
        )
        .is_stop());
        assert!(change(State::Running, State::Exited, Some(ExitStatus::Code(0))).is_stop());
        assert!(change(State::Starting, State::Backoff, None).is_stop());
        assert!(change(State::Backoff, State::Fatal, None).is_stop());
        // Ended and restarted at once: the process still ended.
        assert!(change(State::Running, State::Starting, Some(ExitStatus::Code(1))).is_stop());
        assert!(!change(State::Stopped, State::Starting, None).is_stop());
        assert!(!change(State::Running, State::Stopping, None).is_stop());
        let mut readiness = change(State::Running, State::Running, None);
        readiness.ready = Some((true, "ok".into()));
        assert!(!readiness.is_stop(), "a change of readiness is no stop");
    }
}
