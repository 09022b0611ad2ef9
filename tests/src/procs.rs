//! Looking at processes from the outside (`/proc`) and reading the files
//! `testprog` writes, for e2e assertions.
//!
//! Nothing here waits: tests combine these probes with `wait_until`.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Direct children of `pid` (every thread's `children` list), zombies included, sorted.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The one-letter state of `pid` (`R`, `S`, `Z`, ...), `None` when it does not exist.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

/// The parent of `pid`, `None` when it does not exist.
pub fn ppid_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// True when `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// How many file descriptors `pid` has open (0 when it does not exist).
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// A `kB` field of `/proc/PID/status` in KiB (`"VmHWM:"`, the peak resident
/// set; `"VmRSS:"`), `None` when the process or the field does not exist.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// The lines of a file; empty when it does not exist (yet).
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// One line of a `testprog record FILE` file: `<unix_ms> <pid> <event>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Unix time in milliseconds.
    pub ms: u64,
    /// Pid of the process that wrote it.
    pub pid: u32,
    /// `start`, `signal TERM`, `exit 3`, `orphan-exit`, `kill-self TERM`.
    pub event: String,
}

/// Parses a record file (missing file: no records). Lines being written are whole
/// (one `write` each), so every line read is complete.
pub fn read_records(path: &Path) -> Vec<Record> {
    read_lines(path)
        .iter()
        .map(|l| {
            let mut parts = l.splitn(3, ' ');
            let ms = parts.next().and_then(|v| v.parse().ok());
            let pid = parts.next().and_then(|v| v.parse().ok());
            match (ms, pid, parts.next()) {
                (Some(ms), Some(pid), Some(event)) => Record {
                    ms,
                    pid,
                    event: event.to_string(),
                },
                _ => panic!("bad record line {l:?} in {}", path.display()),
            }
        })
        .collect()
}

/// SIGKILLs the listed pids when dropped (if they still exist), so a failing
/// test does not leave stray processes behind.
#[derive(Debug, Default)]
pub struct KillOnDrop(pub Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            if is_alive(*pid) {
                let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
            }
        }
    }
}
