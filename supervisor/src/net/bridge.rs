//! The bridge of a network: found, or created with the gateway address and
//! brought up; removed when nsvisor created it and no port is left on it.
//!
//! An existing bridge (made by the user, or by another nsvisor) is used as it
//! is and never changed or removed. A bridge nsvisor creates carries its owner
//! mark as alias; before creating one, the subnet is checked against the host
//! routes so a network never shadows a route the host already uses.
//! Blocking: called on blocking threads by the manager.

use super::check::overlapping_route;
use super::guard::Undo;
use super::netlink::{Link, Netlink};
use super::owner::{Owner, Role};
use super::Error;
use crate::config::NetworkConfig;

/// A network's bridge, ready for ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// Interface index.
    pub index: u32,
    /// Whether this call created it.
    pub created: bool,
}

/// Finds the bridge of `network`, or creates it: owner alias, gateway address
/// in the network's subnet, up. A half-made bridge is deleted again.
pub fn ensure(host: &mut Netlink, network: &NetworkConfig, owner: Owner) -> Result<Ready, Error> {
    if let Some(link) = lookup(host, &network.bridge)? {
        return match link.kind.as_deref() {
            Some("bridge") => Ok(Ready {
                index: link.index,
                created: false,
            }),
            kind => Err(Error::NotABridge {
                network: network.name.clone(),
                bridge: network.bridge.clone(),
                kind: kind.unwrap_or("device without a kind").to_string(),
            }),
        };
    }
    if let Some(err) = overlapping_route(host, network)? {
        return Err(err);
    }
    let step = |step: &'static str| {
        move |source| Error::Bridge {
            network: network.name.clone(),
            bridge: network.bridge.clone(),
            step,
            source,
        }
    };
    host.create_bridge(&network.bridge)
        .map_err(step("create"))?;
    let index = lookup(host, &network.bridge)?
        .ok_or_else(|| step("find")(std::io::Error::from_raw_os_error(libc::ENODEV)))?
        .index;
    let undo = Undo::new(|| delete_logged(index, &network.bridge));
    let alias = owner.alias(&Role::Network(network.name.clone()));
    host.set_alias(index, &alias).map_err(step("mark"))?;
    host.add_address(index, network.gateway, network.subnet)
        .map_err(step("give the gateway address to"))?;
    host.set_up(index).map_err(step("bring up"))?;
    undo.commit();
    Ok(Ready {
        index,
        created: true,
    })
}

/// Deletes bridge `name` unless an interface is still a port of it. Returns
/// whether it was deleted (a bridge that is gone already counts as deleted).
pub fn remove_if_unused(host: &mut Netlink, name: &str) -> Result<bool, Error> {
    let Some(bridge) = lookup(host, name)? else {
        return Ok(true);
    };
    let links = host.links().map_err(|source| Error::Netlink {
        what: "listing host interfaces".into(),
        source,
    })?;
    if has_ports(&links, bridge.index) {
        return Ok(false);
    }
    delete(host, bridge.index, name)?;
    Ok(true)
}

/// Whether any of `links` is a port of bridge `index`.
pub fn has_ports(links: &[Link], index: u32) -> bool {
    links.iter().any(|l| l.master == Some(index))
}

/// The interface called `name`, if any.
pub fn lookup(host: &mut Netlink, name: &str) -> Result<Option<Link>, Error> {
    host.link_by_name(name).map_err(|source| Error::Netlink {
        what: format!("looking up interface {name}"),
        source,
    })
}

/// Deletes interface `index` (`name` for messages); gone already is fine.
pub fn delete(host: &mut Netlink, index: u32, name: &str) -> Result<(), Error> {
    match host.delete_link(index) {
        Err(e) if e.raw_os_error() != Some(libc::ENODEV) => Err(Error::DeleteLink {
            name: name.to_string(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Rollback step: deletes interface `index` on a fresh socket, logging failure.
pub fn delete_logged(index: u32, name: &str) {
    let result = Netlink::open()
        .map_err(|source| Error::Netlink {
            what: format!("deleting interface {name}"),
            source,
        })
        .and_then(|mut host| delete(&mut host, index, name));
    if let Err(e) = result {
        tracing::warn!("rollback: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, master: Option<u32>) -> Link {
        Link {
            index,
            name: format!("if{index}"),
            alias: None,
            kind: None,
            master,
        }
    }

    #[test]
    fn a_bridge_with_a_port_is_in_use() {
        let links = [link(1, None), link(7, None), link(9, Some(7))];
        assert!(has_ports(&links, 7));
        assert!(!has_ports(&links, 1));
    }
}
