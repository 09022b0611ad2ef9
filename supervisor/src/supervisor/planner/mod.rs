//! The planner: every rule *between* programs, as plain code (DESIGN rule 2).
//!
//! [`Planner`] owns the table of programs and everything that gates them:
//! dependency gates, start and stop plans (tiers), clients waiting for an
//! outcome, reload diffs, shutdown and `critical`. [`Planner::on`] turns one
//! [`Event`] (a child exited, a timer fired, a client asked, a signal arrived,
//! a sandbox is ready, a reloaded config was read) into the [`Effect`]s the
//! actor must carry out (spawn, signal, arm a timer, answer a client, bring a
//! sandbox up or down, publish a state change). It does no I/O and reads no
//! clock: `now` comes with every event, so every rule is a unit test
//! (`tests/`), and proptest checks the invariants over random event sequences.
//!
//! Inside, every event ends with [`Planner::settle`], which runs the
//! cross-program rules over the programs that changed until nothing changes:
//! start dependants whose dependencies are RUNNING (or block them when one
//! failed), advance stop plans, swap in reloaded configs of programs that are
//! down, answer waiting clients.
//!
//! Files: `start.rs` (gates: dependencies and sandboxes), `order.rs` (tiers
//! and stop plans), `waiters.rs` (clients waiting for an outcome),
//! `reload.rs` (config diffs), `shutdown.rs` (shutdown, `critical`, exit).

mod health;
mod order;
mod reload;
mod shutdown;
mod start;
mod waiters;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use nsvisor_proto::{
    ActionResult, ApiError, ErrorKind, ExitStatus, Health, ProgramInfo, ReloadResult, State,
};

use super::handle::Action;
use super::machine::{Effect as MachineEffect, Input, ProgramState};
use super::program::{Netns, Program, Role, Sandbox};
use crate::config::{Config, NetworkConfig, ProgramConfig, ProgramName, SandboxSpec};

pub use health::{CheckState, HealthState};
pub use order::{start_order, tiers, StopPlan, Tier};
use shutdown::ShutdownState;
use waiters::Waiter;

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
    /// A signal reached the daemon (other than SIGCHLD, which only reaps).
    Signal(Signal),
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

/// The table of programs and every rule between them.
#[derive(Debug)]
pub struct Planner {
    programs: BTreeMap<ProgramName, Program>,
    /// Which program a live process belongs to.
    pids: HashMap<Pid, ProgramName>,
    /// Children that failed between fork and exec, still to be reaped.
    failed_spawns: HashSet<Pid>,
    /// The config, without its programs (they live in `programs`).
    config: Config,
    /// `-- CMD` is the only program: every signal is forwarded to it.
    single_command: bool,
    /// Forward signals to the main program's pid only, not its group.
    single_child: bool,
    waiters: Vec<Waiter>,
    stop_plans: Vec<StopPlan>,
    shutdown: Option<ShutdownState>,
    /// Programs whose state, gate or lifecycle changed since the last settle.
    dirty: BTreeSet<ProgramName>,
    /// Effects of the event being handled.
    out: Vec<Effect>,
    orphans_reaped: u64,
    /// The last sandbox request's ticket.
    tickets: u64,
    /// Processes of `exec` checks still running.
    check_pids: HashMap<Pid, health::CheckRun>,
    /// Spawns decided during the event being handled (see `flush_spawns`).
    to_spawn: Vec<ProgramName>,
}

/// Name of the single-command main program.
pub const MAIN_PROGRAM: &str = "main";

impl Planner {
    /// A planner for `config`, plus the `--` command's program when given
    /// (`single_child`: forward signals to its pid only).
    pub fn new(mut config: Config, main: Option<ProgramConfig>, single_child: bool) -> Planner {
        let mut programs: BTreeMap<ProgramName, Program> = std::mem::take(&mut config.programs)
            .into_iter()
            .map(|(name, cfg)| (name, Program::new(cfg, Role::Configured)))
            .collect();
        let single_command = main.is_some() && programs.is_empty();
        if let Some(cfg) = main {
            programs.insert(cfg.name.clone(), Program::new(cfg, Role::Main));
        }
        let mut planner = Planner {
            programs,
            pids: HashMap::new(),
            failed_spawns: HashSet::new(),
            config,
            single_command,
            single_child,
            waiters: Vec::new(),
            stop_plans: Vec::new(),
            shutdown: None,
            dirty: BTreeSet::new(),
            out: Vec::new(),
            orphans_reaped: 0,
            tickets: 0,
            check_pids: HashMap::new(),
            to_spawn: Vec::new(),
        };
        planner.refresh_net_info();
        planner
    }

