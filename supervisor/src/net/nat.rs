//! nsvisor's NAT table: masquerade for traffic leaving a network's subnet,
//! and DNAT for `port_mode = "nat"` mappings, in ONE nftables table of family
//! `ip` per daemon, named `nsvisor_<pid>_<start time>` after its owner (see
//! `owner.rs`) so a restarted daemon recognises a dead daemon's table.
//!
//! Nothing else of the firewall is read or changed: the whole table is
//! replaced in one transaction whenever what it must hold changes (delete +
//! add in one batch, so there is no moment without rules), and deleted with
//! the last network that needs it. What the table holds is a pure function
//! of [`Wanted`] ([`rules`]), so it is unit-tested without a kernel.
//!
//! ```text
//! table ip nsvisor_PID_START
//!   chain prerouting  { type nat hook prerouting priority dstnat }  DNAT per nat mapping
//!   chain output      { type nat hook output priority dstnat }      the same, for the host's own connections
//!   chain postrouting { type nat hook postrouting priority srcnat }
//!       ip saddr SUBNET oifname != BRIDGE masquerade       egress (masquerade = true)
//!       ip saddr SUBNET oifname BRIDGE masquerade          hairpin: a sandbox through a mapped port
//!       ip saddr 127.0.0.0/8 oifname BRIDGE masquerade     the host's loopback through a mapped port
//!   chain forward     { type filter hook forward priority filter }  ip saddr/daddr SUBNET accept
//! ```
//!
//! Applying also sets the sysctls this needs, in the daemon's namespace:
//! `net.ipv4.ip_forward = 1`, and `route_localnet = 1` on a bridge with a
//! nat mapping reachable on loopback (as Docker does for
//! `--userland-proxy=false`). Blocking: runs on blocking threads.

use std::collections::BTreeMap;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::nft::{BaseChain, Batch, Expr, Hook, Nft};
use super::owner::Owner;
use super::Error;
use crate::config::{PortMapping, Protocol, Subnet};

/// Prefix of every table nsvisor creates.
const TABLE_PREFIX: &str = "nsvisor_";

/// The chains of the table.
const CHAINS: [BaseChain; 4] = [
    BaseChain {
        name: "prerouting",
        kind: "nat",
        hook: Hook::Prerouting,
        priority: -100,
    },
    BaseChain {
        name: "output",
        kind: "nat",
        hook: Hook::Output,
        priority: -100,
    },
    BaseChain {
        name: "postrouting",
        kind: "nat",
        hook: Hook::Postrouting,
        priority: 100,
    },
    BaseChain {
        name: "forward",
        kind: "filter",
        hook: Hook::Forward,
        priority: 0,
    },
];

/// A network in use by at least one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetUse {
    /// Its bridge.
    pub bridge: String,
    /// Its subnet.
    pub subnet: Subnet,
    /// Whether its traffic to other interfaces is masqueraded.
    pub masquerade: bool,
}

/// A `nat` mapping of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NatPort {
    /// Network of the sandbox.
    pub network: String,
    /// Host address (`0.0.0.0`: every address of the host).
    pub host_ip: Ipv4Addr,
    /// Host port.
    pub host_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Sandbox address.
    pub address: Ipv4Addr,
    /// Port inside the sandbox.
    pub port: u16,
}

impl NatPort {
    /// The kernel form of `mapping` of a sandbox at `address` on `network`;
    /// `None` for an IPv6 host address (refused by the config).
    pub fn of(mapping: &PortMapping, network: &str, address: Ipv4Addr) -> Option<NatPort> {
        let std::net::IpAddr::V4(host_ip) = mapping.host_ip else {
            return None;
        };
        Some(NatPort {
            network: network.to_string(),
            host_ip,
            host_port: mapping.host_port,
            proto: match mapping.protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
            },
            address,
            port: mapping.port,
        })
    }
}

/// What the table must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Networks in use, by name.
    pub networks: BTreeMap<String, NetUse>,
    /// Every nat mapping.
    pub ports: Vec<NatPort>,
}

impl Wanted {
    /// Whether no table is needed at all.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty() && !self.networks.values().any(|n| n.masquerade)
    }

    /// Networks that need rules: masquerading, or with nat mappings.
    fn active(&self) -> impl Iterator<Item = (&String, &NetUse, bool)> {
        self.networks.iter().filter_map(|(name, n)| {
            let mapped = self.ports.iter().any(|p| &p.network == name);
            (n.masquerade || mapped).then_some((name, n, mapped))
        })
    }
}

