//! Network sandboxes, after Docker's network model: a *sandbox* is a named
//! network namespace (`nsvisor-<sandbox>`), an *endpoint* is a veth pair whose
//! host end is a port of the network's bridge and whose other end is `eth0`
//! inside, a *network* is a Linux bridge whose address is the sandboxes'
//! gateway. Port mappings are forwarded by a userland proxy in the daemon
//! (`port_mode = "proxy"`) or by the kernel (`"nat"`); traffic leaving a
//! network is masqueraded. Both live in one nftables table per daemon
//! (`nat.rs`, over the netlink client in `nft.rs`).
//!
//! What callers use:
//! - [`check_host`] before anything runs (start, reload, `nsvisor check`):
//!   privileges, and subnets that overlap a host route.
//! - [`open_netns`] before each fork of a program that has a namespace; the
//!   child `setns`es into the returned fd.
//! - [`Manager`]: the task that owns every sandbox, bridge and proxy. The
//!   supervisor asks it to `ensure` a program's sandbox before the first
//!   start, to `release` it when the program is removed, to clean a crashed
//!   run's leftovers at start and to tear everything down at shutdown.
//! - [`net_info`] for `status` and the API; [`hostname`] for the rule that
//!   makes program names hostnames.
//!
//! Setup validates first, applies with guards that undo on drop unless
//! committed, and teardown goes on past errors and reports all of them
//! (DESIGN rule 7). Each sandbox also gets its names (`names.rs`): its own
//! `/etc/hosts` and `/etc/resolv.conf` in a mount namespace of its own. Host interfaces and namespaces carry an owner mark
//! (`owner.rs`) so nothing nsvisor did not create is ever removed.

mod bridge;
mod check;
mod guard;
pub mod hold;
mod leftovers;
mod manager;
mod names;
mod nat;
pub mod netlink;
pub mod netns;
mod nft;
mod owner;
mod proxy;
mod sandbox;
mod tcp;
mod udp;

use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nsvisor_proto::{NetInfo, PortInfo};

use crate::config::{NetworkConfig, PortMode, ProgramConfig, ProgramNet, Protocol};

pub use check::{check_host, check_privileges, has_privileges};
pub use manager::{Manager, SandboxHandle};
pub use names::hostname;

/// Prefix of the namespaces nsvisor creates: `nsvisor-<sandbox>`.
pub const NETNS_PREFIX: &str = "nsvisor-";