    /// Applies one event at `now`; returns the effects to carry out, in order.
    pub fn on(&mut self, event: Event, now: Instant) -> Vec<Effect> {
        match event {
            Event::Boot => self.boot(now),
            Event::Spawned { name, pid, wall } => {
                if let Some(p) = self.programs.get_mut(&name) {
                    p.started_wall = Some(wall);
                    p.spawn_error_code = None;
                    self.pids.insert(pid, name.clone());
                }
                self.spawn_done(&name, Input::Spawned(pid), now);
                self.start_checks(&name, now);
            }
            Event::SpawnFailed {
                name,
                error,
                code,
                pid,
            } => {
                if let Some(pid) = pid {
                    self.failed_spawns.insert(pid);
                }
                if let Some(p) = self.programs.get_mut(&name) {
                    p.spawn_error_code = Some(code);
                }
                self.spawn_done(&name, Input::SpawnFailed(error), now);
            }
            Event::Reaped(statuses) => {
                for (pid, status) in statuses {
                    self.exited(pid, status, now);
                }
            }
            Event::Tick(name) => self.drive(&name, Input::Tick, now),
            Event::CheckDue { name, index, epoch } => self.check_due(&name, index, epoch),
            Event::CheckSpawned {
                name,
                index,
                epoch,
                result,
            } => self.check_spawned(&name, index, epoch, result, now),
            Event::CheckDeadline(pid) => self.check_deadline(pid),
            Event::CheckDone {
                name,
                index,
                epoch,
                passed,
                took,
                detail,
            } => self.check_done(&name, index, epoch, (passed, took), detail, now),
            Event::Signal(signal) => self.signal(signal, now),
            Event::Act {
                client,
                verb,
                target,
                wait,
            } => self.act(client, verb, &target, wait, now),
            Event::Shutdown => self.begin_shutdown(0, "shutdown requested", now),
            Event::Reloaded { client, config } => {
                let result = config.and_then(|c| self.reload(*c, now));
                self.report_reload(client, result);
            }
            Event::SandboxReady {
                name,
                ticket,
                result,
            } => self.sandbox_ready(&name, ticket, result, now),
        }
        self.flush_spawns(now);
        std::mem::take(&mut self.out)
    }

    /// Every program, in name order.
    pub fn list(&self, now: Instant) -> Vec<ProgramInfo> {
        self.programs.values().map(|p| p.info(now)).collect()
    }

