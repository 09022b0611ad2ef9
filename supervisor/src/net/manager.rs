//! The network task: the one owner of every sandbox, bridge and port proxy
//! the daemon made. The supervisor talks to it through a [`Manager`] handle
//! (requests over a channel, replies over oneshots), so it never blocks on
//! netlink: it spawns a task that awaits the reply and gets an event back.
//!
//! Sandboxes are counted by the programs that use them: [`Manager::ensure`]
//! adds a program (creating the sandbox, and the bridge, on first use; a
//! sandbox shared by several programs is made once) and starts its port
//! proxies; [`Manager::release`] stops the program's proxies and removes the
//! sandbox when its last program is gone, then the bridge when nsvisor made
//! it and no sandbox uses it any more. A program restarting keeps its sandbox
//! and address: the supervisor releases only on removal and at shutdown.
//! Netlink work runs on blocking threads; requests are handled one at a time.
//!
//! After every change of the programs on a network the task rewrites the
//! hosts file of each of its sandboxes (`names.rs`); a new sandbox gets its
//! files and its mount namespace with its first program.
//!
//! After every change of sandboxes or mappings the task brings its nftables
//! table (`nat.rs`) in line: masquerade for the networks in use that ask for
//! it, DNAT for `nat` mappings; the table is created with the first network
//! that needs it and deleted with the last. A program whose rules cannot be
//! applied fails to start and leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

mod names_sync;

use super::bridge;
use super::guard::Undo;
use super::hold::Forwarding;
use super::names::{self, NAMES_DIR};
use super::nat::{self, NatPort, NetUse, Wanted};
use super::netlink::Netlink;
use super::owner::{Owner, MARK_DIR};
use super::proxy::{self, Proxy};
use super::sandbox::{self, host_veth_name, Doomed, Plan};
use super::{leftovers, open_netns, sandbox_netns, Error};
use crate::config::{NetworkConfig, PortMode, SandboxSpec};

/// A program's sandbox, ready for its spawn.
#[derive(Debug)]
pub struct SandboxHandle {
    /// Namespace name (`nsvisor-<sandbox>`).
    pub netns: String,
    /// The namespace, opened for the child's `setns` (close-on-exec).
    pub fd: OwnedFd,
    /// Address of the sandbox's `eth0`.
    pub address: Ipv4Addr,
    /// The sandbox's mount namespace (its `/etc/hosts` and
    /// `/etc/resolv.conf`), entered after the network namespace.
    pub mntns: Option<Arc<OwnedFd>>,
}

/// Handle on the network task; cheap to clone.
#[derive(Debug, Clone)]
pub struct Manager {
    requests: mpsc::UnboundedSender<Request>,
    forwarding: Forwarding,
}

#[derive(Debug)]
enum Request {
    Cleanup(oneshot::Sender<Vec<Error>>),
    Ensure {
        program: String,
        group: String,
        spec: SandboxSpec,
        network: NetworkConfig,
        reply: oneshot::Sender<Result<SandboxHandle, Error>>,
    },
    Release {
        program: String,
        reply: oneshot::Sender<Vec<Error>>,
    },
    Shutdown(oneshot::Sender<Vec<Error>>),
}

impl Manager {
    /// Starts the network task on the current tokio runtime.
    pub fn start() -> Manager {
        let owner = Owner::current().unwrap_or(Owner {
            pid: std::process::id(),
            start: 0,
        });
        let (requests, rx) = mpsc::unbounded_channel();
        let forwarding = Forwarding::default();
        let task = Task {
            forwarding: forwarding.clone(),
            owner,
            table: nat::table_name(owner),
            nat: None,
            networks: BTreeMap::new(),
            mark_dir: PathBuf::from(MARK_DIR),
            names_dir: PathBuf::from(NAMES_DIR),
            sandboxes: BTreeMap::new(),
            bridges: BTreeMap::new(),
            programs: BTreeMap::new(),
        };
        tokio::spawn(task.run(rx));
        Manager {
            requests,
            forwarding,
        }
    }

    /// What the port proxies share with the supervisor: availability of
    /// programs, connection counts (`hold.rs`).
    pub fn forwarding(&self) -> &Forwarding {
        &self.forwarding
    }

