//! The daemon's own log on stderr, written by one thread so that a reader of
//! stderr that stops reading (a stalled `docker logs` driver, a paused
//! terminal) never stops the daemon.
//!
//! Each event is formatted by the thread that logs it and queued; the
//! `nsvisor-log` thread writes the queue to stderr with blocking calls, whole
//! events per `write(2)` and at most `PIPE_BUF` bytes when the events allow
//! it, so lines stay whole next to the console threads writing program lines
//! to the same pipe. The queue holds at most [`QUEUE_BYTES`]: beyond that,
//! events are dropped and counted, and once the writer gets going again one
//! warning says how many were lost. Meanwhile the supervisor, the API and
//! signal handling go on: a blocked reader must not keep `docker stop` from
//! working. At exit, [`StderrLog::flush`] waits a bounded time for the queue.
//!
//! Used by `main.rs` as the stderr half of the `tracing_subscriber` writer.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;
use std::time::Duration;

/// Most bytes of log events waiting for stderr.
const QUEUE_BYTES: usize = 1 << 20;
/// Largest write that stays atomic on a pipe.
const PIPE_BUF: usize = 4096;

enum Msg {
    Event(Vec<u8>),
    Flush(mpsc::Sender<()>),
}

/// The daemon's stderr log; cheap to clone. The writer thread ends once
/// every clone is gone and the queue is written.
#[derive(Clone)]
pub struct StderrLog {
    queue: mpsc::Sender<Msg>,
    shared: Arc<Shared>,
}

/// What the loggers and the writer thread share.
struct Shared {
    /// Bytes queued.
    queued: AtomicUsize,
    dropped: AtomicU64,
    /// The writer thread, which writes its own events directly.
    writer: OnceLock<ThreadId>,
    out: File,
}

impl std::fmt::Debug for StderrLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StderrLog")
            .field("queued", &self.shared.queued.load(Ordering::Relaxed))
            .field("dropped", &self.dropped())
            .finish()
    }
}

impl StderrLog {
    /// A log writing to the daemon's stderr (`/dev/null` when it is closed).
    pub fn stderr() -> io::Result<StderrLog> {
        use std::os::fd::AsFd;
        let fd = match io::stderr().as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(_) => OwnedFd::from(std::fs::OpenOptions::new().write(true).open("/dev/null")?),
        };
        StderrLog::to(fd)
    }

    /// A log writing to `fd` (tests use a pipe).
    pub fn to(fd: OwnedFd) -> io::Result<StderrLog> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            writer: OnceLock::new(),
            out: File::from(fd),
        });
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("nsvisor-log".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = writer.writer.set(std::thread::current().id());
                write_queue(&writer, &rx);
            })?;
        Ok(StderrLog { queue: tx, shared })
    }

    /// Waits until every event logged so far is written, or `timeout` passed
    /// (stderr blocked). Returns whether the queue was written.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        if self.send(Msg::Flush(done)).is_err() {
            return false;
        }
        wait.recv_timeout(timeout).is_ok()
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, msg: Msg) -> Result<(), mpsc::SendError<Msg>> {
        self.queue.send(msg)
    }

    /// Queues one formatted event, or drops it when the queue is full.
    fn log(&self, event: Vec<u8>) {
        let shared = &self.shared;
        if shared.writer.get() == Some(&std::thread::current().id()) {
            // The writer's own warning: it may block, it is the writer.
            let _ = (&shared.out).write_all(&event);
            return;
        }
        let len = event.len();
        if shared.queued.fetch_add(len, Ordering::Relaxed) + len > QUEUE_BYTES {
            shared.queued.fetch_sub(len, Ordering::Relaxed);
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.send(Msg::Event(event)).is_err() {
            shared.queued.fetch_sub(len, Ordering::Relaxed);
        }
    }
}

/// The writer thread: writes events in order, batching whole events up to
/// `PIPE_BUF` bytes per `write(2)`, and reports drops once it can write again.
fn write_queue(shared: &Shared, rx: &mpsc::Receiver<Msg>) {
    let mut reported = 0;
    let mut batch = Vec::with_capacity(PIPE_BUF);
    let mut next = rx.recv().ok();
    while let Some(msg) = next.take() {
        match msg {
            Msg::Event(event) => {
                shared.queued.fetch_sub(event.len(), Ordering::Relaxed);
                batch.extend_from_slice(&event);
                // More events while they fit in one atomic write.
                loop {
                    match rx.try_recv() {
                        Ok(Msg::Event(e)) if batch.len() + e.len() <= PIPE_BUF => {
                            shared.queued.fetch_sub(e.len(), Ordering::Relaxed);
                            batch.extend_from_slice(&e);
                        }
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // A closed or broken stderr: nothing better to do than go on.
                let _ = (&shared.out).write_all(&batch);
                batch.clear();
                batch.shrink_to(PIPE_BUF);
            }
            Msg::Flush(done) => {
                let _ = done.send(());
            }
        }
        let dropped = shared.dropped.load(Ordering::Relaxed);
        if dropped > reported {
            tracing::warn!(
                "{} line{} of the daemon's own log dropped: stderr was not read for a while",
                dropped - reported,
                if dropped - reported == 1 { "" } else { "s" }
            );
            reported = dropped;
        }
        if next.is_none() {
            next = rx.recv().ok();
        }
    }
}

/// One event's writer: collects the formatted event, queues it when dropped.
pub struct StderrEvent {
    log: StderrLog,
    buf: Vec<u8>,
}

impl Write for StderrEvent {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for StderrEvent {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.log.log(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrLog {
    type Writer = StderrEvent;

    fn make_writer(&'a self) -> StderrEvent {
        StderrEvent {
            log: self.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use tracing_subscriber::fmt::MakeWriter;

    fn event(log: &StderrLog, text: &str) {
        log.make_writer().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn events_arrive_whole_and_in_order() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let log = StderrLog::to(write).unwrap();
        let want: String = (0..2000).map(|i| format!("event {i}\n")).collect();
        for line in want.lines() {
            event(&log, &format!("{line}\n"));
        }
        assert!(log.flush(Duration::from_secs(10)));
        drop(log);
        let mut got = vec![0; want.len()];
        File::from(read).read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }

    #[test]
    fn a_reader_that_stops_reading_costs_lines_not_the_caller() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let log = StderrLog::to(write).unwrap();
        // Far more than the pipe and the queue hold; nobody reads. Logging
        // returns at once (a blocking log would hang here).
        let line = format!("{}\n", "x".repeat(199));
        let n = 3 * QUEUE_BYTES / line.len();
        for _ in 0..n {
            event(&log, &line);
        }
        assert!(log.dropped() > 0, "some lines were dropped");
        assert!(!log.flush(Duration::from_millis(50)), "stderr is blocked");
        // Once read, the queue drains and the loss is reported.
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            File::from(read).read_to_end(&mut all).unwrap();
            all
        });
        assert!(log.flush(Duration::from_secs(10)));
        let dropped = log.dropped();
        let written = n as u64 - dropped;
        drop(log);
        let all = reader.join().unwrap();
        assert_eq!(all.len() as u64, written * line.len() as u64);
        let whole = all.windows(line.len()).filter(|w| *w == line.as_bytes());
        assert_eq!(whole.count() as u64, written, "every kept line is whole");
    }
}
