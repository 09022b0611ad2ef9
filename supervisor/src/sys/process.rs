//! Process-wide calls: signals to programs and their groups, the subreaper
//! flag, the daemon's own capabilities.
//!
//! `ESRCH` from a kill means the process is already gone and is not an
//! error. Callers: the supervisor (signals, stop and shutdown), `lib.rs`
//! (subreaper at start-up), `net::check` (capabilities).

use std::io;

use nix::errno::Errno;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

/// Sends `sig` to a process, or to its process group when `group`.
/// A process that is already gone (ESRCH) is not an error.
pub fn send_signal(pid: Pid, sig: Signal, group: bool) -> Result<(), Errno> {
    let res = if group {
        killpg(pid, sig)
    } else {
        kill(pid, sig)
    };
    match res {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// True while the process group `pgid` has at least one member.
pub fn group_alive(pgid: Pid) -> bool {
    !matches!(killpg(pgid, None), Err(Errno::ESRCH))
}

/// Makes this process a child subreaper, so orphans of its programs are
/// re-parented to it (not needed as PID 1, which adopts them anyway).
pub fn set_subreaper() -> Result<(), Errno> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Effective capabilities of this process (`CapEff` of `/proc/self/status`).
pub fn effective_caps() -> io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no CapEff line"))
}
