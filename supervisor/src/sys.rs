//! The only module with `unsafe`: raw syscalls behind safe functions (DESIGN rule 4).
#![allow(unsafe_code)]

// ---- api ----

use std::os::fd::{AsRawFd, BorrowedFd};

/// `SO_PEERGROUPS` (Linux 4.13+); not exported by libc for every target.
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 0x3d;
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups of the process at the other end of a unix
/// socket, as they were when it connected (`SO_PEERGROUPS`).
pub fn peer_groups(socket: BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    let gid_size = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = (groups.len() * gid_size) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of exactly `len` bytes, `len` points
        // to a valid socklen_t, and the fd is borrowed for the whole call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / gid_size;
        if rc == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() {
            groups.resize(needed, 0);
            continue;
        }
        return Err(err);
    }
}
