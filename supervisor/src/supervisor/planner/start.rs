//! Start gates: a program spawns only once every dependency is RUNNING and
//! its network sandbox is built, and never during a shutdown.
//!
//! Every spawn the per-program machine asks for (a start, a retry, an
//! automatic restart, the second half of a restart) passes
//! [`Planner::spawn_through_gates`]. A spawn that cannot happen yet leaves the
//! machine STOPPED with its [`Gate`] saying what it waits for; the gate opens
//! when the dependencies change ([`Planner::start_ready_dependents`]) or the
//! network task answers ([`Planner::sandbox_ready`]). A dependency that fails
//! for good (FATAL, or down with no restart coming) blocks the dependant,
//! which stays STOPPED and says why until it is started again by hand.

use std::collections::BTreeSet;
use std::time::Instant;

use super::{Effect, Planner};
use crate::config::{Condition, ProgramName, ProgramNet};
use crate::supervisor::machine::Input;
use crate::supervisor::machine::ProgramState;
use crate::supervisor::program::{Gate, Lifecycle, Netns, Program, Sandbox};

/// What stands between a program and its spawn.
enum Obstacle {
    /// Some dependencies do not meet their condition yet.
    Deps,
    /// A dependency can never meet its condition (why, in words): the start
    /// cannot happen.
    FailedDep(String),
    /// Its sandbox is not built (and is being asked for).
    Network,
}

impl Planner {
    /// A start (by a client, autostart, or a dependant): starts the program
    /// once its dependencies are RUNNING, asking them to start first.
    pub(super) fn request_start(&mut self, name: &str, now: Instant) {
        if self.shutdown.is_some() {
            return;
        }
        let Some(prog) = self.programs.get(name) else {
            return;
        };
        if prog.gate == Gate::Spawning {
            return;
        }
        // The latest request wins over a stop plan still on its way.
        for plan in &mut self.stop_plans {
            plan.forget(name);
        }
        let waiting: Vec<ProgramName> = prog
            .cfg
            .depends_on
            .iter()
            .filter(|d| {
                self.programs
                    .get(&d.name)
                    .is_some_and(|p| !matches!(standing(p, d.condition), Standing::Met))
            })
            .map(|d| d.name.clone())
            .collect();
        if prog.has_process() || waiting.is_empty() {
            // The gates are checked again at the spawn itself.
            self.set_gate(name, Gate::Idle);
            self.drive(name, Input::Start, now);
            return;
        }
        self.set_gate(name, Gate::WaitingForDeps);
        for dep in waiting {
            let pull = self
                .programs
                .get(&dep)
                .is_some_and(|d| !d.has_process() && !d.gate.is_waiting());
            if pull {
                self.request_start(&dep, now);
            }
        }
    }

    /// The machine asks for a spawn: do it, or hold it at the gate.
    pub(super) fn spawn_through_gates(&mut self, name: &str, now: Instant) {
        if self.programs.get(name).map(|p| &p.gate) == Some(&Gate::Spawning) {
            return;
        }
        if self.shutdown.is_some() {
            self.drive(name, Input::Stop, now);
            return;
        }
        match self.obstacle(name, true) {
            None => {
                self.set_gate(name, Gate::Spawning);
                self.to_spawn.push(self.key(name));
            }
            Some(obstacle) => {
                // The machine stays STOPPED (a due retry or restart is
                // cancelled) while the gate waits; the gate starts it again.
                self.drive(name, Input::Stop, now);
                let gate = match obstacle {
                    Obstacle::Deps => Gate::WaitingForDeps,
                    Obstacle::Network => Gate::WaitingForNetwork,
                    Obstacle::FailedDep(why) => self.blocked(name, why),
                };
                self.set_gate(name, gate);
            }
        }
    }

