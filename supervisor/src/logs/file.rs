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
//!   second), and the recovery is reported, with the number of bytes lost,
//!   once bytes reach the file again (not when it merely opens: a full disk
//!   opens fine).
//!
//! Owned by one pump task (`pump.rs`); nothing here is shared except the
//! [`FileRegistry`] that counts writers per file.

use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;

use super::rotate::{self, Plan};
pub use super::target::{FileRegistry, Spliced};
use super::target::{OpenFile, Out};

/// Wait before trying a failed file again.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// At most one error message per failing sink in this time.
const REPORT_EVERY: Duration = Duration::from_secs(60);

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

/// The file sink of one stream.
pub struct FileSink {
    program: String,
    spec: FileSpec,
    registry: FileRegistry,
    open: Option<OpenFile>,
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
        match OpenFile::open(&self.spec.path, &self.registry) {
            Ok(open) => {
                // Still failing until bytes reach it: a full disk opens fine.
                self.open = Some(open);
                self.retry_at = None;
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

    /// Bytes reached the file after a failure: report the recovery, with
    /// how much output the file missed.
    fn recovered(&mut self) {
        if !self.failing {
            return;
        }
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
        let mid_line = open.mid_line();
        rotate::plan(open.size, self.spec.maxbytes, mid_line, data)
    }

    /// Writes all of `data` to the open file (what a pollable target does not
    /// take yet goes to `pending`); false if it failed (the sink is then closed).
    fn write_now(&mut self, data: &[u8]) -> bool {
        let Some(open) = &mut self.open else {
            return false;
        };
        match open.write_some(data) {
            Ok(n) => {
                self.pending.extend_from_slice(&data[n..]);
                if n > 0 {
                    self.recovered();
                }
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

    /// Ready when the pollable target can take more of `pending` (or when
    /// there is no such target any more: `flush_pending` then counts the bytes
    /// as lost). Only while [`FileSink::blocked`].
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<()> {
        match &self.open {
            // The guard is dropped with the readiness kept: `flush_pending` clears it on EAGAIN.
            Some(OpenFile {
                out: Out::Pollable(a),
                ..
            }) => a.poll_write_ready(cx).map(|_| ()),
            _ => Poll::Ready(()),
        }
    }

    /// Waits until [`FileSink::poll_writable`] is ready.
    #[cfg(test)]
    pub async fn writable(&self) {
        std::future::poll_fn(|cx| self.poll_writable(cx)).await
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
        let unseen = self.unseen;
        match open.splice(self.spec.maxbytes, pipe, budget, &mut self.unseen) {
            Ok(outcome) => {
                if self.unseen > unseen {
                    self.recovered();
                }
                outcome
            }
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
    pub fn take_unseen(&mut self, max: impl FnOnce() -> usize) -> Option<(u64, Vec<u8>)> {
        if self.unseen == 0 {
            return None;
        }
        let total = std::mem::take(&mut self.unseen);
        let want = usize::try_from(total).unwrap_or(usize::MAX).min(max());
        let tail = self.open.as_ref().and_then(|open| open.read_tail(want));
        Some((total, tail.unwrap_or_default()))
    }
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
