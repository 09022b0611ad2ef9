//! Graceful shutdown, critical programs, and the daemon's exit code (DESIGN §4).
//!
//! A shutdown stops every program with a [`StopPlan`] (reverse tier order, a
//! tier in parallel), disables restarts, and completes only when no program
//! has a process left and no leftover process group of the main program
//! remains. A second request during shutdown only logs: nobody's grace is cut.

use std::cmp::Reverse;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::actor::{Supervisor, TimerKey};
use super::order::StopPlan;
use crate::sys;

/// A shutdown in progress.
#[derive(Debug)]
pub struct ShutdownState {
    /// The daemon's exit code once done.
    pub code: i32,
}

/// What is left of a finished main program's process group.
#[derive(Debug, Clone, Copy)]
pub struct Lingering {
    /// The group.
    pub pgid: Pid,
    /// When to SIGKILL it; `None` once killed.
    pub kill_at: Option<Instant>,
}

impl Supervisor {
    /// Begins a graceful shutdown that will exit with `code`.
    pub(super) fn begin_shutdown(&mut self, code: i32, why: &str) {
        if self.shutdown.is_some() {
            tracing::info!(
                "{why}: already shutting down; every program keeps its full stopwaitsecs"
            );
            return;
        }
        tracing::info!("shutting down ({why})");
        self.shutdown = Some(ShutdownState { code });
        for p in self.programs.values_mut() {
            p.machine.autorestart_enabled = false;
            p.pending_start = false;
            p.replace_with = None;
        }
        // Pending retries and restarts are cancelled at once, whatever the tier.
        let idle: Vec<String> = self
            .programs
            .iter()
            .filter(|(_, p)| !p.state().has_process())
            .map(|(n, _)| n.clone())
            .collect();
        for name in idle {
            self.stop_now(&name);
        }
        let tiers = super::order::tiers(self.programs.values().map(|p| &p.cfg));
        let names: Vec<String> = self.programs.keys().cloned().collect();
        self.stop_plans.clear();
        self.stop_plans.push(StopPlan::new(&names, &tiers));
        self.advance_stop_plans();
    }

    /// Sends stops for every plan whose current tier is down.
    pub(super) fn advance_stop_plans(&mut self) {
        let mut plans = std::mem::take(&mut self.stop_plans);
        for plan in &mut plans {
            loop {
                let to_stop = plan.advance(|n| self.programs.get(n).is_none_or(|p| p.is_down()));
                if to_stop.is_empty() {
                    break;
                }
                for n in to_stop {
                    self.stop_now(&n);
                }
            }
        }
        plans.retain(|p| !p.done());
        // Plans added while stopping (none expected) are kept too.
        plans.append(&mut self.stop_plans);
        self.stop_plans = plans;
    }

    /// A program ended for good: critical programs take the daemon down.
    pub(super) fn on_finished(&mut self, name: &str) {
        let Some(p) = self.programs.get(name) else {
            return;
        };
        if p.cfg.critical && self.shutdown.is_none() {
            let code = p.final_code();
            tracing::info!(
                program = name,
                "critical program ended for good: shutting down with exit code {code}"
            );
            self.begin_shutdown(code, &format!("critical program {name} ended"));
        }
    }

    /// After the main program exits, its group gets SIGTERM, then SIGKILL after the grace.
    pub(super) fn linger(&mut self, pid: Pid) {
        if !sys::group_alive(pid) {
            return;
        }
        let grace: Duration = self.config.supervisor.shutdown_grace;
        tracing::info!("terminating what is left of the main program's process group {pid}");
        let _ = sys::send_signal(pid, Signal::SIGTERM, true);
        let _ = sys::send_signal(pid, Signal::SIGCONT, true);
        let at = Instant::now() + grace;
        self.lingering.push(Lingering {
            pgid: pid,
            kill_at: Some(at),
        });
        self.timers.push(Reverse((at, TimerKey::Linger)));
    }

    pub(super) fn check_lingering(&mut self) {
        self.lingering.retain(|l| sys::group_alive(l.pgid));
    }

    pub(super) fn kill_lingering(&mut self, now: Instant) {
        for l in &mut self.lingering {
            if l.kill_at.is_some_and(|at| at <= now) {
                tracing::warn!(
                    "process group {} still alive after the grace period: SIGKILL",
                    l.pgid
                );
                let _ = sys::send_signal(l.pgid, Signal::SIGKILL, true);
                l.kill_at = None;
            }
        }
        self.check_lingering();
    }

    /// The exit code once a shutdown has finished: no program has a process
    /// and nothing of the main program's group is left.
    pub(super) fn exit_code(&self) -> Option<i32> {
        let s = self.shutdown.as_ref()?;
        let all_down = self.programs.values().all(|p| !p.state().has_process());
        (all_down && self.lingering.is_empty()).then_some(s.code)
    }
}
