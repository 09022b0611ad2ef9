//! Reload (SIGHUP or the API): re-read the config file and apply the difference.
//!
//! Added programs start (when autostart), removed programs stop and are then
//! dropped, changed programs stop and start again with their new config,
//! unchanged programs are not touched. An invalid new config is rejected with
//! every error and nothing changes.

use std::collections::BTreeSet;

use nsvisor_proto::{ApiError, ErrorKind, ReloadResult};

use super::actor::{Supervisor, MAIN_PROGRAM};
use super::entry::Program;
use super::program::{Machine, Policy};
use crate::config::Config;
use crate::logs::ProgramLogs;

impl Supervisor {
    /// Reloads the config file; answers what was added, changed and removed.
    pub(super) fn reload(&mut self) -> Result<ReloadResult, ApiError> {
        if self.shutdown.is_some() {
            return Err(ApiError::new(
                ErrorKind::ShuttingDown,
                "the daemon is shutting down",
            ));
        }
        if self.config.path.as_os_str().is_empty() {
            return Err(ApiError::new(
                ErrorKind::BadRequest,
                "no config file to reload (started without -c)",
            ));
        }
        let mut new = Config::load(&self.config.path).map_err(|e| {
            ApiError::new(
                ErrorKind::InvalidConfig,
                format!("configuration not reloaded:\n{e}"),
            )
        })?;
        if self.options.main_command.is_some() && new.programs.contains_key(MAIN_PROGRAM) {
            return Err(ApiError::new(
                ErrorKind::InvalidConfig,
                format!("configuration not reloaded: program name \"{MAIN_PROGRAM}\" is reserved for the -- command"),
            ));
        }
        if let Err(e) = crate::net::check_privileges(&new) {
            return Err(ApiError::new(
                ErrorKind::InvalidConfig,
                format!("configuration not reloaded: {e}"),
            ));
        }
        if new.supervisor != self.config.supervisor {
            tracing::warn!("changes to [supervisor] take effect at the next start of the daemon");
        }
        let mut diff = ReloadResult::default();
        let new_programs = std::mem::take(&mut new.programs);
        let old_names: BTreeSet<String> = self
            .programs
            .values()
            .filter(|p| !p.main && !p.removing)
            .map(|p| p.cfg.name.clone())
            .collect();
        for name in &old_names {
            if !new_programs.contains_key(name) {
                diff.removed.push(name.clone());
                if let Some(p) = self.programs.get_mut(name) {
                    p.removing = true;
                    p.replace_with = None;
                }
                self.stop_now(name);
            }
        }
        for (name, cfg) in new_programs {
            self.dirty.insert(name.clone());
            let Some(p) = self.programs.get_mut(&name).filter(|p| !p.main) else {
                diff.added.push(name.clone());
                let autostart = cfg.autostart;
                self.programs.insert(name.clone(), Program::new(cfg));
                if autostart {
                    self.request_start(&name);
                }
                continue;
            };
            if p.removing {
                // Re-added while its old self is still stopping: a replacement.
                diff.added.push(name.clone());
                p.removing = false;
                p.replace_with = Some(Box::new(cfg));
                continue;
            }
            // The config it runs with, or will once a pending change applies.
            let current = p.replace_with.as_deref().unwrap_or(&p.cfg);
            if *current != cfg {
                diff.changed.push(name.clone());
                p.replace_with = Some(Box::new(cfg));
                self.stop_now(&name);
            }
        }
        let main_path = self.config.path.clone();
        self.config = new;
        self.config.path = main_path;
        self.refresh_net_info();
        Ok(diff)
    }

    /// Drops removed programs and swaps in changed configs once they are down.
    pub(super) fn apply_replacements(&mut self, changed: &BTreeSet<String>) {
        for name in changed {
            let Some(p) = self.programs.get_mut(name) else {
                continue;
            };
            if p.state().has_process() {
                continue;
            }
            if p.removing {
                let had_net = p.cfg.net.is_some();
                self.programs.remove(name);
                if had_net {
                    self.release_sandbox(name);
                }
                for plan in &mut self.stop_plans {
                    plan.forget(name);
                }
                tracing::info!(program = %name, "removed");
                continue;
            }
            if let Some(cfg) = p.replace_with.take().map(|b| *b) {
                p.machine = Machine::new(Policy::of(&cfg));
                p.pending_start = false;
                p.blocked = None;
                let autostart = cfg.autostart;
                let net_changed = p.cfg.net != cfg.net;
                // `p.logs` were made for `p.cfg`.
                if p.logs.is_some() && !ProgramLogs::serves_both(&p.cfg, &cfg) {
                    // New log settings: new pumps (the old ones finish on their own).
                    p.logs = None;
                }
                p.cfg = cfg;
                if net_changed {
                    self.release_sandbox(name);
                    self.refresh_net_info();
                }
                tracing::info!(program = %name, "configuration changed: starting with the new one");
                if autostart {
                    self.request_start(name);
                }
            }
        }
    }
}
