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
//! The queue is one contiguous buffer, not a list of events: a start-up burst
//! of thousands of lines then costs no memory once written (a list left
//! ~200 KB of small freed blocks in the heap at 1,000 programs). A stderr
//! that never stalls (a regular file, `/dev/null`) needs neither queue nor
//! thread: events are written directly, and within a [`batch`] (one turn of
//! the supervisor task, which may log a line per program) they are gathered
//! and written together at its end, whole events of up to [`BATCH_BYTES`]
//! per `write(2)`: 20,000 lines of a mass stop are then a few dozen writes
//! rather than 20,000. Lines other threads log meanwhile are written at once,
//! so they may come before a batch's earlier lines (by at most one turn).
//!
//! Used by `main.rs` as the stderr half of the `tracing_subscriber` writer.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// Most bytes of log events waiting for stderr.
const QUEUE_BYTES: usize = 1 << 20;
/// Largest write that stays atomic on a pipe.
const PIPE_BUF: usize = 4096;
/// Most bytes a [`batch`] gathers before it writes them.
const BATCH_BYTES: usize = 64 * 1024;

thread_local! {
    /// The events of this thread's [`batch`], while one runs.
    static BATCH: RefCell<Option<Batch>> = const { RefCell::new(None) };
}

/// Events gathered for a direct stderr (the last log written to).
struct Batch {
    to: Option<Arc<Shared>>,
    bytes: Vec<u8>,
}

impl Batch {
    fn write_out(&mut self) {
        if let Some(to) = &self.to {
            let _ = (&to.out).write_all(&self.bytes);
        }
        self.bytes.clear();
    }
}

/// Runs `f`, gathering the events this thread logs to a direct stderr (a
/// regular file, `/dev/null`) and writing them at its end, also when `f`
/// panics; a nested call only runs `f`. For a burst of lines in one turn of
/// the supervisor task. Events for a queued stderr (a pipe, a terminal) go
/// through the queue as always: its writer thread already batches them.
pub fn batch<R>(f: impl FnOnce() -> R) -> R {
    struct End;
    impl Drop for End {
        fn drop(&mut self) {
            let batch = BATCH.try_with(|b| b.borrow_mut().take()).ok().flatten();
            if let Some(mut batch) = batch {
                batch.write_out();
            }
        }
    }
    let began = BATCH
        .try_with(|b| match b.try_borrow_mut() {
            Ok(mut b) if b.is_none() => {
                *b = Some(Batch {
                    to: None,
                    bytes: Vec::new(),
                });
                true
            }
            _ => false,
        })
        .unwrap_or(false);
    // Not `then_some(End)`: that would make an `End`, and drop it, in a
    // nested call too.
    let _end = if began { Some(End) } else { None };
    f()
}

/// Writes what this thread's batch holds so far (the batch goes on). For a
/// panic hook: the release build aborts on panic, so a batch's end never
/// comes, and its lines are the ones that tell what led to the panic.
pub fn write_batch_so_far() {
    let _ = BATCH.try_with(|b| {
        if let Ok(mut b) = b.try_borrow_mut() {
            if let Some(batch) = b.as_mut() {
                batch.write_out();
            }
        }
    });
}

/// Adds `event` for `to` to this thread's batch, if one runs; returns
/// whether it did (otherwise the caller writes it).
fn gathered(to: &Arc<Shared>, event: &[u8]) -> bool {
    BATCH
        .try_with(|b| {
            let Ok(mut b) = b.try_borrow_mut() else {
                return false;
            };
            let Some(batch) = b.as_mut() else {
                return false;
            };
            if !batch.to.as_ref().is_some_and(|t| Arc::ptr_eq(t, to)) {
                batch.write_out();
                batch.to = Some(Arc::clone(to));
            }
            if batch.bytes.len() + event.len() > BATCH_BYTES {
                batch.write_out();
            }
            batch.bytes.extend_from_slice(event);
            true
        })
        .unwrap_or(false)
}

/// The daemon's stderr log; cheap to clone. The writer thread ends once
/// every clone is gone and the queue is written.
#[derive(Clone)]
pub struct StderrLog {
    handle: Arc<Handle>,
}

/// Closes the queue when the last [`StderrLog`] goes.
struct Handle {
    shared: Arc<Shared>,
}

