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
//! Files: `events.rs` (the events and effects), `start.rs` (gates:
//! dependencies and sandboxes), `health.rs` (readiness and liveness),
//! `order.rs` (tiers and stop plans), `waiters.rs` (clients waiting for an
//! outcome), `reload.rs` (config diffs), `shutdown.rs` (shutdown,
//! `critical`, exit), `signals.rs` (what a caught signal means: forwarding,
//! job control, acting on it or ignoring it).

mod events;
mod health;
mod order;
mod reload;
mod shutdown;
mod signals;
mod start;
mod waiters;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Instant;

use nix::unistd::Pid;
use nsvisor_proto::{ApiError, ErrorKind, ExitStatus, Health, State};

use super::machine::{Effect as MachineEffect, Input, ProgramState};
use super::program::{Netns, Program, Role, Sandbox};
use crate::config::{Config, ProgramConfig, ProgramName};

pub use events::{Answer, Change, ClientId, Effect, Event};
pub use health::{CheckState, HealthState};
pub use order::{start_order, tiers, StopPlan, Tier};
use shutdown::ShutdownState;
use waiters::Waiter;

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
    /// Job control: the daemon stopped itself and waits for a SIGCONT.
    suspended: bool,
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
            suspended: false,
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
            Event::CheckDue { name, index, epoch } => self.check_due(&name, index, epoch, now),
            Event::Notify { name, message } => self.notified(&name, message, now),
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
            Event::CommandStopped(by) => self.command_stopped(by),
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
    /// One program.
    pub fn program(&self, name: &str) -> Option<&Program> {
        self.programs.get(name)
    }

    /// Every program.
    pub fn programs(&self) -> impl ExactSizeIterator<Item = &Program> {
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
            commit: Some(env!("NSVISOR_COMMIT").to_string()),
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
            .filter(|p| &*p.cfg.group == group)
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
                // Logged by `drive`, with the state change it causes.
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

    /// Feeds one input to a program's machine and turns its effects into the
    /// planner's, through the gates (a spawn waits for dependencies and the
    /// sandbox, and never happens during a shutdown).
    fn drive(&mut self, name: &str, input: Input, now: Instant) {
        // The key once: with thousands of programs, each lookup by name is
        // a dozen string comparisons, and a mass stop drives every program.
        let Some(key) = self.programs.get_key_value(name).map(|(k, _)| k.clone()) else {
            return;
        };
        let Some(prog) = self.programs.get_mut(name) else {
            return;
        };
        let before = prog.state();
        // An exit is logged on the line of the change it causes, the way
        // `nsvisorctl events` shows it: "STOPPING -> STOPPED (terminated by
        // signal 15)", one line per program when thousands stop at once.
        let exit = match &input {
            Input::Exited(status) => Some((*status, prog.machine.state().pid())),
            _ => None,
        };
        let effects = prog.machine.on(input, now);
        let after = prog.state();
        log_change(name, before, after, exit);
        if before != after {
            let ended = matches!(before, State::Starting | State::Running | State::Stopping)
                && !after.has_process();
            let change = Change {
                name: key.clone(),
                from: before,
                to: after,
                pid: prog.machine.state().pid(),
                exit_status: if ended {
                    prog.machine.last_exit()
                } else {
                    None
                },
                ready: None,
            };
            self.dirty.insert(key.clone());
            self.out.push(Effect::Publish(change));
        }
        for effect in effects {
            match effect {
                MachineEffect::Spawn => self.spawn_through_gates(name, now),
                MachineEffect::Signal { pid, signal, group } => self.out.push(Effect::Signal {
                    name: key.clone(),
                    pid,
                    signal,
                    group,
                }),
                MachineEffect::Timer(at) => self.out.push(Effect::Timer {
                    at,
                    name: key.clone(),
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
            // Let go of the sandboxes' namespaces: the network teardown that
            // follows can only free a namespace nothing holds open.
            for p in self.programs.values_mut() {
                p.sandbox = Sandbox::Absent;
            }
        }
    }

    /// Shows each program's network in `status` (at start and after reloads).
    fn refresh_net_info(&mut self) {
        for p in self.programs.values_mut() {
            p.net = crate::net::net_info(&p.cfg, &self.config.networks).map(Box::new);
        }
    }
}

/// Logs a program's state change, with the exit that caused it; an exit
/// that changes nothing is logged alone.
fn log_change(name: &str, before: State, after: State, exit: Option<(ExitStatus, Option<Pid>)>) {
    let pid = exit.and_then(|(_, pid)| pid).map(Pid::as_raw);
    match (before == after, exit) {
        (false, None) => tracing::info!(program = name, "{before} -> {after}"),
        (false, Some((status, _))) => {
            tracing::info!(program = name, pid, "{before} -> {after} ({status})")
        }
        (true, Some((status, _))) => tracing::info!(program = name, pid, "{status}"),
        (true, None) => {}
    }
}

/// The error for a target that names nothing.
pub fn unknown(name: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no such program: \"{name}\""))
}
