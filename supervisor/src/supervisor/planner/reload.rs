//! Reload: apply a new config to the table of programs.
//!
//! The actor reads and parses the file off the supervisor's task and hands
//! the result in as [`Event::Reloaded`](super::Event::Reloaded). Added
//! programs start (when autostart), removed programs stop and are then
//! dropped, changed programs stop and start again with their new config
//! (removed and changed programs stop tier by tier, dependants first),
//! unchanged programs are not touched. An invalid new config was already
//! rejected with every error, and nothing changes.

use std::collections::BTreeSet;
use std::time::Instant;

use nsvisor_proto::{ApiError, ErrorKind, ReloadResult};

use super::{Answer, ClientId, Effect, Planner, MAIN_PROGRAM};
use crate::config::{Config, ProgramConfig, ProgramName};
use crate::logs::ProgramLogs;
use crate::supervisor::machine::{Machine, Policy};
use crate::supervisor::program::{Gate, Lifecycle, Program, Role, Sandbox};

impl Planner {
    /// Applies a reloaded config; answers what was added, changed and removed.
    pub(super) fn reload(
        &mut self,
        mut new: Config,
        now: Instant,
    ) -> Result<ReloadResult, ApiError> {
        if self.shutdown.is_some() {
            return Err(ApiError::new(
                ErrorKind::ShuttingDown,
                "the daemon is shutting down",
            ));
        }
        let has_main = self.programs.values().any(|p| p.role == Role::Main);
        if has_main && new.programs.contains_key(MAIN_PROGRAM) {
            return Err(ApiError::new(
                ErrorKind::InvalidConfig,
                format!("configuration not reloaded: program name \"{MAIN_PROGRAM}\" is reserved for the -- command"),
            ));
        }
        if new.supervisor != self.config.supervisor {
            tracing::warn!("changes to [supervisor] take effect at the next start of the daemon");
        }
        let mut diff = ReloadResult::default();
        let mut to_stop = Vec::new();
        let new_programs = std::mem::take(&mut new.programs);
        let old_names: Vec<ProgramName> = self
            .programs
            .values()
            .filter(|p| p.role == Role::Configured && p.lifecycle != Lifecycle::Removing)
            .map(|p| p.cfg.name.clone())
            .collect();
        for name in old_names {
            if !new_programs.contains_key(&name) {
                self.set_lifecycle(&name, Lifecycle::Removing);
                to_stop.push(name.clone());
                diff.removed.push(name.to_string());
            }
        }
        for (name, cfg) in new_programs {
            self.dirty.insert(name.clone());
            let Some(p) = self
                .programs
                .get(&name)
                .filter(|p| p.role == Role::Configured)
            else {
                diff.added.push(name.to_string());
                let autostart = cfg.autostart;
                self.programs
                    .insert(name.clone(), Program::new(cfg, Role::Configured));
                if autostart {
                    self.request_start(&name, now);
                }
                continue;
            };
            match &p.lifecycle {
                // Re-added while its old self is still stopping: a replacement.
                Lifecycle::Removing => {
                    diff.added.push(name.to_string());
                    self.set_lifecycle(&name, Lifecycle::Replacing(Box::new(cfg)));
                }
                // The config it runs with, or will once a pending change applies.
                Lifecycle::Replacing(next) if **next == cfg => {}
                Lifecycle::Active if p.cfg == cfg => {}
                _ => {
                    diff.changed.push(name.to_string());
                    self.set_lifecycle(&name, Lifecycle::Replacing(Box::new(cfg)));
                    to_stop.push(name.clone());
                }
            }
        }
        // Removed and changed programs stop in the old config's tier order:
        // dependants before what they depend on.
        let tiers = super::tiers(self.programs.values().map(|p| &p.cfg));
        for name in &to_stop {
            self.cancel_start(name);
        }
        self.stop_plans.push(super::StopPlan::new(&to_stop, &tiers));
        self.advance_stop_plans(now);
        let path = std::mem::take(&mut self.config.path);
        self.config = new;
        self.config.path = path;
        self.refresh_net_info();
        Ok(diff)
    }

    /// Sends the answer of a reload (or logs it, for SIGHUP).
    pub(super) fn report_reload(
        &mut self,
        client: Option<ClientId>,
        result: Result<ReloadResult, ApiError>,
    ) {
        match client {
            Some(client) => self.out.push(Effect::Answer {
                client,
                answer: Box::new(Answer::Reload(result)),
            }),
            None => match result {
                Ok(diff) => tracing::info!(
                    added = ?diff.added, changed = ?diff.changed, removed = ?diff.removed,
                    "received SIGHUP: configuration reloaded"
                ),
                Err(e) => tracing::error!(
                    "received SIGHUP: configuration not reloaded, nothing changed:\n{}",
                    e.message
                ),
            },
        }
    }

    /// Drops removed programs and swaps in changed configs once they are down.
    pub(super) fn apply_replacements(&mut self, changed: &BTreeSet<ProgramName>, now: Instant) {
        for name in changed {
            let Some(p) = self.programs.get_mut(name) else {
                continue;
            };
            if p.is_live() {
                continue;
            }
            let lifecycle = std::mem::take(&mut p.lifecycle);
            match lifecycle {
                Lifecycle::Active => {}
                Lifecycle::Removing => {
                    let had_net = p.cfg.net.is_some();
                    self.programs.remove(name);
                    self.out.push(Effect::DropLogs(name.clone()));
                    if had_net {
                        self.out.push(Effect::ReleaseSandbox(name.clone()));
                    }
                    for plan in &mut self.stop_plans {
                        plan.forget(name);
                    }
                    tracing::info!(program = %name, "removed");
                }
                Lifecycle::Replacing(cfg) => self.replace(name, *cfg, now),
            }
        }
    }

    /// Swaps in `cfg` for a program that has no process, and starts it when autostart.
    fn replace(&mut self, name: &str, cfg: ProgramConfig, now: Instant) {
        let key = self.key(name);
        let Some(p) = self.programs.get_mut(name) else {
            return;
        };
        p.machine = Machine::new(Policy::of(&cfg));
        if !ProgramLogs::serves_both(&p.cfg, &cfg) {
            // New output settings: new pumps (the old ones finish on their own).
            self.out.push(Effect::DropLogs(key.clone()));
        }
        let net_changed = p.cfg.net != cfg.net;
        let had_net = p.cfg.net.is_some();
        let autostart = cfg.autostart;
        p.cfg = cfg;
        if net_changed {
            // The old sandbox (and port proxies) go once no other program uses them.
            p.sandbox = Sandbox::Absent;
            p.net = crate::net::net_info(&p.cfg, &self.config.networks).map(Box::new);
            if had_net {
                self.out.push(Effect::ReleaseSandbox(key.clone()));
            }
        }
        self.set_gate(name, Gate::Idle);
        self.dirty.insert(key);
        tracing::info!(
            program = %name,
            "configuration changed: starting with the new one"
        );
        if autostart {
            self.request_start(name, now);
        }
    }

    /// The one writer of a program's lifecycle.
    pub(super) fn set_lifecycle(&mut self, name: &str, lifecycle: Lifecycle) {
        if let Some(p) = self.programs.get_mut(name) {
            p.lifecycle = lifecycle;
            self.dirty.insert(self.key(name));
        }
    }
}