/// What the loggers and the writer thread share.
struct Shared {
    queue: Mutex<Queue>,
    /// Events arrived, or the queue closed.
    arrived: Condvar,
    /// Bytes were written.
    written: Condvar,
    /// The writer thread, which writes its own events directly.
    writer: OnceLock<ThreadId>,
    /// Every event is written directly: stderr cannot stall.
    direct: bool,
    out: File,
}

/// The events waiting, as one contiguous buffer: after a burst, the whole
/// buffer goes back to the allocator at once (one large block is unmapped,
/// where thousands of small ones would stay in the heap).
#[derive(Default)]
struct Queue {
    bytes: Vec<u8>,
    /// Bytes ever queued, and ever written (for flush).
    queued_total: u64,
    written_total: u64,
    dropped: u64,
    closed: bool,
}

impl std::fmt::Debug for StderrLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let q = self.handle.shared.lock();
        f.debug_struct("StderrLog")
            .field("queued", &q.bytes.len())
            .field("dropped", &q.dropped)
            .finish()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.arrived.notify_one();
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

    /// A log writing to `fd` (tests use a pipe). A regular file or
    /// `/dev/null` never stalls a writer for long, so events go straight to
    /// it from the thread that logs them; a pipe, socket or terminal (which
    /// can be paused) gets the queue and the writer thread.
    pub fn to(fd: OwnedFd) -> io::Result<StderrLog> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            arrived: Condvar::new(),
            written: Condvar::new(),
            writer: OnceLock::new(),
            direct: never_stalls(&fd),
            out: File::from(fd),
        });
        if shared.direct {
            return Ok(StderrLog {
                handle: Arc::new(Handle { shared }),
            });
        }
        let writer = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("nsvisor-log".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = writer.writer.set(std::thread::current().id());
                write_queue(&writer);
            })?;
        Ok(StderrLog {
            handle: Arc::new(Handle { shared }),
        })
    }

    /// Waits until every event logged so far is written, or `timeout` passed
    /// (stderr blocked). Returns whether the queue was written.
    pub fn flush(&self, timeout: Duration) -> bool {
        let shared = &self.handle.shared;
        let deadline = Instant::now() + timeout;
        let mut q = shared.lock();
        let target = q.queued_total;
        while q.written_total < target {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            q = shared
                .written
                .wait_timeout(q, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.handle.shared.lock().dropped
    }

    /// Queues one formatted event, or drops it when the queue is full.
    fn log(&self, event: &[u8]) {
        let shared = &self.handle.shared;
        if shared.direct && gathered(shared, event) {
            return;
        }
        if shared.direct || shared.writer.get() == Some(&std::thread::current().id()) {
            // Direct, or the writer's own warning: it may block, it is the writer.
            let _ = (&shared.out).write_all(event);
            return;
        }
        let mut q = shared.lock();
        if q.bytes.len() + event.len() > QUEUE_BYTES {
            q.dropped += 1;
            return;
        }
        let was_empty = q.bytes.is_empty();
        q.bytes.extend_from_slice(event);
        q.queued_total += event.len() as u64;
        drop(q);
        if was_empty {
            shared.arrived.notify_one();
        }
    }
}

/// Whether writes to `fd` finish without waiting for a reader: a regular
/// file or `/dev/null`.
fn never_stalls(fd: &OwnedFd) -> bool {
    use nix::sys::stat::{fstat, major, minor, SFlag};
    let Ok(st) = fstat(std::os::fd::AsRawFd::as_raw_fd(fd)) else {
        return false;
    };
    match SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT {
        SFlag::S_IFREG => true,
        SFlag::S_IFCHR => (major(st.st_rdev), minor(st.st_rdev)) == (1, 3),
        _ => false,
    }
}

/// The writer thread: takes everything queued, writes it in whole events of
/// up to `PIPE_BUF` bytes per `write(2)`, reports drops once it can write
/// again; ends when the queue is closed and written.
fn write_queue(shared: &Shared) {
    let mut reported = 0;
    loop {
        let mut q = shared.lock();
        while q.bytes.is_empty() && !q.closed {
            q = shared.arrived.wait(q).unwrap_or_else(|e| e.into_inner());
        }
        if q.bytes.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut q.bytes);
        let dropped = q.dropped;
        drop(q);
        let mut rest = &batch[..];
        while !rest.is_empty() {
            let cut = atomic_cut(rest);
            // A closed or broken stderr: nothing better to do than go on.
            let _ = (&shared.out).write_all(&rest[..cut]);
            rest = &rest[cut..];
        }
        shared.lock().written_total += batch.len() as u64;
        shared.written.notify_all();
        drop(batch);
        if dropped > reported {
            tracing::warn!(
                "{} line{} of the daemon's own log dropped: stderr was not read for a while",
                dropped - reported,
                if dropped - reported == 1 { "" } else { "s" }
            );
            reported = dropped;
        }
    }
}

