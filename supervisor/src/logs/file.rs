//! The file sink of one program stream: open, write or splice, rotate, reopen,
//! and survive a log directory that is missing, unwritable or full.
//!
//! Invariants:
//! - Every byte handed to [`FileSink::write`] (or spliced by
//!   [`FileSink::splice_from`]) is written exactly once, in order, or — while the
//!   file cannot be written — counted as lost and reported. It is never held
//!   back forever and never written twice.
//! - A regular file is written in append mode (safe next to other writers and
//!   `copytruncate`), except during a splice burst, which cannot target an
//!   append-mode file: then the offset is re-read from the file's end first.
//!   Splicing is only used while this sink is the file's only writer in the daemon.
//! - Something that is not a regular file (a FIFO, `/dev/stdout`) is written
//!   without blocking: what it does not take waits in `pending`, and the pump
//!   stops reading the program's pipe until it is gone (backpressure, no loss).
//! - Failures are reported with the path and the cause, at most once a minute
//!   while they last; the file is reopened on a later write (at most once a
//!   second), and the recovery is reported with the number of bytes lost.
//!
//! Owned by one pump task (`pump.rs`); nothing here is shared except the
//! [`FileRegistry`] that counts writers per file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::rotate::{self, Plan};
use crate::sys;

/// Wait before trying a failed file again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// At most one error message per failing sink in this time.
const REPORT_EVERY: Duration = Duration::from_secs(60);
/// Splice at most this much per call.
const SPLICE_MAX: usize = 1 << 20;
/// Stop splicing this close to `maxbytes`; the rest is copied so that the
/// rotation can cut after a newline.
pub const SPLICE_STOP_BEFORE_LIMIT: u64 = 512 * 1024;

/// Where a stream's file sink writes, from the program's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    /// The log file.
    pub path: PathBuf,
    /// Rotate before exceeding this size (0 = never).
    pub maxbytes: u64,
    /// Rotated files kept.
    pub backups: u32,
}

/// Why a file sink could not do its job (logged, never returned to the supervisor).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Opening or creating the file failed.
    #[error("program \"{program}\": cannot open log file {}: {source}", path.display())]
    Open {
        /// Program name.
        program: String,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Writing failed (a full disk, say).
    #[error("program \"{program}\": cannot write log file {}: {source}", path.display())]
    Write {
        /// Program name.
        program: String,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// Renaming for rotation failed; writing goes on in the current file.
    #[error("program \"{program}\": cannot rotate log file {}: {source}", path.display())]
    Rotate {
        /// Program name.
        program: String,
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
}

/// Counts the daemon's open sinks per file (device, inode), so a sink knows
/// whether it is the only writer (the condition for splicing).
#[derive(Debug, Clone, Default)]
pub struct FileRegistry(Arc<Mutex<HashMap<FileId, Weak<()>>>>);

/// (device, inode).
type FileId = (u64, u64);

impl FileRegistry {
    fn token(&self, key: FileId) -> Arc<()> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, w| w.strong_count() > 0);
        if let Some(t) = map.get(&key).and_then(Weak::upgrade) {
            return t;
        }
        let t = Arc::new(());
        map.insert(key, Arc::downgrade(&t));
        t
    }
}

/// How a splice burst ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spliced {
    /// The pipe is empty for now.
    Drained,
    /// Every writer closed the pipe.
    Eof,
    /// Moved `budget` bytes; let others run.
    Budget,
    /// Splicing does not apply now (near the size limit, a failure, an
    /// unsupported file system): copy instead.
    UseCopy,
}

enum Out {
    /// A regular file (or a device that cannot be polled): blocking writes.
    Blocking(File),
    /// A FIFO, pipe, terminal or socket: non-blocking writes.
    Pollable(AsyncFd<File>),
}

struct Open {
    out: Out,
    size: u64,
    /// Opened for reading too (needed to refill the tail buffer after splicing).
    readable: bool,
    /// `O_APPEND` is currently set.
    append: bool,
    /// The kernel refused to splice into this file.
    no_splice: bool,
    /// The file does not end with a newline (`None`: not known, read it back).
    mid_line: Option<bool>,
    writers: Option<Arc<()>>,
}

impl Open {
    fn file(&self) -> &File {
        match &self.out {
            Out::Blocking(f) => f,
            Out::Pollable(a) => a.get_ref(),
        }
    }
}

