//! Network and mount namespaces and mounts for `net/netns.rs` and
//! `net/names.rs`: a new or existing namespace for the calling thread, the
//! bind mounts that keep a namespace alive under a path, and those that lay
//! a sandbox's own files over the host's.
//!
//! Invariant: `unshare_netns`, `unshare_mountns` and `enter_netns_thread`
//! change the calling *thread*, so they run only on dedicated short-lived
//! `std::thread`s, never on a tokio worker or blocking-pool thread. nix already wraps these calls
//! safely; they are gathered here so every raw syscall of the daemon stays
//! in `sys/`, and they return `io::Error` for the callers' error variants.

use std::io;
use std::os::fd::BorrowedFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Gives the calling *thread* a new, empty network namespace
/// (`unshare(CLONE_NEWNET)`). Only ever call on a dedicated `std::thread`
/// that exits afterwards: never on a tokio worker or blocking-pool thread.
pub fn unshare_netns() -> io::Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Gives the calling *thread* a mount namespace of its own, a copy of the
/// daemon's (`unshare(CLONE_NEWNS)`, which also unshares its filesystem
/// attributes), whose mounts are then made slaves of the daemon's: mounts
/// and unmounts of the host still reach it (a sandbox removed later
/// disappears from it too), its own mounts never reach the host. Same rule
/// as [`unshare_netns`]: dedicated short-lived threads only.
pub fn unshare_mountns() -> io::Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(io::Error::from)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Moves the calling *thread* into the network namespace `fd` refers to.
/// Same rule as [`unshare_netns`]: dedicated short-lived threads only.
pub fn enter_netns_thread(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::sched::setns(fd, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// `mount --bind SOURCE TARGET`.
pub fn bind_mount(source: &Path, target: &Path) -> io::Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// Makes the mount at `dir` shared, recursively (`mount --make-rshared DIR`).
/// Fails with `EINVAL` when `dir` is not a mount point.
pub fn make_rshared(dir: &Path) -> io::Result<()> {
    mount(
        Some("none"),
        dir,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// `mount --rbind DIR DIR`: makes `dir` a mount point of its own.
pub fn rbind_onto_itself(dir: &Path) -> io::Result<()> {
    mount(
        Some(dir),
        dir,
        Some("none"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// `umount --lazy TARGET` (`umount2(MNT_DETACH)`).
pub fn umount_detach(target: &Path) -> io::Result<()> {
    umount2(target, MntFlags::MNT_DETACH).map_err(io::Error::from)
}
