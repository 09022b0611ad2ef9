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
        let new = Config::load(&self.config.path).map_err(|e| {
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
        if new.supervisor != self.config.supervisor {
            tracing::warn!("changes to [supervisor] take effect at the next start of the daemon");
        }
        let mut diff = ReloadResult::default();
        let old_names: BTreeSet<String> = self.config.programs.keys().cloned().collect();
        for name in &old_names {
            if !new.programs.contains_key(name) {
                diff.removed.push(name.clone());
                if let Some(p) = self.programs.get_mut(name) {
                    p.removing = true;
                    p.replace_with = None;
                }
                self.stop_now(name);
            }
        }
        for (name, cfg) in &new.programs {
            match self.config.programs.get(name) {
                None => {
                    diff.added.push(name.clone());
                    // A program re-added while its old self is still stopping
                    // becomes a replacement.
                    match self.programs.get_mut(name) {
                        Some(p) => {
                            p.removing = false;
                            p.replace_with = Some(cfg.clone());
                        }
                        None => {
                            self.programs
                                .insert(name.clone(), Program::new(cfg.clone()));
                            if cfg.autostart {
                                self.request_start(name);
                            }
                        }
                    }
                }
                Some(old) if old != cfg => {
                    diff.changed.push(name.clone());
                    if let Some(p) = self.programs.get_mut(name) {
                        p.replace_with = Some(cfg.clone());
                    }
                    self.stop_now(name);
                }
                Some(_) => {}
            }
            self.dirty.insert(name.clone());
        }
        let main_path = self.config.path.clone();
        self.config = new;
        self.config.path = main_path;
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
                self.programs.remove(name);
                for plan in &mut self.stop_plans {
                    plan.forget(name);
                }
                tracing::info!(program = %name, "removed");
                continue;
            }
            if let Some(cfg) = p.replace_with.take() {
                p.machine = Machine::new(Policy::of(&cfg));
                p.pending_start = false;
                p.blocked = None;
                let autostart = cfg.autostart;
                // `p.logs` were made for `p.cfg`.
                if p.logs.is_some() && !ProgramLogs::serves_both(&p.cfg, &cfg) {
                    // New log settings: new pumps (the old ones finish on their own).
                    p.logs = None;
                }
                p.cfg = cfg;
                tracing::info!(program = %name, "configuration changed: starting with the new one");
                if autostart {
                    self.request_start(name);
                }
            }
        }
    }
}