    /// Removes what a crashed daemon left behind (see `leftovers.rs`). Call
    /// once at start, before the first `ensure`.
    pub fn cleanup_leftovers(&self) -> impl Future<Output = Vec<Error>> + Send + 'static {
        let answer = self.send(Request::Cleanup);
        async move { answer.await.unwrap_or_else(|e| vec![e]) }
    }

    /// Makes sure `program`'s sandbox exists and its ports are forwarded, and
    /// opens the namespace for its spawn. `group` is one of the program's
    /// names on the network, with its own. Idempotent: a program that already
    /// has its sandbox gets a fresh handle on it; a changed `spec` moves the
    /// program to the new sandbox.
    ///
    /// The request is queued when this is called (requests are handled in
    /// call order); the returned future only waits for the answer.
    pub fn ensure(
        &self,
        program: &str,
        group: &str,
        spec: &SandboxSpec,
        network: &NetworkConfig,
    ) -> impl Future<Output = Result<SandboxHandle, Error>> + Send + 'static {
        let (program, spec, network) = (program.to_string(), spec.clone(), network.clone());
        let group = group.to_string();
        let answer = self.send(|reply| Request::Ensure {
            program,
            group,
            spec,
            network,
            reply,
        });
        async move { answer.await? }
    }

    /// `program` no longer needs its sandbox (removed by a reload, or its
    /// network settings changed): stops its proxies; removes the sandbox if no
    /// other program uses it, and the bridge if nsvisor made it and no sandbox
    /// is left on it. Returns every error met; an unknown program is not one.
    /// Queued when called, like [`Manager::ensure`].
    pub fn release(&self, program: &str) -> impl Future<Output = Vec<Error>> + Send + 'static {
        let program = program.to_string();
        let answer = self.send(|reply| Request::Release { program, reply });
        async move { answer.await.unwrap_or_else(|e| vec![e]) }
    }

    /// Releases every program (at shutdown, after they exited).
    pub fn shutdown(&self) -> impl Future<Output = Vec<Error>> + Send + 'static {
        let answer = self.send(Request::Shutdown);
        async move { answer.await.unwrap_or_else(|e| vec![e]) }
    }

    /// Queues a request now; the future resolves to its reply.
    fn send<T: Send + 'static>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> impl Future<Output = Result<T, Error>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.requests.send(request(reply)).is_ok();
        async move {
            if !sent {
                return Err(Error::Stopped);
            }
            answer.await.map_err(|_| Error::Stopped)
        }
    }
}

struct Task {
    owner: Owner,
    forwarding: Forwarding,
    /// This daemon's nftables table.
    table: String,
    /// What the table holds now; `None` while it does not exist.
    nat: Option<Wanted>,
    /// The latest config of every network a sandbox was built on.
    networks: BTreeMap<String, NetworkConfig>,
    mark_dir: PathBuf,
    /// Directory of the sandboxes' hosts and resolv.conf files.
    names_dir: PathBuf,
    sandboxes: BTreeMap<String, Sandbox>,
    /// Bridges in use, by name.
    bridges: BTreeMap<String, BridgeUse>,
    programs: BTreeMap<String, Member>,
}

struct Sandbox {
    name: String,
    netns: String,
    veth: String,
    network: String,
    bridge: String,
    address: Ipv4Addr,
    users: BTreeSet<String>,
    /// Its mount namespace, made with its names' files by `sync_names`.
    mntns: Option<Arc<OwnedFd>>,
}

struct BridgeUse {
    created: bool,
    sandboxes: usize,
}

struct Member {
    group: String,
    spec: SandboxSpec,
    _proxies: Vec<Proxy>,
}

