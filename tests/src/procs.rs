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

/// How many file descriptors `pid` has open (`/proc/PID/fd`), `None` when it
/// does not exist.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `RssAnon`, ...), in kB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let value = l.strip_prefix(field)?.strip_prefix(':')?;
        value.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

/// The zombies whose parent is `pid` (children it has not reaped), sorted.
pub fn zombie_children(pid: u32) -> Vec<u32> {
    children_of(pid)
        .into_iter()
        .filter(|c| proc_state(*c) == Some('Z'))
        .collect()
}

/// The command name of `pid` (`/proc/PID/comm`), `None` when it does not exist.
pub fn comm_of(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end().to_string())
}

/// True when `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
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
