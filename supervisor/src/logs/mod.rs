//! Program output: pipes read by the daemon, written to console, files and the tail buffer.
//!
//! Public surface, used by the supervisor:
//! - [`LogContext`]: created once at start-up. Owns the log runtime (two threads
//!   on which every pump runs, so a slow disk never stalls the supervisor task or
//!   the API), the console writer threads, and the SIGUSR2 signal
//!   ([`LogContext::reopen_all`]). [`LogContext::shutdown`] lets pumps finish and
//!   the console flush before the daemon exits.
//! - [`ProgramLogs`]: one per program, kept across restarts (files and tail
//!   buffers persist). [`ProgramLogs::open_pipes`] before each spawn gives the
//!   child's fds 1 and 2; the read ends go to the program's pumps at once.
//!   Dropping it lets its pumps finish once the pipes end.
//!
//! The daemon's own log is not here but in `daemon_log/`; [`LogContext`] only
//! holds its file ([`LogContext::set_daemon_log`]) to reopen it on SIGUSR2
//! with the program log files.
//!
//! Files: `pump.rs` (pipe → sinks), `mailbox.rs` (pipes and requests to a
//! pump), `idle.rs` (pipes not written to yet), `file.rs` (file sink policy),
//! `target.rs` (an open log file: write, splice), `rotate.rs` (rotation),
//! `console.rs` (console sink), `lines.rs` (console lines), `ring.rs` (tail
//! buffer). User documentation: docs/logging.md.
//!
//! Memory matters here: every configured program has two streams, and a
//! daemon may run a thousand idle programs. An idle stream costs about half a
//! kilobyte (its pump task, mailbox, tail buffer header and a parked pipe);
//! its tail buffer grows only with output.

pub mod console;
mod file;
mod idle;
mod lines;
pub mod log_watch;
mod mailbox;
mod pump;
pub mod ring;
mod rotate;
mod target;

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::OFlag;
use nsvisor_proto::StreamKind;
use tokio::sync::watch;

use crate::config::{ConsoleMode, LogFile, ProgramConfig, StreamLog};
use crate::daemon_log::DaemonLogFile;
use crate::sys;
pub use console::Console;
// What the fuzz targets reach (crate::fuzzing).
#[cfg(feature = "fuzzing")]
pub use file::{FileRegistry, FileSink, FileSpec};
#[cfg(not(feature = "fuzzing"))]
use file::{FileRegistry, FileSpec};
use idle::IdlePipes;
#[cfg(feature = "fuzzing")]
pub use lines::{LineSplitter, MAX_LINE};
pub use log_watch::LogWatch;
use mailbox::{Mailbox, Mailboxes};
use ring::Ring;
#[cfg(feature = "fuzzing")]
pub use rotate::{backup_path, plan as rotation_plan, Plan, OVERSHOOT};

/// Pipe buffer asked for each program stream (the kernel default is 64 KiB).
/// Larger means fewer hand-offs between program and pump; 256 KiB measured
/// best (`bench/logs.sh`): with 1 MiB the bytes leave the CPU cache before
/// they are written. It is also the most kernel memory a program that writes
/// faster than its sinks take can fill.
const PIPE_SIZE: Option<usize> = Some(256 * 1024);

/// Errors the supervisor sees from this module.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A pipe for a program's output could not be made (out of fds, say).
    #[error("program \"{program}\": cannot create its output pipe: {source}")]
    Pipe {
        /// Program name.
        program: String,
        /// Cause.
        source: io::Error,
    },
    /// The log threads could not be started.
    #[error("cannot start the log threads: {source}")]
    Start {
        /// Cause.
        source: io::Error,
    },
}

impl LogError {
    /// The OS error behind it.
    pub fn errno(&self) -> Option<nix::errno::Errno> {
        let source = match self {
            LogError::Pipe { source, .. } | LogError::Start { source } => source,
        };
        source.raw_os_error().map(nix::errno::Errno::from_raw)
    }
}

/// Shared by every program's logs: runtime, console, reopen signal.
#[derive(Debug, Clone)]
pub struct LogContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
    console: Console,
    /// Every pump's mailbox, for SIGUSR2.
    mailboxes: Mailboxes,
    /// Pipes no program has written to yet.
    idle: Arc<IdlePipes>,
    files: FileRegistry,
    /// Pumps still running.
    live: watch::Sender<usize>,
    daemon_log: Mutex<Option<DaemonLogFile>>,
    /// The stderr ring of every program with `redirect_stderr`: always
    /// empty, so one serves them all.
    empty_ring: Arc<Ring>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Dropping a runtime may happen inside async code: do not block.
            rt.shutdown_background();
        }
    }
}

