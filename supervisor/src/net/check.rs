//! Checks made against the host before any network object is created (at
//! start, on reload, by `nsvisor check`): the daemon has the capabilities
//! namespaces and netlink need, and no network's subnet overlaps a route the
//! host already has (which would make part of the host's network unreachable
//! or ambiguous), an overlap decided by [`Subnet::overlaps`] on the prefixes
//! (never a text match), and, when a network masquerades or a port is mapped
//! in `nat` mode, that the kernel can hold nsvisor's nftables table (a probe
//! table built and deleted in one transaction). Config-only checks (unknown network, duplicate
//! address, overlapping subnets, port conflicts) are made by `config/validate.rs`.
//!
//! [`Subnet::overlaps`]: crate::config::Subnet::overlaps

use std::collections::BTreeMap;

use super::nat;
use super::netlink::{Netlink, Route};
use super::owner::Owner;
use super::Error;
use crate::config::{Config, NetworkConfig, PortMode, ProgramNet};

/// `CAP_NET_ADMIN`: create links, addresses, routes.
const CAP_NET_ADMIN: u32 = 12;
/// `CAP_SYS_ADMIN`: `setns`, `unshare(CLONE_NEWNET)`, mounts.
const CAP_SYS_ADMIN: u32 = 21;

/// Everything [`check_privileges`] and the route checks find, all at once.
pub async fn check_host(config: &Config) -> Result<(), Vec<Error>> {
    let mut errors = Vec::new();
    if let Err(e) = check_privileges(config) {
        errors.push(e);
    }
    if needs_nat(config) && has_privileges() {
        let probed = tokio::task::spawn_blocking(|| match Owner::current() {
            Ok(owner) => nat::probe(owner),
            Err(_) => Ok(()),
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        errors.extend(probed.err());
    }
    let networks: Vec<NetworkConfig> = config.networks.values().cloned().collect();
    if !networks.is_empty() {
        let found = tokio::task::spawn_blocking(move || -> Result<Vec<Error>, Error> {
            let mut host = Netlink::open().map_err(|source| Error::Netlink {
                what: "opening a socket".into(),
                source,
            })?;
            let mut found = Vec::new();
            for network in &networks {
                found.extend(overlapping_route(&mut host, network)?);
            }
            Ok(found)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        match found {
            Ok(found) => errors.extend(found),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Fails with one clear error when the config gives programs a network but
/// the daemon lacks `CAP_NET_ADMIN` or `CAP_SYS_ADMIN`.
pub fn check_privileges(config: &Config) -> Result<(), Error> {
    let users: Vec<String> = config
        .programs
        .values()
        .filter(|p| p.net.is_some())
        .map(|p| format!("{:?}", p.name))
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    if has_privileges() {
        return Ok(());
    }
    let what = match users.as_slice() {
        [one] => format!("the network settings of program {one}"),
        many => format!("the network settings of programs {}", many.join(", ")),
    };
    Err(Error::Privileges { what })
}

/// Whether a program needs nsvisor's nftables table: it is on a network
/// that masquerades, or has a `nat` port mapping.
fn needs_nat(config: &Config) -> bool {
    config.programs.values().any(|p| match p.net.as_deref() {
        Some(ProgramNet::Sandbox(spec)) => {
            spec.ports.iter().any(|m| m.mode == PortMode::Nat)
                || config
                    .networks
                    .get(&spec.network)
                    .is_some_and(|n| n.masquerade)
        }
        _ => false,
    })
}

/// Whether this process has the capabilities to manage namespaces and links.
pub fn has_privileges() -> bool {
    let caps = crate::sys::effective_caps().unwrap_or(0);
    has_cap(caps, CAP_NET_ADMIN) && has_cap(caps, CAP_SYS_ADMIN)
}

fn has_cap(caps: u64, cap: u32) -> bool {
    caps & (1 << cap) != 0
}

/// The first host route that overlaps `network`'s subnet, as an error.
/// Default routes and routes through the network's own bridge do not count.
pub fn overlapping_route(
    host: &mut Netlink,
    network: &NetworkConfig,
) -> Result<Option<Error>, Error> {
    let routes = host.routes_v4().map_err(|source| Error::Netlink {
        what: "listing host routes".into(),
        source,
    })?;
    let links = host.links().map_err(|source| Error::Netlink {
        what: "listing host interfaces".into(),
        source,
    })?;
    let names: BTreeMap<u32, String> = links.into_iter().map(|l| (l.index, l.name)).collect();
    let own_bridge = names
        .iter()
        .find(|(_, name)| **name == network.bridge)
        .map(|(index, _)| *index);
    Ok(
        first_conflict(&routes, network, own_bridge).map(|r| Error::SubnetOverlapsRoute {
            network: network.name.clone(),
            subnet: network.subnet.to_string(),
            route: r.destination.to_string(),
            dev: r
                .oif
                .and_then(|i| names.get(&i).cloned())
                .unwrap_or_else(|| "none".into()),
        }),
    )
}

/// Pure part of [`overlapping_route`].
fn first_conflict<'a>(
    routes: &'a [Route],
    network: &NetworkConfig,
    own_bridge: Option<u32>,
) -> Option<&'a Route> {
    routes.iter().find(|r| {
        r.destination.prefix() > 0
            && (own_bridge.is_none() || r.oif != own_bridge)
            && r.destination.overlaps(&network.subnet)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Subnet;

    fn subnet(s: &str) -> Subnet {
        Subnet::parse(s).unwrap()
    }

    fn route(dst: &str, oif: u32) -> Route {
        Route {
            destination: subnet(dst),
            oif: Some(oif),
        }
    }

    fn network() -> NetworkConfig {
        NetworkConfig {
            name: "front".into(),
            bridge: "nsvbr0".into(),
            subnet: subnet("172.20.0.0/24"),
            gateway: "172.20.0.1".parse().unwrap(),
            masquerade: true,
        }
    }

    #[test]
    fn default_routes_and_the_own_bridge_do_not_conflict() {
        let routes = [
            route("0.0.0.0/0", 2),
            route("192.0.2.0/24", 2),
            route("172.20.0.0/24", 9),
        ];
        assert_eq!(first_conflict(&routes, &network(), Some(9)), None);
        assert_eq!(
            first_conflict(&routes, &network(), Some(3)),
            Some(&routes[2])
        );
        assert_eq!(first_conflict(&routes, &network(), None), Some(&routes[2]));
        let wide = [route("172.16.0.0/12", 4)];
        assert_eq!(first_conflict(&wide, &network(), None), Some(&wide[0]));
    }

    #[test]
    fn capability_bits() {
        let caps = (1 << CAP_NET_ADMIN) | (1 << CAP_SYS_ADMIN);
        assert!(has_cap(caps, CAP_NET_ADMIN) && has_cap(caps, CAP_SYS_ADMIN));
        assert!(!has_cap(1 << CAP_NET_ADMIN, CAP_SYS_ADMIN));
    }

    #[test]
    fn privilege_error_names_the_programs() {
        let e = Error::Privileges {
            what: "the network settings of program \"web\"".into(),
        };
        assert_eq!(
            e.to_string(),
            "the network settings of program \"web\" need CAP_NET_ADMIN and CAP_SYS_ADMIN, \
             which this process does not have: run nsvisor as root \
             (in a container: --cap-add NET_ADMIN --cap-add SYS_ADMIN)"
        );
    }
}
