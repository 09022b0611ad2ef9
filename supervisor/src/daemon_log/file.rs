//! The daemon's own log file (`[supervisor] logfile`), as a writer for
//! `tracing_subscriber`, in addition to stderr.
//!
//! The file is opened in append mode and each event is one `write(2)`, so lines
//! stay whole and an external `copytruncate` is harmless. SIGUSR2 reopens it by
//! path ([`DaemonLogFile::reopen`], called by `logs::LogContext::reopen_all`,
//! which holds a clone for that). The mutex only guards swapping the open
//! file; writes happen outside it.
//!
//! Used by `main.rs` (`.with_writer(std::io::stderr.and(file))`).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::DaemonLogError;
use crate::safe_open::{self, Open};

/// The daemon's log file; cheap to clone.
#[derive(Debug, Clone)]
pub struct DaemonLogFile {
    path: PathBuf,
    current: Arc<Mutex<Arc<File>>>,
}

impl DaemonLogFile {
    /// Opens (creates) `path` for appending.
    pub fn open(path: &Path) -> Result<DaemonLogFile, DaemonLogError> {
        Ok(DaemonLogFile {
            path: path.to_path_buf(),
            current: Arc::new(Mutex::new(Arc::new(open(path)?))),
        })
    }

    /// Opens the path again (after an external rename).
    pub fn reopen(&self) -> Result<(), DaemonLogError> {
        let file = Arc::new(open(&self.path)?);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = file;
        Ok(())
    }
}

/// Opens (creates, mode 0640) for appending; in a directory other users can
/// write, a planted link or file is refused (`safe_open`).
fn open(path: &Path) -> Result<File, DaemonLogError> {
    let how = Open {
        append: true,
        create: Some(0o640),
        ..Open::default()
    };
    safe_open::open(path, how).map_err(|source| DaemonLogError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// One event's writer.
#[derive(Debug)]
pub struct DaemonLogWriter(Arc<File>);

impl Write for DaemonLogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for DaemonLogFile {
    type Writer = DaemonLogWriter;

    fn make_writer(&'a self) -> DaemonLogWriter {
        DaemonLogWriter(
            self.current
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn writes_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsvisor.log");
        let log = DaemonLogFile::open(&path).unwrap();
        log.make_writer().write_all(b"one\n").unwrap();
        std::fs::rename(&path, dir.path().join("old.log")).unwrap();
        log.reopen().unwrap();
        log.make_writer().write_all(b"two\n").unwrap();
        assert_eq!(std::fs::read(dir.path().join("old.log")).unwrap(), b"one\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"two\n");
    }
}
