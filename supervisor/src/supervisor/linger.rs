//! What is left of a finished main program's process group (`nsvisor -- CMD`).
//!
//! When the main program exits, the rest of its group gets SIGTERM (and
//! SIGCONT, in case it was stopped), then SIGKILL after `shutdown_grace`,
//! like tini. The daemon does not exit while such a group is alive. The
//! actor owns this: it is made of syscalls (`kill`, probing the group), not
//! of rules between programs.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::sys;

/// One lingering group.
#[derive(Debug, Clone, Copy)]
struct Group {
    pgid: Pid,
    /// When to SIGKILL it; `None` once killed.
    kill_at: Option<Instant>,
}

/// The lingering groups.
#[derive(Debug, Default)]
pub struct Lingering {
    groups: Vec<Group>,
}

impl Lingering {
    /// The main program (leader of group `pgid`) exited: terminate the rest
    /// of its group. Returns when to check again for the SIGKILL, if the
    /// group is still alive.
    pub fn begin(&mut self, pgid: Pid, grace: Duration, now: Instant) -> Option<Instant> {
        if !sys::group_alive(pgid) {
            return None;
        }
        tracing::info!("terminating what is left of the main program's process group {pgid}");
        let _ = sys::send_signal(pgid, Signal::SIGTERM, true);
        let _ = sys::send_signal(pgid, Signal::SIGCONT, true);
        let at = now + grace;
        self.groups.push(Group {
            pgid,
            kill_at: Some(at),
        });
        Some(at)
    }

    /// Forgets the groups that are gone (after reaping).
    pub fn prune(&mut self) {
        self.groups.retain(|g| sys::group_alive(g.pgid));
    }

    /// SIGKILLs the groups whose grace is over.
    pub fn kill_due(&mut self, now: Instant) {
        for g in &mut self.groups {
            if g.kill_at.is_some_and(|at| at <= now) {
                tracing::warn!(
                    "process group {} still alive after the grace period: SIGKILL",
                    g.pgid
                );
                let _ = sys::send_signal(g.pgid, Signal::SIGKILL, true);
                g.kill_at = None;
            }
        }
        self.prune();
    }

    /// No group is left.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}