/// The table of daemon `owner`.
pub fn table_name(owner: Owner) -> String {
    format!("{TABLE_PREFIX}{}_{}", owner.pid, owner.start)
}

/// The owner of a table named by [`table_name`]; `None` for other tables.
fn table_owner(name: &str) -> Option<Owner> {
    let (pid, start) = name.strip_prefix(TABLE_PREFIX)?.split_once('_')?;
    Some(Owner {
        pid: pid.parse().ok()?,
        start: start.parse().ok()?,
    })
}

/// The rules of `wanted`: `(chain, expressions)` in order.
pub fn rules(wanted: &Wanted) -> Vec<(&'static str, Vec<Expr>)> {
    let subnet = |dest: bool, s: &Subnet| Expr::Address {
        dest,
        addr: s.network(),
        prefix: s.prefix(),
    };
    let oif = |name: &str, negate: bool| Expr::OutInterface {
        name: name.to_string(),
        negate,
    };
    let mut out = Vec::new();
    for p in &wanted.ports {
        let dest = if p.host_ip.is_unspecified() {
            Expr::DestIsLocal
        } else {
            Expr::Address {
                dest: true,
                addr: p.host_ip,
                prefix: 32,
            }
        };
        let rule = vec![
            dest,
            Expr::DestPort {
                proto: p.proto,
                port: p.host_port,
            },
            Expr::Dnat {
                addr: p.address,
                port: p.port,
            },
        ];
        out.push(("prerouting", rule.clone()));
        out.push(("output", rule));
    }
    for (_, n, mapped) in wanted.active() {
        if n.masquerade {
            out.push((
                "postrouting",
                vec![
                    subnet(false, &n.subnet),
                    oif(&n.bridge, true),
                    Expr::Masquerade,
                ],
            ));
        }
        if mapped {
            let loopback = Subnet::containing(Ipv4Addr::new(127, 0, 0, 0), 8);
            for from in [n.subnet, loopback] {
                out.push((
                    "postrouting",
                    vec![
                        subnet(false, &from),
                        oif(&n.bridge, false),
                        Expr::Masquerade,
                    ],
                ));
            }
        }
        for dest in [false, true] {
            out.push(("forward", vec![subnet(dest, &n.subnet), Expr::Accept]));
        }
    }
    out
}

/// The batch that turns the table from what it is (`exists`) into `wanted`.
fn batch(table: &str, wanted: &Wanted, exists: bool) -> Batch {
    let mut b = Batch::new();
    if exists {
        b.delete_table(table);
    }
    if !wanted.is_empty() {
        b.add_table(table);
        for chain in &CHAINS {
            b.add_chain(table, chain);
        }
        for (chain, exprs) in rules(wanted) {
            b.add_rule(table, chain, &exprs);
        }
    }
    b
}

/// Makes table `table` hold `wanted` (removes it when `wanted` is empty);
/// `exists` says whether it exists now. Sets the sysctls first. On error
/// the table is as it was.
pub fn apply(table: &str, wanted: &Wanted, exists: bool) -> Result<(), Error> {
    if !wanted.is_empty() {
        sysctl(PathBuf::from("/proc/sys/net/ipv4/ip_forward"))?;
        for (_, n, _) in wanted.active() {
            let loopback = wanted.ports.iter().any(|p| {
                wanted.networks.get(&p.network) == Some(n)
                    && (p.host_ip.is_unspecified() || p.host_ip.is_loopback())
            });
            if loopback {
                let path = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", n.bridge);
                sysctl(PathBuf::from(path))?;
            }
        }
    }
    let mut nft = open(table)?;
    nft.commit(&batch(table, wanted, exists))
        .map_err(|r| Error::Firewall {
            table: table.to_string(),
            what: r.what,
            source: r.source,
        })
}