impl LogContext {
    /// Program lines go to the daemon's stdout and stderr.
    pub fn stdio() -> Result<LogContext, LogError> {
        LogContext::new(Console::stdio().map_err(|source| LogError::Start { source })?)
    }

    /// Program lines go to `console`.
    pub fn new(console: Console) -> Result<LogContext, LogError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nsvisor-logs")
            .enable_io()
            .enable_time()
            .build()
            .map_err(|source| LogError::Start { source })?;
        let idle = {
            let _inside = runtime.enter();
            Arc::new(IdlePipes::new().map_err(|source| LogError::Start { source })?)
        };
        runtime.spawn(idle.clone().run());
        Ok(LogContext {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                runtime: Some(runtime),
                console,
                mailboxes: Mailboxes::default(),
                idle,
                files: FileRegistry::default(),
                live: watch::Sender::new(0),
                daemon_log: Mutex::new(None),
                empty_ring: Arc::new(Ring::new(0)),
            }),
        })
    }

    /// Reopens the daemon's own log file too on [`LogContext::reopen_all`].
    pub fn set_daemon_log(&self, file: DaemonLogFile) {
        *self
            .inner
            .daemon_log
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(file);
    }

    /// SIGUSR2: every log file is closed and opened again by path (after an
    /// external logrotate renamed it). Returns at once; pumps do the work.
    pub fn reopen_all(&self) {
        self.inner.mailboxes.reopen_all();
        let daemon_log = self
            .inner
            .daemon_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(f) = daemon_log {
            if let Err(e) = f.reopen() {
                tracing::error!("{e}");
            }
        }
    }

    /// Before the daemon exits (every program has exited and its `ProgramLogs`
    /// is dropped): waits up to `timeout` for the pumps to write what is left in
    /// the pipes, then up to `timeout` for the console to take it.
    pub async fn shutdown(&self, timeout: Duration) {
        let mut live = self.inner.live.subscribe();
        if tokio::time::timeout(timeout, live.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                "{} program output streams still open after {timeout:?} (held by leftover processes?)",
                *live.borrow()
            );
        }
        self.inner.console.flush(timeout).await;
    }
}

/// Child ends of a program's output pipes: dup2 them onto fds 1 and 2 in the
/// child, and drop them in the daemon right after the spawn.
#[derive(Debug)]
pub struct ChildStdio {
    /// For fd 1.
    pub stdout: OwnedFd,
    /// For fd 2 (the same pipe as `stdout` with `redirect_stderr`).
    pub stderr: OwnedFd,
}

impl ChildStdio {
    /// `(fd for 1, fd for 2)`.
    pub fn raw(&self) -> (RawFd, RawFd) {
        (self.stdout.as_raw_fd(), self.stderr.as_raw_fd())
    }
}

/// The output of one program: its pumps and tail buffers.
#[derive(Debug)]
pub struct ProgramLogs {
    name: Arc<str>,
    stdout: StreamLogs,
    stderr: StderrLogs,
}

/// The supervisor's side of one pump. Dropping it tells the pump that no
/// more pipes will come.
#[derive(Debug)]
struct StreamLogs {
    ring: Arc<Ring>,
    mailbox: Arc<Mailbox>,
    /// For a stream that goes only to the console, unchanged: the console's
    /// descriptor, which the program gets instead of a pipe.
    direct: Option<Arc<OwnedFd>>,
}

impl Drop for StreamLogs {
    fn drop(&mut self) {
        self.mailbox.close();
    }
}

#[derive(Debug)]
enum StderrLogs {
    Own(StreamLogs),
    /// `redirect_stderr`: no stream of its own; `ring(Stderr)` gives this
    /// ring, which stays empty.
    Merged(Arc<Ring>),
}

impl ProgramLogs {
    /// Starts the pumps of `cfg`'s streams (files are opened on the first spawn).
    pub fn new(ctx: &LogContext, cfg: &ProgramConfig) -> ProgramLogs {
        let name = cfg.name.shared();
        // The `name | ` prefix, made only when a console stream shows it.
        let prefixed = [(true, &cfg.stdout), (!cfg.redirect_stderr, &cfg.stderr)]
            .iter()
            .any(|(own, log)| *own && log.console == ConsoleMode::Prefixed);
        let prefix: Option<Arc<[u8]>> =
            prefixed.then(|| Arc::from(format!("{name} | ").into_bytes()));
        let start = |stream, log| start_stream(ctx, &name, prefix.as_ref(), stream, log);
        let stderr = if cfg.redirect_stderr {
            StderrLogs::Merged(ctx.inner.empty_ring.clone())
        } else {
            StderrLogs::Own(start(StreamKind::Stderr, &cfg.stderr))
        };
        ProgramLogs {
            stdout: start(StreamKind::Stdout, &cfg.stdout),
            stderr,
            name,
        }
    }

