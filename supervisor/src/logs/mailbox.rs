//! How the rest of the daemon talks to one pump: a small mailbox instead of
//! channels, because a daemon may run thousands of idle pumps.
//!
//! A [`Mailbox`] carries new pipes (one per spawn), "no more pipes" (the
//! program's logs are gone), "reopen your file" (SIGUSR2) and "a parked pipe
//! is readable" (`idle.rs`). The pump takes
//! everything at once from its poll function and leaves its waker; senders
//! wake it. It costs one small allocation per stream, where a tokio channel
//! and a watch receiver cost about a kilobyte.
//!
//! [`Mailboxes`] lists every live mailbox for [`Mailboxes::reopen_all`]; dead
//! entries are dropped whenever the list would grow, so it stays within twice
//! the number of live streams.
//!
//! The lock guards only the mailbox (never program state) and is never held
//! across I/O or `.await`. Used by `mod.rs` and `idle.rs` (senders) and
//! `pump.rs` (receiver).

use std::os::fd::OwnedFd;

use super::log_watch::LogWatch;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::Waker;

/// One pump's mailbox.
#[derive(Debug, Default)]
pub struct Mailbox {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    pipes: Vec<(OwnedFd, Option<LogWatch>)>,
    closed: bool,
    reopen: bool,
    unpark: bool,
    waker: Option<Waker>,
}

/// What [`Mailbox::take`] found.
#[derive(Debug, Default)]
pub struct Mail {
    /// New pipes, oldest first, each with the watch of a `log` check.
    pub pipes: Vec<(OwnedFd, Option<LogWatch>)>,
    /// No more pipes will come (stays true once set).
    pub closed: bool,
    /// The log file must be reopened.
    pub reopen: bool,
    /// A parked pipe is readable: take the parked pipes back.
    pub unpark: bool,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn post(&self, edit: impl FnOnce(&mut State)) {
        let waker = {
            let mut state = self.lock();
            edit(&mut state);
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Hands the pump the read end of a new pipe (and what to watch it for).
    pub fn send_pipe(&self, pipe: OwnedFd, watch: Option<LogWatch>) {
        self.post(|s| s.pipes.push((pipe, watch)));
    }

    /// No more pipes: the pump ends once those it has are finished.
    pub fn close(&self) {
        self.post(|s| s.closed = true);
    }

    /// The pump must reopen its log file.
    pub fn reopen(&self) {
        self.post(|s| s.reopen = true);
    }

    /// A parked pipe of the pump is readable (or ended).
    pub fn unpark(&self) {
        self.post(|s| s.unpark = true);
    }

    /// Everything posted since the last call; `waker` is woken by the next post.
    pub fn take(&self, waker: &Waker) -> Mail {
        let mut state = self.lock();
        match &mut state.waker {
            Some(w) if w.will_wake(waker) => {}
            slot => *slot = Some(waker.clone()),
        }
        Mail {
            pipes: std::mem::take(&mut state.pipes),
            closed: state.closed,
            reopen: std::mem::take(&mut state.reopen),
            unpark: std::mem::take(&mut state.unpark),
        }
    }
}

/// Every live mailbox, for SIGUSR2.
#[derive(Debug, Default)]
pub struct Mailboxes(Mutex<Vec<Weak<Mailbox>>>);

impl Mailboxes {
    /// A new mailbox, listed.
    pub fn add(&self) -> Arc<Mailbox> {
        let mailbox = Arc::new(Mailbox::default());
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() == list.capacity() {
            list.retain(|m| m.strong_count() > 0);
            let len = list.len();
            list.reserve(len.max(4));
        }
        list.push(Arc::downgrade(&mailbox));
        mailbox
    }

    /// Asks every live pump to reopen its log file.
    pub fn reopen_all(&self) {
        let live: Vec<Arc<Mailbox>> = {
            let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
            list.retain(|m| m.strong_count() > 0);
            list.iter().filter_map(Weak::upgrade).collect()
        };
        for m in live {
            m.reopen();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn posts_wake_the_pump_and_are_taken_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let boxes = Mailboxes::default();
        let m = boxes.add();
        assert!(m.take(&waker).pipes.is_empty());
        let (r, _w) = crate::sys::log_pipe().unwrap();
        m.send_pipe(r, None);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        boxes.reopen_all();
        let mail = m.take(&waker);
        assert_eq!(
            (mail.pipes.len(), mail.closed, mail.reopen),
            (1, false, true)
        );
        m.close();
        let mail = m.take(&waker);
        assert_eq!(
            (mail.pipes.len(), mail.closed, mail.reopen),
            (0, true, false)
        );
        assert!(m.take(&waker).closed);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_list_forgets_dead_mailboxes() {
        let boxes = Mailboxes::default();
        let keep = boxes.add();
        for _ in 0..100 {
            drop(boxes.add());
        }
        assert!(boxes.0.lock().unwrap().len() <= 8);
        boxes.reopen_all();
        assert_eq!(boxes.0.lock().unwrap().len(), 1);
        drop(keep);
    }
}