    /// Dependants waiting for one of `changed`: start them once every
    /// dependency meets its condition; block them when one never will.
    pub(super) fn start_ready_dependents(&mut self, changed: &BTreeSet<ProgramName>, now: Instant) {
        let waiting: Vec<ProgramName> = self
            .programs
            .values()
            .filter(|p| p.gate == Gate::WaitingForDeps)
            .filter(|p| p.cfg.depends_on.iter().any(|d| changed.contains(&d.name)))
            .map(|p| p.cfg.name.clone())
            .collect();
        for name in waiting {
            match self.obstacle(&name, false) {
                Some(Obstacle::Deps) => {}
                Some(Obstacle::FailedDep(why)) => {
                    let gate = self.blocked(&name, why);
                    self.set_gate(&name, gate);
                }
                Some(Obstacle::Network) | None => {
                    self.set_gate(&name, Gate::Idle);
                    self.drive(&name, Input::Start, now);
                }
            }
        }
    }

    /// The network task answered for `name`'s sandbox.
    pub(super) fn sandbox_ready(
        &mut self,
        name: &str,
        ticket: u64,
        result: Result<Netns, String>,
        now: Instant,
    ) {
        let Some(prog) = self.programs.get_mut(name) else {
            return;
        };
        match prog.sandbox {
            Sandbox::Preparing(asked) if asked == ticket => {}
            _ => {
                // An answer for settings changed since, or for a program
                // removed and added again: a newer request follows.
                if let Err(e) = result {
                    tracing::debug!(program = name, "outdated sandbox: {e}");
                }
                return;
            }
        }
        let waiting = prog.gate == Gate::WaitingForNetwork;
        match result {
            Ok(netns) => {
                prog.sandbox = Sandbox::Ready(netns);
                if waiting {
                    self.set_gate(name, Gate::Idle);
                    self.drive(name, Input::Start, now);
                }
            }
            Err(e) => {
                tracing::error!(program = name, "{e}");
                prog.sandbox = Sandbox::Absent;
                if waiting {
                    self.set_gate(name, Gate::Blocked(e));
                }
            }
        }
    }

    /// What keeps `name` from spawning now, if anything. With `pull`, a
    /// sandbox not yet built is asked for.
    fn obstacle(&mut self, name: &str, pull: bool) -> Option<Obstacle> {
        let prog = self.programs.get(name)?;
        let mut waiting = false;
        for dep in &prog.cfg.depends_on {
            let Some(d) = self.programs.get(&dep.name) else {
                continue;
            };
            match standing(d, dep.condition) {
                Standing::Met => {}
                Standing::Waiting => waiting = true,
                Standing::Never(why) => return Some(Obstacle::FailedDep(why)),
            }
        }
        if waiting {
            return Some(Obstacle::Deps);
        }
        let Some(ProgramNet::Sandbox(spec)) = prog.cfg.net.as_deref() else {
            return None;
        };
        match &prog.sandbox {
            Sandbox::Ready(_) => None,
            Sandbox::Preparing(_) => Some(Obstacle::Network),
            Sandbox::Absent if !pull => Some(Obstacle::Network),
            Sandbox::Absent => {
                let spec = spec.clone();
                let Some(network) = self.config.networks.get(&spec.network).cloned() else {
                    // Validation guarantees the network exists.
                    return None;
                };
                self.tickets += 1;
                let ticket = self.tickets;
                if let Some(p) = self.programs.get_mut(name) {
                    p.sandbox = Sandbox::Preparing(ticket);
                }
                self.out.push(Effect::EnsureSandbox {
                    name: self.key(name),
                    spec: Box::new(spec),
                    network: Box::new(network),
                    ticket,
                });
                Some(Obstacle::Network)
            }
        }
    }

    fn blocked(&self, name: &str, why: String) -> Gate {
        tracing::warn!(program = %name, "not started: {why}");
        Gate::Blocked(why)
    }

