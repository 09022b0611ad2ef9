//! One supervised program as the planner holds it: its config, its state
//! machine, what gates its start, where it is in its lifecycle, and how it is
//! shown to clients.
//!
//! Only the planner changes a `Program` (DESIGN rule 2): the machine through
//! [`Machine::on`], the gate and the lifecycle through their enums, each with
//! the planner as its one writer. Clients get [`ProgramInfo`] snapshots built
//! by [`Program::info`].

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::fmt::Write as _;

use nsvisor_proto::{CheckInfo, NetInfo, ProgramInfo, State, Uptime};

use super::machine::{Machine, Policy, ProgramState};
use super::planner::HealthState;
use crate::config::{ProgramConfig, Purpose};

/// Whether a start the program wants can happen now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Gate {
    /// Nothing is waiting: the program starts when asked.
    #[default]
    Idle,
    /// Wants to start once every dependency is RUNNING.
    WaitingForDeps,
    /// Its dependencies are RUNNING; wants to start once its sandbox is built.
    WaitingForNetwork,
    /// Its spawn was handed to the actor, whose result is the next event
    /// about it (the actor reports it before anything else happens).
    Spawning,
    /// A wanted start cannot happen (a dependency failed, its sandbox could
    /// not be built): it stays STOPPED until started again by hand.
    Blocked(String),
}

impl Gate {
    /// A start is on its way: waiting on this gate, or being spawned.
    pub fn is_waiting(&self) -> bool {
        matches!(
            self,
            Gate::WaitingForDeps | Gate::WaitingForNetwork | Gate::Spawning
        )
    }
}

/// Where the program is in its life in the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Lifecycle {
    /// In the config.
    #[default]
    Active,
    /// Removed by a reload: dropped from the table once it has no process.
    Removing,
    /// Changed by a reload: switches to this config once it has no process.
    /// (Boxed: it is rare, and a config inline would cost every program its size.)
    Replacing(Box<ProgramConfig>),
}

/// The single-command main program (`nsvisor -- CMD`) or a program of the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A program of the config file.
    Configured,
    /// The `--` command: keeps the terminal, its group lingers after it exits.
    Main,
}

/// An opened sandbox, shared by the planner and the spawns that enter it:
/// its network namespace, and the mount namespace of its names.
#[derive(Debug, Clone)]
pub struct Netns {
    /// The network namespace.
    pub net: Arc<OwnedFd>,
    /// The mount namespace with the sandbox's `/etc/hosts` and
    /// `/etc/resolv.conf`, entered after `net` (none for a joined namespace).
    pub mnt: Option<Arc<OwnedFd>>,
}

/// The program's network sandbox, as far as the planner knows it: always
/// for its current config's spec (a reload that changes the config resets it).
#[derive(Debug, Clone, Default)]
pub enum Sandbox {
    /// None asked for (no sandbox, or not needed yet).
    #[default]
    Absent,
    /// Asked of the network task as request `ticket` (answers to older
    /// requests are ignored).
    Preparing(u64),
    /// Built; spawns enter this namespace.
    Ready(Netns),
}

/// A program and everything the planner tracks about it.
#[derive(Debug)]
pub struct Program {
    /// Its current config.
    pub cfg: ProgramConfig,
    /// Its state machine.
    pub machine: Machine,
    /// Whether a wanted start can happen now.
    pub gate: Gate,
    /// Active, being removed, or being replaced.
    pub lifecycle: Lifecycle,
    /// Main program or configured one.
    pub role: Role,
    /// Its network sandbox.
    pub sandbox: Sandbox,
    /// Wall-clock time of the last spawn.
    pub started_wall: Option<SystemTime>,
    /// Shell-style code of the last spawn failure (127 not found, 126 not executable).
    pub spawn_error_code: Option<i32>,
    /// Its network, as `status` shows it (boxed: most programs have none,
    /// and inline it would cost each of them its size).
    pub net: Option<Box<NetInfo>>,
    /// Its checks' results for the current process.
    pub health: HealthState,
}

impl Program {
    /// A STOPPED program.
    pub fn new(cfg: ProgramConfig, role: Role) -> Program {
        Program {
            machine: Machine::new(Policy::of(&cfg)),
            cfg,
            gate: Gate::Idle,
            lifecycle: Lifecycle::Active,
            role,
            sandbox: Sandbox::Absent,
            started_wall: None,
            spawn_error_code: None,
            net: None,
            health: HealthState::default(),
        }
    }

    /// RUNNING, and every readiness check passes (a program without
    /// readiness checks is ready once RUNNING).
    pub fn ready(&self) -> bool {
        matches!(self.machine.state(), ProgramState::Running { .. })
            && self
                .cfg
                .checks
                .iter()
                .zip(&self.health.checks)
                .all(|(c, s)| c.purpose != Purpose::Readiness || s.passing())
    }

    /// Every liveness check passes (a check fails only after
    /// `failure_threshold` failures in a row).
    pub fn alive(&self) -> bool {
        self.cfg
            .checks
            .iter()
            .zip(&self.health.checks)
            .all(|(c, s)| c.purpose != Purpose::Liveness || s.passing())
    }

