//! Process-wide calls: signals to programs and their groups, job control of
//! the `--` command and of the daemon itself, the subreaper flag, the
//! daemon's own capabilities.
//!
//! `ESRCH` from a kill means the process is already gone and is not an
//! error. Callers: the supervisor (signals, stop and shutdown, job control),
//! `lib.rs` (subreaper at start-up), `net::check` (capabilities).

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

/// Sends signal number `sig` (a real-time one too, which [`Signal`] cannot
/// name) to a process, or to its process group when `group`.
pub fn send_signal_number(pid: Pid, sig: i32, group: bool) -> Result<(), Errno> {
    let target = if group { -pid.as_raw() } else { pid.as_raw() };
    // SAFETY: kill takes plain integers.
    let res = Errno::result(unsafe { libc::kill(target, sig) });
    match res {
        Ok(_) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Stops the whole daemon (SIGSTOP to itself) until a SIGCONT: job control.
/// Returns once continued. PID 1 cannot be stopped this way (the kernel
/// ignores it), so the caller checks that first.
pub fn stop_self() -> Result<(), Errno> {
    nix::sys::signal::raise(Signal::SIGSTOP)
}

/// The signal that stopped child `pid`, if it is stopped and that stop was
/// not reported yet. `waitid` for stops only (no `WEXITED`): it never reaps,
/// so it does not race with the reaper (DESIGN rule 3).
pub fn stopped_by(pid: Pid) -> Option<Signal> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
    let flags = WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG;
    match waitid(Id::Pid(pid), flags) {
        Ok(WaitStatus::Stopped(_, sig)) => Some(sig),
        _ => None,
    }
}

/// Gives the terminal on stdin to process group `pgid`, but only when the
/// daemon's own group holds it (a shell's `fg` gave it back to the daemon
/// after a stop); in the background, or without a terminal, nothing happens.
pub fn give_terminal(pgid: Pid) -> Result<(), Errno> {
    let stdin = std::io::stdin();
    match nix::unistd::tcgetpgrp(&stdin) {
        Ok(fg) if fg == nix::unistd::getpgrp() => nix::unistd::tcsetpgrp(&stdin, pgid),
        _ => Ok(()),
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