impl Task {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        while let Some(request) = requests.recv().await {
            match request {
                Request::Cleanup(reply) => {
                    let _ = reply.send(self.cleanup().await);
                }
                Request::Ensure {
                    program,
                    group,
                    spec,
                    network,
                    reply,
                } => {
                    let member = (program.as_str(), group);
                    let _ = reply.send(self.ensure(member, spec, &network).await);
                }
                Request::Release { program, reply } => {
                    let _ = reply.send(self.release(&program).await);
                }
                Request::Shutdown(reply) => {
                    let programs: Vec<String> = self.programs.keys().cloned().collect();
                    let doomed = programs.iter().filter_map(|p| self.forget(p)).collect();
                    let mut errors = self.remove(doomed).await;
                    errors.extend(self.sync_nat().await.err());
                    let _ = reply.send(errors);
                }
            }
        }
    }

    async fn cleanup(&mut self) -> Vec<Error> {
        let (mark_dir, names_dir) = (self.mark_dir.clone(), self.names_dir.clone());
        let (removed, errors) = blocking(move || {
            let (mut removed, mut errors) = nat::cleanup();
            let (links, more) = leftovers::cleanup(&mark_dir);
            removed.extend(links);
            errors.extend(more);
            let (files, more) = names::cleanup(&names_dir, &mark_dir);
            removed.extend(files);
            errors.extend(
                more.into_iter()
                    .map(|(path, source)| Error::RemoveFiles { path, source }),
            );
            (removed, errors)
        })
        .await;
        for what in removed {
            tracing::info!("removed {what}, left by a crashed nsvisor");
        }
        errors
    }

    async fn ensure(
        &mut self,
        (program, group): (&str, String),
        spec: SandboxSpec,
        network: &NetworkConfig,
    ) -> Result<SandboxHandle, Error> {
        if let Some(member) = self.programs.get(program) {
            if member.spec == spec {
                return self.handle(&spec);
            }
            for e in self.release(program).await {
                tracing::warn!(
                    "program {program:?}: moving to sandbox {:?}: {e}",
                    spec.sandbox
                );
            }
        }
        self.networks.insert(network.name.clone(), network.clone());
        // Validate first: ports are bound before anything is built.
        let bound = proxy::bind(program, &spec.ports)?;
        match self.sandboxes.get_mut(&spec.sandbox) {
            Some(existing) => {
                if existing.network != spec.network || existing.address != spec.address {
                    return Err(Error::SandboxMismatch {
                        program: program.to_string(),
                        sandbox: spec.sandbox.clone(),
                        have: placement(&existing.network, existing.address),
                        want: placement(&spec.network, spec.address),
                    });
                }
                existing.users.insert(program.to_string());
            }
            None => {
                let created = self.build(&spec, network).await?;
                let use_ = self
                    .bridges
                    .entry(network.bridge.clone())
                    .or_insert(BridgeUse {
                        created: false,
                        sandboxes: 0,
                    });
                use_.created |= created;
                use_.sandboxes += 1;
                self.sandboxes.insert(
                    spec.sandbox.clone(),
                    Sandbox {
                        name: spec.sandbox.clone(),
                        netns: sandbox_netns(&spec.sandbox),
                        veth: host_veth_name(&spec.sandbox),
                        network: spec.network.clone(),
                        bridge: network.bridge.clone(),
                        address: spec.address,
                        users: [program.to_string()].into(),
                        mntns: None,
                    },
                );
            }
        }
        let proxies = bound
            .into_iter()
            .map(|b| proxy::start(b, spec.address, program, &self.forwarding))
            .collect();
        let network_name = spec.network.clone();
        self.programs.insert(
            program.to_string(),
            Member {
                group,
                spec: spec.clone(),
                _proxies: proxies,
            },
        );
        let ready = match self.sync_names(&network_name).await {
            Ok(()) => match self.handle(&spec) {
                Ok(handle) => self.sync_nat().await.map(|()| handle),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        if ready.is_err() {
            for e in self.release(program).await {
                tracing::warn!("rollback: {e}");
            }
        }
        ready
    }

    /// Builds bridge (if needed) and sandbox on a blocking thread; returns
    /// whether the bridge was created. All or nothing.
    async fn build(&self, spec: &SandboxSpec, network: &NetworkConfig) -> Result<bool, Error> {
        let (spec, network) = (spec.clone(), network.clone());
        let (owner, mark_dir) = (self.owner, self.mark_dir.clone());
        blocking(move || {
            let mut host = Netlink::open().map_err(|source| Error::Netlink {
                what: "opening a socket".into(),
                source,
            })?;
            let ready = bridge::ensure(&mut host, &network, owner)?;
            let undo_bridge = Undo::new(|| {
                if ready.created {
                    bridge::delete_logged(ready.index, &network.bridge);
                }
            });
            sandbox::create(
                &mut host,
                &Plan {
                    sandbox: &spec.sandbox,
                    netns: sandbox_netns(&spec.sandbox),
                    veth: host_veth_name(&spec.sandbox),
                    address: spec.address,
                    subnet: network.subnet,
                    gateway: network.gateway,
                    bridge: ready.index,
                    owner,
                    mark_dir: &mark_dir,
                },
            )?;
            undo_bridge.commit();
            tracing::info!(
                "sandbox {:?}: netns {} with eth0 {} on bridge {}",
                spec.sandbox,
                sandbox_netns(&spec.sandbox),
                network.subnet.host_cidr(spec.address),
                network.bridge
            );
            Ok(ready.created)
        })
        .await
    }

    fn handle(&self, spec: &SandboxSpec) -> Result<SandboxHandle, Error> {
        let netns = sandbox_netns(&spec.sandbox);
        Ok(SandboxHandle {
            fd: open_netns(&netns)?,
            netns,
            address: spec.address,
            mntns: self
                .sandboxes
                .get(&spec.sandbox)
                .and_then(|s| s.mntns.clone()),
        })
    }

    async fn release(&mut self, program: &str) -> Vec<Error> {
        let network = self.programs.get(program).map(|m| m.spec.network.clone());
        let doomed = self.forget(program).into_iter().collect();
        let mut errors = self.remove(doomed).await;
        if let Some(network) = network {
            errors.extend(self.sync_names(&network).await.err());
        }
        errors.extend(self.sync_nat().await.err());
        errors
    }

    /// What the nftables table must hold for the sandboxes and programs now.
    fn wanted(&self) -> Wanted {
        let mut wanted = Wanted::default();
        for s in self.sandboxes.values() {
            if let Some(n) = self.networks.get(&s.network) {
                let net = NetUse {
                    bridge: n.bridge.clone(),
                    subnet: n.subnet,
                    masquerade: n.masquerade,
                };
                wanted.networks.insert(s.network.clone(), net);
            }
        }
        for m in self.programs.values() {
            let spec = &m.spec;
            for p in spec.ports.iter().filter(|p| p.mode == PortMode::Nat) {
                wanted
                    .ports
                    .extend(NatPort::of(p, &spec.network, spec.address));
            }
        }
        // Programs sharing a sandbox share its mappings.
        wanted.ports.sort();
        wanted.ports.dedup();
        wanted
    }

    /// Brings the nftables table in line with [`Task::wanted`].
    async fn sync_nat(&mut self) -> Result<(), Error> {
        let wanted = self.wanted();
        match &self.nat {
            None if wanted.is_empty() => return Ok(()),
            Some(now) if *now == wanted => return Ok(()),
            _ => {}
        }
        let (table, exists, w) = (self.table.clone(), self.nat.is_some(), wanted.clone());
        blocking(move || nat::apply(&table, &w, exists)).await?;
        if wanted.is_empty() {
            tracing::info!("nftables table ip {}: removed", self.table);
            self.nat = None;
        } else {
            if !exists {
                tracing::info!("nftables table ip {}: created", self.table);
            }
            self.nat = Some(wanted);
        }
        Ok(())
    }

    /// Drops `program`'s membership and stops its proxies; returns its
    /// sandbox when no other program uses it any more.
    fn forget(&mut self, program: &str) -> Option<Sandbox> {
        let member = self.programs.remove(program)?;
        let name = member.spec.sandbox.clone();
        drop(member); // stops its proxies
        self.forwarding.forget(program);
        let sandbox = self.sandboxes.get_mut(&name)?;
        sandbox.users.remove(program);
        if sandbox.users.is_empty() {
            self.sandboxes.remove(&name)
        } else {
            None
        }
    }

    /// Removes `doomed` sandboxes in one batch, then the bridges nsvisor made
    /// that no sandbox uses any more.
    async fn remove(&mut self, doomed: Vec<Sandbox>) -> Vec<Error> {
        if doomed.is_empty() {
            return Vec::new();
        }
        let mut bridges = Vec::new();
        for sandbox in &doomed {
            if let Some(use_) = self.bridges.get_mut(&sandbox.bridge) {
                use_.sandboxes -= 1;
                if use_.sandboxes == 0 {
                    if use_.created {
                        bridges.push(sandbox.bridge.clone());
                    }
                    self.bridges.remove(&sandbox.bridge);
                }
            }
        }
        let (mark_dir, names_dir) = (self.mark_dir.clone(), self.names_dir.clone());
        blocking(move || {
            let mut errors = Vec::new();
            for s in &doomed {
                let dir = names::dir_of(&names_dir, &s.netns);
                if let Err(source) = names::remove(&dir) {
                    errors.push(Error::RemoveFiles { path: dir, source });
                }
            }
            let mut host = match Netlink::open() {
                Ok(host) => host,
                Err(source) => {
                    let what = "opening a socket".into();
                    errors.push(Error::Netlink { what, source });
                    return errors;
                }
            };
            let batch: Vec<Doomed> = doomed
                .iter()
                .map(|s| Doomed {
                    netns: s.netns.clone(),
                    veth: s.veth.clone(),
                })
                .collect();
            errors.extend(sandbox::remove(&mut host, &batch, &mark_dir));
            for bridge in bridges {
                match bridge::remove_if_unused(&mut host, &bridge) {
                    Ok(true) => {}
                    Ok(false) => tracing::info!("bridge {bridge} still has ports: kept"),
                    Err(e) => errors.push(e),
                }
            }
            for s in &doomed {
                tracing::info!("sandbox {:?}: removed", s.name);
            }
            errors
        })
        .await
    }
}

/// `network NET with address ADDR`, for mismatch messages.
fn placement(network: &str, address: Ipv4Addr) -> String {
    format!("network {network} with address {address}")
}

/// Runs blocking netlink work on the blocking pool (host namespace; those
/// threads never `setns`), re-raising its panic.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
