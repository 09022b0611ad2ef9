//! What the rest of the daemon may ask of the supervisor, and how it answers.
//!
//! The API (and signal handling) never touch program state: they send a
//! [`Command`] over the supervisor's channel through a [`Handle`] and await the
//! oneshot reply, which comes *after* the effect (DESIGN rule 1). State-change
//! events are broadcast; a slow reader lags, it never slows the supervisor.

use std::sync::Arc;

use nix::sys::signal::Signal;
use nsvisor_proto::{
    ActionResult, ApiError, ErrorKind, ExecRequest, Health, ProgramInfo, ReloadResult, StateEvent,
    StreamKind, Verb,
};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::exec::ExecOutput;
use crate::config::ProgramConfig;
use crate::logs::ring::Ring;

/// An action on programs: the API's verb, its signal parsed.
pub type Action = Verb<Signal>;

/// Counters of the daemon itself, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct DaemonStats {
    /// Orphans reaped that belonged to no program.
    pub orphans_reaped: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
}

/// A request to the supervisor.
#[derive(Debug)]
pub enum Command {
    /// Every program, in name order.
    List {
        /// Reply.
        reply: oneshot::Sender<Vec<ProgramInfo>>,
    },
    /// The same as a JSON array, written by the supervisor (cheaper at
    /// thousands of programs than handing over the values).
    ListJson {
        /// Reply.
        reply: oneshot::Sender<serde_json::Result<Vec<u8>>>,
    },
    /// Apply an action to a target: a name, `GROUP:*`, or `all`.
    Act {
        /// What to do.
        action: Action,
        /// Name, `GROUP:*` or `all`.
        target: String,
        /// Answer only once the goal state is reached or has failed.
        wait: bool,
        /// Reply: one result per program, or NotFound for an unknown target.
        reply: oneshot::Sender<Result<Vec<ActionResult>, ApiError>>,
    },
    /// Re-read the config file and apply the difference.
    Reload {
        /// Reply.
        reply: oneshot::Sender<Result<ReloadResult, ApiError>>,
    },
    /// Graceful shutdown; the reply comes once shutdown has begun.
    Shutdown {
        /// Reply.
        reply: oneshot::Sender<()>,
    },
    /// Health summary.
    Health {
        /// Reply.
        reply: oneshot::Sender<Health>,
    },
    /// Daemon counters.
    Stats {
        /// Reply.
        reply: oneshot::Sender<DaemonStats>,
    },
    /// The configuration of every program, in name order (XML-RPC answers
    /// with log file paths, priorities and commands, and diffs a reread).
    Configs {
        /// Reply.
        reply: oneshot::Sender<Vec<ProgramConfig>>,
    },
    /// The tail buffer of one stream of a program.
    Tail {
        /// Program name.
        name: String,
        /// Which stream.
        stream: StreamKind,
        /// Reply.
        reply: oneshot::Sender<Result<Arc<Ring>, ApiError>>,
    },
    /// Run a command in a program's sandbox (an exec session).
    Exec {
        /// Program name.
        name: String,
        /// What to run.
        request: ExecRequest,
        /// Reply: the started command's output and exit.
        reply: oneshot::Sender<Result<ExecOutput, ApiError>>,
    },
    /// Send a signal to an exec session's process group.
    ExecSignal {
        /// Session id.
        id: u64,
        /// Signal.
        signal: Signal,
        /// Reply.
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// The client of an exec session went away (no reply).
    ExecDetach {
        /// Session id.
        id: u64,
    },
}

/// A cheap, cloneable way to talk to the supervisor.
#[derive(Debug, Clone)]
pub struct Handle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) events: broadcast::Sender<StateEvent>,
}

fn gone() -> ApiError {
    ApiError::new(ErrorKind::ShuttingDown, "the supervisor has stopped")
}

impl Handle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Every program.
    pub async fn list(&self) -> Result<Vec<ProgramInfo>, ApiError> {
        self.ask(|reply| Command::List { reply }).await
    }

    /// Every program, as the JSON array [`Self::list`] would serialise to.
    pub async fn list_json(&self) -> Result<Vec<u8>, ApiError> {
        self.ask(|reply| Command::ListJson { reply })
            .await?
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::Failed,
                    format!("cannot encode the programs: {e}"),
                )
            })
    }

    /// Apply `action` to `target` (a name, `GROUP:*` or `all`).
    pub async fn act(
        &self,
        action: Action,
        target: &str,
        wait: bool,
    ) -> Result<Vec<ActionResult>, ApiError> {
        let target = target.to_string();
        self.ask(|reply| Command::Act {
            action,
            target,
            wait,
            reply,
        })
        .await?
    }

    /// Reload the config file.
    pub async fn reload(&self) -> Result<ReloadResult, ApiError> {
        self.ask(|reply| Command::Reload { reply }).await?
    }

    /// Begin a graceful shutdown.
    pub async fn shutdown(&self) -> Result<(), ApiError> {
        self.ask(|reply| Command::Shutdown { reply }).await
    }

    /// Health summary.
    pub async fn health(&self) -> Result<Health, ApiError> {
        self.ask(|reply| Command::Health { reply }).await
    }

    /// Daemon counters.
    pub async fn stats(&self) -> Result<DaemonStats, ApiError> {
        self.ask(|reply| Command::Stats { reply }).await
    }

    /// The configuration of every program.
    pub async fn configs(&self) -> Result<Vec<ProgramConfig>, ApiError> {
        self.ask(|reply| Command::Configs { reply }).await
    }

    /// Tail buffer of a program stream.
    pub async fn tail(&self, name: &str, stream: StreamKind) -> Result<Arc<Ring>, ApiError> {
        let name = name.to_string();
        self.ask(|reply| Command::Tail {
            name,
            stream,
            reply,
        })
        .await?
    }

    /// Runs `request` in program `name`'s sandbox.
    pub async fn exec(&self, name: &str, request: ExecRequest) -> Result<ExecOutput, ApiError> {
        let name = name.to_string();
        self.ask(|reply| Command::Exec {
            name,
            request,
            reply,
        })
        .await?
    }

    /// Sends `signal` to exec session `id`.
    pub async fn exec_signal(&self, id: u64, signal: Signal) -> Result<(), ApiError> {
        self.ask(|reply| Command::ExecSignal { id, signal, reply })
            .await?
    }

    /// Tells the supervisor that exec session `id`'s client left; never
    /// waits (called when a response body is dropped).
    pub fn exec_detach(&self, id: u64) {
        let _ = self.commands.try_send(Command::ExecDetach { id });
    }

    /// Receive every state change from now on.
    pub fn events(&self) -> broadcast::Receiver<StateEvent> {
        self.events.subscribe()
    }
}
