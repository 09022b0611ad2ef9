//! `[networks.NAME]` tables → [`NetworkConfig`]: bridge name, subnet,
//! gateway, masquerade (default on, as with Docker's bridge), and the checks between networks (overlapping subnets, shared
//! bridges). The subnet is parsed here, once, into a [`Subnet`] (whose
//! arithmetic lives in `subnet.rs`); this file only adds the config's rules
//! (at most /30, which host addresses a gateway or sandbox may take) and
//! their messages.
//!
//! Nothing here looks at the host (routes, existing bridges): that is the
//! network module's job at start.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::error::Diag;
use super::raw::{Loc, Value};
use super::read::Reader;
use super::subnet::{ParseSubnetError, Subnet};
use super::units::{self, Conv};
use super::validate::Defined;
use super::NetworkConfig;

const KEYS: &[&str] = &["bridge", "subnet", "gateway", "masquerade"];

/// Longest prefix of a network: room for a gateway and a sandbox.
const MAX_PREFIX: u8 = 30;

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
            Some(_) => r.get("subnet", |n| {
                units::string(n).and_then(|s| parse_subnet(&s))
            }),
            None => {
                r.error(
                    def.node.loc,
                    "subnet: missing (e.g. subnet = \"172.20.0.0/24\")".into(),
                );
                None
            }
        };
        let (Some(bridge), Some(subnet)) = (bridge, subnet) else {
            continue;
        };
        let gateway = match r.node("gateway") {
            // Always there: the prefix is at most /30.
            None => subnet.gateway(),
            Some(node) => {
                let gw = units::string(node).and_then(|s| {
                    let ip = parse_ipv4(&s)?;
                    check_host(&subnet, ip, &def.name)?;
                    Ok(ip)
                });
                r.check("gateway", node, gw)
            }
        };
        let Some(gateway) = gateway else { continue };
        let masquerade = r.get("masquerade", units::boolean).unwrap_or(true);
        let subnet_loc = r.node("subnet").map_or(def.node.loc, |n| n.loc);
        let bridge_loc = r.node("bridge").map_or(def.node.loc, |n| n.loc);
        for (other, net) in &valid {
            if net.subnet.overlaps(&subnet) {
                let msg = format!(
                    "subnet: {subnet} overlaps network \"{other}\" ({})",
                    net.subnet
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
                gateway,
                masquerade,
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
fn parse_subnet(s: &str) -> Conv<Subnet> {
    Subnet::parse_with_max_prefix(s, MAX_PREFIX).map_err(|e| match e {
        ParseSubnetError::PrefixTooLong { prefix, .. } => format!(
            "/{prefix} is too small: the prefix must be at most {MAX_PREFIX} (room for a gateway and a sandbox)"
        ),
        e => e.to_string(),
    })
}

/// `ip` is a usable host address of `subnet` (not its network or broadcast
/// address); `network` names it in messages.
pub(super) fn check_host(subnet: &Subnet, ip: Ipv4Addr, network: &str) -> Conv<()> {
    if !subnet.contains(ip) {
        return Err(format!("{ip} is outside network \"{network}\" ({subnet})"));
    }
    if ip == subnet.network() {
        return Err(format!("{ip} is the network address of {subnet}"));
    }
    if ip == subnet.broadcast() {
        return Err(format!("{ip} is the broadcast address of {subnet}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        assert_eq!(
            parse_subnet("172.20.0.0/24").map(|n| (n.network(), n.prefix())),
            Ok((Ipv4Addr::new(172, 20, 0, 0), 24))
        );
        assert_eq!(
            parse_subnet("172.20.0.1/24"),
            Err("\"172.20.0.1/24\" has host bits set (did you mean \"172.20.0.0/24\"?)".into())
        );
        let too_small = |p: u8| {
            Err(format!(
                "/{p} is too small: the prefix must be at most 30 (room for a gateway and a sandbox)"
            ))
        };
        assert_eq!(parse_subnet("10.0.0.0/31"), too_small(31));
        assert_eq!(parse_subnet("10.0.0.1/31"), too_small(31));
        assert_eq!(parse_subnet("10.0.0.0/33"), too_small(33));
        assert_eq!(
            parse_subnet("10.0.0.0"),
            Err("\"10.0.0.0\" is not an IPv4 subnet like \"172.20.0.0/24\"".into())
        );
    }

    #[test]
    fn host_addresses() {
        let n = parse_subnet("10.0.0.0/24").expect("valid");
        assert_eq!(check_host(&n, Ipv4Addr::new(10, 0, 0, 7), "a"), Ok(()));
        assert_eq!(
            check_host(&n, Ipv4Addr::new(10, 0, 1, 7), "a"),
            Err("10.0.1.7 is outside network \"a\" (10.0.0.0/24)".into())
        );
        assert_eq!(
            check_host(&n, Ipv4Addr::new(10, 0, 0, 0), "a"),
            Err("10.0.0.0 is the network address of 10.0.0.0/24".into())
        );
        assert_eq!(
            check_host(&n, Ipv4Addr::new(10, 0, 0, 255), "a"),
            Err("10.0.0.255 is the broadcast address of 10.0.0.0/24".into())
        );
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
