//! Check runs on the supervisor's side: an `exec` check is spawned at once;
//! a `tcp` or `http` check is a future polled by the supervisor's own loop
//! (no task, thread or channel hop per run), at most [`MAX_PROBES`] at a time
//! so that a thousand checks falling due together neither allocate a
//! thousand futures at once nor connect all at once. Also tells the port
//! proxies whether a program can take connections.

use futures::stream::FuturesUnordered;

use super::Supervisor;
use crate::config::{CheckKind, ProgramName};
use crate::supervisor::planner::Event;
use crate::supervisor::program::Netns;

/// `tcp`/`http` runs in flight at most; the rest wait their turn.
const MAX_PROBES: usize = 64;

/// A `tcp` or `http` check run that has not started yet.
pub(super) struct ProbeJob {
    name: ProgramName,
    index: usize,
    epoch: u64,
    kind: CheckKind,
    timeout: std::time::Duration,
    netns: Option<Netns>,
}

/// One `tcp` or `http` check run; its result is the planner's event.
pub(super) type Probe = std::pin::Pin<Box<dyn std::future::Future<Output = Event> + Send>>;

impl ProbeJob {
    fn start(self) -> Probe {
        Box::pin(async move {
            let netns = self.netns.map(|n| n.net);
            let (passed, detail, took) = crate::health::run(&self.kind, self.timeout, netns).await;
            Event::CheckDone {
                name: self.name,
                index: self.index,
                epoch: self.epoch,
                passed,
                took,
                detail,
            }
        })
    }
}

impl Supervisor {
    /// Starts a check run, polled by the supervisor's loop; its result comes
    /// back as [`Event::CheckDone`].
    /// An `exec` check is spawned here, at once, and its spawn reported
    /// (returned); its exit comes through the reaper.
    pub(super) fn run_check(
        &mut self,
        name: ProgramName,
        index: usize,
        epoch: u64,
        netns: Option<Netns>,
    ) -> Option<Event> {
        let prog = self.planner.program(&name)?;
        let check = prog.cfg.checks.get(index)?;
        if let CheckKind::Exec { command } = &check.kind {
            let result = self.spawner.check(&prog.cfg, command, netns.as_ref());
            return Some(Event::CheckSpawned {
                name,
                index,
                epoch,
                result,
            });
        }
        self.probes_waiting.push_back(ProbeJob {
            name,
            index,
            epoch,
            kind: check.kind.clone(),
            timeout: check.timeout,
            netns,
        });
        None
    }

    /// Moves waiting runs into `running` while there is room. A run's
    /// timeout counts from here, its first poll.
    pub(super) fn start_probes(&mut self, running: &mut FuturesUnordered<Probe>) {
        while running.len() < MAX_PROBES {
            match self.probes_waiting.pop_front() {
                Some(job) => running.push(job.start()),
                None => break,
            }
        }
    }

    /// Tells `name`'s port proxies whether it can take connections now
    /// (RUNNING and ready); they hold new ones meanwhile (`net/hold.rs`).
    pub(super) fn update_forwarding(&self, name: &str) {
        let Some(p) = self.planner.program(name) else {
            return;
        };
        if let Some(crate::config::ProgramNet::Sandbox(spec)) = p.cfg.net.as_deref() {
            if !spec.ports.is_empty() {
                let available = p.state() == nsvisor_proto::State::Running && p.ready();
                self.net.forwarding().set_available(name, available);
            }
        }
    }
}
