//! Who may talk to the daemon, and how much: the peer-credential check of
//! every connection.
//!
//! The kernel tells us the uid/gid of the process that connected
//! (`SO_PEERCRED`) and its supplementary groups (`SO_PEERGROUPS`). Root and the
//! daemon's own uid always get full control ([`Level::Control`]); so does a
//! uid in `allowed_uids`, or a client with one of `allowed_gids` among its
//! primary or supplementary groups. Failing that, a uid in `read_only_uids` or
//! a group in `read_only_gids` gets [`Level::Read`]; anyone else is refused.
//! The level holds for the whole connection: `routes.rs` compares it with
//! what each endpoint needs ([`nsvisor_proto::Route::level`]), the XML-RPC
//! front end with what each method needs. Refused peers get a 403 answer
//! from `server.rs`, never a silent close.

use std::os::fd::AsFd;

use nix::unistd::Uid;
use nsvisor_proto::Level;
use tokio::net::UnixStream;

use crate::config::SupervisorConfig;
use crate::sys;

/// The access policy of the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    own_uid: u32,
    control: Ids,
    read: Ids,
}

/// Uids and gids granted one level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ids {
    /// User ids.
    pub uids: Vec<u32>,
    /// Group ids (primary or supplementary).
    pub gids: Vec<u32>,
}

impl Ids {
    fn has_uid(&self, uid: u32) -> bool {
        self.uids.contains(&uid)
    }

    fn has_group(&self, gid: u32, groups: &[u32]) -> bool {
        self.gids.contains(&gid) || groups.iter().any(|g| self.gids.contains(g))
    }
}

/// The outcome of checking one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed, at this level.
    Allow(Level),
    /// Refused, with the reason to tell the client.
    Deny(String),
}

impl Access {
    /// The policy of `[supervisor] allowed_uids` / `allowed_gids` /
    /// `read_only_uids` / `read_only_gids`.
    pub fn from_config(cfg: &SupervisorConfig) -> Access {
        Access::new(
            Uid::effective().as_raw(),
            Ids {
                uids: cfg.allowed_uids.clone(),
                gids: cfg.allowed_gids.clone(),
            },
            Ids {
                uids: cfg.read_only_uids.clone(),
                gids: cfg.read_only_gids.clone(),
            },
        )
    }

    /// A policy for a daemon running as `own_uid`.
    pub fn new(own_uid: u32, control: Ids, read: Ids) -> Access {
        Access {
            own_uid,
            control,
            read,
        }
    }

    /// Checks a peer by its credentials; `groups` is asked for only when the
    /// uid and primary gid alone do not decide.
    pub fn check(
        &self,
        uid: u32,
        gid: u32,
        groups: impl FnOnce() -> std::io::Result<Vec<u32>>,
    ) -> Verdict {
        if uid == 0 || uid == self.own_uid || self.control.has_uid(uid) {
            return Verdict::Allow(Level::Control);
        }
        if self.control.has_group(gid, &[]) {
            return Verdict::Allow(Level::Control);
        }
        let needs_groups = !self.control.gids.is_empty() || !self.read.gids.is_empty();
        let groups = if needs_groups {
            groups().unwrap_or_else(|e| {
                tracing::warn!(uid, "cannot read the supplementary groups of a client: {e}");
                Vec::new()
            })
        } else {
            Vec::new()
        };
        if self.control.has_group(gid, &groups) {
            return Verdict::Allow(Level::Control);
        }
        if self.read.has_uid(uid) || self.read.has_group(gid, &groups) {
            return Verdict::Allow(Level::Read);
        }
        Verdict::Deny(format!(
            "permission denied: uid {uid} is not allowed on this socket \
             (allowed: root, uid {}, [supervisor] allowed_uids, allowed_gids, \
             read_only_uids and read_only_gids)",
            self.own_uid
        ))
    }

    /// Checks the process at the other end of `stream`.
    pub fn check_stream(&self, stream: &UnixStream) -> Verdict {
        match stream.peer_cred() {
            Ok(cred) => self.check(cred.uid(), cred.gid(), || sys::peer_groups(stream.as_fd())),
            Err(e) => Verdict::Deny(format!(
                "permission denied: cannot read the client's credentials: {e}"
            )),
        }
    }
}

