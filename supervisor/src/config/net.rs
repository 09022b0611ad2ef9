//! `[networks.NAME]` tables → [`NetworkConfig`]: bridge name, subnet,
//! gateway, and the checks between networks (overlapping subnets, shared
//! bridges). Also the IPv4 subnet arithmetic the sandbox checks use.
//!
//! Nothing here looks at the host (routes, existing bridges): that is the
//! network module's job at start.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::error::Diag;
use super::raw::{Loc, Value};
use super::read::Reader;
use super::units::{self, Conv};
use super::validate::Defined;
use super::NetworkConfig;

const KEYS: &[&str] = &["bridge", "subnet", "gateway"];

/// Valid networks, and the names of every network defined (valid or not).
pub(super) struct Networks {
    pub valid: BTreeMap<String, NetworkConfig>,
    pub defined: BTreeSet<String>,
}

/// Reads every `[networks.NAME]` and checks them against each other.
pub(super) fn read_networks(diag: &mut Diag, defs: &[Defined]) -> Networks {
    let mut valid: BTreeMap<String, NetworkConfig> = BTreeMap::new();
    let mut locs: BTreeMap<String, (Loc, Loc)> = BTreeMap::new();
    for def in defs {
        if let Err(e) = units::check_name(&def.name) {
            diag.error(def.key_loc, None, format!("network name: {e}"));
            continue;
        }
        let Value::Table(table) = &def.node.value else {
            let found = units::describe(&def.node);
            let msg = format!("expected a table [networks.{}], found {found}", def.name);
            diag.error(def.node.loc, None, msg);
            continue;
        };
        let section = format!("[networks.{}]", def.name);
        let mut r = Reader::new(diag, table, &section, KEYS, None);
        let bridge = match r.node("bridge") {
            Some(node) => r.check(
                "bridge",
                node,
                units::string(node).and_then(|b| bridge_name(&b)),
            ),
            None => {
                let default = format!("nsv-{}", def.name);
                let ok = bridge_name(&default).ok();
                if ok.is_none() {
                    let msg = format!("bridge: missing, and the default \"{default}\" is longer than 15 bytes; set bridge = \"...\"");
                    r.error(def.node.loc, msg);
                }
                ok
            }
        };
        let subnet = match r.node("subnet") {
            Some(_) => r.get("subnet", |n| units::string(n).and_then(|s| parse_cidr(&s))),
            None => {
                r.error(
                    def.node.loc,
                    "subnet: missing (e.g. subnet = \"172.20.0.0/24\")".into(),
                );
                None
            }
        };
        let (Some(bridge), Some((subnet, prefix))) = (bridge, subnet) else {
            continue;
        };
        let range = Range::new(subnet, prefix);
        let gateway = match r.node("gateway") {
            None => Some(range.last_usable()),
            Some(node) => {
                let gw = units::string(node).and_then(|s| {
                    let ip = parse_ipv4(&s)?;
                    range.check_host(ip, &def.name)?;
                    Ok(ip)
                });
                r.check("gateway", node, gw)
            }
        };
        let Some(gateway) = gateway else { continue };
        let subnet_loc = r.node("subnet").map_or(def.node.loc, |n| n.loc);
        let bridge_loc = r.node("bridge").map_or(def.node.loc, |n| n.loc);
        for (other, net) in &valid {
            if Range::new(net.subnet, net.prefix).overlaps(&range) {
                let msg = format!(
                    "subnet: {subnet}/{prefix} overlaps network \"{other}\" ({}/{})",
                    net.subnet, net.prefix
                );
                diag.error(subnet_loc, None, msg);
            }
            if net.bridge == bridge {
                let msg = format!("bridge: \"{bridge}\" is also the bridge of network \"{other}\"");
                diag.error(bridge_loc, None, msg);
            }
        }
        locs.insert(def.name.clone(), (subnet_loc, bridge_loc));
        valid.insert(
            def.name.clone(),
            NetworkConfig {
                name: def.name.clone(),
                bridge,
                subnet,
                prefix,
                gateway,
            },
        );
    }
    Networks {
        valid,
        defined: defs.iter().map(|d| d.name.clone()).collect(),
    }
}

