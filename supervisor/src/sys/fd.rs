//! Plain file descriptors: `/dev/null`, duplicates, the tty test and file
//! status flags.
//!
//! Every fd made here is close-on-exec: a program gets only the fds
//! `spawn_child` installs. Callers: the supervisor (stdin, tty), `logs/`
//! (non-blocking pipes), `spawn.rs` (the fd slots).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};

/// Opens `/dev/null` read-write, close-on-exec (the programs' stdin).
pub fn open_dev_null() -> io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open /dev/null: {e}")))?;
    Ok(OwnedFd::from(f))
}

/// True when fd 0 is a terminal.
pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(0).unwrap_or(false)
}

/// Duplicates an fd, close-on-exec.
pub fn dup_cloexec(fd: RawFd) -> Result<OwnedFd, Errno> {
    let new = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: `new` is a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Sets or clears one file status flag (`O_NONBLOCK`, `O_APPEND`) of an open file description.
pub fn set_status_flag(fd: BorrowedFd<'_>, flag: OFlag, on: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(raw, FcntlArg::F_GETFL)?);
    let wanted = if on { flags | flag } else { flags - flag };
    if wanted != flags {
        fcntl(raw, FcntlArg::F_SETFL(wanted))?;
    }
    Ok(())
}
