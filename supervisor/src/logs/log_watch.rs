//! `log` readiness checks: a pump watches the output of one process for the
//! first line that matches a regular expression, and reports it once.
//!
//! The supervisor makes one [`LogWatch`] per stream per spawn (both streams
//! share one [`LogWatch::fired`] flag, so a match on either reports once) and
//! hands it over with the new pipe; the pump feeds it every byte it copies
//! (a pipe with a watch is copied, never spliced) and drops it after the
//! match. Lines are matched without their newline; a line longer than
//! [`MAX_LINE`] is matched on its first `MAX_LINE` bytes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use regex::bytes::Regex;

/// Longest part of a line kept for matching.
pub const MAX_LINE: usize = 64 << 10;

/// What a match calls, with the matching line (lossy UTF-8).
pub type OnMatch = Arc<dyn Fn(String) + Send + Sync>;

/// Watches one pipe's bytes for a matching line.
pub struct LogWatch {
    regex: Arc<Regex>,
    fired: Arc<AtomicBool>,
    on_match: OnMatch,
    /// The unfinished line so far (at most [`MAX_LINE`] bytes).
    partial: Vec<u8>,
}

impl std::fmt::Debug for LogWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWatch")
            .field("regex", &self.regex.as_str())
            .finish_non_exhaustive()
    }
}

impl LogWatch {
    /// A watch calling `on_match` once, unless `fired` is set first (by this
    /// watch or another sharing it).
    pub fn new(regex: Arc<Regex>, fired: Arc<AtomicBool>, on_match: OnMatch) -> LogWatch {
        LogWatch {
            regex,
            fired,
            on_match,
            partial: Vec::new(),
        }
    }

    /// Feeds bytes read from the pipe; true once the watch is done (it
    /// matched, or its twin did) and can be dropped.
    pub fn feed(&mut self, mut data: &[u8]) -> bool {
        if self.fired.load(Ordering::Relaxed) {
            return true;
        }
        while let Some(i) = memchr::memchr(b'\n', data) {
            let (line, rest) = (&data[..i], &data[i + 1..]);
            data = rest;
            let matched = if self.partial.is_empty() {
                self.check(line)
            } else {
                self.keep(line);
                let whole = std::mem::take(&mut self.partial);
                let matched = self.check(&whole);
                self.partial = whole;
                self.partial.clear();
                matched
            };
            if matched {
                return true;
            }
        }
        self.keep(data);
        false
    }

    /// The pipe ended: the unfinished last line counts too.
    pub fn finish(&mut self) {
        let last = std::mem::take(&mut self.partial);
        if !last.is_empty() && !self.fired.load(Ordering::Relaxed) {
            self.check(&last);
        }
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Matches one line; reports it if it is the first match.
    fn check(&self, line: &[u8]) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !self.regex.is_match(line) {
            return false;
        }
        if !self.fired.swap(true, Ordering::Relaxed) {
            (self.on_match)(String::from_utf8_lossy(line).into_owned());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn watch(pattern: &str) -> (LogWatch, Arc<Mutex<Vec<String>>>, Arc<AtomicBool>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let fired = Arc::new(AtomicBool::new(false));
        let sink = seen.clone();
        let w = LogWatch::new(
            Arc::new(Regex::new(pattern).expect("regex")),
            fired.clone(),
            Arc::new(move |line| sink.lock().expect("lock").push(line)),
        );
        (w, seen, fired)
    }

    #[test]
    fn reports_the_first_matching_line_once() {
        let (mut w, seen, _) = watch("ready to accept");
        assert!(!w.feed(b"starting\nloading\n"));
        assert!(w.feed(b"x ready to accept connections\r\nready to accept again\n"));
        assert!(w.feed(b"ready to accept\n"));
        assert_eq!(
            *seen.lock().expect("lock"),
            ["x ready to accept connections"]
        );
    }

    #[test]
    fn a_line_split_across_reads_is_matched_whole() {
        let (mut w, seen, _) = watch("^listening on 8080$");
        assert!(!w.feed(b"boot\nlisten"));
        assert!(!w.feed(b"ing on "));
        assert!(w.feed(b"8080\nmore"));
        assert_eq!(*seen.lock().expect("lock"), ["listening on 8080"]);
    }

    #[test]
    fn anchors_do_not_match_inside_a_longer_line() {
        let (mut w, seen, _) = watch("^ok$");
        assert!(!w.feed(b"not ok\nok but\n"));
        assert!(seen.lock().expect("lock").is_empty());
    }

    #[test]
    fn the_unfinished_last_line_counts_at_the_end() {
        let (mut w, seen, _) = watch("done");
        assert!(!w.feed(b"all done"));
        w.finish();
        assert_eq!(*seen.lock().expect("lock"), ["all done"]);
    }

    #[test]
    fn a_twin_that_fired_ends_the_watch_without_a_report() {
        let (mut w, seen, fired) = watch("x");
        fired.store(true, Ordering::Relaxed);
        assert!(w.feed(b"x\n"));
        assert!(seen.lock().expect("lock").is_empty());
    }

    #[test]
    fn a_huge_line_is_matched_on_its_start_and_memory_stays_bounded() {
        let (mut w, seen, _) = watch("^START");
        let chunk = vec![b'a'; 1 << 20];
        assert!(!w.feed(b"START"));
        for _ in 0..8 {
            assert!(!w.feed(&chunk));
        }
        assert!(w.partial.len() <= MAX_LINE);
        assert!(w.feed(b"\n"));
        assert_eq!(seen.lock().expect("lock")[0].len(), MAX_LINE);
    }
}
