//! Handing fds to the tokio reactor: a pipe end or FIFO ([`register_async`],
//! for the log pumps) and the daemon's own epoll instance ([`OwnedEpoll`],
//! for `logs/idle.rs`, which parks pipes no program has written to yet).
//!
//! Invariant: what is registered owns its descriptor and moves into the
//! `AsyncFd`, so the reactor never watches a closed or reused fd.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::epoll::{Epoll, EpollCreateFlags};
use tokio::io::unix::{AsyncFd, AsyncFdRegisterError};
use tokio::io::Interest;

/// Registers an owned file with the current tokio reactor (a pipe end, a FIFO).
/// Fails, handing the file back, for files epoll cannot watch (regular files).
pub fn register_async(
    file: File,
    interest: Interest,
) -> Result<AsyncFd<File>, AsyncFdRegisterError<File>> {
    // SAFETY: the `File` owns its descriptor and moves into the `AsyncFd`, so
    // the descriptor stays open and refers to the same file description until
    // the `AsyncFd` drops it; `File::as_raw_fd` always returns that descriptor.
    unsafe { AsyncFd::register_with_interest(file, interest) }
}

/// An epoll instance owned by the daemon, to be registered with tokio.
#[derive(Debug)]
pub struct OwnedEpoll(Epoll);

impl OwnedEpoll {
    /// A new epoll instance (close-on-exec).
    pub fn new() -> io::Result<OwnedEpoll> {
        let flags = EpollCreateFlags::EPOLL_CLOEXEC;
        Ok(OwnedEpoll(Epoll::new(flags)?))
    }

    /// The instance, for adding, removing and waiting.
    pub fn epoll(&self) -> &Epoll {
        &self.0
    }
}

impl AsRawFd for OwnedEpoll {
    fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

/// Registers an epoll instance with the current tokio reactor: readable when
/// any of its entries is ready.
pub fn register_epoll(
    epoll: OwnedEpoll,
) -> Result<AsyncFd<OwnedEpoll>, AsyncFdRegisterError<OwnedEpoll>> {
    // SAFETY: `OwnedEpoll` owns its descriptor (a private `OwnedFd`, never
    // replaced) and moves into the `AsyncFd`, so the descriptor stays open
    // and refers to the same epoll instance until the `AsyncFd` drops it;
    // `as_raw_fd` always returns that descriptor.
    unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE) }
}