/// Interface names: 1..=15 bytes, no `/`, `:`, whitespace; not `.` or `..`.
fn bridge_name(name: &str) -> Conv<String> {
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "\"{name}\" must be 1 to 15 bytes long (a Linux interface name)"
        ));
    }
    if name == "."
        || name == ".."
        || name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        return Err(format!(
            "\"{name}\" is not a valid interface name (no \"/\", \":\" or spaces)"
        ));
    }
    Ok(name.to_string())
}

pub(super) fn parse_ipv4(s: &str) -> Conv<Ipv4Addr> {
    s.trim()
        .parse()
        .map_err(|_| format!("\"{s}\" is not an IPv4 address"))
}

/// `"a.b.c.d/p"` with p ≤ 30 and no host bits.
fn parse_cidr(s: &str) -> Conv<(Ipv4Addr, u8)> {
    let bad = || format!("\"{s}\" is not an IPv4 subnet like \"172.20.0.0/24\"");
    let (ip, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if prefix > 30 {
        return Err(format!("/{prefix} is too small: the prefix must be at most 30 (room for a gateway and a sandbox)"));
    }
    let range = Range::new(ip, prefix);
    if range.network != u32::from(ip) {
        let net = Ipv4Addr::from(range.network);
        return Err(format!(
            "\"{s}\" has host bits set (did you mean \"{net}/{prefix}\"?)"
        ));
    }
    Ok((ip, prefix))
}

/// An IPv4 subnet as integers.
pub(super) struct Range {
    pub network: u32,
    pub broadcast: u32,
    pub prefix: u8,
}

impl Range {
    pub fn new(ip: Ipv4Addr, prefix: u8) -> Range {
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix))
        };
        let network = u32::from(ip) & mask;
        Range {
            network,
            broadcast: network | !mask,
            prefix,
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.network..=self.broadcast).contains(&u32::from(ip))
    }

    pub fn overlaps(&self, other: &Range) -> bool {
        self.network <= other.broadcast && other.network <= self.broadcast
    }

    pub fn last_usable(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.broadcast - 1)
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }

    /// A usable host address of this subnet (not network, not broadcast).
    pub fn check_host(&self, ip: Ipv4Addr, network: &str) -> Conv<()> {
        if !self.contains(ip) {
            return Err(format!(
                "{ip} is outside network \"{network}\" ({})",
                self.cidr()
            ));
        }
        if u32::from(ip) == self.network {
            return Err(format!("{ip} is the network address of {}", self.cidr()));
        }
        if u32::from(ip) == self.broadcast {
            return Err(format!("{ip} is the broadcast address of {}", self.cidr()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(
            parse_cidr("172.20.0.0/24"),
            Ok((Ipv4Addr::new(172, 20, 0, 0), 24))
        );
        assert!(parse_cidr("172.20.0.1/24")
            .unwrap_err()
            .contains("did you mean \"172.20.0.0/24\""));
        assert!(parse_cidr("10.0.0.0/31")
            .unwrap_err()
            .contains("at most 30"));
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        let r = Range::new(Ipv4Addr::new(10, 0, 0, 0), 24);
        assert_eq!(r.last_usable(), Ipv4Addr::new(10, 0, 0, 254));
        assert!(r.overlaps(&Range::new(Ipv4Addr::new(10, 0, 0, 0), 16)));
        assert!(!r.overlaps(&Range::new(Ipv4Addr::new(10, 0, 1, 0), 24)));
    }

    #[test]
    fn bridge_names() {
        assert!(bridge_name("nsv0").is_ok());
        assert!(bridge_name("a-very-long-bridge").is_err());
        assert!(bridge_name("br/0").is_err());
        assert!(bridge_name("br 0").is_err());
        assert!(bridge_name("br:0").is_err());
        assert!(bridge_name("").is_err());
    }
}
