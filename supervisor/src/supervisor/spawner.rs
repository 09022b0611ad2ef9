//! Starting processes for the actor: a program's process (with its output
//! pipes, or the terminal for the main program), an `exec` check's process
//! and an exec session's command, all through the one spawn path (`process::spawn`, DESIGN
//! rules 3 and 5), entering the program's network namespace when it has one.
//!
//! Called only from the supervisor task, one spawn at a time. The results are
//! planner events: a spawn never blocks on the child beyond its exec.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::SystemTime;

use nix::unistd::Pid;

use super::passive::SpawnHooks;
use super::planner::Event;
use super::program::Netns;
use crate::config::{ProgramConfig, ProgramName, ProgramNet};
use crate::logs::ProgramLogs;
use crate::process::spawn::{self, SpawnOptions};
use crate::sys::{self, Session};

/// What every spawn needs from the daemon.
#[derive(Debug)]
pub struct Spawner {
    /// stdin of programs (and every stdio of checks).
    dev_null: OwnedFd,
    /// The daemon runs on a terminal: the main program gets it as its
    /// foreground process group.
    tty: bool,
}

impl Spawner {
    /// Opens /dev/null and looks at stdin.
    pub fn new() -> std::io::Result<Spawner> {
        Ok(Spawner {
            dev_null: sys::open_dev_null()?,
            tty: sys::stdin_is_tty(),
        })
    }

    /// Spawns a program: with `logs`, its stdout and stderr go to new pipes
    /// of its pumps (a configured program); without, it keeps the daemon's
    /// terminal (the main program). `hooks` carries what its self-signalled
    /// checks need (their log watches are used up here). Returns the
    /// planner's event.
    pub fn program(
        &self,
        name: ProgramName,
        cfg: &ProgramConfig,
        logs: Option<&ProgramLogs>,
        sandbox: Option<&Netns>,
        hooks: &mut SpawnHooks,
    ) -> Event {
        let failed = |name: ProgramName, error: String| Event::SpawnFailed {
            name,
            error,
            code: 1,
            pid: None,
        };
        let joined = match joined_netns(cfg) {
            Ok(fd) => fd,
            Err(e) => {
                tracing::error!(program = name.as_str(), "{e}");
                return failed(name, e);
            }
        };
        let netns = netns_fd(joined.as_ref(), sandbox);
        let watches = std::mem::take(&mut hooks.watches);
        let pipes = match logs.map(|l| l.open_pipes(watches)).transpose() {
            Ok(pipes) => pipes,
            Err(e) => {
                let error = with_limit(e.to_string(), e.errno());
                tracing::error!("{error}");
                return failed(name, error);
            }
        };
        let opts = match &pipes {
            None => SpawnOptions {
                session: if self.tty {
                    Session::ForegroundGroup { tty: 0 }
                } else {
                    Session::NewGroup
                },
                stdio: [None, None, None],
                netns,
                mntns: mntns_fd(sandbox),
                env: &hooks.env,
                extra_fd: hooks.extra_fd(),
            },
            Some(pipes) => SpawnOptions {
                session: Session::NewSession,
                stdio: [
                    Some(self.dev_null.as_raw_fd()),
                    Some(pipes.stdout.as_raw_fd()),
                    Some(pipes.stderr.as_raw_fd()),
                ],
                netns,
                mntns: mntns_fd(sandbox),
                env: &hooks.env,
                extra_fd: hooks.extra_fd(),
            },
        };
        let spawned = spawn::spawn(cfg, opts);
        // The child has its own copies now; the pumps see the end of the
        // output once the child (and anything it forked) has closed them.
        drop(pipes);
        match spawned {
            Ok(pid) => {
                tracing::info!(program = name.as_str(), pid = pid.as_raw(), "spawned");
                Event::Spawned {
                    name,
                    pid,
                    wall: SystemTime::now(),
                }
            }
            Err(e) => {
                let error = with_limit(e.to_string(), e.errno());
                tracing::error!(program = name.as_str(), "{error}");
                Event::SpawnFailed {
                    name,
                    error,
                    code: e.shell_code(),
                    pid: e.failed_pid(),
                }
            }
        }
    }

    /// Spawns an `exec` check's command as the program would run (its user,
    /// environment, directory and network namespace), in a session of its
    /// own, with /dev/null for stdin, stdout and stderr.
    pub fn check(
        &self,
        cfg: &ProgramConfig,
        command: &[String],
        sandbox: Option<&Netns>,
    ) -> Result<Pid, (String, Option<Pid>)> {
        let joined = joined_netns(cfg).map_err(|e| (e, None))?;
        let mut check = cfg.clone();
        check.command = command.into();
        let null = self.dev_null.as_raw_fd();
        let opts = SpawnOptions {
            session: Session::NewSession,
            stdio: [Some(null), Some(null), Some(null)],
            netns: netns_fd(joined.as_ref(), sandbox),
            mntns: mntns_fd(sandbox),
            env: &[],
            extra_fd: None,
        };
        spawn::spawn(&check, opts).map_err(|e| (e.to_string(), e.failed_pid()))
    }
    /// Spawns an exec session's command (`cfg` is the program's, with the
    /// client's command, user and directory): as the program would run, in a
    /// session of its own, stdin /dev/null, stdout and stderr on `output`,
    /// `env` set over the program's environment. An error comes with the
    /// exit code a shell would give (127 not found, 126 not executable, 1).
    pub fn exec(
        &self,
        cfg: &ProgramConfig,
        sandbox: Option<&Netns>,
        output: [std::os::fd::RawFd; 2],
        env: &[(String, String)],
    ) -> Result<Pid, (String, i32)> {
        let joined = joined_netns(cfg).map_err(|e| (e, 1))?;
        let opts = SpawnOptions {
            session: Session::NewSession,
            stdio: [
                Some(self.dev_null.as_raw_fd()),
                Some(output[0]),
                Some(output[1]),
            ],
            netns: netns_fd(joined.as_ref(), sandbox),
            mntns: mntns_fd(sandbox),
            env,
            extra_fd: None,
        };
        spawn::spawn(cfg, opts).map_err(|e| (e.to_string(), e.shell_code()))
    }
}

/// A spawn error's text, naming the open-files limit when that is what ran
/// out (EMFILE), so the fix is plain.
fn with_limit(error: String, errno: Option<nix::errno::Errno>) -> String {
    match errno {
        Some(nix::errno::Errno::EMFILE) => error + &crate::fd_budget::emfile_hint(),
        _ => error,
    }
}

/// The namespace fd a spawn enters: the joined one, else the sandbox's.
fn netns_fd(joined: Option<&OwnedFd>, sandbox: Option<&Netns>) -> Option<std::os::fd::RawFd> {
    joined
        .map(|fd| fd.as_raw_fd())
        .or_else(|| sandbox.map(|n| n.net.as_raw_fd()))
}

/// The mount namespace a spawn enters: the sandbox's names, if it has them.
fn mntns_fd(sandbox: Option<&Netns>) -> Option<std::os::fd::RawFd> {
    sandbox
        .and_then(|n| n.mnt.as_ref())
        .map(|fd| fd.as_raw_fd())
}

/// The named namespace a program joins (`netns = "NAME"`), opened for a
/// spawn: at each spawn, since its owner may have made it anew. (A sandbox
/// the daemon built comes opened from the planner.)
fn joined_netns(cfg: &ProgramConfig) -> Result<Option<OwnedFd>, String> {
    match cfg.net.as_deref() {
        Some(ProgramNet::Join { netns }) => crate::net::open_netns(netns)
            .map(Some)
            .map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}
