//! Finds and removes what a crashed (SIGKILLed) daemon left behind, before
//! anything new is created: host veth ends, named namespaces and bridges
//! whose owner mark names a daemon that no longer runs.
//!
//! Only marked objects are candidates (see `owner.rs`): an interface whose
//! alias is not an nsvisor mark, a namespace without a mark file, and
//! anything marked by a daemon that is still running are never touched. A
//! dead daemon's bridge that still has ports (something else was attached to
//! it) is kept and reported in the log. Blocking: runs on a blocking thread.

use std::path::Path;

use super::bridge;
use super::netlink::{Link, Netlink};
use super::netns;
use super::owner::{self, Role};
use super::{Error, NETNS_PREFIX};

/// Removes every leftover; returns what was removed (for the log) and every
/// error met on the way (none stops the rest).
pub fn cleanup(mark_dir: &Path) -> (Vec<String>, Vec<Error>) {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    let mut host = match Netlink::open() {
        Ok(host) => host,
        Err(source) => {
            let what = "opening a socket".into();
            return (removed, vec![Error::Netlink { what, source }]);
        }
    };

    // Host veth ends first: deleting one deletes its pair, even when a
    // process of the crashed run still keeps the namespace alive.
    for (link, role) in dead_marks(&mut host, &mut errors) {
        if let Role::Sandbox(sandbox) = role {
            match bridge::delete(&mut host, link.index, &link.name) {
                Ok(()) => removed.push(format!("veth {} (sandbox {sandbox})", link.name)),
                Err(e) => errors.push(e),
            }
        }
    }

    match netns::list(NETNS_PREFIX) {
        Ok(names) => {
            for name in names {
                match owner::read_mark(mark_dir, &name) {
                    Ok(Some(o)) if !o.is_alive() => match netns::remove(&name) {
                        Ok(()) => removed.push(format!("netns {name}")),
                        Err(source) => errors.push(Error::RemoveNetns {
                            netns: name.clone(),
                            source,
                        }),
                    },
                    Ok(_) => {}
                    Err(source) => errors.push(Error::Mark {
                        path: owner::mark_path(mark_dir, &name),
                        source,
                    }),
                }
            }
        }
        Err(source) => errors.push(Error::RemoveNetns {
            netns: format!("{}/{NETNS_PREFIX}*", netns::NETNS_DIR),
            source,
        }),
    }
    remove_stale_marks(mark_dir, &mut errors);

    let mut kept = Vec::new();
    for (link, role) in dead_marks(&mut host, &mut errors) {
        if let Role::Network(network) = role {
            match bridge::remove_if_unused(&mut host, &link.name) {
                Ok(true) => removed.push(format!("bridge {} (network {network})", link.name)),
                Ok(false) => kept.push(link.name),
                Err(e) => errors.push(e),
            }
        }
    }
    for name in kept {
        tracing::warn!("bridge {name} was left by a crashed nsvisor but still has ports: kept");
    }
    (removed, errors)
}

/// Host interfaces whose alias marks them as created by a daemon that no
/// longer runs.
fn dead_marks(host: &mut Netlink, errors: &mut Vec<Error>) -> Vec<(Link, Role)> {
    let links = match host.links() {
        Ok(links) => links,
        Err(source) => {
            let what = "listing host interfaces".into();
            errors.push(Error::Netlink { what, source });
            return Vec::new();
        }
    };
    links
        .into_iter()
        .filter_map(|link| {
            let mark = owner::parse_alias(link.alias.as_deref()?)?;
            (!mark.owner.is_alive()).then_some((link, mark.role))
        })
        .collect()
}

/// Removes mark files of dead owners whose namespace is gone.
fn remove_stale_marks(mark_dir: &Path, errors: &mut Vec<Error>) {
    let Ok(entries) = std::fs::read_dir(mark_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".owner") else {
            continue;
        };
        let stale = matches!(owner::read_mark(mark_dir, name), Ok(Some(o)) if !o.is_alive())
            && !netns::path(name).exists();
        if stale {
            if let Err(source) = owner::remove_mark(mark_dir, name) {
                errors.push(Error::Mark {
                    path: owner::mark_path(mark_dir, name),
                    source,
                });
            }
        }
    }
}
