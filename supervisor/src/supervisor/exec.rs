//! Exec sessions: commands a client runs inside a program's sandbox
//! (`nsvisorctl exec`, like `docker exec`), owned by the supervisor task.
//!
//! A session is spawned through the daemon's one spawn path (`Spawner::exec`)
//! as the program would run, with the client's overrides, in a session and
//! process group of its own, its stdout and stderr on pipes whose read ends
//! go to the API (which streams them). Its exit comes through the one
//! reaper: the actor hands every reaped status to [`Sessions::reaped`] first,
//! which keeps the sessions' pids (they are no program's and no orphans) and
//! answers each session's exit channel. Signals from the client, the
//! timeout and the client leaving all act on the command's process group.
//! At shutdown the sessions are killed and the daemon waits for their exits.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use nsvisor_proto::{ApiError, ErrorKind, ExecExit, ExecRequest, ExitStatus};
use tokio::sync::oneshot;

use super::program::{Program, Sandbox};
use super::spawner::Spawner;
use crate::config::{ProgramNet, UserSpec};
use crate::sys;

/// A started command, for the API: its output pipes and its exit.
#[derive(Debug)]
pub struct ExecOutput {
    /// Session id (for signals).
    pub id: u64,
    /// The command's pid, 0 when it could not be started.
    pub pid: u32,
    /// Read end of its stdout.
    pub stdout: OwnedFd,
    /// Read end of its stderr.
    pub stderr: OwnedFd,
    /// How it ended (answered once it is reaped).
    pub exit: oneshot::Receiver<ExecExit>,
}

/// A running command.
#[derive(Debug)]
struct Session {
    pid: Pid,
    timed_out: bool,
    exit: oneshot::Sender<ExecExit>,
}

/// Every running exec command.
#[derive(Debug, Default)]
pub struct Sessions {
    next_id: u64,
    live: HashMap<u64, Session>,
    by_pid: HashMap<Pid, u64>,
}

