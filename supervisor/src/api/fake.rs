//! A stand-in for the supervisor behind a [`Handle`]: a task answering
//! `Command`s from a fixed program list (web and worker:0/1 RUNNING, broken
//! FATAL, whose every start fails), so the HTTP side can be exercised without
//! spawning anything. Used by the API unit tests (`tests.rs`) and, with the
//! `fuzzing` feature, by the `http_api` fuzz target (`fuzz_harness.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use nsvisor_proto::{
    ActionResult, ApiError, ErrorKind, Health, ProgramInfo, ReloadResult, State, StateEvent,
    StreamKind,
};
use tokio::sync::{broadcast, mpsc};

use crate::logs::ring::Ring;
use crate::supervisor::handle::{Action, Command, DaemonStats, Handle};

/// Each program's tail buffer, by name (stdout only).
pub(crate) type Rings = Arc<Mutex<HashMap<String, Arc<Ring>>>>;

/// The info the fake reports for a program in `state`.
fn program(name: &str, group: &str, state: State) -> ProgramInfo {
    ProgramInfo {
        name: name.into(),
        group: group.into(),
        state,
        pid: state.has_process().then_some(42),
        uptime_secs: state.has_process().then_some(62),
        started_at: Some(1_700_000_000),
        started_at_ms: None,
        stopped_at: None,
        exit_status: None,
        restarts: 0,
        autostart: true,
        description: if state.has_process() {
            "pid 42, uptime 0:01:02".into()
        } else {
            String::new()
        },
        ready: state == State::Running,
        net: None,
        checks: Vec::new(),
    }
}

/// The fake supervisor: its handle, and what a test may change or drive.
// The fuzz harness uses the handle only.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Fake {
    /// The way to it, as the API server gets it.
    pub handle: Handle,
    /// Sends state events to the API's followers.
    pub events: broadcast::Sender<StateEvent>,
    /// Tail buffers (a test may remove one, or write into it).
    pub rings: Rings,
    /// What `health` answers.
    pub healthy: Arc<Mutex<bool>>,
}

/// A supervisor stand-in: web (RUNNING), worker:0 and worker:1 (RUNNING),
/// broken (FATAL; every start fails).
pub(crate) fn fake() -> Fake {
    let (tx, mut rx) = mpsc::channel::<Command>(16);
    let (events, _) = broadcast::channel(16);
    let rings: Rings = Arc::default();
    for name in ["web", "worker:0", "worker:1", "broken"] {
        let ring = Arc::new(Ring::new(1024));
        rings.lock().expect("rings").insert(name.into(), ring);
    }
    let healthy = Arc::new(Mutex::new(true));
    let programs = vec![
        program("broken", "broken", State::Fatal),
        program("web", "web", State::Running),
        program("worker:0", "worker", State::Running),
        program("worker:1", "worker", State::Running),
    ];
    let (task_rings, task_healthy) = (rings.clone(), healthy.clone());
    tokio::spawn(async move {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::List { reply } => drop(reply.send(programs.clone())),
                Command::ListJson { reply } => drop(reply.send(serde_json::to_vec(&programs))),
                Command::Act {
                    action,
                    target,
                    reply,
                    ..
                } => {
                    let hits: Vec<&ProgramInfo> = programs
                        .iter()
                        .filter(|p| {
                            target == "all"
                                || p.name == target
                                || target == format!("{}:*", p.group)
                        })
                        .collect();
                    let answer = if hits.is_empty() {
                        Err(ApiError::new(
                            ErrorKind::NotFound,
                            format!("no such program: {target}"),
                        ))
                    } else {
                        Ok(hits.into_iter().map(|p| act(p, action)).collect())
                    };
                    drop(reply.send(answer));
                }
                Command::Reload { reply } => drop(reply.send(Ok(ReloadResult {
                    added: vec!["new".into()],
                    changed: vec![],
                    removed: vec!["old".into()],
                }))),
                Command::Shutdown { reply } => drop(reply.send(())),
                Command::Health { reply } => {
                    let healthy = *task_healthy.lock().expect("healthy");
                    drop(reply.send(Health {
                        healthy,
                        version: "test".into(),
                        commit: None,
                        pid: std::process::id(),
                        uptime_secs: 1,
                        not_running: if healthy { vec![] } else { vec!["web".into()] },
                        failing: vec![],
                        ready: healthy,
                        not_ready: if healthy { vec![] } else { vec!["web".into()] },
                        shutting_down: false,
                    }))
                }
                Command::Configs { reply } => drop(reply.send(Vec::new())),
                Command::Stats { reply } => drop(reply.send(DaemonStats {
                    orphans_reaped: 2,
                    uptime_secs: 9,
                })),
                Command::Tail {
                    name,
                    stream,
                    reply,
                } => {
                    let ring = task_rings.lock().expect("rings").get(&name).cloned();
                    let answer = match (ring, stream) {
                        (Some(ring), StreamKind::Stdout) => Ok(ring),
                        _ => Err(ApiError::new(
                            ErrorKind::NotFound,
                            format!("no such program: {name}"),
                        )),
                    };
                    drop(reply.send(answer));
                }
                Command::Exec { name, reply, .. } => drop(reply.send(Err(ApiError::new(
                    ErrorKind::NotFound,
                    format!("no such program: {name}"),
                )))),
                Command::ExecSignal { id, reply, .. } => drop(reply.send(Err(ApiError::new(
                    ErrorKind::NotFound,
                    format!("no running exec session {id}"),
                )))),
                Command::ExecDetach { .. } => {}
            }
        }
    });
    Fake {
        handle: Handle {
            commands: tx,
            events: events.clone(),
        },
        events,
        rings,
        healthy,
    }
}

/// The fake outcome of `action` on `p`.
fn act(p: &ProgramInfo, action: Action) -> ActionResult {
    let (ok, message) = match (action, p.name.as_str()) {
        (Action::Start, "broken") => (false, "went FATAL: spawn error".to_string()),
        (Action::Start, _) => (true, "started".to_string()),
        (Action::Stop, _) => (true, "stopped".to_string()),
        (Action::Restart, _) => (true, "restarted".to_string()),
        (Action::Signal(s), _) => (true, format!("sent {s}")),
    };
    ActionResult {
        name: p.name.clone(),
        ok,
        message,
        program: p.clone(),
    }
}