/// The file sink of one stream.
pub struct FileSink {
    program: String,
    spec: FileSpec,
    registry: FileRegistry,
    open: Option<Open>,
    retry_at: Option<Instant>,
    rotate_retry_at: Option<Instant>,
    /// Bytes a pollable target has not taken yet.
    pending: Vec<u8>,
    /// Bytes spliced into the file that the tail buffer has not seen.
    unseen: u64,
    /// Bytes lost since the current failure began.
    lost: u64,
    failing: bool,
    last_report: Option<Instant>,
    suppressed: u64,
}

impl FileSink {
    /// A sink for `spec`; the file is opened on the first write.
    pub fn new(program: &str, spec: FileSpec, registry: FileRegistry) -> FileSink {
        FileSink {
            program: program.to_string(),
            spec,
            registry,
            open: None,
            retry_at: None,
            rotate_retry_at: None,
            pending: Vec::new(),
            unseen: 0,
            lost: 0,
            failing: false,
            last_report: None,
            suppressed: 0,
        }
    }

    /// Opens the file now if it is not open (errors are reported, not returned).
    pub fn ensure_open(&mut self) -> bool {
        if self.open.is_some() {
            return true;
        }
        let now = Instant::now();
        if self.retry_at.is_some_and(|t| now < t) {
            return false;
        }
        match self.open_file() {
            Ok(open) => {
                self.open = Some(open);
                self.retry_at = None;
                if self.failing {
                    self.failing = false;
                    tracing::warn!(
                        "program \"{}\": log file {} is writable again; {} bytes of output could not be written to it",
                        self.program,
                        self.spec.path.display(),
                        self.lost
                    );
                    self.lost = 0;
                    self.last_report = None;
                    self.suppressed = 0;
                }
                true
            }
            Err(source) => {
                let err = FileError::Open {
                    program: self.program.clone(),
                    path: self.spec.path.clone(),
                    source,
                };
                self.fail(err, 0);
                false
            }
        }
    }

