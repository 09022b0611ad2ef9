//! The daemon's own log (what `tracing` records about the daemon), kept apart
//! from program output (`logs/`). It has three writers, joined by `main.rs`
//! into one `tracing_subscriber` writer:
//!
//! - [`StderrLog`] (`stderr.rs`): events to stderr through one writer thread,
//!   so that a reader of stderr that stalls never stalls the daemon.
//! - [`DaemonLogFile`] (`file.rs`): events also to `[supervisor] logfile`,
//!   reopened by path on SIGUSR2 (through `logs::LogContext::reopen_all`,
//!   which reopens program log files at the same moment).
//! - [`DaemonLogTail`] (`tail.rs`): the last bytes in memory, for
//!   supervisorctl's `maintail` and `maintail -f` (`api/xmlrpc/mainlog.rs`).
//!
//! Invariant: each event reaches each writer whole, in one write (several
//! whole events may share one, see [`batch`]), so lines stay whole next to
//! the program lines the console threads write to the same stderr.

mod file;
mod stderr;
mod tail;

pub use file::DaemonLogFile;
pub use stderr::{batch, write_batch_so_far, StderrLog};
pub use tail::DaemonLogTail;

/// Why the daemon's own log file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DaemonLogError {
    /// Opening (or reopening) the file failed.
    #[error("cannot open the daemon log file {}: {source}", path.display())]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}
