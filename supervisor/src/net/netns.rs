//! Named network namespaces under `/run/netns`, made and removed exactly the
//! way `ip netns add` / `ip netns del` do, so `ip netns list`, `ip netns exec`
//! and `nsenter --net=/run/netns/NAME` work on them.
//!
//! Creation runs `unshare(CLONE_NEWNET)` on a dedicated `std::thread` that
//! exits right after (a thread of the daemon never stays in another
//! namespace), and bind-mounts that thread's namespace onto
//! `/run/netns/NAME` after making `/run/netns` a shared mount, as iproute2
//! does, so the mount is seen from other mount namespaces too. Removal is a
//! lazy unmount plus unlink. [`netlink_in`] opens a netlink socket inside an
//! existing namespace the same way, on a short-lived thread that `setns`es.
//!
//! Calls block (thread joins, mounts): run them on blocking threads.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::netlink::Netlink;
use crate::sys;

/// Where named namespaces live (iproute2's `NETNS_RUN_DIR`).
pub const NETNS_DIR: &str = "/run/netns";

/// Path of the named namespace `name`.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// Whether `name` can be a file name under `/run/netns`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Opens `/run/netns/NAME` for `setns` (close-on-exec).
pub fn open(name: &str) -> io::Result<OwnedFd> {
    if !valid_name(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a valid namespace name",
        ));
    }
    Ok(OwnedFd::from(std::fs::File::open(path(name))?))
}

/// A namespace just made by [`create`].
#[derive(Debug)]
pub struct Created {
    /// Open handle on the namespace.
    pub fd: OwnedFd,
    /// Netlink socket inside it, `lo` already up.
    pub netlink: Netlink,
}

/// How [`create`] failed.
#[derive(Debug)]
pub enum CreateError {
    /// `/run/netns/NAME` already exists.
    Exists,
    /// Any other failure.
    Io(io::Error),
}

/// `ip netns add NAME`, plus `ip -n NAME link set lo up`. On failure nothing
/// is left behind.
pub fn create(name: &str) -> Result<Created, CreateError> {
    prepare_run_dir().map_err(CreateError::Io)?;
    let target = path(name);
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&target)
    {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(CreateError::Exists),
        Err(e) => return Err(CreateError::Io(e)),
    }
    let made = std::thread::scope(|s| {
        s.spawn(|| -> io::Result<Netlink> {
            sys::unshare_netns()?;
            sys::bind_mount(Path::new("/proc/thread-self/ns/net"), &target)?;
            let mut netlink = Netlink::open()?;
            let lo = netlink
                .link_by_name("lo")?
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENODEV))?;
            netlink.set_up(lo.index)?;
            Ok(netlink)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    });
    let opened = made.and_then(|netlink| Ok((open(name)?, netlink)));
    match opened {
        Ok((fd, netlink)) => Ok(Created { fd, netlink }),
        Err(e) => {
            let _ = remove(name);
            Err(CreateError::Io(e))
        }
    }
}

/// `ip netns del NAME`: lazy unmount and unlink. A namespace that is not there
/// is not an error. The namespace itself lives on while a process is in it.
pub fn remove(name: &str) -> io::Result<()> {
    let target = path(name);
    match sys::umount_detach(&target) {
        // EINVAL: not a mount point (half-made); ENOENT: gone already.
        Err(e) if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => return Err(e),
        _ => {}
    }
    match std::fs::remove_file(&target) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Names in `/run/netns` that start with `prefix`.
pub fn list(prefix: &str) -> io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// A netlink socket inside the namespace `fd`, opened on a short-lived thread
/// that entered it.
pub fn netlink_in(fd: BorrowedFd<'_>) -> io::Result<Netlink> {
    std::thread::scope(|s| {
        s.spawn(|| {
            sys::enter_netns_thread(fd)?;
            Netlink::open()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread panicked")))
    })
}

/// Creates `/run/netns` and makes it a shared mount point, as iproute2 does:
/// if it is not a mount point yet, bind-mount it onto itself first.
fn prepare_run_dir() -> io::Result<()> {
    let dir = Path::new(NETNS_DIR);
    std::fs::create_dir_all(dir)?;
    match sys::make_rshared(dir) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            sys::rbind_onto_itself(dir)?;
            sys::make_rshared(dir)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_would_escape_the_directory_are_invalid() {
        assert!(valid_name("nsvisor-web"));
        for bad in ["", ".", "..", "a/b", "../x", "a\0b"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(
            open("../etc").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