/// Length of the next write: the whole events (each ends with `\n`) that fit
/// in `PIPE_BUF`, or the first event alone when it is longer.
fn atomic_cut(bytes: &[u8]) -> usize {
    if bytes.len() <= PIPE_BUF {
        return bytes.len();
    }
    let end_of_line = |b: &[u8]| b.iter().rposition(|&c| c == b'\n').map(|i| i + 1);
    end_of_line(&bytes[..PIPE_BUF])
        .or_else(|| bytes.iter().position(|&c| c == b'\n').map(|i| i + 1))
        .unwrap_or(bytes.len())
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
            self.log.log(&self.buf);
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

    /// A log to a new regular file (written directly): its directory, path
    /// and the log.
    fn file_log() -> (tempfile::TempDir, std::path::PathBuf, StderrLog) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let log = StderrLog::to(File::create(&path).unwrap().into()).unwrap();
        (dir, path, log)
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
    fn files_and_dev_null_are_written_directly_pipes_are_queued() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("log")).unwrap();
        assert!(never_stalls(&OwnedFd::from(file)));
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .unwrap();
        assert!(never_stalls(&OwnedFd::from(null)));
        let (read, write) = nix::unistd::pipe().unwrap();
        assert!(!never_stalls(&write) && !never_stalls(&read));
        let zero = File::open("/dev/zero").unwrap();
        assert!(
            !never_stalls(&OwnedFd::from(zero)),
            "only /dev/null among devices"
        );
    }

    #[test]
    fn a_file_gets_every_event_directly() {
        let (_dir, path, log) = file_log();
        event(&log, "one\n");
        event(&log, "two\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        assert!(log.flush(Duration::ZERO));
    }

    #[test]
    fn a_batch_writes_its_events_at_its_end_in_few_writes() {
        let (_dir, path, log) = file_log();
        let line = format!("{}\n", "x".repeat(99));
        let n = 2 * BATCH_BYTES / line.len();
        let during = batch(|| {
            for _ in 0..n {
                event(&log, &line);
            }
            batch(|| event(&log, "nested\n"));
            std::fs::metadata(&path).unwrap().len() as usize
        });
        assert!(
            during > 0 && during <= n * line.len() && during % line.len() == 0,
            "a full batch is written as whole events ({during} bytes)"
        );
        let all = std::fs::read_to_string(&path).unwrap();
        assert_eq!(all, line.repeat(n) + "nested\n", "every event, in order");
        event(&log, "after\n");
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .ends_with("nested\nafter\n"));
    }

    #[test]
    fn a_batch_is_written_when_it_panics() {
        let (_dir, path, log) = file_log();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            batch(|| {
                event(&log, "before the panic\n");
                panic!("on purpose");
            })
        }));
        assert!(caught.is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "before the panic\n"
        );
    }

    #[test]
    fn what_a_batch_holds_can_be_written_before_its_end() {
        let (_dir, path, log) = file_log();
        batch(|| {
            event(&log, "one\n");
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "");
            write_batch_so_far();
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\n");
            event(&log, "two\n");
        });
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn a_batch_leaves_a_pipe_to_the_queue() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let log = StderrLog::to(write).unwrap();
        batch(|| {
            event(&log, "queued\n");
            assert!(
                log.flush(Duration::from_secs(10)),
                "written before the batch ends"
            );
        });
        drop(log);
        let mut got = String::new();
        File::from(read).read_to_string(&mut got).unwrap();
        assert_eq!(got, "queued\n");
    }

    #[test]
    fn writes_are_whole_events_of_at_most_pipe_buf_bytes() {
        let line = |n: usize| format!("{}\n", "x".repeat(n - 1)).into_bytes();
        let small = line(100);
        assert_eq!(atomic_cut(&small), 100);
        let many: Vec<u8> = (0..100).flat_map(|_| line(100)).collect();
        assert_eq!(atomic_cut(&many), 4000, "40 whole events");
        let big = [line(5000), line(10)].concat();
        assert_eq!(atomic_cut(&big), 5000, "a long event goes alone");
        let unterminated = vec![b'x'; 6000];
        assert_eq!(atomic_cut(&unterminated), 6000);
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