impl Sessions {
    /// Starts `request` as `program` would run it; returns its output and,
    /// with a timeout, when to call [`Sessions::expire`]. A command that
    /// cannot be started still gets an output, whose exit says why (127 not
    /// found, 126 not executable), like a shell.
    pub fn start(
        &mut self,
        spawner: &Spawner,
        program: &Program,
        request: ExecRequest,
    ) -> Result<(ExecOutput, Option<Duration>), ApiError> {
        let bad = |m: String| ApiError::new(ErrorKind::BadRequest, m);
        if request.command.is_empty() {
            return Err(bad("exec: no command given".into()));
        }
        let timeout = match request.timeout_secs {
            Some(t) if !(t > 0.0 && t.is_finite()) => {
                return Err(bad(format!("exec: timeout must be positive, not {t}")))
            }
            t => t.map(Duration::from_secs_f64),
        };
        let sandbox = match (program.cfg.net.as_deref(), &program.sandbox) {
            (Some(ProgramNet::Sandbox(_)), Sandbox::Ready(netns)) => Some(netns),
            (Some(ProgramNet::Sandbox(spec)), _) => {
                return Err(ApiError::new(
                    ErrorKind::WrongState,
                    format!(
                        "program \"{}\": its sandbox \"{}\" does not exist yet (it is made at the program's first start)",
                        program.cfg.name, spec.sandbox
                    ),
                ))
            }
            _ => None,
        };
        let mut cfg = program.cfg.clone();
        cfg.command = request.command.into();
        if let Some(user) = request.user {
            cfg.user = Some(Box::new(match user.split_once(':') {
                Some((u, g)) => UserSpec {
                    user: u.to_string(),
                    group: Some(g.to_string()),
                },
                None => UserSpec { user, group: None },
            }));
        }
        if let Some(dir) = request.workdir {
            cfg.directory = Some(PathBuf::from(dir));
        }
        let mut env = BTreeMap::new();
        for pair in request.env {
            let (k, v) = pair
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| bad(format!("exec: environment {pair:?} is not KEY=VALUE")))?;
            env.insert(k.to_string(), v.to_string());
        }
        let env: Vec<(String, String)> = env.into_iter().collect();
        let failed = |e: std::io::Error| {
            ApiError::new(ErrorKind::Failed, format!("exec: cannot make a pipe: {e}"))
        };
        let (stdout, out_w) = sys::log_pipe().map_err(failed)?;
        let (stderr, err_w) = sys::log_pipe().map_err(failed)?;
        let spawned = spawner.exec(&cfg, sandbox, [out_w.as_raw_fd(), err_w.as_raw_fd()], &env);
        drop((out_w, err_w));
        let (tx, exit) = oneshot::channel();
        self.next_id += 1;
        let id = self.next_id;
        let pid = match spawned {
            Ok(pid) => {
                tracing::info!(
                    program = cfg.name.as_str(),
                    pid = pid.as_raw(),
                    "exec {:?}",
                    cfg.command
                );
                self.by_pid.insert(pid, id);
                self.live.insert(
                    id,
                    Session {
                        pid,
                        timed_out: false,
                        exit: tx,
                    },
                );
                pid.as_raw() as u32
            }
            Err((error, code)) => {
                tracing::warn!(program = cfg.name.as_str(), "exec: {error}");
                let _ = tx.send(ExecExit {
                    code,
                    status: None,
                    timed_out: false,
                    error: Some(error),
                });
                0
            }
        };
        let output = ExecOutput {
            id,
            pid,
            stdout,
            stderr,
            exit,
        };
        Ok((output, timeout.filter(|_| pid != 0)))
    }

    /// Takes the statuses of exec commands out of `statuses` and answers
    /// their sessions; the rest is for the planner.
    pub fn reaped(&mut self, statuses: &mut Vec<(Pid, ExitStatus)>) {
        if self.by_pid.is_empty() {
            return;
        }
        statuses.retain(|(pid, status)| {
            let Some(id) = self.by_pid.remove(pid) else {
                return true;
            };
            if let Some(s) = self.live.remove(&id) {
                let _ = s.exit.send(ExecExit {
                    code: status.as_shell_code(),
                    status: Some(*status),
                    timed_out: s.timed_out,
                    error: None,
                });
            }
            false
        });
    }

    /// Sends `signal` to session `id`'s process group.
    pub fn signal(&self, id: u64, signal: Signal) -> Result<(), ApiError> {
        let s = self.live.get(&id).ok_or_else(|| {
            ApiError::new(ErrorKind::NotFound, format!("no running exec session {id}"))
        })?;
        sys::send_signal(s.pid, signal, true).map_err(|e| {
            ApiError::new(
                ErrorKind::Failed,
                format!("cannot send {signal} to exec session {id}: {e}"),
            )
        })
    }

    /// The timeout of session `id` passed: kills its process group.
    pub fn expire(&mut self, id: u64) {
        if let Some(s) = self.live.get_mut(&id) {
            s.timed_out = true;
            tracing::info!(
                pid = s.pid.as_raw(),
                "exec session {id}: timed out, killing it"
            );
            let _ = sys::send_signal(s.pid, Signal::SIGKILL, true);
        }
    }

    /// The client of session `id` went away: kills its process group (a
    /// finished session is not there any more).
    pub fn detach(&mut self, id: u64) {
        if let Some(s) = self.live.get(&id) {
            tracing::info!(
                pid = s.pid.as_raw(),
                "exec session {id}: client gone, killing it"
            );
            let _ = sys::send_signal(s.pid, Signal::SIGKILL, true);
        }
    }

    /// Kills every session (the daemon is about to exit).
    pub fn kill_all(&mut self) {
        for s in self.live.values() {
            let _ = sys::send_signal(s.pid, Signal::SIGKILL, true);
        }
    }

    /// No command runs.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}
