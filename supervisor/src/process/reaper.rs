//! The one reaper (DESIGN rule 3): the only `waitpid` in the daemon.
//!
//! The supervisor task calls [`reap_all`] whenever SIGCHLD arrives (and after
//! spawns), between spawns, never concurrently with one. It collects every
//! child that has ended — programs and adopted orphans alike — and hands the
//! statuses back; telling the two apart is the supervisor's job.

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use nsvisor_proto::ExitStatus;

/// Reaps every child that has ended, until none is left to reap now.
pub fn reap_all() -> Vec<(Pid, ExitStatus)> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid, ExitStatus::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                out.push((pid, ExitStatus::Signal(sig as i32)))
            }
            Ok(WaitStatus::StillAlive) => break,
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => break,
            Err(e) => {
                tracing::error!("waitpid failed: {e}");
                break;
            }
        }
    }
    out
}
