//! Pipes nothing has been written to yet ("parked"), watched together.
//!
//! A pipe registered with tokio costs a 256-byte reactor entry, and most
//! program streams never print anything (the stderr of a quiet service, say):
//! with thousands of programs that is most of the memory a program costs. So
//! a new pipe is first added to one epoll instance of the daemon's own, and
//! the first time it becomes readable (data, or every writer gone) its pump is
//! told through its mailbox, takes it out of here and registers it with tokio
//! for good. A parked pipe costs a kernel epoll entry and eight bytes here.
//!
//! Each pipe is watched one-shot and identified by its descriptor number,
//! which stays its own while its pump holds it open (an event that arrives
//! after the pump has taken the pipe out at worst wakes a pump for nothing).
//!
//! One task ([`IdlePipes::run`], on the log runtime) waits for this epoll
//! instance to be readable and wakes the pumps of the pipes that are; it does
//! nothing while nothing happens. Created by `LogContext`; used by `pump.rs`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use nix::sys::epoll::{EpollEvent, EpollFlags, EpollTimeout};
use tokio::io::unix::AsyncFd;

use super::mailbox::Mailbox;
use crate::sys::{self, OwnedEpoll};

/// Events taken per `epoll_wait`.
const BATCH: usize = 64;

/// The parked pipes of every pump.
#[derive(Debug)]
pub struct IdlePipes {
    epoll: AsyncFd<OwnedEpoll>,
    /// The mailbox of the pump that parked each descriptor.
    owners: Mutex<Vec<Option<Weak<Mailbox>>>>,
}

impl IdlePipes {
    /// A new set; call from inside the log runtime, then spawn [`IdlePipes::run`].
    pub fn new() -> io::Result<IdlePipes> {
        Ok(IdlePipes {
            epoll: sys::register_epoll(OwnedEpoll::new()?).map_err(io::Error::from)?,
            owners: Mutex::default(),
        })
    }

    fn owners(&self) -> MutexGuard<'_, Vec<Option<Weak<Mailbox>>>> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Watches `pipe` until it is readable or ends, then tells `owner`
    /// ([`Mailbox::unpark`]). Fails when the kernel refuses (a watch limit):
    /// register the pipe with tokio right away instead.
    pub fn park(&self, pipe: &File, owner: &Arc<Mailbox>) -> io::Result<()> {
        let fd = pipe.as_raw_fd();
        let slot = usize::try_from(fd).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        {
            let mut owners = self.owners();
            if owners.len() <= slot {
                owners.resize(slot + 1, None);
            }
            owners[slot] = Some(Arc::downgrade(owner));
        }
        let event = EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLONESHOT, slot as u64);
        if let Err(e) = self.epoll.get_ref().epoll().add(pipe.as_fd(), event) {
            self.owners()[slot] = None;
            return Err(e.into());
        }
        Ok(())
    }

    /// Stops watching `pipe` (its pump reads it itself from now on).
    pub fn unpark(&self, pipe: &File) {
        // Fails only if it was not parked; nothing to undo then.
        let _ = self.epoll.get_ref().epoll().delete(pipe.as_fd());
        self.forget(pipe);
    }

    /// Forgets `pipe`, which its pump is about to close: closing its last
    /// descriptor takes it out of the epoll instance, without a call of
    /// its own (thousands of pipes end together when programs stop). Any
    /// event of its still queued finds no owner.
    pub fn forget(&self, pipe: &File) {
        if let Ok(slot) = usize::try_from(pipe.as_raw_fd()) {
            if let Some(owner) = self.owners().get_mut(slot) {
                *owner = None;
            }
        }
    }

    /// The task that tells pumps about their parked pipes becoming readable.
    pub async fn run(self: Arc<Self>) {
        let mut events = vec![EpollEvent::empty(); BATCH];
        loop {
            let Ok(mut ready) = self.epoll.readable().await else {
                return; // The runtime is shutting down.
            };
            let waited =
                ready.try_io(
                    |e| match e.get_ref().epoll().wait(&mut events, EpollTimeout::ZERO) {
                        Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
                        Ok(n) => Ok(n),
                        Err(e) => Err(e.into()),
                    },
                );
            match waited {
                // Nothing more now; readiness was cleared.
                Err(_would_block) => {}
                Ok(Ok(n)) => self.tell_owners(&events[..n]),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => {
                    // Cannot happen with a valid epoll descriptor and buffer.
                    tracing::error!("cannot watch program output pipes: {e}");
                    return;
                }
            }
        }
    }

    fn tell_owners(&self, events: &[EpollEvent]) {
        let owners: Vec<Arc<Mailbox>> = {
            let list = self.owners();
            events
                .iter()
                .filter_map(|e| {
                    list.get(usize::try_from(e.data()).ok()?)?
                        .as_ref()?
                        .upgrade()
                })
                .collect()
        };
        for owner in owners {
            owner.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    #[tokio::test]
    async fn a_parked_pipe_tells_its_owner_when_written_or_closed() {
        let idle = Arc::new(IdlePipes::new().unwrap());
        tokio::spawn(idle.clone().run());
        let owner = Arc::new(Mailbox::default());
        let (written, mut w1) = crate::sys::log_pipe()
            .map(|(r, w)| (File::from(r), File::from(w)))
            .unwrap();
        let (closed, w2) = crate::sys::log_pipe()
            .map(|(r, w)| (File::from(r), File::from(w)))
            .unwrap();
        idle.park(&written, &owner).unwrap();
        idle.park(&closed, &owner).unwrap();
        let unparked = || async {
            tokio::time::timeout(
                Duration::from_secs(10),
                std::future::poll_fn(|cx| {
                    let mail = owner.take(cx.waker());
                    if mail.unpark {
                        std::task::Poll::Ready(())
                    } else {
                        std::task::Poll::Pending
                    }
                }),
            )
            .await
            .expect("the owner to be told")
        };
        w1.write_all(b"x").unwrap();
        unparked().await;
        idle.unpark(&written);
        drop(w2);
        unparked().await;
        idle.unpark(&closed);
        assert!(idle.owners().iter().all(Option::is_none));
    }

    /// Descriptors the epoll instance watches (`tfd:` lines of its fdinfo).
    fn watched(idle: &IdlePipes) -> usize {
        let epfd = idle.epoll.get_ref().as_raw_fd();
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{epfd}")).unwrap();
        info.lines().filter(|l| l.starts_with("tfd:")).count()
    }

    #[tokio::test]
    async fn a_forgotten_pipe_leaves_the_watch_when_it_is_closed() {
        let idle = IdlePipes::new().unwrap();
        let owner = Arc::new(Mailbox::default());
        let (a, _wa) = crate::sys::log_pipe().unwrap();
        let (b, _wb) = crate::sys::log_pipe().unwrap();
        let (a, b) = (File::from(a), File::from(b));
        idle.park(&a, &owner).unwrap();
        idle.park(&b, &owner).unwrap();
        assert_eq!(watched(&idle), 2);
        idle.forget(&a);
        assert_eq!(watched(&idle), 2, "forgetting alone makes no call");
        let slot = a.as_raw_fd() as usize;
        drop(a);
        assert_eq!(watched(&idle), 1, "closing took it out");
        assert!(idle.owners()[slot].is_none(), "and its owner is forgotten");
        idle.unpark(&b);
        assert_eq!(watched(&idle), 0);
    }
}
