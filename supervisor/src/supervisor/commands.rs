//! Commands from clients: status, start/stop/restart/signal with waiting,
//! health, stats, tail.
//!
//! An action with `wait` registers a [`PendingAct`]; it is answered from
//! `answer_waiters` once every targeted program has reached its goal or
//! failed — never before anything happened (DESIGN rule 1).

use std::collections::BTreeSet;
use std::time::Instant;

use nsvisor_proto::{ActionResult, ApiError, ErrorKind, Health, ProgramInfo, State};
use tokio::sync::oneshot;

use super::actor::Supervisor;
use super::command::{Action, Command, DaemonStats};
use super::program::{Input, ProgramState};

/// What a waiting action waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    Running,
    Stopped,
}

/// An action whose answer waits for programs to reach their goal.
#[derive(Debug)]
pub struct PendingAct {
    goal: Goal,
    remaining: BTreeSet<String>,
    results: Vec<ActionResult>,
    reply: oneshot::Sender<Result<Vec<ActionResult>, ApiError>>,
}

/// How a program stands against a goal: `None` while still on its way.
fn verdict(sup: &Supervisor, name: &str, goal: Goal) -> Option<(bool, String)> {
    let Some(p) = sup.programs.get(name) else {
        return Some((goal == Goal::Stopped, "removed".into()));
    };
    match (goal, &p.machine.state) {
        (Goal::Running, ProgramState::Running { .. }) => Some((true, "started".into())),
        (Goal::Running, ProgramState::Fatal { reason }) => {
            Some((false, format!("went FATAL: {reason}")))
        }
        (
            Goal::Running,
            ProgramState::Exited {
                status,
                restart_at: None,
            },
        ) => Some((false, format!("exited before it was running ({status})"))),
        (Goal::Running, ProgramState::Stopped)
            if !p.pending_start && !p.machine.start_after_stop =>
        {
            Some((
                false,
                p.blocked
                    .clone()
                    .unwrap_or_else(|| "stopped before it was running".into()),
            ))
        }
        (Goal::Running, _) => None,
        (Goal::Stopped, s) if !s.kind().has_process() && p.is_down() => {
            Some((true, "stopped".into()))
        }
        (Goal::Stopped, _) => None,
    }
}