    fn open_file(&self) -> io::Result<Open> {
        let path = &self.spec.path;
        let regular = std::fs::metadata(path).map_or(true, |m| m.is_file());
        if !regular {
            let file = OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)?;
            let out = match sys::register_async(file, Interest::WRITABLE) {
                Ok(afd) => Out::Pollable(afd),
                Err(e) => {
                    // Not pollable (/dev/null, say): such devices do not block.
                    let (file, _) = e.into_parts();
                    sys::set_status_flag(file.as_fd(), OFlag::O_NONBLOCK, false)?;
                    Out::Blocking(file)
                }
            };
            let size = 0;
            return Ok(Open {
                out,
                size,
                readable: false,
                append: true,
                no_splice: true,
                mid_line: Some(false),
                writers: None,
            });
        }
        let mut opts = OpenOptions::new();
        opts.read(true).append(true).create(true).mode(0o644);
        let (file, readable) = match opts.open(path) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                (opts.read(false).open(path)?, false)
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        let writers = Some(self.registry.token((meta.dev(), meta.ino())));
        Ok(Open {
            out: Out::Blocking(file),
            size: meta.len(),
            readable,
            append: true,
            no_splice: false,
            mid_line: None,
            writers,
        })
    }

    /// Closes the file and opens `path` again (SIGUSR2, after an external rename).
    pub fn reopen(&mut self) {
        self.open = None;
        self.retry_at = None;
        if self.ensure_open() {
            tracing::debug!(
                "program \"{}\": reopened log file {}",
                self.program,
                self.spec.path.display()
            );
        }
    }

    /// Writes `data` (rotating as needed). What cannot be written now goes to
    /// `pending` (pollable targets) or is counted as lost (failures).
    pub fn write(&mut self, mut data: &[u8]) {
        if !self.pending.is_empty() {
            self.pending.extend_from_slice(data);
            return;
        }
        while !data.is_empty() {
            if !self.ensure_open() {
                self.lost += data.len() as u64;
                return;
            }
            let plan = self.rotation_plan(data);
            let n = match plan {
                Plan::WriteAll => data.len(),
                Plan::WriteThenRotate(n) => n,
                Plan::RotateFirst => 0,
            };
            if n > 0 && !self.write_now(&data[..n]) {
                return;
            }
            data = &data[n..];
            if plan != Plan::WriteAll {
                self.rotate();
            }
        }
    }

    fn rotation_plan(&mut self, data: &[u8]) -> Plan {
        let Some(open) = &mut self.open else {
            return Plan::WriteAll;
        };
        let rotating = matches!(open.out, Out::Blocking(_))
            && self.spec.maxbytes > 0
            && self.rotate_retry_at.is_none_or(|t| Instant::now() >= t);
        if !rotating {
            return Plan::WriteAll;
        }
        if open.size + data.len() as u64 > self.spec.maxbytes {
            // Another writer or an external truncation may have moved the end.
            if let Ok(end) = open.file().seek(SeekFrom::End(0)) {
                open.size = end;
            }
        }
        let mid_line = match open.mid_line {
            Some(known) => known,
            None => {
                let mut last = [b'\n'];
                let at = open.size.checked_sub(1).filter(|_| open.readable);
                let read = at.map(|at| open.file().read_exact_at(&mut last, at));
                let mid = matches!(read, Some(Ok(()))) && last[0] != b'\n';
                open.mid_line = Some(mid);
                mid
            }
        };
        rotate::plan(open.size, self.spec.maxbytes, mid_line, data)
    }

    /// Writes all of `data` to the open file (what a pollable target does not
    /// take yet goes to `pending`); false if it failed (the sink is then closed).
    fn write_now(&mut self, data: &[u8]) -> bool {
        let Some(open) = &mut self.open else {
            return false;
        };
        match write_some(open, data) {
            Ok(n) => {
                self.pending.extend_from_slice(&data[n..]);
                true
            }
            Err((e, n)) => self.write_failed(e, data.len() - n),
        }
    }

    fn write_failed(&mut self, source: io::Error, unwritten: usize) -> bool {
        let err = FileError::Write {
            program: self.program.clone(),
            path: self.spec.path.clone(),
            source,
        };
        self.fail(err, unwritten);
        false
    }

    fn rotate(&mut self) {
        let truncate = self.spec.backups == 0;
        let result = match &mut self.open {
            None => return,
            Some(open) if truncate => open.file().set_len(0).map(|()| open.size = 0),
            Some(_) => rotate::shift(&self.spec.path, self.spec.backups),
        };
        match result {
            Ok(()) => {
                self.rotate_retry_at = None;
                if !truncate {
                    self.open = None;
                    self.ensure_open();
                }
            }
            Err(source) => {
                self.rotate_retry_at = Some(Instant::now() + RETRY_EVERY);
                let err = FileError::Rotate {
                    program: self.program.clone(),
                    path: self.spec.path.clone(),
                    source,
                };
                self.report(&err);
            }
        }
    }

    /// The file cannot be written: close it, count what is lost, report (throttled).
    fn fail(&mut self, err: FileError, unwritten: usize) {
        self.open = None;
        self.retry_at = Some(Instant::now() + RETRY_EVERY);
        self.lost += unwritten as u64 + self.pending.len() as u64;
        self.pending.clear();
        self.failing = true;
        self.report(&err);
    }

    fn report(&mut self, err: &FileError) {
        let now = Instant::now();
        if self
            .last_report
            .is_some_and(|t| now.duration_since(t) < REPORT_EVERY)
        {
            self.suppressed += 1;
            return;
        }
        self.last_report = Some(now);
        if self.suppressed > 0 {
            tracing::error!(
                "{err} ({} similar errors in the last minute not shown)",
                self.suppressed
            );
        } else {
            tracing::error!("{err}");
        }
        self.suppressed = 0;
    }

    /// Output waits for a slow (pollable) target: the pump must stop reading.
    pub fn blocked(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Waits until the pollable target can take more of `pending` (never
    /// returns while nothing is pending).
    pub async fn writable(&self) {
        if !self.blocked() {
            return std::future::pending().await;
        }
        if let Some(Open {
            out: Out::Pollable(a),
            ..
        }) = &self.open
        {
            // The guard is dropped with the readiness kept: `flush_pending` clears it on EAGAIN.
            let _ = a.writable().await;
        }
    }

    /// Writes what the target could not take before.
    pub fn flush_pending(&mut self) {
        let data = std::mem::take(&mut self.pending);
        if !data.is_empty() && self.open.is_some() {
            self.write_now(&data);
        } else {
            self.lost += data.len() as u64;
        }
    }

    /// Whether the next burst may move bytes from the pipe to the file without copying.
    pub fn can_splice(&mut self) -> bool {
        if !self.pending.is_empty() || !self.ensure_open() {
            return false;
        }
        let Some(open) = &self.open else { return false };
        matches!(open.out, Out::Blocking(_))
            && open.readable
            && !open.no_splice
            && open
                .writers
                .as_ref()
                .is_some_and(|w| Arc::strong_count(w) == 1)
    }

    /// Moves bytes from `pipe` into the file until the pipe is empty, it ends,
    /// `budget` bytes have moved, or the size limit is near. Only after
    /// [`FileSink::can_splice`] said yes.
    pub fn splice_from(&mut self, pipe: &AsyncFd<File>, budget: usize) -> Spliced {
        let Some(open) = &mut self.open else {
            return Spliced::UseCopy;
        };
        match splice_burst(open, self.spec.maxbytes, pipe, budget, &mut self.unseen) {
            Ok(outcome) => outcome,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                open.no_splice = true;
                Spliced::UseCopy
            }
            // The bytes stay in the pipe: the copy path reads them and counts
            // them as lost for the file while it cannot be written.
            Err(e) => {
                self.write_failed(e, 0);
                Spliced::UseCopy
            }
        }
    }

    /// Bytes spliced since the last call, and the last `max` of them read back
    /// from the file (for the tail buffer). `None` when nothing was spliced.
    pub fn take_unseen(&mut self, max: usize) -> Option<(u64, Vec<u8>)> {
        if self.unseen == 0 {
            return None;
        }
        let total = std::mem::take(&mut self.unseen);
        let want = usize::try_from(total).unwrap_or(usize::MAX).min(max);
        let mut tail = vec![0; want];
        let read = self.open.as_ref().and_then(|open| {
            let at = open.size.checked_sub(want as u64)?;
            open.file().read_exact_at(&mut tail, at).ok()
        });
        if read.is_none() {
            tail.clear();
        }
        Some((total, tail))
    }
}

