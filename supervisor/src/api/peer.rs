//! Who may talk to the daemon: the peer-credential check of every connection.
//!
//! The kernel tells us the uid/gid of the process that connected
//! (`SO_PEERCRED`) and its supplementary groups (`SO_PEERGROUPS`). Root and the
//! daemon's own uid are always allowed; anyone else must be in `allowed_uids`,
//! or have `allowed_gids` among its primary or supplementary groups. Refused
//! peers get a 403 answer from `server.rs`, never a silent close.

use std::os::fd::AsFd;

use nix::unistd::Uid;
use tokio::net::UnixStream;

use crate::config::SupervisorConfig;
use crate::sys;

/// The access policy of the control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    own_uid: u32,
    uids: Vec<u32>,
    gids: Vec<u32>,
}

/// The outcome of checking one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed.
    Allow,
    /// Refused, with the reason to tell the client.
    Deny(String),
}

impl Access {
    /// The policy of `[supervisor] allowed_uids` / `allowed_gids`.
    pub fn from_config(cfg: &SupervisorConfig) -> Access {
        Access::new(
            Uid::effective().as_raw(),
            cfg.allowed_uids.clone(),
            cfg.allowed_gids.clone(),
        )
    }

    /// A policy for a daemon running as `own_uid`.
    pub fn new(own_uid: u32, uids: Vec<u32>, gids: Vec<u32>) -> Access {
        Access {
            own_uid,
            uids,
            gids,
        }
    }

    /// Checks a peer by its credentials; `groups` is asked for only when the
    /// uid alone does not decide.
    pub fn check(
        &self,
        uid: u32,
        gid: u32,
        groups: impl FnOnce() -> std::io::Result<Vec<u32>>,
    ) -> Verdict {
        if uid == 0 || uid == self.own_uid || self.uids.contains(&uid) {
            return Verdict::Allow;
        }
        if self.gids.contains(&gid) {
            return Verdict::Allow;
        }
        if !self.gids.is_empty() {
            match groups() {
                Ok(groups) if groups.iter().any(|g| self.gids.contains(g)) => {
                    return Verdict::Allow
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(uid, "cannot read the supplementary groups of a client: {e}")
                }
            }
        }
        Verdict::Deny(format!(
            "permission denied: uid {uid} is not allowed on this socket \
             (allowed: root, uid {}, [supervisor] allowed_uids and allowed_gids)",
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

#[cfg(test)]
mod tests {
    use super::*;

    fn no_groups() -> std::io::Result<Vec<u32>> {
        Ok(vec![])
    }

    #[test]
    fn root_self_and_listed_are_allowed() {
        let a = Access::new(1000, vec![2000], vec![50]);
        assert_eq!(a.check(0, 0, no_groups), Verdict::Allow);
        assert_eq!(a.check(1000, 1000, no_groups), Verdict::Allow);
        assert_eq!(a.check(2000, 2000, no_groups), Verdict::Allow);
        assert_eq!(a.check(3000, 50, no_groups), Verdict::Allow);
        assert_eq!(a.check(3000, 3000, || Ok(vec![10, 50])), Verdict::Allow);
        assert!(
            matches!(a.check(3000, 3000, || Ok(vec![10])), Verdict::Deny(m) if m.contains("uid 3000"))
        );
    }

    #[test]
    fn groups_are_not_read_without_allowed_gids() {
        let a = Access::new(1000, vec![], vec![]);
        let v = a.check(3000, 3000, || panic!("groups read without allowed_gids"));
        assert!(matches!(v, Verdict::Deny(_)));
    }

    #[tokio::test]
    async fn own_connection_is_allowed() {
        let (a, _b) = UnixStream::pair().expect("socketpair");
        let access = Access::new(Uid::effective().as_raw(), vec![], vec![]);
        assert_eq!(access.check_stream(&a), Verdict::Allow);
        let groups = sys::peer_groups(a.as_fd()).expect("SO_PEERGROUPS");
        let mine = nix::unistd::getgroups().expect("getgroups");
        assert_eq!(groups.len(), mine.len());
    }
}
