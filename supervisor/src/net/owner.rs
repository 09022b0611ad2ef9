//! Which daemon created a network object, so a restarted daemon can tell its
//! crashed predecessor's leftovers from objects a live daemon (or the user)
//! still uses.
//!
//! An owner is a process id plus its start time (field 22 of
//! `/proc/PID/stat`), so a reused pid never passes for the old daemon.
//! Interfaces carry the owner in their alias (`IFLA_IFALIAS`, shown by
//! `ip link`): `nsvisor owner=1234.98765 sandbox=web`. Named namespaces carry
//! it in a mark file `/run/nsvisor/net/NETNS.owner`, written *before* the
//! namespace is created and removed after it is gone, so a namespace without
//! a mark was never nsvisor's and is never removed.
//!
//! Everything here but [`Owner::current`], [`Owner::is_alive`] and the mark
//! file functions is pure.

use std::io;
use std::path::{Path, PathBuf};

/// Directory of the namespace mark files.
pub const MARK_DIR: &str = "/run/nsvisor/net";

/// Prefix of every alias nsvisor writes.
const ALIAS_PREFIX: &str = "nsvisor ";

/// The daemon that created an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Start time in clock ticks since boot.
    pub start: u64,
}

/// What an nsvisor alias says about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The daemon that created it.
    pub owner: Owner,
    /// `sandbox=NAME` or `network=NAME`.
    pub role: Role,
}

/// What an interface is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Host end of a sandbox's veth pair.
    Sandbox(String),
    /// A bridge created for a network.
    Network(String),
}

impl Owner {
    /// This process.
    pub fn current() -> io::Result<Owner> {
        let pid = std::process::id();
        Owner::of(pid)?.ok_or_else(|| io::Error::other("cannot read /proc/self/stat"))
    }

    /// The process `pid` as it is now, `None` when there is none.
    fn of(pid: u32) -> io::Result<Option<Owner>> {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => Ok(parse_start_time(&stat).map(|start| Owner { pid, start })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether this daemon still runs (same pid, same start time).
    pub fn is_alive(self) -> bool {
        // An unreadable /proc counts as alive: never remove what might be in use.
        Owner::of(self.pid).map_or(true, |now| now == Some(self))
    }

    /// `PID.START`, as written in aliases and mark files.
    pub fn token(self) -> String {
        format!("{}.{}", self.pid, self.start)
    }

    /// Parses [`Owner::token`].
    pub fn parse(token: &str) -> Option<Owner> {
        let (pid, start) = token.trim().split_once('.')?;
        Some(Owner {
            pid: pid.parse().ok()?,
            start: start.parse().ok()?,
        })
    }

    /// The alias of an interface this daemon creates.
    pub fn alias(self, role: &Role) -> String {
        let role = match role {
            Role::Sandbox(name) => format!("sandbox={name}"),
            Role::Network(name) => format!("network={name}"),
        };
        format!("{ALIAS_PREFIX}owner={} {role}", self.token())
    }
}

/// Reads an alias written by [`Owner::alias`]; `None` for any other alias.
pub fn parse_alias(alias: &str) -> Option<Mark> {
    let rest = alias.strip_prefix(ALIAS_PREFIX)?;
    let (owner, role) = rest.split_once(' ')?;
    let owner = Owner::parse(owner.strip_prefix("owner=")?)?;
    let role = if let Some(name) = role.strip_prefix("sandbox=") {
        Role::Sandbox(name.to_string())
    } else {
        Role::Network(role.strip_prefix("network=")?.to_string())
    };
    Some(Mark { owner, role })
}

/// Field 22 (starttime) of a `/proc/PID/stat` line. The command name (field
/// 2) may hold spaces and parentheses, so fields are counted after the last `)`.
fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Path of the mark file of namespace `netns`.
pub fn mark_path(dir: &Path, netns: &str) -> PathBuf {
    dir.join(format!("{netns}.owner"))
}

/// Writes the mark of namespace `netns`.
pub fn write_mark(dir: &Path, netns: &str, owner: Owner) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(mark_path(dir, netns), owner.token() + "\n")
}

/// The owner recorded for namespace `netns`, `None` when it has no mark.
pub fn read_mark(dir: &Path, netns: &str) -> io::Result<Option<Owner>> {
    match std::fs::read_to_string(mark_path(dir, netns)) {
        Ok(text) => Ok(Owner::parse(&text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes the mark of namespace `netns` (absent is fine).
pub fn remove_mark(dir: &Path, netns: &str) -> io::Result<()> {
    match std::fs::remove_file(mark_path(dir, netns)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: Owner = Owner {
        pid: 4321,
        start: 987654,
    };

    #[test]
    fn alias_round_trips() {
        for role in [Role::Sandbox("web".into()), Role::Network("front".into())] {
            let alias = OWNER.alias(&role);
            assert!(alias.starts_with("nsvisor owner=4321.987654 "));
            assert_eq!(parse_alias(&alias), Some(Mark { owner: OWNER, role }));
        }
    }

    #[test]
    fn foreign_aliases_are_not_marks() {
        for alias in [
            "",
            "uplink",
            "nsvisor",
            "nsvisor owner=abc sandbox=x",
            "nsvisor owner=1.2 something=x",
            "docker owner=1.2 sandbox=x",
        ] {
            assert_eq!(parse_alias(alias), None, "{alias:?}");
        }
    }

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        let stat = "77 (a) b (c)) S 1 77 77 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 55555 1000 10";
        assert_eq!(parse_start_time(stat), Some(55555));
        assert_eq!(parse_start_time("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_a_changed_start_time_is_not() {
        let me = Owner::current().unwrap();
        assert!(me.is_alive());
        assert!(!Owner {
            start: me.start + 1,
            ..me
        }
        .is_alive());
        assert!(!Owner {
            pid: u32::MAX - 1,
            start: 1
        }
        .is_alive());
    }

    #[test]
    fn marks_round_trip_in_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_mark(dir.path(), "nsvisor-x").unwrap(), None);
        write_mark(dir.path(), "nsvisor-x", OWNER).unwrap();
        assert_eq!(read_mark(dir.path(), "nsvisor-x").unwrap(), Some(OWNER));
        remove_mark(dir.path(), "nsvisor-x").unwrap();
        remove_mark(dir.path(), "nsvisor-x").unwrap();
        assert_eq!(read_mark(dir.path(), "nsvisor-x").unwrap(), None);
    }
}