    /// New pipes for a spawn. The read ends go to the pumps now, each with
    /// its stream's watch of a `log` check (`watches`: stdout, stderr); the
    /// caller gives the child the returned ends. With `redirect_stderr`, the
    /// one pipe gets the stdout watch, else the stderr one.
    pub fn open_pipes(&self, watches: [Option<LogWatch>; 2]) -> Result<ChildStdio, LogError> {
        let fail = |source| LogError::Pipe {
            program: self.name.to_string(),
            source,
        };
        let [out_watch, mut err_watch] = watches;
        let stdout = match &self.stderr {
            StderrLogs::Own(_) => new_pipe(&self.stdout, out_watch),
            StderrLogs::Merged(_) => new_pipe(&self.stdout, out_watch.or(err_watch.take())),
        }
        .map_err(fail)?;
        let stderr = match &self.stderr {
            StderrLogs::Own(s) => new_pipe(s, err_watch).map_err(fail)?,
            StderrLogs::Merged(_) => stdout.try_clone().map_err(fail)?,
        };
        Ok(ChildStdio { stdout, stderr })
    }

    /// Whether logs made for `old` also serve `new` (the same output
    /// settings); if not, a reload must replace them.
    pub fn serves_both(old: &ProgramConfig, new: &ProgramConfig) -> bool {
        (old.redirect_stderr, &old.stdout, &old.stderr)
            == (new.redirect_stderr, &new.stdout, &new.stderr)
    }

    /// The tail buffer of a stream (always empty for stderr with `redirect_stderr`).
    pub fn ring(&self, stream: StreamKind) -> Arc<Ring> {
        match (stream, &self.stderr) {
            (StreamKind::Stdout, _) => self.stdout.ring.clone(),
            (StreamKind::Stderr, StderrLogs::Own(s)) => s.ring.clone(),
            (StreamKind::Stderr, StderrLogs::Merged(empty)) => empty.clone(),
        }
    }
}

/// A pipe whose read end is handed to the stream's pump; returns the write end.
fn new_pipe(stream: &StreamLogs, watch: Option<LogWatch>) -> io::Result<OwnedFd> {
    // A `log` check needs the bytes: then the stream goes through its pump.
    if let (Some(console), None) = (&stream.direct, &watch) {
        return console.try_clone();
    }
    let (read, write) = sys::log_pipe()?;
    sys::set_status_flag(read.as_fd(), OFlag::O_NONBLOCK, true)?;
    if let Some(size) = PIPE_SIZE {
        // Best effort: an unprivileged user may be over its pipe quota.
        let _ = sys::set_pipe_size(read.as_fd(), size);
    }
    stream.mailbox.send_pipe(read, watch);
    Ok(write)
}

/// Spawns the pump of one stream; `prefix` is `name | ` (made when a
/// stream of the program is prefixed on the console).
fn start_stream(
    ctx: &LogContext,
    program: &Arc<str>,
    prefix: Option<&Arc<[u8]>>,
    stream: StreamKind,
    log: &StreamLog,
) -> StreamLogs {
    let ring = Arc::new(Ring::new(
        usize::try_from(log.tail_bytes).unwrap_or(usize::MAX),
    ));
    let prefix = match log.console {
        ConsoleMode::Prefixed => prefix.cloned(),
        ConsoleMode::Raw => Some(Arc::from(Vec::new())),
        ConsoleMode::Off => None,
    };
    let inner = &ctx.inner;
    let mailbox = inner.mailboxes.add();
    let spec = pump::PumpSpec {
        program: program.clone(),
        stream,
        file: match &log.logfile {
            LogFile::None => None,
            LogFile::Path(path) => Some(FileSpec {
                path: path.clone(),
                maxbytes: log.maxbytes,
                backups: log.backups,
            }),
        },
        console: prefix.map(|p| inner.console.sink(stream, p)),
        ring: ring.clone(),
        mailbox: mailbox.clone(),
        idle: inner.idle.clone(),
    };
    let pump = pump::Pump::new(spec, inner.files.clone(), Live::new(&inner.live));
    inner.handle.spawn(pump);
    let direct = log.is_direct().then(|| inner.console.direct(stream));
    StreamLogs {
        ring,
        mailbox,
        direct,
    }
}

/// Counts a live pump in `LogContext`'s `live` while it exists.
struct Live(watch::Sender<usize>);

impl Live {
    fn new(live: &watch::Sender<usize>) -> Live {
        live.send_modify(|n| *n += 1);
        Live(live.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