/// Writes until done or the (pollable) target would block; the count written,
/// or the error and the count written before it.
fn write_some(open: &mut Open, mut data: &[u8]) -> Result<usize, (io::Error, usize)> {
    let total = data.len();
    if !open.append {
        sys::set_status_flag(open.file().as_fd(), OFlag::O_APPEND, true).map_err(|e| (e, 0))?;
        open.append = true;
    }
    while !data.is_empty() {
        let res = match &open.out {
            Out::Blocking(f) => (&*f).write(data),
            Out::Pollable(a) => a.try_io(Interest::WRITABLE, |f| (&*f).write(data)),
        };
        let done = total - data.len();
        match res {
            Ok(0) => return Err((io::ErrorKind::WriteZero.into(), done)),
            Ok(n) => {
                open.size += n as u64;
                open.mid_line = Some(data[n - 1] != b'\n');
                data = &data[n..];
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && matches!(open.out, Out::Pollable(_)) =>
            {
                return Ok(done);
            }
            Err(e) => return Err((e, done)),
        }
    }
    Ok(total)
}

/// One splice burst (see [`FileSink::splice_from`]); errors are the file's.
fn splice_burst(
    open: &mut Open,
    maxbytes: u64,
    pipe: &AsyncFd<File>,
    budget: usize,
    unseen: &mut u64,
) -> io::Result<Spliced> {
    if open.append {
        sys::set_status_flag(open.file().as_fd(), OFlag::O_APPEND, false)?;
        open.append = false;
    }
    // Re-read the end: an external truncation (copytruncate) or append moved it.
    open.size = open.file().seek(SeekFrom::End(0))?;
    let mut moved = 0usize;
    loop {
        let room = match maxbytes {
            0 => u64::MAX,
            max => max.saturating_sub(open.size),
        };
        if room <= SPLICE_STOP_BEFORE_LIMIT {
            return Ok(Spliced::UseCopy);
        }
        let len = usize::try_from(room - SPLICE_STOP_BEFORE_LIMIT)
            .map_or(SPLICE_MAX, |r| r.min(SPLICE_MAX));
        let file = open.file();
        match pipe.try_io(Interest::READABLE, |p| {
            sys::splice_pipe_to_file(p, file, len)
        }) {
            Ok(0) => return Ok(Spliced::Eof),
            Ok(n) => {
                open.size += n as u64;
                open.mid_line = None;
                *unseen += n as u64;
                moved += n;
                if moved >= budget {
                    return Ok(Spliced::Budget);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Spliced::Drained),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
