//! One sandbox: a named namespace `nsvisor-<sandbox>` with `lo` up and an
//! endpoint, a veth pair whose host end is a port of the network's bridge and
//! whose other end is `eth0` inside with the sandbox address and a default
//! route via the gateway.
//!
//! [`create`] applies the steps in order behind guards: a failure at any step
//! undoes the steps before it, so a sandbox exists either whole or not at all.
//! [`remove`] goes on past errors and returns every one. The owner mark of the
//! namespace is written before the namespace exists and removed after it is
//! gone (see `owner.rs`). Blocking: called on blocking threads by the manager.

use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use super::bridge;
use super::guard::Undo;
use super::netlink::Netlink;
use super::netns::{self, CreateError};
use super::owner::{self, Owner, Role};
use super::Error;
use crate::config::Subnet;

/// Name of `eth0`, the sandbox end of the veth pair.
pub const SANDBOX_IF: &str = "eth0";

/// What to build.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// Sandbox name.
    pub sandbox: &'a str,
    /// Namespace name (`nsvisor-<sandbox>`).
    pub netns: String,
    /// Host end of the veth pair.
    pub veth: String,
    /// Address of `eth0`.
    pub address: Ipv4Addr,
    /// Subnet of the network.
    pub subnet: Subnet,
    /// Default gateway (the bridge address).
    pub gateway: Ipv4Addr,
    /// Index of the bridge the host end joins.
    pub bridge: u32,
    /// This daemon.
    pub owner: Owner,
    /// Directory of namespace owner marks.
    pub mark_dir: &'a Path,
}

/// Name of the host end of a sandbox's veth pair: `nsv` and 12 hex digits of
/// a hash of the sandbox name (interface names have at most 15 bytes; the
/// sandbox name is in the interface alias).
/// The traffic of the sandbox whose host-side veth is `veth`, from the
/// sandbox's side (what the host end sends, the sandbox receives); `None`
/// when the link is gone.
pub fn traffic(veth: &str) -> Option<nsvisor_proto::Traffic> {
    let read = |what: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/sys/class/net/{veth}/statistics/{what}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    Some(nsvisor_proto::Traffic {
        bytes_in: read("tx_bytes")?,
        packets_in: read("tx_packets")?,
        bytes_out: read("rx_bytes")?,
        packets_out: read("rx_packets")?,
    })
}

pub fn host_veth_name(sandbox: &str) -> String {
    // FNV-1a, 64 bits: stable across runs and versions, unlike std's hasher.
    let hash = sandbox.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("nsv{:012x}", hash >> 16)
}