/// Everything that can go wrong with networking. Messages are lowercase and
/// name the object and the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon lacks the capabilities namespaces and netlink need.
    #[error(
        "{what} need CAP_NET_ADMIN and CAP_SYS_ADMIN, which this process does not have: \
         run nsvisor as root (in a container: --cap-add NET_ADMIN --cap-add SYS_ADMIN)"
    )]
    Privileges {
        /// What in the config needs them, e.g. `network sandboxes (programs "web")`.
        what: String,
    },
    /// `/run/netns/NAME` cannot be opened.
    #[error("netns {name:?}: cannot open {}: {source}", path.display())]
    OpenNetns {
        /// Namespace name.
        name: String,
        /// Its path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A sandbox namespace cannot be created.
    #[error("sandbox {sandbox:?}: cannot create netns {netns}: {source}")]
    CreateNetns {
        /// Sandbox name.
        sandbox: String,
        /// Namespace name.
        netns: String,
        /// Cause.
        source: io::Error,
    },
    /// The sandbox namespace exists and is not nsvisor's.
    #[error(
        "sandbox {sandbox:?}: netns {netns} already exists and was not created by a running nsvisor \
         (remove it with `ip netns del {netns}` if it is unused)"
    )]
    NetnsExists {
        /// Sandbox name.
        sandbox: String,
        /// Namespace name.
        netns: String,
    },
    /// A namespace cannot be removed.
    #[error("netns {netns}: cannot remove: {source}")]
    RemoveNetns {
        /// Namespace name.
        netns: String,
        /// Cause.
        source: io::Error,
    },
    /// The owner mark file of a namespace cannot be written or removed.
    #[error("cannot update {}: {source}", path.display())]
    Mark {
        /// Mark file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A netlink socket cannot be opened, or a dump failed.
    #[error("cannot talk to the kernel over netlink ({what}): {source}")]
    Netlink {
        /// What was being done, e.g. `listing host routes`.
        what: String,
        /// Cause.
        source: io::Error,
    },
    /// A bridge cannot be created or configured.
    #[error("network {network:?}: cannot {step} bridge {bridge}: {source}")]
    Bridge {
        /// Network name.
        network: String,
        /// Bridge name.
        bridge: String,
        /// What was being done (`create`, `bring up`, ...).
        step: &'static str,
        /// Cause.
        source: io::Error,
    },
    /// The configured bridge name is taken by an interface of another kind.
    #[error("network {network:?}: interface {bridge} exists and is a {kind}, not a bridge")]
    NotABridge {
        /// Network name.
        network: String,
        /// Interface name.
        bridge: String,
        /// Its kind.
        kind: String,
    },
    /// A subnet overlaps a route the host already has.
    #[error(
        "network {network:?}: subnet {subnet} overlaps the host route {route} (dev {dev}); \
         choose another subnet"
    )]
    SubnetOverlapsRoute {
        /// Network name.
        network: String,
        /// The network's subnet, `a.b.c.d/n`.
        subnet: String,
        /// The route, `a.b.c.d/n`.
        route: String,
        /// Its device.
        dev: String,
    },
    /// The veth pair of a sandbox cannot be created.
    #[error("sandbox {sandbox:?}: cannot create veth {veth} (eth0 in netns {netns}): {source}")]
    CreateVeth {
        /// Sandbox name.
        sandbox: String,
        /// Host end name.
        veth: String,
        /// Namespace of the peer.
        netns: String,
        /// Cause.
        source: io::Error,
    },
    /// A step of a sandbox's configuration failed.
    #[error("sandbox {sandbox:?}: cannot {step}: {source}")]
    ConfigureSandbox {
        /// Sandbox name.
        sandbox: String,
        /// What was being done, e.g. `add address 172.20.0.2/24 to eth0`.
        step: String,
        /// Cause.
        source: io::Error,
    },
    /// An interface cannot be deleted.
    #[error("interface {name}: cannot delete: {source}")]
    DeleteLink {
        /// Interface name.
        name: String,
        /// Cause.
        source: io::Error,
    },
    /// A mapped host port cannot be bound.
    #[error("program {program:?}: cannot listen on port {port}: {source}")]
    BindPort {
        /// Program name.
        program: String,
        /// `IP:PORT/PROTO`.
        port: String,
        /// Cause.
        source: io::Error,
    },
    /// Two programs name one sandbox with different networks or addresses.
    #[error("program {program:?}: sandbox {sandbox:?} already exists as {have}, the program asks for {want}")]
    SandboxMismatch {
        /// Program name.
        program: String,
        /// Sandbox name.
        sandbox: String,
        /// The existing sandbox: `network NET with address ADDR`.
        have: String,
        /// What the program asks for, in the same words.
        want: String,
    },
    /// nsvisor's nftables table cannot be changed (or the kernel has no
    /// nf_tables, or not its NAT support).
    #[error(
        "nftables table ip {table}: cannot {what}: {source}{}",
        missing_hint(source)
    )]
    Firewall {
        /// Table name.
        table: String,
        /// What was being done (`add rule to chain postrouting`).
        what: String,
        /// Cause.
        source: io::Error,
    },
    /// Files the daemon made (a sandbox's names) cannot be removed.
    #[error("cannot remove {}: {source}", path.display())]
    RemoveFiles {
        /// File or directory.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// A sysctl needed for forwarding cannot be set.
    #[error("cannot enable {}: {source}", path.display())]
    Sysctl {
        /// Its `/proc/sys` path.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The network task has stopped (the daemon is going down).
    #[error("the network task has stopped")]
    Stopped,
}

/// What to do when the kernel lacks what nsvisor's table needs.
fn missing_hint(source: &io::Error) -> &'static str {
    if nat::is_missing(source) {
        " (the kernel lacks nf_tables or its NAT support: modules nf_tables, nf_nat, \
         nft_masq, nft_fib_ipv4; without them set masquerade = false on the network \
         and use port_mode = \"proxy\")"
    } else {
        ""
    }
}

/// Opens the named namespace `/run/netns/NAME` for a program's `setns`, as
/// `ip netns exec NAME` would. Call before the fork; the fd is close-on-exec.
pub fn open_netns(name: &str) -> Result<OwnedFd, Error> {
    netns::open(name).map_err(|source| Error::OpenNetns {
        name: name.to_string(),
        path: netns::path(name),
        source,
    })
}

/// The namespace of a sandbox: `nsvisor-<sandbox>`.
pub fn sandbox_netns(sandbox: &str) -> String {
    format!("{NETNS_PREFIX}{sandbox}")
}

/// The namespace a program runs in, if any (what to pass to [`open_netns`]).
pub fn program_netns(net: &ProgramNet) -> String {
    match net {
        ProgramNet::Join { netns } => netns.clone(),
        ProgramNet::Sandbox(spec) => sandbox_netns(&spec.sandbox),
    }
}