/// Removes the tables of daemons that no longer run; returns what was removed.
pub fn cleanup() -> (Vec<String>, Vec<Error>) {
    let mut nft = match Nft::open() {
        Ok(nft) => nft,
        // No nf_tables: there can be no table to remove.
        Err(_) => return (Vec::new(), Vec::new()),
    };
    let tables = match nft.tables() {
        Ok(tables) => tables,
        Err(e) if is_missing(&e) => return (Vec::new(), Vec::new()),
        Err(source) => {
            let e = Error::Firewall {
                table: format!("{TABLE_PREFIX}*"),
                what: "list tables".into(),
                source,
            };
            return (Vec::new(), vec![e]);
        }
    };
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for table in tables {
        if table_owner(&table).is_none_or(|o| o.is_alive()) {
            continue;
        }
        let mut b = Batch::new();
        b.delete_table(&table);
        match nft.commit(&b) {
            Ok(()) => removed.push(format!("nftables table ip {table}")),
            Err(r) => errors.push(Error::Firewall {
                table,
                what: r.what,
                source: r.source,
            }),
        }
    }
    (removed, errors)
}

/// Whether the kernel can hold nsvisor's table: builds one with every kind
/// of rule and deletes it in the same transaction, so nothing is ever seen.
pub fn probe(owner: Owner) -> Result<(), Error> {
    let table = format!("{}_probe", table_name(owner));
    let mut wanted = Wanted::default();
    let subnet = Subnet::containing(Ipv4Addr::new(192, 0, 2, 0), 24);
    wanted.networks.insert(
        "probe".into(),
        NetUse {
            bridge: "nsvprobe".into(),
            subnet,
            masquerade: true,
        },
    );
    wanted.ports.push(NatPort {
        network: "probe".into(),
        host_ip: Ipv4Addr::UNSPECIFIED,
        host_port: 1,
        proto: 6,
        address: Ipv4Addr::new(192, 0, 2, 2),
        port: 1,
    });
    let mut b = batch(&table, &wanted, false);
    b.delete_table(&table);
    open(&table)?.commit(&b).map_err(|r| Error::Firewall {
        table,
        what: r.what,
        source: r.source,
    })
}

fn open(table: &str) -> Result<Nft, Error> {
    Nft::open().map_err(|source| Error::Firewall {
        table: table.to_string(),
        what: "open a netfilter netlink socket".into(),
        source,
    })
}

/// Errnos that mean the kernel has no nf_tables (or not the part needed).
pub fn is_missing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPROTONOSUPPORT | libc::EOPNOTSUPP | libc::ENOENT | libc::EAFNOSUPPORT)
    )
}