    /// Its checks as the API shows them.
    fn checks_info(&self) -> Vec<CheckInfo> {
        self.cfg
            .checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let state = self.health.checks.get(i);
                let (runs, failures) = self.health.totals.get(i).copied().unwrap_or_default();
                CheckInfo {
                    check: crate::health::describe(&c.kind),
                    purpose: match c.purpose {
                        Purpose::Readiness => "readiness",
                        Purpose::Liveness => "liveness",
                    }
                    .to_string(),
                    passing: state.is_some_and(|s| s.passing()),
                    runs,
                    failures,
                    last_ms: state.and_then(|s| s.last_ms()),
                    last: state.and_then(|s| s.last()).map(str::to_string),
                }
            })
            .collect()
    }

    /// A readiness check that has not passed has failed its
    /// `failure_threshold` times in a row: why, in words. A client waiting
    /// for this program to be ready is answered with it.
    pub fn readiness_failed(&self) -> Option<String> {
        self.cfg
            .checks
            .iter()
            .zip(&self.health.checks)
            .find(|(c, s)| {
                c.purpose == Purpose::Readiness && !s.passing() && s.failed(c.failure_threshold)
            })
            .map(|(_, s)| format!("not ready: {}", s.last().unwrap_or("failed")))
    }

    /// Why it is not ready while RUNNING: the last result of a failing
    /// readiness check.
    fn not_ready_because(&self) -> Option<String> {
        if self.ready() {
            return None;
        }
        self.cfg
            .checks
            .iter()
            .zip(&self.health.checks)
            .find(|(c, s)| c.purpose == Purpose::Readiness && !s.passing())
            .map(|(c, s)| match s.last() {
                Some(last) => last.to_string(),
                None if c.kind.is_passive() => {
                    format!("waiting for {}", crate::health::describe(&c.kind))
                }
                None => "not checked yet".to_string(),
            })
    }

    /// The wire state.
    pub fn state(&self) -> State {
        self.machine.state().kind()
    }

    /// Whether a process exists.
    pub fn has_process(&self) -> bool {
        self.machine.state().pid().is_some()
    }

    /// A process exists, or its spawn is under way.
    pub fn is_live(&self) -> bool {
        self.has_process() || self.gate == Gate::Spawning
    }

    /// No process exists and none is about to be started.
    pub fn is_down(&self) -> bool {
        !self.has_process()
            && !self.gate.is_waiting()
            && !matches!(
                self.machine.state(),
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
        match (self.spawn_error_code, self.machine.last_exit()) {
            (Some(code), _) if matches!(self.machine.state(), ProgramState::Fatal { .. }) => code,
            (_, Some(status)) => status.as_shell_code(),
            (Some(code), None) => code,
            (None, None) => 1,
        }
    }

    /// A snapshot for clients.
    pub fn info(&self, now: Instant) -> ProgramInfo {
        let state = self.state();
        let uptime = match self.machine.state() {
            ProgramState::Running { since, .. } | ProgramState::Starting { since, .. } => {
                Some(now.saturating_duration_since(*since).as_secs())
            }
            _ => None,
        };
        let pid = self.machine.state().pid().map(|p| p.as_raw() as u32);
        let started = self
            .started_wall
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
        ProgramInfo {
            name: self.cfg.name.as_str().to_owned(),
            group: self.cfg.group.to_string(),
            state,
            pid,
            uptime_secs: uptime,
            started_at: started.map(|d| d.as_secs()),
            started_at_ms: started.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            stopped_at: None, // Filled in by the supervisor, which keeps the times.
            exit_status: self.machine.last_exit(),
            restarts: self.machine.restarts(),
            autostart: self.cfg.autostart,
            ready: self.ready(),
            checks: self.checks_info(),
            description: self.describe(pid, uptime, now),
            net: self.net.as_deref().cloned(),
        }
    }

    fn describe(&self, pid: Option<u32>, uptime: Option<u64>, now: Instant) -> String {
        match (&self.gate, self.machine.state()) {
            (_, ProgramState::Running { .. }) => {
                // One allocation: this runs for every program on each `status`.
                let mut line = String::with_capacity(40);
                let _ = write!(
                    line,
                    "pid {}, uptime {}",
                    pid.unwrap_or_default(),
                    Uptime(uptime.unwrap_or_default())
                );
                if let Some(text) = &self.health.notify_status {
                    let _ = write!(line, ", status \"{text}\"");
                }
                if let Some(why) = self.not_ready_because() {
                    let _ = write!(line, ", not ready ({why})");
                }
                line
            }
            (_, ProgramState::Starting { .. } | ProgramState::Stopping { .. }) => {
                format!("pid {}", pid.unwrap_or_default())
            }
            (Gate::Blocked(why), _) => why.clone(),
            (Gate::WaitingForDeps, _) => {
                let names: Vec<&str> = self
                    .cfg
                    .depends_on
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect();
                format!("waiting for {}", names.join(", "))
            }
            (Gate::WaitingForNetwork, _) => "waiting for its network sandbox".to_string(),
            (Gate::Spawning, _) => "spawning".to_string(),
            (Gate::Idle, ProgramState::Backoff { attempt, until }) => {
                let why = self
                    .machine
                    .last_spawn_error()
                    .map(str::to_string)
                    .or_else(|| {
                        self.machine
                            .last_exit()
                            .map(|s| format!("exited too quickly ({s})"))
                    })
                    .unwrap_or_default();
                format!(
                    "{why}; retry {attempt} in {}s",
                    until.saturating_duration_since(now).as_secs_f32().ceil()
                )
            }
            (Gate::Idle, ProgramState::Exited { status, restart_at }) => match restart_at {
                Some(at) => format!(
                    "{status}; restarting in {}s",
                    at.saturating_duration_since(now).as_secs_f32().ceil()
                ),
                None => status.to_string(),
            },
            (Gate::Idle, ProgramState::Fatal { reason }) => reason.clone(),
            (Gate::Idle, ProgramState::Stopped) => match self.machine.last_exit() {
                Some(status) => format!("stopped ({status})"),
                None => "not started".to_string(),
            },
        }
    }
}