/// The refusal of something a client's level does not allow; `what` says
/// what was asked (`POST /v1/programs/web/stop`, `supervisor.stopProcess`).
pub fn too_low(what: &str, needs: Level) -> String {
    format!(
        "permission denied: {what} needs {} access; this client is read-only \
         ([supervisor] read_only_uids / read_only_gids)",
        needs.as_str()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_groups() -> std::io::Result<Vec<u32>> {
        Ok(vec![])
    }

    fn ids(uids: &[u32], gids: &[u32]) -> Ids {
        Ids {
            uids: uids.to_vec(),
            gids: gids.to_vec(),
        }
    }

    const CONTROL: Verdict = Verdict::Allow(Level::Control);
    const READ: Verdict = Verdict::Allow(Level::Read);

    #[test]
    fn root_self_and_listed_get_control() {
        let a = Access::new(1000, ids(&[2000], &[50]), Ids::default());
        assert_eq!(a.check(0, 0, no_groups), CONTROL);
        assert_eq!(a.check(1000, 1000, no_groups), CONTROL);
        assert_eq!(a.check(2000, 2000, no_groups), CONTROL);
        assert_eq!(a.check(3000, 50, no_groups), CONTROL);
        assert_eq!(a.check(3000, 3000, || Ok(vec![10, 50])), CONTROL);
        assert!(
            matches!(a.check(3000, 3000, || Ok(vec![10])), Verdict::Deny(m) if m.contains("uid 3000"))
        );
    }

    #[test]
    fn read_only_ids_get_read() {
        let a = Access::new(1000, ids(&[2000], &[50]), ids(&[4000], &[60]));
        assert_eq!(a.check(4000, 4000, no_groups), READ);
        assert_eq!(a.check(5000, 60, no_groups), READ);
        assert_eq!(a.check(5000, 5000, || Ok(vec![60])), READ);
        assert!(matches!(a.check(5000, 5000, no_groups), Verdict::Deny(_)));
    }

    #[test]
    fn control_wins_over_read() {
        // Listed at both levels: full control.
        let a = Access::new(1000, ids(&[4000], &[50]), ids(&[4000], &[60]));
        assert_eq!(a.check(4000, 4000, no_groups), CONTROL);
        // Read-only by uid, control by a supplementary group.
        let a = Access::new(1000, ids(&[], &[50]), ids(&[4000], &[]));
        assert_eq!(a.check(4000, 4000, || Ok(vec![50])), CONTROL);
        // Root and the daemon's own uid are never read-only.
        let a = Access::new(1000, Ids::default(), ids(&[0, 1000], &[]));
        assert_eq!(a.check(0, 0, no_groups), CONTROL);
        assert_eq!(a.check(1000, 1000, no_groups), CONTROL);
    }

    #[test]
    fn groups_are_not_read_without_gid_lists() {
        let a = Access::new(1000, ids(&[2000], &[]), ids(&[4000], &[]));
        let v = a.check(3000, 3000, || panic!("groups read without any gid list"));
        assert!(matches!(v, Verdict::Deny(_)));
        assert_eq!(a.check(4000, 4000, || panic!("groups read")), READ);
    }

    #[test]
    fn unreadable_groups_do_not_grant_anything() {
        let a = Access::new(1000, ids(&[], &[50]), ids(&[], &[60]));
        let v = a.check(3000, 3000, || Err(std::io::Error::other("no")));
        assert!(matches!(v, Verdict::Deny(_)));
        // The primary gid still counts.
        let v = a.check(3000, 60, || Err(std::io::Error::other("no")));
        assert_eq!(v, READ);
    }

    #[test]
    fn refusal_names_what_and_the_level() {
        let m = too_low("POST /v1/programs/web/stop", Level::Control);
        assert!(m.starts_with("permission denied: POST /v1/programs/web/stop needs full control"));
    }

    #[tokio::test]
    async fn own_connection_is_allowed() {
        let (a, _b) = UnixStream::pair().expect("socketpair");
        let access = Access::new(Uid::effective().as_raw(), Ids::default(), Ids::default());
        assert_eq!(access.check_stream(&a), CONTROL);
        let groups = sys::peer_groups(a.as_fd()).expect("SO_PEERGROUPS");
        let mine = nix::unistd::getgroups().expect("getgroups");
        assert_eq!(groups.len(), mine.len());
    }
}
