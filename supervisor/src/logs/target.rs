//! An open log file and the raw ways of writing it: append-mode writes,
//! non-blocking writes to FIFOs and terminals, and splicing from a pipe.
//!
//! Policy (when to open, rotate, retry, report) is `file.rs`'s; this file only
//! performs one operation at a time and says how it went. A regular file is
//! kept in append mode except during a splice burst (the kernel refuses to
//! splice into append-mode files), which first re-reads the file's end.
//! [`FileRegistry`] counts the daemon's writers per file: splicing requires
//! being the only one.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use nix::fcntl::OFlag;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::safe_open::{self, Open};
use crate::sys;

/// How a log file that is not a regular file is opened: appending, never
/// blocking, never created.
const SPECIAL: Open = Open {
    read: false,
    append: true,
    truncate: false,
    create: None,
    nonblock: true,
};

/// Splice at most this much per call.
const SPLICE_MAX: usize = 1 << 20;
/// Stop splicing this close to `maxbytes`; the rest is copied so that the
/// rotation can cut after a newline.
pub const SPLICE_STOP_BEFORE_LIMIT: u64 = 512 * 1024;

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

/// How the file is written.
pub enum Out {
    /// A regular file (or a device that cannot be polled): blocking writes.
    Blocking(File),
    /// A FIFO, pipe, terminal or socket: non-blocking writes.
    Pollable(AsyncFd<File>),
}

/// An open log file.
pub struct OpenFile {
    pub out: Out,
    /// Bytes in the file (as far as this sink knows).
    pub size: u64,
    /// Opened for reading too (needed to refill the tail buffer after splicing).
    pub readable: bool,
    /// `O_APPEND` is currently set.
    pub append: bool,
    /// The kernel refused to splice into this file.
    pub no_splice: bool,
    /// The file does not end with a newline (`None`: not known, read it back).
    pub mid_line: Option<bool>,
    /// Shared by every sink of the daemon writing this file.
    pub writers: Option<Arc<()>>,
}

impl OpenFile {
    /// The open file.
    pub fn file(&self) -> &File {
        match &self.out {
            Out::Blocking(f) => f,
            Out::Pollable(a) => a.get_ref(),
        }
    }

    /// The file does not end with a newline (read back once when not known).
    pub fn mid_line(&mut self) -> bool {
        if let Some(known) = self.mid_line {
            return known;
        }
        let mut last = [b'\n'];
        let at = self.size.checked_sub(1).filter(|_| self.readable);
        let read = at.map(|at| self.file().read_exact_at(&mut last, at));
        let mid = matches!(read, Some(Ok(()))) && last[0] != b'\n';
        self.mid_line = Some(mid);
        mid
    }

    /// The last `n` bytes of the file, read back (after splicing).
    pub fn read_tail(&self, n: usize) -> Option<Vec<u8>> {
        let at = self.size.checked_sub(n as u64)?;
        let mut tail = vec![0; n];
        self.file().read_exact_at(&mut tail, at).ok()?;
        Some(tail)
    }

    /// Opens `path` for appending: a regular file (created if missing) or a
    /// FIFO / device / terminal, written without blocking when it can be polled.
    /// Opened through [`safe_open`]: in a directory other users can write, a
    /// planted symbolic link, hard link or file of theirs is refused. What was
    /// opened is judged by the open file, not by the path.
    pub fn open(path: &Path, registry: &FileRegistry) -> io::Result<OpenFile> {
        // A guess from the path, so a FIFO is not opened for reading (which
        // would make us its reader); the open file has the last word.
        let regular = std::fs::metadata(path).map_or(true, |m| m.is_file());
        if !regular {
            return OpenFile::special(safe_open::open(path, SPECIAL)?);
        }
        let regular_file = Open {
            read: true,
            create: Some(0o644),
            ..SPECIAL
        };
        let (file, readable) = match safe_open::open(path, regular_file) {
            Ok(f) => (f, true),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied && e.raw_os_error().is_some() => {
                let write_only = Open {
                    read: false,
                    ..regular_file
                };
                (safe_open::open(path, write_only)?, false)
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            // Replaced by a FIFO or a device since the guess.
            return OpenFile::special(file);
        }
        sys::set_status_flag(file.as_fd(), OFlag::O_NONBLOCK, false)?;
        let writers = Some(registry.token((meta.dev(), meta.ino())));
        Ok(OpenFile {
            out: Out::Blocking(file),
            size: meta.len(),
            readable,
            append: true,
            no_splice: false,
            mid_line: None,
            writers,
        })
    }

    /// A FIFO, device or terminal opened non-blocking: polled when it can be.
    fn special(file: File) -> io::Result<OpenFile> {
        let out = match sys::register_async(file, Interest::WRITABLE) {
            Ok(afd) => Out::Pollable(afd),
            Err(e) => {
                // Not pollable (/dev/null, say): such devices do not block.
                let (file, _) = e.into_parts();
                sys::set_status_flag(file.as_fd(), OFlag::O_NONBLOCK, false)?;
                Out::Blocking(file)
            }
        };
        Ok(OpenFile {
            out,
            size: 0,
            readable: false,
            append: true,
            no_splice: true,
            mid_line: Some(false),
            writers: None,
        })
    }

    /// Writes until done or the (pollable) target would block; the count
    /// written, or the error and the count written before it.
    pub fn write_some(&mut self, mut data: &[u8]) -> Result<usize, (io::Error, usize)> {
        let open = self;
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

    /// One splice burst (see `FileSink::splice_from`): moves bytes from `pipe`
    /// until it is empty or ends, `budget` bytes moved, or the file is within
    /// [`SPLICE_STOP_BEFORE_LIMIT`] of `maxbytes`; counts them in `unseen`.
    /// Errors are the file's (the bytes then stay in the pipe).
    pub fn splice(
        &mut self,
        maxbytes: u64,
        pipe: &AsyncFd<File>,
        budget: usize,
        unseen: &mut u64,
    ) -> io::Result<Spliced> {
        let open = self;
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
}
