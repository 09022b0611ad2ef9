//! The last bytes of the daemon's own log, kept in memory for supervisorctl's
//! `maintail` (`supervisor.readLog`) and `maintail -f` (`GET /mainlogtail`),
//! as a third writer for `tracing_subscriber` beside stderr and the log file.
//!
//! Every event is kept whole (one push of the formatted event, when its
//! writer is dropped, after the other writers wrote it), without terminal
//! colour codes. It is the daemon's log when there is no `[supervisor]
//! logfile` (a container logging to stderr only), and the wake-up of
//! followers of the file when there is one. The ring's lock guards only its
//! bytes; a follower that lags loses chunks, it never blocks a logger.
//!
//! Made by `main.rs`, handed to the XML-RPC front end through `RunOptions`.

use std::io::{self, Write};
use std::sync::Arc;

use crate::logs::ring::Ring;

/// How many bytes of the daemon's log are kept.
pub const KEEP_BYTES: usize = 64 * 1024;

/// The kept tail of the daemon's log; cheap to clone.
#[derive(Debug, Clone)]
pub struct DaemonLogTail {
    ring: Arc<Ring>,
}

impl Default for DaemonLogTail {
    fn default() -> Self {
        DaemonLogTail::new()
    }
}

impl DaemonLogTail {
    /// An empty tail keeping [`KEEP_BYTES`].
    pub fn new() -> DaemonLogTail {
        DaemonLogTail {
            ring: Arc::new(Ring::new(KEEP_BYTES)),
        }
    }

    /// The ring: what is kept, the total ever logged, and followers.
    pub fn ring(&self) -> &Ring {
        &self.ring
    }
}

/// One event's writer: collects the formatted event, keeps it when dropped.
#[derive(Debug)]
pub struct DaemonTailEvent {
    ring: Arc<Ring>,
    buf: Vec<u8>,
}

impl Write for DaemonTailEvent {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for DaemonTailEvent {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.ring.push(&without_colours(&self.buf));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DaemonLogTail {
    type Writer = DaemonTailEvent;

    fn make_writer(&'a self) -> DaemonTailEvent {
        DaemonTailEvent {
            ring: self.ring.clone(),
            buf: Vec::new(),
        }
    }
}

/// `bytes` without ANSI escape sequences (`ESC [ … final`), which colour the
/// log on a terminal but are noise in `maintail`.
fn without_colours(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'[') {
            i += 2;
            while i < bytes.len() && !(0x40..=0x7e).contains(&bytes[i]) {
                i += 1;
            }
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn keeps_whole_events_without_colours() {
        let tail = DaemonLogTail::new();
        let mut w = tail.make_writer();
        w.write_all(b"\x1b[32m INFO\x1b[0m ").unwrap();
        w.write_all(b"spawned\n").unwrap();
        assert_eq!(tail.ring().snapshot(usize::MAX).1, 0, "kept once whole");
        drop(w);
        assert_eq!(
            tail.ring().snapshot(usize::MAX),
            (b" INFO spawned\n".to_vec(), 14)
        );
    }

    #[test]
    fn colour_codes_are_removed_and_the_rest_kept() {
        assert_eq!(without_colours(b"a\x1b[1;31mb\x1b[0mc"), b"abc");
        assert_eq!(without_colours(b"plain [x]\n"), b"plain [x]\n");
        assert_eq!(without_colours(b"cut \x1b["), b"cut ");
    }
}