    /// Hands the spawns decided during an event to the actor, checking each
    /// gate again now that the whole event is handled: something later in the
    /// same event may have stopped a dependency, begun a shutdown, or stopped,
    /// removed or changed the program itself.
    pub(super) fn flush_spawns(&mut self, now: Instant) {
        let mut rounds = 0u32;
        loop {
            rounds += 1;
            debug_assert!(rounds < 10_000, "spawns do not settle: {:?}", self.to_spawn);
            self.settle(now);
            let mut ready = Vec::new();
            let mut held = false;
            for name in std::mem::take(&mut self.to_spawn) {
                let Some(p) = self
                    .programs
                    .get(&name)
                    .filter(|p| p.gate == Gate::Spawning)
                else {
                    continue;
                };
                let unwanted = p.lifecycle != Lifecycle::Active
                    || self.stop_plans.iter().any(|plan| plan.is_current(&name));
                if unwanted {
                    held = true;
                    self.set_gate(&name, Gate::Idle);
                    self.drive(&name, Input::Stop, now);
                } else if self.shutdown.is_none() && self.obstacle(&name, false).is_none() {
                    ready.push(name);
                } else {
                    held = true;
                    self.set_gate(&name, Gate::Idle);
                    self.spawn_through_gates(&name, now);
                }
            }
            if !held && self.to_spawn.is_empty() && self.dirty.is_empty() {
                // Nothing changed while checking: every gate is still open.
                for name in ready {
                    let netns = self.netns_of(&name);
                    self.out.push(Effect::Spawn { name, netns });
                }
                return;
            }
            // Something changed: check the ready ones again with the rest.
            ready.append(&mut self.to_spawn);
            self.to_spawn = ready;
        }
    }

    /// The actor reported the spawn's result: the gate opens again, and a
    /// program that was asked to stop meanwhile (its tier of a stop plan was
    /// reached, or a reload removed or changed it) stops at once.
    pub(super) fn spawn_done(&mut self, name: &str, input: Input, now: Instant) {
        if self.programs.get(name).map(|p| &p.gate) == Some(&Gate::Spawning) {
            self.set_gate(name, Gate::Idle);
        }
        self.drive(name, input, now);
        let stop = self.programs.get(name).is_some_and(|p| {
            p.has_process()
                && (p.lifecycle != Lifecycle::Active
                    || self.stop_plans.iter().any(|plan| plan.is_current(name)))
        });
        if stop {
            self.drive(name, Input::Stop, now);
        }
    }

    /// Cancels a start waiting at the gate (not a spawn under way, whose
    /// result [`Planner::spawn_done`] handles).
    pub(super) fn cancel_start(&mut self, name: &str) {
        if self
            .programs
            .get(name)
            .is_some_and(|p| p.gate != Gate::Spawning)
        {
            self.set_gate(name, Gate::Idle);
        }
    }

    /// The one writer of a program's gate.
    pub(super) fn set_gate(&mut self, name: &str, gate: Gate) {
        if let Some(p) = self.programs.get_mut(name) {
            if p.gate != gate {
                p.gate = gate;
                self.dirty.insert(self.key(name));
            }
        }
    }
}

/// Where a dependency stands against a condition.
#[derive(Debug, PartialEq, Eq)]
enum Standing {
    Met,
    /// Not yet, but it may.
    Waiting,
    /// It never will without a new start (why, in words).
    Never(String),
}

/// Where `dep` stands against `condition`. A dependency that is down for
/// good (FATAL, stopped, exited with no restart coming) never meets a
/// condition it has not met; a one-shot job meets `completed` when it exits.
fn standing(dep: &Program, condition: Condition) -> Standing {
    use ProgramState as S;
    let name = &dep.cfg.name;
    let state = dep.machine.state();
    let down = || {
        if dep.is_down() || matches!(state, S::Fatal { .. }) {
            Standing::Never(format!("dependency {name} is {}", dep.state()))
        } else {
            Standing::Waiting
        }
    };
    match (condition, state) {
        (Condition::Started, S::Starting { .. } | S::Running { .. }) => Standing::Met,
        (Condition::Running, S::Running { .. }) => Standing::Met,
        (Condition::Ready, S::Running { .. }) if dep.ready() => Standing::Met,
        (Condition::Ready, S::Running { .. }) => Standing::Waiting,
        (
            Condition::Completed | Condition::CompletedSuccessfully,
            S::Exited {
                status,
                restart_at: None,
            },
        ) if !dep.gate.is_waiting() => {
            if condition == Condition::Completed || dep.machine.policy().expected(*status) {
                Standing::Met
            } else {
                Standing::Never(format!(
                    "dependency {name} did not complete successfully ({status})"
                ))
            }
        }
        _ => down(),
    }
}