/// Builds the sandbox of `plan`; on error nothing of it is left.
pub fn create(host: &mut Netlink, plan: &Plan<'_>) -> Result<(), Error> {
    let sandbox = plan.sandbox;
    let mark = owner::mark_path(plan.mark_dir, &plan.netns);
    owner::write_mark(plan.mark_dir, &plan.netns, plan.owner).map_err(|source| Error::Mark {
        path: mark.clone(),
        source,
    })?;
    let undo_mark = Undo::new(|| {
        if let Err(e) = owner::remove_mark(plan.mark_dir, &plan.netns) {
            tracing::warn!("rollback: cannot remove {}: {e}", mark.display());
        }
    });

    let created = netns::create(&plan.netns).map_err(|e| match e {
        CreateError::Exists => Error::NetnsExists {
            sandbox: sandbox.to_string(),
            netns: plan.netns.clone(),
        },
        CreateError::Io(source) => Error::CreateNetns {
            sandbox: sandbox.to_string(),
            netns: plan.netns.clone(),
            source,
        },
    })?;
    let undo_netns = Undo::new(|| {
        if let Err(e) = netns::remove(&plan.netns) {
            tracing::warn!("rollback: cannot remove netns {}: {e}", plan.netns);
        }
    });

    host.create_veth(&plan.veth, SANDBOX_IF, created.fd.as_fd())
        .map_err(|source| Error::CreateVeth {
            sandbox: sandbox.to_string(),
            veth: plan.veth.clone(),
            netns: plan.netns.clone(),
            source,
        })?;
    let step = |step: String| {
        move |source| Error::ConfigureSandbox {
            sandbox: sandbox.to_string(),
            step,
            source,
        }
    };
    let veth = host
        .link_by_name(&plan.veth)
        .map_err(step(format!("find {}", plan.veth)))?
        .ok_or_else(|| step(format!("find {}", plan.veth))(enodev()))?
        .index;
    let undo_veth = Undo::new(|| bridge::delete_logged(veth, &plan.veth));
    let alias = plan.owner.alias(&Role::Sandbox(sandbox.to_string()));
    host.set_alias(veth, &alias)
        .map_err(step(format!("mark {}", plan.veth)))?;
    host.set_master(veth, plan.bridge)
        .map_err(step(format!("attach {} to its bridge", plan.veth)))?;
    host.set_up(veth)
        .map_err(step(format!("bring {} up", plan.veth)))?;

    let mut inside = created.netlink;
    let eth0 = inside
        .link_by_name(SANDBOX_IF)
        .map_err(step(format!("find {SANDBOX_IF}")))?
        .ok_or_else(|| step(format!("find {SANDBOX_IF}"))(enodev()))?
        .index;
    let address = plan.subnet.host_cidr(plan.address);
    inside
        .add_address(eth0, plan.address, plan.subnet)
        .map_err(step(format!("add address {address} to {SANDBOX_IF}")))?;
    inside
        .set_up(eth0)
        .map_err(step(format!("bring {SANDBOX_IF} up")))?;
    inside
        .add_default_route(plan.gateway)
        .map_err(step(format!("add the default route via {}", plan.gateway)))?;

    undo_veth.commit();
    undo_netns.commit();
    undo_mark.commit();
    Ok(())
}

/// A sandbox to remove.
#[derive(Debug, Clone)]
pub struct Doomed {
    /// Namespace name.
    pub netns: String,
    /// Host end of its veth pair.
    pub veth: String,
}

/// How long [`remove`] waits for the kernel to destroy unused namespaces
/// (and their veth pairs) before deleting the pairs one by one.
const KERNEL_CLEANUP_WAIT: Duration = Duration::from_secs(3);

/// Removes sandboxes: namespaces, owner marks, veth pairs. Parts that are
/// already gone are fine; every other failure is returned, none stops the
/// rest.
///
/// Unmounting a namespace nobody uses lets the kernel destroy it, and its
/// veth pair with it, in the background and in batches: much faster than
/// deleting each pair (each delete waits for an RCU grace period). So all
/// namespaces go first, then this waits until their pairs are gone, and
/// deletes the pairs still there after [`KERNEL_CLEANUP_WAIT`] (a process
/// left in a namespace keeps it alive).
pub fn remove(host: &mut Netlink, doomed: &[Doomed], mark_dir: &Path) -> Vec<Error> {
    let mut errors = Vec::new();
    for d in doomed {
        match netns::remove(&d.netns) {
            Ok(()) => {
                if let Err(source) = owner::remove_mark(mark_dir, &d.netns) {
                    let path = owner::mark_path(mark_dir, &d.netns);
                    errors.push(Error::Mark { path, source });
                }
            }
            Err(source) => errors.push(Error::RemoveNetns {
                netns: d.netns.clone(),
                source,
            }),
        }
    }
    let deadline = Instant::now() + KERNEL_CLEANUP_WAIT;
    loop {
        let links = match host.links() {
            Ok(links) => links,
            Err(source) => {
                let what = "listing host interfaces".into();
                errors.push(Error::Netlink { what, source });
                return errors;
            }
        };
        let left: Vec<_> = links
            .iter()
            .filter(|l| doomed.iter().any(|d| d.veth == l.name))
            .collect();
        if left.is_empty() {
            return errors;
        }
        if Instant::now() >= deadline {
            for link in left {
                errors.extend(bridge::delete(host, link.index, &link.name).err());
            }
            return errors;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn enodev() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::ENODEV)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_fit_and_differ() {
        let a = host_veth_name("web");
        let b = host_veth_name("web2");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("nsv"));
        assert_ne!(a, b);
        assert_eq!(a, host_veth_name("web"));
        let long = host_veth_name(&"x".repeat(200));
        assert_eq!(long.len(), 15);
    }
}