/// Writes `1` to `path` unless it holds `1` already.
fn sysctl(path: PathBuf) -> Result<(), Error> {
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(&path, "1").map_err(|source| Error::Sysctl { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(masquerade: bool) -> NetUse {
        NetUse {
            bridge: "nsvbr0".into(),
            subnet: Subnet::containing(Ipv4Addr::new(172, 20, 0, 0), 24),
            masquerade,
        }
    }

    fn port(host_ip: [u8; 4]) -> NatPort {
        NatPort {
            network: "front".into(),
            host_ip: host_ip.into(),
            host_port: 8080,
            proto: 6,
            address: Ipv4Addr::new(172, 20, 0, 2),
            port: 80,
        }
    }

    fn wanted(masquerade: bool, ports: Vec<NatPort>) -> Wanted {
        Wanted {
            networks: [("front".to_string(), net(masquerade))].into(),
            ports,
        }
    }

    #[test]
    fn table_names_carry_their_owner() {
        let owner = Owner {
            pid: 42,
            start: 9001,
        };
        assert_eq!(table_name(owner), "nsvisor_42_9001");
        assert_eq!(table_owner("nsvisor_42_9001"), Some(owner));
        for other in [
            "filter",
            "nat",
            "nsvisor",
            "nsvisor_42",
            "nsvisor_a_1",
            "docker_1_2",
        ] {
            assert_eq!(table_owner(other), None, "{other}");
        }
    }

    #[test]
    fn no_masquerade_and_no_nat_port_needs_no_table() {
        assert!(wanted(false, vec![]).is_empty());
        assert!(rules(&wanted(false, vec![])).is_empty());
        assert!(batch("t", &wanted(false, vec![]), false).is_empty());
        assert!(!wanted(true, vec![]).is_empty());
        assert!(!wanted(false, vec![port([0; 4])]).is_empty());
    }

    #[test]
    fn masquerade_is_for_traffic_leaving_through_other_interfaces() {
        let r = rules(&wanted(true, vec![]));
        let subnet = |dest| Expr::Address {
            dest,
            addr: Ipv4Addr::new(172, 20, 0, 0),
            prefix: 24,
        };
        assert_eq!(
            r,
            [
                (
                    "postrouting",
                    vec![
                        subnet(false),
                        Expr::OutInterface {
                            name: "nsvbr0".into(),
                            negate: true
                        },
                        Expr::Masquerade
                    ]
                ),
                ("forward", vec![subnet(false), Expr::Accept]),
                ("forward", vec![subnet(true), Expr::Accept]),
            ]
        );
    }

    #[test]
    fn a_nat_port_is_mapped_for_outside_and_the_host_and_masqueraded_for_hairpin_and_loopback() {
        let r = rules(&wanted(false, vec![port([0; 4]), port([192, 0, 2, 7])]));
        let chains: Vec<&str> = r.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            chains,
            [
                "prerouting",
                "output",
                "prerouting",
                "output",
                "postrouting",
                "postrouting",
                "forward",
                "forward"
            ]
        );
        let dnat = Expr::Dnat {
            addr: Ipv4Addr::new(172, 20, 0, 2),
            port: 80,
        };
        let tcp = Expr::DestPort {
            proto: 6,
            port: 8080,
        };
        assert_eq!(r[0].1, [Expr::DestIsLocal, tcp.clone(), dnat.clone()]);
        let seven = Expr::Address {
            dest: true,
            addr: Ipv4Addr::new(192, 0, 2, 7),
            prefix: 32,
        };
        assert_eq!(r[2].1, [seven, tcp, dnat]);
        // No egress masquerade: only traffic that goes back out the bridge.
        for (_, exprs) in &r[4..6] {
            assert!(exprs.contains(&Expr::OutInterface {
                name: "nsvbr0".into(),
                negate: false
            }));
        }
        assert_eq!(
            r[5].1[0],
            Expr::Address {
                dest: false,
                addr: Ipv4Addr::new(127, 0, 0, 0),
                prefix: 8
            }
        );
    }

    #[test]
    fn the_table_is_replaced_in_one_batch() {
        let w = wanted(true, vec![]);
        assert!(!batch("t", &w, true).is_empty());
        assert!(!batch("t", &Wanted::default(), true).is_empty());
        assert!(batch("t", &Wanted::default(), false).is_empty());
    }

    /// In a private network namespace (root, and `nft` to read it back):
    /// the table `nft` lists is the one meant, and it goes away again.
    #[test]
    fn applies_a_table_nft_can_read_and_removes_it_in_a_private_namespace() {
        let have_nft = std::process::Command::new("nft")
            .arg("--version")
            .output()
            .is_ok();
        if !crate::net::has_privileges() || !have_nft {
            eprintln!("skipped: needs root and nft");
            return;
        }
        std::thread::spawn(|| {
            crate::sys::unshare_netns().expect("unshare");
            let w = wanted(true, vec![port([0; 4]), port([127, 0, 0, 1])]);
            // route_localnet needs the bridge: have the loopback rules only
            // once it exists; here the masquerade and DNAT rules are enough.
            let mut nft = Nft::open().unwrap();
            nft.commit(&batch("nsvisor_1_2", &w, false)).unwrap();
            let listed = std::process::Command::new("nft")
                .args(["list", "table", "ip", "nsvisor_1_2"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&listed.stdout).into_owned();
            for line in [
                "type nat hook prerouting priority dstnat; policy accept;",
                "fib daddr type local tcp dport 8080 dnat to 172.20.0.2:80",
                "ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.20.0.2:80",
                "ip saddr 172.20.0.0/24 oifname != \"nsvbr0\" masquerade",
                "ip saddr 127.0.0.0/8 oifname \"nsvbr0\" masquerade",
                "ip daddr 172.20.0.0/24 accept",
            ] {
                assert!(text.contains(line), "{line:?} not in:\n{text}");
            }
            assert_eq!(nft.tables().unwrap(), ["nsvisor_1_2"]);
            nft.commit(&batch("nsvisor_1_2", &Wanted::default(), true))
                .unwrap();
            assert!(nft.tables().unwrap().is_empty());
            probe(Owner { pid: 1, start: 2 }).expect("the probe passes");
            assert!(nft.tables().unwrap().is_empty(), "the probe left nothing");
        })
        .join()
        .unwrap();
    }
}