impl Supervisor {
    pub(super) fn on_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::List { reply } => {
                let _ = reply.send(self.programs.values().map(|p| p.info(now)).collect());
            }
            Command::Act {
                action,
                target,
                wait,
                reply,
            } => self.act(action, &target, wait, reply),
            Command::Reload { reply } => {
                let _ = reply.send(self.reload());
            }
            Command::Shutdown { reply } => {
                self.begin_shutdown(0, "shutdown requested");
                let _ = reply.send(());
            }
            Command::Health { reply } => {
                let _ = reply.send(self.health());
            }
            Command::Stats { reply } => {
                let _ = reply.send(DaemonStats {
                    orphans_reaped: self.orphans_reaped,
                    uptime_secs: self.uptime_secs(),
                });
            }
            Command::Tail {
                name,
                stream,
                reply,
            } => {
                let answer = match self.programs.get_mut(&name) {
                    None => Err(unknown(&name)),
                    Some(p) if p.main => Err(ApiError::new(
                        ErrorKind::NotFound,
                        format!("program \"{name}\": its output goes to the terminal, it is not captured"),
                    )),
                    Some(p) => Ok(p.logs(&self.logs).ring(stream)),
                };
                let _ = reply.send(answer);
            }
        }
    }

    /// Names matched by `target`: a name, `GROUP:*`, or `all`.
    fn resolve(&self, target: &str) -> Result<Vec<String>, ApiError> {
        if target == "all" {
            return Ok(self.programs.keys().cloned().collect());
        }
        if let Some(group) = target.strip_suffix(":*") {
            let names: Vec<String> = self
                .programs
                .values()
                .filter(|p| p.cfg.group == group)
                .map(|p| p.cfg.name.clone())
                .collect();
            return if names.is_empty() {
                Err(unknown(target))
            } else {
                Ok(names)
            };
        }
        if self.programs.contains_key(target) {
            return Ok(vec![target.to_string()]);
        }
        // A group name alone means all of its replicas, like supervisorctl.
        let names: Vec<String> = self
            .programs
            .values()
            .filter(|p| p.cfg.group == target)
            .map(|p| p.cfg.name.clone())
            .collect();
        if names.is_empty() {
            Err(unknown(target))
        } else {
            Ok(names)
        }
    }

    fn act(
        &mut self,
        action: Action,
        target: &str,
        wait: bool,
        reply: oneshot::Sender<Result<Vec<ActionResult>, ApiError>>,
    ) {
        let names = match self.resolve(target) {
            Ok(n) => n,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        if self.shutdown.is_some() && matches!(action, Action::Start | Action::Restart) {
            let _ = reply.send(Err(ApiError::new(
                ErrorKind::ShuttingDown,
                "the daemon is shutting down",
            )));
            return;
        }
        let goal = match action {
            Action::Start | Action::Restart => Goal::Running,
            Action::Stop => Goal::Stopped,
            Action::Signal(sig) => {
                let _ = reply.send(self.signal(&names, sig, target));
                return;
            }
        };
        match action {
            Action::Start => {
                for n in &names {
                    self.request_start(n);
                }
            }
            Action::Restart => {
                for n in &names {
                    if self.programs[n].state().has_process() {
                        self.drive(n, Input::Restart);
                    } else {
                        self.request_start(n);
                    }
                }
            }
            _ if names.len() > 1 => {
                let tiers = super::order::tiers(self.programs.values().map(|p| &p.cfg));
                for n in &names {
                    if let Some(p) = self.programs.get_mut(n) {
                        p.pending_start = false;
                    }
                }
                self.stop_plans
                    .push(super::order::StopPlan::new(&names, &tiers));
                self.advance_stop_plans();
            }
            _ => {
                for n in &names {
                    self.stop_now(n);
                }
            }
        }
        let pending = PendingAct {
            goal,
            remaining: names.into_iter().collect(),
            results: Vec::new(),
            reply,
        };
        if wait {
            self.pending_acts.push(pending);
            self.dirty.extend(
                self.pending_acts
                    .last()
                    .map(|p| p.remaining.clone())
                    .unwrap_or_default(),
            );
        } else {
            let now = Instant::now();
            let results = pending
                .remaining
                .iter()
                .filter_map(|n| self.programs.get(n))
                .map(|p| ActionResult {
                    name: p.cfg.name.clone(),
                    ok: true,
                    message: "requested".into(),
                    program: p.info(now),
                })
                .collect();
            let _ = pending.reply.send(Ok(results));
        }
    }

    /// Stops one program now (cancels a pending start).
    pub(super) fn stop_now(&mut self, name: &str) {
        if let Some(p) = self.programs.get_mut(name) {
            p.pending_start = false;
            self.dirty.insert(name.to_string());
        }
        self.drive(name, Input::Stop);
    }

    fn signal(
        &mut self,
        names: &[String],
        sig: nix::sys::signal::Signal,
        target: &str,
    ) -> Result<Vec<ActionResult>, ApiError> {
        let now = Instant::now();
        let mut results = Vec::new();
        for n in names {
            let p = &self.programs[n];
            let (ok, message) = match p.machine.state.pid() {
                Some(pid) => match crate::sys::send_signal(pid, sig, p.cfg.stopasgroup) {
                    Ok(()) => (true, format!("sent {sig}")),
                    Err(e) => (false, format!("cannot send {sig}: {e}")),
                },
                None => (false, format!("not running ({})", p.state())),
            };
            results.push(ActionResult {
                name: n.clone(),
                ok,
                message,
                program: p.info(now),
            });
        }
        if names.len() == 1
            && target != "all"
            && !results[0].ok
            && !self.programs[&names[0]].state().has_process()
        {
            return Err(ApiError::new(
                ErrorKind::WrongState,
                format!("program \"{}\": {}", names[0], results[0].message),
            ));
        }
        Ok(results)
    }

    pub(super) fn answer_waiters(&mut self, changed: &BTreeSet<String>) {
        if self.pending_acts.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut acts = std::mem::take(&mut self.pending_acts);
        for act in &mut acts {
            let done: Vec<(String, bool, String)> = act
                .remaining
                .iter()
                .filter(|n| changed.contains(*n))
                .filter_map(|n| verdict(self, n, act.goal).map(|(ok, msg)| (n.clone(), ok, msg)))
                .collect();
            for (name, ok, message) in done {
                act.remaining.remove(&name);
                let program = match self.programs.get(&name) {
                    Some(p) => p.info(now),
                    None => removed_info(&name),
                };
                act.results.push(ActionResult {
                    name,
                    ok,
                    message,
                    program,
                });
            }
        }
        for act in acts {
            if act.remaining.is_empty() {
                let mut results = act.results;
                results.sort_by(|a, b| a.name.cmp(&b.name));
                let _ = act.reply.send(Ok(results));
            } else {
                self.pending_acts.push(act);
            }
        }
    }

    fn health(&self) -> Health {
        let not_running: Vec<String> = self
            .programs
            .values()
            .filter(|p| p.cfg.autostart || p.main)
            .filter(|p| match &p.machine.state {
                ProgramState::Running { .. } => false,
                ProgramState::Exited {
                    status,
                    restart_at: None,
                } => !p.machine.policy.expected(*status),
                _ => true,
            })
            .map(|p| p.cfg.name.clone())
            .collect();
        Health {
            healthy: not_running.is_empty() && self.shutdown.is_none(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.uptime_secs(),
            not_running,
            shutting_down: self.shutdown.is_some(),
        }
    }
}

fn unknown(name: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no such program: \"{name}\""))
}

fn removed_info(name: &str) -> ProgramInfo {
    ProgramInfo {
        name: name.to_string(),
        group: name.to_string(),
        state: State::Stopped,
        pid: None,
        uptime_secs: None,
        started_at: None,
        exit_status: None,
        restarts: 0,
        autostart: false,
        description: "removed".into(),
        net: None,
    }
}
