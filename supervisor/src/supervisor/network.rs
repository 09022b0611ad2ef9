//! The supervisor's side of network sandboxes: asks the network task
//! (`net::Manager`) for a program's sandbox before its first start, opens the
//! namespace for each spawn, releases the sandbox when the program is removed
//! or its network settings change, and tears everything down at the end of a
//! shutdown.
//!
//! The supervisor never waits on netlink: a start that needs a sandbox not
//! yet built leaves the program pending (like a start waiting for a
//! dependency), a task awaits the manager's answer and sends a [`NetReady`]
//! event back into the loop, which then starts the program or fails its start
//! with the error (a port that cannot be bound, a subnet that overlaps a host
//! route...). Restarts reuse the sandbox, so the program keeps its address.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;

use tokio::sync::mpsc;

use super::actor::Supervisor;
use crate::config::{ProgramNet, SandboxSpec};
use crate::net::{self, Manager};

/// The network task's answer to a sandbox request.
#[derive(Debug)]
pub struct NetReady {
    program: String,
    spec: SandboxSpec,
    result: Result<(), net::Error>,
}

/// Sandbox bookkeeping of the supervisor.
#[derive(Debug)]
pub struct Net {
    manager: Manager,
    events: mpsc::UnboundedSender<NetReady>,
    receiver: Option<mpsc::UnboundedReceiver<NetReady>>,
    /// Programs whose sandbox is built, with the spec it was built for.
    ready: HashMap<String, SandboxSpec>,
    /// Programs whose sandbox is being built.
    preparing: HashSet<String>,
}

impl Net {
    /// Bookkeeping around the network task `manager`.
    pub fn new(manager: Manager) -> Net {
        let (events, receiver) = mpsc::unbounded_channel();
        Net {
            manager,
            events,
            receiver: Some(receiver),
            ready: HashMap::new(),
            preparing: HashSet::new(),
        }
    }

    /// The stream of answers, taken once by the supervisor loop.
    pub fn take_events(&mut self) -> mpsc::UnboundedReceiver<NetReady> {
        self.receiver
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1)
    }
}

impl Supervisor {
    /// Whether `name` may start now as far as its network goes. When its
    /// sandbox is not built yet, asks for it (once) and returns false;
    /// [`Supervisor::on_net_ready`] starts the program when it is.
    pub(super) fn sandbox_ready(&mut self, name: &str) -> bool {
        let Some(prog) = self.programs.get(name) else {
            return true;
        };
        let Some(ProgramNet::Sandbox(spec)) = &prog.cfg.net else {
            return true;
        };
        if self.net.ready.get(name) == Some(spec) {
            return true;
        }
        if self.net.preparing.insert(name.to_string()) {
            let Some(network) = self.config.networks.get(&spec.network) else {
                // Validation guarantees the network exists; be safe anyway.
                self.net.preparing.remove(name);
                return true;
            };
            let answer = self.net.manager.ensure(name, spec, network);
            let (program, spec, events) = (name.to_string(), spec.clone(), self.net.events.clone());
            tokio::spawn(async move {
                let result = answer.await.map(drop);
                let _ = events.send(NetReady {
                    program,
                    spec,
                    result,
                });
            });
        }
        false
    }

    /// The network task answered: start the program if it still wants to,
    /// or fail its pending start with the error.
    pub(super) fn on_net_ready(&mut self, event: NetReady) {
        let name = event.program;
        self.net.preparing.remove(&name);
        let Some(prog) = self.programs.get_mut(&name) else {
            return;
        };
        let current = matches!(&prog.cfg.net, Some(ProgramNet::Sandbox(s)) if *s == event.spec);
        match (event.result, current) {
            (Ok(()), true) => {
                self.net.ready.insert(name.clone(), event.spec);
            }
            (Err(e), true) => {
                tracing::error!(program = %name, "{e}");
                if prog.pending_start {
                    prog.pending_start = false;
                    prog.blocked = Some(e.to_string());
                    self.dirty.insert(name);
                }
                return;
            }
            // An answer for settings changed since: a newer request follows.
            (Err(e), false) => tracing::debug!(program = %name, "outdated sandbox: {e}"),
            (Ok(()), false) => {}
        }
        if prog.pending_start {
            self.request_start(&name);
        }
    }

    /// The namespace a spawn of `name` enters, opened before the fork.
    pub(super) fn netns_for_spawn(&self, name: &str) -> Result<Option<OwnedFd>, String> {
        let Some(prog) = self.programs.get(name) else {
            return Ok(None);
        };
        match &prog.cfg.net {
            None => Ok(None),
            Some(ProgramNet::Join { netns }) => {
                net::open_netns(netns).map(Some).map_err(|e| e.to_string())
            }
            Some(ProgramNet::Sandbox(spec)) if self.net.ready.get(name) == Some(spec) => {
                net::open_netns(&net::sandbox_netns(&spec.sandbox))
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
            Some(ProgramNet::Sandbox(spec)) => Err(format!(
                "sandbox {:?} is not set up (start the program again)",
                spec.sandbox
            )),
        }
    }

    /// `name` was removed, or its network settings changed: its sandbox (and
    /// port proxies) go, once no other program uses them.
    pub(super) fn release_sandbox(&mut self, name: &str) {
        self.net.ready.remove(name);
        let done = self.net.manager.release(name);
        let name = name.to_string();
        tokio::spawn(async move {
            for e in done.await {
                tracing::error!(program = %name, "{e}");
            }
        });
    }

    /// Shows each program's network in `status` (after start and reloads).
    pub(super) fn refresh_net_info(&mut self) {
        for p in self.programs.values_mut() {
            p.net = net::net_info(&p.cfg, &self.config.networks);
        }
    }

    /// End of shutdown, every program gone: remove every sandbox, proxy and
    /// bridge the daemon made.
    pub(super) async fn teardown_network(&mut self) {
        self.net.ready.clear();
        for e in self.net.manager.shutdown().await {
            tracing::error!("{e}");
        }
    }
}
