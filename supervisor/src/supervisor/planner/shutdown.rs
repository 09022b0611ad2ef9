//! Graceful shutdown, stop plans, and `critical` programs (DESIGN §4).
//!
//! A shutdown disables restarts, cancels every start waiting at a gate and
//! every pending retry, and stops every program with one [`StopPlan`]
//! (reverse tier order, a tier in parallel): no program is signalled while a
//! program that depends on it still has a process. It is complete when no
//! program has a process ([`Planner::exit_code`]). A second request during
//! shutdown only logs: nobody's grace is cut.

use std::time::Instant;

use super::{Planner, StopPlan};
use crate::config::ProgramName;
use crate::supervisor::machine::Input;
use crate::supervisor::program::Lifecycle;

/// A shutdown in progress.
#[derive(Debug)]
pub(super) struct ShutdownState {
    /// The daemon's exit code once done.
    pub(super) code: i32,
}

impl Planner {
    /// Begins a graceful shutdown that will exit with `code`.
    pub(super) fn begin_shutdown(&mut self, code: i32, why: &str, now: Instant) {
        if self.shutdown.is_some() {
            tracing::info!(
                "{why}: already shutting down; every program keeps its full stopwaitsecs"
            );
            return;
        }
        tracing::info!("shutting down ({why})");
        self.shutdown = Some(ShutdownState { code });
        self.kill_checks();
        let names: Vec<ProgramName> = self.programs.keys().cloned().collect();
        for name in &names {
            self.drive(name, Input::DisableAutorestart, now);
            self.cancel_start(name);
            let replacing = self
                .programs
                .get(name)
                .is_some_and(|p| matches!(p.lifecycle, Lifecycle::Replacing(_)));
            if replacing {
                self.set_lifecycle(name, Lifecycle::Active);
            }
        }
        // Pending retries and restarts are cancelled at once, whatever the tier.
        for name in &names {
            if self.programs.get(name).is_some_and(|p| !p.has_process()) {
                self.drive(name, Input::Stop, now);
            }
        }
        let tiers = super::tiers(self.programs.values().map(|p| &p.cfg));
        self.stop_plans.clear();
        self.stop_plans.push(StopPlan::new(&names, &tiers));
        self.advance_stop_plans(now);
    }

    /// Sends stops for every plan whose current tier is down.
    pub(super) fn advance_stop_plans(&mut self, now: Instant) {
        let mut plans = std::mem::take(&mut self.stop_plans);
        for plan in &mut plans {
            loop {
                let to_stop = plan.advance(|n| self.programs.get(n).is_none_or(|p| p.is_down()));
                if to_stop.is_empty() {
                    break;
                }
                for n in to_stop {
                    self.stop_now(&n, now);
                }
            }
        }
        plans.retain(|p| !p.done());
        // Plans added while stopping (none expected) are kept too.
        plans.append(&mut self.stop_plans);
        self.stop_plans = plans;
    }

    /// A program ended for good: a `critical` one takes the daemon down.
    pub(super) fn on_finished(&mut self, name: &str, now: Instant) {
        let Some(p) = self.programs.get(name) else {
            return;
        };
        if p.cfg.critical && self.shutdown.is_none() {
            let code = p.final_code();
            tracing::info!(
                program = name,
                "critical program ended for good: shutting down with exit code {code}"
            );
            self.begin_shutdown(code, &format!("critical program {name} ended"), now);
        }
    }
}
