//! A program stream's log settings: its file, its console mode, its tail
//! buffer.

use std::path::PathBuf;

/// How a program stream appears on the daemon's console (what `docker logs` shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleMode {
    /// Each line as `name | line`.
    Prefixed,
    /// Bytes unchanged, no prefix (for JSON logs); still whole lines.
    Raw,
    /// Not on the console.
    Off,
}

/// Where a stream's file sink goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFile {
    /// No file.
    None,
    /// This path (`"auto"` is resolved to `<log_dir>/<name>.<stream>.log` at validation).
    Path(PathBuf),
}

/// One stream's (stdout or stderr) log settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamLog {
    /// File sink.
    pub logfile: LogFile,
    /// Rotate when the file reaches this size (0 = never).
    pub maxbytes: u64,
    /// How many rotated files to keep (`.1` … `.N`).
    pub backups: u32,
    /// Console sink mode.
    pub console: ConsoleMode,
    /// Tail buffer size in bytes.
    pub tail_bytes: u64,
}

impl StreamLog {
    /// The stream's bytes go to the console unchanged and nowhere else (no
    /// prefix, no file, no tail buffer): the program can write straight to
    /// the daemon's stdout or stderr, as a child of tini does, with no pipe.
    pub fn is_direct(&self) -> bool {
        self.console == ConsoleMode::Raw && self.logfile == LogFile::None && self.tail_bytes == 0
    }
}
