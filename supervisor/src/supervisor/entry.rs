//! One supervised program as the supervisor holds it: its config, its state
//! machine and the bookkeeping around them, and how it is shown to clients.
//!
//! Only the supervisor task owns `Program`s (DESIGN rule 1); clients get
//! [`ProgramInfo`] snapshots built by [`Program::info`].

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nsvisor_proto::{format_uptime, NetInfo, ProgramInfo, State};

use super::program::{Machine, Policy, ProgramState};
use crate::config::ProgramConfig;
use crate::logs::{LogContext, ProgramLogs};

/// A program and everything the supervisor tracks about it.
#[derive(Debug)]
pub struct Program {
    /// Its current config.
    pub cfg: ProgramConfig,
    /// Its state machine.
    pub machine: Machine,
    /// Wall-clock time of the last spawn.
    pub started_wall: Option<SystemTime>,
    /// Wants to start once every dependency is RUNNING.
    pub pending_start: bool,
    /// Why the pending start cannot happen (a dependency failed).
    pub blocked: Option<String>,
    /// Removed by a reload: dropped once it has no process.
    pub removing: bool,
    /// Changed by a reload: the config to switch to once it has no process.
    /// (Boxed: it is rarely set, and a config inline would cost every
    /// program its size.)
    pub replace_with: Option<Box<ProgramConfig>>,
    /// The single-command main program (`nsvisor -- CMD`).
    pub main: bool,
    /// Shell-style code of the last spawn failure (127 not found, 126 not executable).
    pub spawn_error_code: Option<i32>,
    /// Its output pumps and tail buffers, made at the first spawn or `tail`
    /// (never for the main program, which keeps the terminal).
    pub logs: Option<ProgramLogs>,
    /// Its network sandbox, as `status` shows it.
    pub net: Option<NetInfo>,
}

impl Program {
    /// A STOPPED program.
    pub fn new(cfg: ProgramConfig) -> Program {
        Program {
            machine: Machine::new(Policy::of(&cfg)),
            cfg,
            started_wall: None,
            pending_start: false,
            blocked: None,
            removing: false,
            replace_with: None,
            main: false,
            spawn_error_code: None,
            logs: None,
            net: None,
        }
    }

    /// Its logs, started on first use.
    pub fn logs(&mut self, ctx: &LogContext) -> &ProgramLogs {
        self.logs
            .get_or_insert_with(|| ProgramLogs::new(ctx, &self.cfg))
    }

    /// The wire state.
    pub fn state(&self) -> State {
        self.machine.state.kind()
    }

    /// No process exists and none is about to be started.
    pub fn is_down(&self) -> bool {
        !self.state().has_process()
            && !self.pending_start
            && !matches!(
                self.machine.state,
                ProgramState::Backoff { .. }
                    | ProgramState::Exited {
                        restart_at: Some(_),
                        ..
                    }
            )
    }

    /// The status a `critical` program hands to the daemon when it ends:
    /// its exit status (128+N for a signal), else its spawn error code, else 1.
    pub fn final_code(&self) -> i32 {
        match (self.spawn_error_code, self.machine.last_exit) {
            (Some(code), _) if matches!(self.machine.state, ProgramState::Fatal { .. }) => code,
            (_, Some(status)) => status.as_shell_code(),
            (Some(code), None) => code,
            (None, None) => 1,
        }
    }

    /// A snapshot for clients.
    pub fn info(&self, now: Instant) -> ProgramInfo {
        let state = self.state();
        let uptime = match &self.machine.state {
            ProgramState::Running { since, .. } | ProgramState::Starting { since, .. } => {
                Some(now.saturating_duration_since(*since).as_secs())
            }
            _ => None,
        };
        let pid = self.machine.state.pid().map(|p| p.as_raw() as u32);
        ProgramInfo {
            name: self.cfg.name.clone(),
            group: self.cfg.group.clone(),
            state,
            pid,
            uptime_secs: uptime,
            started_at: self
                .started_wall
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            exit_status: self.machine.last_exit,
            restarts: self.machine.restarts,
            autostart: self.cfg.autostart,
            description: self.describe(pid, uptime, now),
            net: self.net.clone(),
        }
    }

    fn describe(&self, pid: Option<u32>, uptime: Option<u64>, now: Instant) -> String {
        match &self.machine.state {
            ProgramState::Running { .. } => format!(
                "pid {}, uptime {}",
                pid.unwrap_or_default(),
                format_uptime(uptime.unwrap_or_default())
            ),
            ProgramState::Starting { .. } | ProgramState::Stopping { .. } => {
                format!("pid {}", pid.unwrap_or_default())
            }
            ProgramState::Backoff { attempt, until } => {
                let why = self
                    .machine
                    .last_spawn_error
                    .clone()
                    .or_else(|| {
                        self.machine
                            .last_exit
                            .map(|s| format!("exited too quickly ({s})"))
                    })
                    .unwrap_or_default();
                format!(
                    "{why}; retry {attempt} in {}s",
                    until.saturating_duration_since(now).as_secs_f32().ceil()
                )
            }
            ProgramState::Exited { status, restart_at } => match restart_at {
                Some(at) => format!(
                    "{status}; restarting in {}s",
                    at.saturating_duration_since(now).as_secs_f32().ceil()
                ),
                None => status.to_string(),
            },
            ProgramState::Fatal { reason } => reason.clone(),
            ProgramState::Stopped => {
                match (&self.blocked, self.pending_start, self.machine.last_exit) {
                    (Some(why), _, _) => why.clone(),
                    (None, true, _) => format!("waiting for {}", self.cfg.depends_on.join(", ")),
                    (None, false, Some(status)) => format!("stopped ({status})"),
                    (None, false, None) => "not started".to_string(),
                }
            }
        }
    }
}