    /// One program.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.get(name)
    }

    /// Every program.
    pub fn programs(&self) -> impl Iterator<Item = &Program> {
        self.programs.values()
    }

    /// Orphans reaped that belonged to no program.
    pub fn orphans_reaped(&self) -> u64 {
        self.orphans_reaped
    }

    /// Whether a shutdown has begun.
    pub fn shutting_down(&self) -> bool {
        self.shutdown.is_some()
    }

    /// The daemon's exit code once a shutdown has finished (no program has a
    /// process or a spawn under way); `None` before.
    pub fn exit_code(&self) -> Option<i32> {
        let s = self.shutdown.as_ref()?;
        // Cheap first: a live process is in `pids` (this runs after every event).
        if !self.pids.is_empty() || !self.check_pids.is_empty() {
            return None;
        }
        self.programs
            .values()
            .all(|p| !p.is_live())
            .then_some(s.code)
    }

    /// The health summary (`uptime_secs` comes from the actor's clock):
    /// healthy when every program that should run is RUNNING and alive (a
    /// one-shot that finished with an expected code counts as fine), ready
    /// when they are also ready.
    pub fn health(&self, uptime_secs: u64) -> Health {
        let mut not_running = Vec::new();
        let mut failing = Vec::new();
        let mut not_ready = Vec::new();
        for p in self.programs.values() {
            if !(p.cfg.autostart || p.role == Role::Main) {
                continue;
            }
            let name = p.cfg.name.to_string();
            match p.machine.state() {
                ProgramState::Running { .. } => {
                    if !p.alive() {
                        failing.push(name.clone());
                    }
                    if !p.ready() {
                        not_ready.push(name);
                    }
                }
                ProgramState::Exited {
                    status,
                    restart_at: None,
                } if p.machine.policy().expected(*status) => {}
                _ => {
                    not_running.push(name.clone());
                    not_ready.push(name);
                }
            }
        }
        let healthy = not_running.is_empty() && failing.is_empty() && self.shutdown.is_none();
        Health {
            healthy,
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs,
            not_running,
            failing,
            ready: healthy && not_ready.is_empty(),
            not_ready,
            shutting_down: self.shutdown.is_some(),
        }
    }

    /// Names matched by `target`: a name, `GROUP:*`, a group name, or `all`.
    pub fn resolve(&self, target: &str) -> Result<Vec<ProgramName>, ApiError> {
        if target == "all" {
            return Ok(self.programs.keys().cloned().collect());
        }
        if self.programs.contains_key(target) {
            return Ok(vec![self.key(target)]);
        }
        // `GROUP:*`, or a group name alone (all of its replicas, like supervisorctl).
        let group = target.strip_suffix(":*").unwrap_or(target);
        let names: Vec<ProgramName> = self
            .programs
            .values()
            .filter(|p| p.cfg.group == group)
            .map(|p| p.cfg.name.clone())
            .collect();
        if names.is_empty() {
            Err(unknown(target))
        } else {
            Ok(names)
        }
    }

    /// The namespace of a program's built sandbox.
    fn netns_of(&self, name: &str) -> Option<Netns> {
        match self.programs.get(name).map(|p| &p.sandbox) {
            Some(Sandbox::Ready(netns)) => Some(netns.clone()),
            _ => None,
        }
    }

    /// The table's own copy of a program's name: a reference count, not a
    /// new string.
    fn key(&self, name: &str) -> ProgramName {
        self.programs
            .get_key_value(name)
            .map_or_else(|| name.into(), |(key, _)| key.clone())
    }

    fn boot(&mut self, now: Instant) {
        let tiers = tiers(self.programs.values().map(|p| &p.cfg));
        for name in start_order(&tiers) {
            if self.programs.get(&name).is_some_and(|p| p.cfg.autostart) {
                self.request_start(&name, now);
            }
        }
    }

    fn exited(&mut self, pid: Pid, status: ExitStatus, now: Instant) {
        if let Some(run) = self.check_pids.remove(&pid) {
            return self.check_exited(run, status, now);
        }
        match self.pids.remove(&pid) {
            Some(name) => {
                tracing::info!(program = %name, pid = pid.as_raw(), "{status}");
                self.drive(&name, Input::Exited(status), now);
                if self
                    .programs
                    .get(&name)
                    .is_some_and(|p| p.role == Role::Main)
                {
                    self.out.push(Effect::Linger(pid));
                }
            }
            None if self.failed_spawns.remove(&pid) => {}
            None => {
                self.orphans_reaped += 1;
                tracing::debug!(pid = pid.as_raw(), "reaped orphan ({status})");
            }
        }
    }

    fn signal(&mut self, signal: Signal, now: Instant) {
        match signal {
            _ if self.single_command => self.forward(signal),
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => {
                self.begin_shutdown(0, &format!("received {signal}"), now)
            }
            Signal::SIGHUP if self.shutdown.is_some() => {
                tracing::info!("received SIGHUP: not reloading, the daemon is shutting down");
            }
            Signal::SIGHUP => self.out.push(Effect::LoadConfig),
            Signal::SIGUSR2 => self.out.push(Effect::ReopenLogs),
            _ => self.forward(signal),
        }
    }

    /// Forwards a signal to the main program (its group unless `--single-child`).
    fn forward(&mut self, signal: Signal) {
        let Some(pid) = self
            .programs
            .get(MAIN_PROGRAM)
            .filter(|p| p.role == Role::Main)
            .and_then(|p| p.machine.state().pid())
        else {
            return;
        };
        self.out.push(Effect::Signal {
            name: MAIN_PROGRAM.into(),
            pid,
            signal,
            group: !self.single_child,
        });
    }

    /// Feeds one input to a program's machine and turns its effects into the
    /// planner's, through the gates (a spawn waits for dependencies and the
    /// sandbox, and never happens during a shutdown).
    fn drive(&mut self, name: &str, input: Input, now: Instant) {
        let Some(prog) = self.programs.get_mut(name) else {
            return;
        };
        let before = prog.state();
        let effects = prog.machine.on(input, now);
        let after = prog.state();
        if before != after {
            self.dirty.insert(self.key(name));
            let prog = &self.programs[name];
            tracing::info!(program = name, "{before} -> {after}");
            let ended = matches!(before, State::Starting | State::Running | State::Stopping)
                && !after.has_process();
            self.out.push(Effect::Publish(Change {
                name: self.key(name),
                from: before,
                to: after,
                pid: prog.machine.state().pid(),
                exit_status: if ended {
                    prog.machine.last_exit()
                } else {
                    None
                },
                ready: None,
            }));
        }
        for effect in effects {
            match effect {
                MachineEffect::Spawn => self.spawn_through_gates(name, now),
                MachineEffect::Signal { pid, signal, group } => self.out.push(Effect::Signal {
                    name: self.key(name),
                    pid,
                    signal,
                    group,
                }),
                MachineEffect::Timer(at) => self.out.push(Effect::Timer {
                    at,
                    name: self.key(name),
                }),
                MachineEffect::Finished => self.on_finished(name, now),
            }
        }
    }

    /// Cross-program rules, run after every event until nothing changes.
    fn settle(&mut self, now: Instant) {
        let mut rounds = 0u32;
        while !self.dirty.is_empty() {
            rounds += 1;
            debug_assert!(rounds < 10_000, "settle does not settle: {:?}", self.dirty);
            let changed = std::mem::take(&mut self.dirty);
            self.start_ready_dependents(&changed, now);
            // Before the replacements: a replaced program that just went
            // down counts as down for its stop plan, though it starts again.
            self.advance_stop_plans(now);
            self.apply_replacements(&changed, now);
            self.answer_waiters(&changed, now);
        }
        if self.exit_code().is_some() {
            self.answer_all_left("the daemon is shutting down", now);
        }
    }

    /// Shows each program's network in `status` (at start and after reloads).
    fn refresh_net_info(&mut self) {
        for p in self.programs.values_mut() {
            p.net = crate::net::net_info(&p.cfg, &self.config.networks);
        }
    }
}

/// The error for a target that names nothing.
pub fn unknown(name: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no such program: \"{name}\""))
}
