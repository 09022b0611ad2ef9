//! What the port proxies share with the supervisor: whether each program can
//! take connections now, and each mapping's connection counts.
//!
//! The supervisor marks a program *available* when it is RUNNING and ready
//! ([`Forwarding::set_available`]), unavailable as soon as it stops being
//! either (stopping, restarting, exited, a readiness check failing). A TCP
//! proxy that accepts a connection while its program is unavailable *holds*
//! it — accepted, not yet forwarded — until the program is available again,
//! for at most the mapping's `port_hold`; then it connects. A connection that
//! is refused because the new process is not listening yet is retried until
//! the same deadline. So a restart under a steady stream of clients loses
//! none, where forwarding at once would reset every one that arrives while
//! nothing listens. With `port_hold = 0` connections are forwarded at once.
//!
//! The lock guards only the table (never held across I/O or `.await`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Connection counts of one TCP mapping (UDP: flows).
#[derive(Debug, Default)]
pub struct PortCounters {
    active: AtomicU64,
    total: AtomicU64,
    held: AtomicU64,
}

impl PortCounters {
    /// A connection was accepted (`held`: it had to wait for the program).
    pub fn opened(&self, held: bool) {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
        if held {
            self.held.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection ended.
    pub fn closed(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }

    /// (active, total, held) now.
    pub fn get(&self) -> (u64, u64, u64) {
        (
            self.active.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
            self.held.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug)]
struct Entry {
    available: watch::Sender<bool>,
    /// Counters by mapping (`0.0.0.0:8080/tcp`).
    ports: Vec<(String, Arc<PortCounters>)>,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            available: watch::Sender::new(false),
            ports: Vec::new(),
        }
    }
}

/// The shared table, by program name; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Forwarding(Arc<Mutex<BTreeMap<String, Entry>>>);

impl Forwarding {
    fn with<T>(&self, program: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let mut table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.entry(program.to_string()).or_insert_with(Entry::new);
        f(entry)
    }

    /// The supervisor says whether `program` can take connections now.
    pub fn set_available(&self, program: &str, available: bool) {
        self.with(program, |e| {
            e.available
                .send_if_modified(|a| std::mem::replace(a, available) != available)
        });
    }

    /// A proxy's view of `program`'s availability.
    pub fn watch(&self, program: &str) -> watch::Receiver<bool> {
        self.with(program, |e| e.available.subscribe())
    }

    /// Counters for a new mapping of `program`, listed under `what`.
    pub fn counters(&self, program: &str, what: &str) -> Arc<PortCounters> {
        self.with(program, |e| {
            let c = Arc::new(PortCounters::default());
            e.ports.retain(|(w, _)| w != what);
            e.ports.push((what.to_string(), c.clone()));
            c
        })
    }

    /// `program`'s mappings and their (active, total, held) counts.
    pub fn port_counts(&self, program: &str) -> Vec<(String, (u64, u64, u64))> {
        let table = self.0.lock().unwrap_or_else(|e| e.into_inner());
        table.get(program).map_or_else(Vec::new, |e| {
            e.ports.iter().map(|(w, c)| (w.clone(), c.get())).collect()
        })
    }

    /// `program` has no proxies any more.
    pub fn forget(&self, program: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(program);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn availability_reaches_the_proxies_watching_it() {
        let f = Forwarding::default();
        let mut rx = f.watch("web");
        assert!(
            !*rx.borrow(),
            "unavailable until the supervisor says otherwise"
        );
        f.set_available("web", true);
        rx.changed().await.expect("changed");
        assert!(*rx.borrow_and_update());
        assert!(*f.watch("web").borrow(), "a later proxy sees it too");
        f.set_available("web", true);
        assert!(
            !rx.has_changed().expect("open"),
            "the same value is no change"
        );
        f.set_available("web", false);
        assert!(rx.has_changed().expect("open"));
    }

    #[test]
    fn counters_by_mapping() {
        let f = Forwarding::default();
        let c = f.counters("web", "0.0.0.0:8080/tcp");
        c.opened(false);
        c.opened(true);
        c.closed();
        assert_eq!(
            f.port_counts("web"),
            [("0.0.0.0:8080/tcp".to_string(), (1, 2, 1))]
        );
        f.forget("web");
        assert!(f.port_counts("web").is_empty());
    }
}