/// What `status` and the API show of a program's network.
pub fn net_info(
    program: &ProgramConfig,
    networks: &std::collections::BTreeMap<String, NetworkConfig>,
) -> Option<NetInfo> {
    let net = program.net.as_deref()?;
    Some(match net {
        ProgramNet::Join { netns } => NetInfo {
            netns: netns.clone(),
            sandbox: None,
            network: None,
            address: None,
            ports: Vec::new(),
            traffic: None,
        },
        ProgramNet::Sandbox(spec) => NetInfo {
            netns: sandbox_netns(&spec.sandbox),
            sandbox: Some(spec.sandbox.clone()),
            network: Some(spec.network.clone()),
            address: Some(match networks.get(&spec.network) {
                Some(n) => n.subnet.host_cidr(spec.address),
                None => spec.address.to_string(),
            }),
            ports: spec
                .ports
                .iter()
                .map(|p| PortInfo {
                    host_ip: p.host_ip.to_string(),
                    host_port: p.host_port,
                    port: p.port,
                    protocol: protocol_name(p.protocol).to_string(),
                    mode: match p.mode {
                        PortMode::Proxy => "proxy",
                        PortMode::Nat => "nat",
                    }
                    .to_string(),
                    connections_active: None,
                    connections_total: None,
                    connections_held: None,
                })
                .collect(),
            traffic: None,
        },
    })
}

/// Adds the live figures to a program's network info: its sandbox's veth
/// counters and its proxies' connection counts.
pub fn add_live_figures(program: &str, info: &mut NetInfo, forwarding: &hold::Forwarding) {
    let Some(sandbox) = &info.sandbox else {
        return;
    };
    info.traffic = sandbox::traffic(&sandbox::host_veth_name(sandbox));
    let counts = forwarding.port_counts(program);
    for port in &mut info.ports {
        let what = format!(
            "{}/{}",
            std::net::SocketAddr::new(
                port.host_ip
                    .parse()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
                port.host_port
            ),
            port.protocol
        );
        if let Some((_, (active, total, held))) = counts.iter().find(|(w, _)| *w == what) {
            port.connections_active = Some(*active);
            port.connections_total = Some(*total);
            port.connections_held = Some(*held);
        }
    }
}

/// `tcp` or `udp`.
pub fn protocol_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PortMapping, PortMode, SandboxSpec, Subnet};
    use std::net::Ipv4Addr;

    fn networks() -> std::collections::BTreeMap<String, NetworkConfig> {
        let n = NetworkConfig {
            name: "front".into(),
            bridge: "nsvbr0".into(),
            subnet: Subnet::containing(Ipv4Addr::new(172, 20, 0, 0), 24),
            gateway: Ipv4Addr::new(172, 20, 0, 1),
            masquerade: true,
        };
        [("front".to_string(), n)].into_iter().collect()
    }

    #[test]
    fn net_info_shows_sandbox_address_and_ports() {
        let mut p = ProgramConfig::with_defaults("web", vec!["true".into()]);
        assert_eq!(net_info(&p, &networks()), None);
        p.net = Some(Box::new(ProgramNet::Sandbox(SandboxSpec {
            sandbox: "web".into(),
            network: "front".into(),
            address: Ipv4Addr::new(172, 20, 0, 2),
            ports: vec![PortMapping {
                host_ip: "127.0.0.1".parse().unwrap(),
                host_port: 5353,
                port: 53,
                protocol: Protocol::Udp,
                mode: PortMode::Proxy,
                hold: std::time::Duration::ZERO,
            }],
        })));
        let info = net_info(&p, &networks()).unwrap();
        assert_eq!(info.netns, "nsvisor-web");
        assert_eq!(info.sandbox.as_deref(), Some("web"));
        assert_eq!(info.network.as_deref(), Some("front"));
        assert_eq!(info.address.as_deref(), Some("172.20.0.2/24"));
        assert_eq!(
            info.ports,
            vec![PortInfo {
                host_ip: "127.0.0.1".into(),
                host_port: 5353,
                port: 53,
                protocol: "udp".into(),
                mode: "proxy".into(),
                connections_active: None,
                connections_total: None,
                connections_held: None,
            }]
        );
    }

    #[test]
    fn net_info_of_a_joined_namespace_names_it_only() {
        let mut p = ProgramConfig::with_defaults("app", vec!["true".into()]);
        p.net = Some(Box::new(ProgramNet::Join {
            netns: "blue".into(),
        }));
        let info = net_info(&p, &networks()).unwrap();
        assert_eq!(info.netns, "blue");
        assert_eq!((info.sandbox, info.address), (None, None));
        assert_eq!(program_netns(p.net.as_ref().unwrap()), "blue");
    }

    #[test]
    fn open_netns_names_the_namespace_and_path() {
        let err = open_netns("nsvisor-test-does-not-exist").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("netns \"nsvisor-test-does-not-exist\": cannot open /run/netns/nsvisor-test-does-not-exist: "),
            "{msg}"
        );
    }
}
