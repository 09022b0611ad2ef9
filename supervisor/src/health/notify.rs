//! systemd's readiness protocol (`sd_notify`) for `notify` checks: one
//! datagram socket per program, whose path the program gets as
//! `NOTIFY_SOCKET`, and the parser of what it sends.
//!
//! A message is newline-separated `KEY=VALUE` assignments. Understood:
//! `READY=1`, `STATUS=…`, `STOPPING=1`, `RELOADING=1`, `WATCHDOG=1`,
//! `WATCHDOG=trigger`. `MAINPID=` is read but never followed: nsvisor keeps
//! supervising the process it spawned (another process is not its child, so
//! it could neither reap it nor be sure the pid is not reused). Other keys
//! are ignored, as systemd does.
//!
//! The socket is a file (not an abstract address), so a program in a network
//! sandbox reaches it too; it is owned by the program's user and removed with
//! the program. Anyone who can write to it speaks for the program (like
//! systemd's `NotifyAccess=all`), so a helper such as `systemd-notify` works.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixDatagram;
use tokio::task::JoinHandle;

/// Largest datagram read (systemd's limit is about the same).
const MAX_MESSAGE: usize = 4096;

/// What one datagram said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyMessage {
    /// `READY=1`.
    pub ready: bool,
    /// `STATUS=…`: a line of text for `status`.
    pub status: Option<String>,
    /// `STOPPING=1`.
    pub stopping: bool,
    /// `RELOADING=1`.
    pub reloading: bool,
    /// `WATCHDOG=1`.
    pub watchdog: bool,
    /// `WATCHDOG=trigger`: the program says it is broken.
    pub watchdog_trigger: bool,
    /// `MAINPID=…` (never followed; reported once).
    pub mainpid: Option<String>,
}

impl NotifyMessage {
    /// Parses a datagram; lines without `=` and unknown keys are ignored.
    pub fn parse(bytes: &[u8]) -> NotifyMessage {
        let mut msg = NotifyMessage::default();
        for line in String::from_utf8_lossy(bytes).lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match (key, value) {
                ("READY", "1") => msg.ready = true,
                ("STATUS", text) => msg.status = Some(text.to_string()),
                ("STOPPING", "1") => msg.stopping = true,
                ("RELOADING", "1") => msg.reloading = true,
                ("WATCHDOG", "1") => msg.watchdog = true,
                ("WATCHDOG", "trigger") => msg.watchdog_trigger = true,
                ("MAINPID", pid) => msg.mainpid = Some(pid.to_string()),
                _ => {}
            }
        }
        msg
    }
}

/// A program's notify socket; its reader task ends and its file is removed
/// on drop.
#[derive(Debug)]
pub struct NotifySocket {
    path: PathBuf,
    reader: JoinHandle<()>,
}

impl NotifySocket {
    /// Binds `path` (replacing a stale file), gives it to `owner` (uid, gid)
    /// when set, and calls `on_message` for every datagram.
    pub fn bind(
        path: &Path,
        owner: Option<(u32, u32)>,
        on_message: Arc<dyn Fn(NotifyMessage) + Send + Sync>,
    ) -> std::io::Result<NotifySocket> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let socket = UnixDatagram::bind(path)?;
        let mode = if owner.is_some() { 0o600 } else { 0o660 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))?;
        }
        let reader = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_MESSAGE];
            while let Ok(n) = socket.recv(&mut buf).await {
                on_message(NotifyMessage::parse(&buf[..n]));
            }
        });
        Ok(NotifySocket {
            path: path.to_owned(),
            reader,
        })
    }

    /// Its path (`NOTIFY_SOCKET`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.reader.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_sd_notify_sends() {
        let m = NotifyMessage::parse(b"READY=1\nSTATUS=Accepting connections\nMAINPID=42\n");
        assert!(m.ready);
        assert_eq!(m.status.as_deref(), Some("Accepting connections"));
        assert_eq!(m.mainpid.as_deref(), Some("42"));
        assert!(!m.watchdog && !m.stopping);
    }

    #[test]
    fn watchdog_stopping_and_reloading() {
        let m = NotifyMessage::parse(b"WATCHDOG=1");
        assert!(m.watchdog && !m.ready);
        let m = NotifyMessage::parse(b"WATCHDOG=trigger\nSTOPPING=1\nRELOADING=1");
        assert!(m.watchdog_trigger && m.stopping && m.reloading && !m.watchdog);
    }

    #[test]
    fn unknown_keys_bad_lines_and_other_values_are_ignored() {
        let m = NotifyMessage::parse(b"READY=0\nX_CUSTOM=1\ngarbage\n\xff\xfe=1\nERRNO=2");
        assert_eq!(m, NotifyMessage::default());
    }

    #[test]
    fn an_empty_status_is_kept_as_empty() {
        assert_eq!(NotifyMessage::parse(b"STATUS=").status.as_deref(), Some(""));
    }
}
