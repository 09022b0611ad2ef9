//! Clients waiting for an outcome, and the actions that create them.
//!
//! `start`, `stop` and `restart` with `wait` register a [`Waiter`]; it is
//! answered once every targeted program has reached its goal or failed —
//! never before anything happened (DESIGN rule 1) — and exactly once. At the
//! end of a shutdown, a waiter still unanswered is answered with the reason.

use std::collections::BTreeSet;
use std::time::Instant;

use nsvisor_proto::{ActionResult, ApiError, ErrorKind, ProgramInfo, State};

use super::{Answer, ClientId, Effect, Planner, StopPlan};
use crate::config::ProgramName;
use crate::supervisor::handle::Action as Verb;
use crate::supervisor::machine::{Input, ProgramState};
use crate::supervisor::program::{Gate, Program};

/// What a waiting action waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Goal {
    Running,
    Stopped,
}

/// An action whose answer waits for programs to reach their goal.
#[derive(Debug)]
pub(super) struct Waiter {
    client: ClientId,
    goal: Goal,
    remaining: BTreeSet<ProgramName>,
    results: Vec<ActionResult>,
}

/// How a program stands against a goal: `None` while still on its way.
fn verdict(program: Option<&Program>, goal: Goal) -> Option<(bool, String)> {
    let Some(p) = program else {
        return Some((goal == Goal::Stopped, "removed".into()));
    };
    if goal == Goal::Stopped {
        return p.is_down().then(|| (true, "stopped".into()));
    }
    match (&p.gate, p.machine.state()) {
        (_, ProgramState::Running { .. }) if p.ready() => Some((true, "started".into())),
        (_, ProgramState::Running { .. }) => p.readiness_failed().map(|why| (false, why)),
        (Gate::WaitingForDeps | Gate::WaitingForNetwork | Gate::Spawning, _) => None,
        (_, ProgramState::Starting { .. } | ProgramState::Stopping { .. }) => None,
        (Gate::Blocked(why), _) => Some((false, why.clone())),
        (Gate::Idle, ProgramState::Fatal { reason }) => {
            Some((false, format!("went FATAL: {reason}")))
        }
        (
            Gate::Idle,
            ProgramState::Exited {
                status,
                restart_at: None,
            },
        ) => Some((false, format!("exited before it was running ({status})"))),
        (Gate::Idle, ProgramState::Stopped) if !p.machine.restart_pending() => {
            Some((false, "stopped before it was running".into()))
        }
        (Gate::Idle, _) => None,
    }
}

impl Planner {
    /// A client's start, stop or restart of `target`.
    pub(super) fn act(
        &mut self,
        client: ClientId,
        verb: Verb,
        target: &str,
        wait: bool,
        now: Instant,
    ) {
        let names = match self.resolve(target) {
            Ok(names) => names,
            Err(e) => return self.answer(client, Err(e)),
        };
        if self.shutdown.is_some() && verb != Verb::Stop {
            let e = ApiError::new(ErrorKind::ShuttingDown, "the daemon is shutting down");
            return self.answer(client, Err(e));
        }
        let goal = match verb {
            Verb::Start | Verb::Restart => Goal::Running,
            Verb::Stop => Goal::Stopped,
            Verb::Signal(_) => {
                let e = ApiError::new(ErrorKind::BadRequest, "signals are not planned");
                return self.answer(client, Err(e));
            }
        };
        match verb {
            Verb::Start => {
                for n in &names {
                    self.request_start(n, now);
                }
            }
            Verb::Restart => {
                for n in &names {
                    if self.programs[n].has_process() {
                        for plan in &mut self.stop_plans {
                            plan.forget(n);
                        }
                        self.set_gate(n, Gate::Idle);
                        self.drive(n, Input::Restart, now);
                    } else {
                        self.request_start(n, now);
                    }
                }
            }
            // During a shutdown its stop plan decides when each program stops.
            Verb::Stop if self.shutdown.is_some() => {}
            Verb::Stop if names.len() > 1 => {
                let tiers = super::tiers(self.programs.values().map(|p| &p.cfg));
                for n in &names {
                    self.cancel_start(n);
                }
                self.stop_plans.push(StopPlan::new(&names, &tiers));
                self.advance_stop_plans(now);
            }
            Verb::Stop | Verb::Signal(_) => {
                for n in &names {
                    self.stop_now(n, now);
                }
            }
        }
        if wait {
            self.dirty.extend(names.iter().cloned());
            self.waiters.push(Waiter {
                client,
                goal,
                remaining: names.into_iter().collect(),
                results: Vec::new(),
            });
        } else {
            let results = names
                .iter()
                .filter_map(|n| self.programs.get(n))
                .map(|p| ActionResult {
                    name: p.cfg.name.to_string(),
                    ok: true,
                    message: "requested".into(),
                    program: p.info(now),
                })
                .collect();
            self.answer(client, Ok(results));
        }
    }

    /// Stops one program now (cancels a start waiting at its gate).
    pub(super) fn stop_now(&mut self, name: &str, now: Instant) {
        self.cancel_start(name);
        self.drive(name, Input::Stop, now);
    }

    /// Answers the waiters whose programs among `changed` reached their goal.
    pub(super) fn answer_waiters(&mut self, changed: &BTreeSet<ProgramName>, now: Instant) {
        if self.waiters.is_empty() {
            return;
        }
        let mut waiters = std::mem::take(&mut self.waiters);
        for w in &mut waiters {
            let done: Vec<(ProgramName, bool, String)> = w
                .remaining
                .iter()
                .filter(|n| changed.contains(*n))
                .filter_map(|n| {
                    verdict(self.programs.get(n), w.goal).map(|(ok, msg)| (n.clone(), ok, msg))
                })
                .collect();
            for (name, ok, message) in done {
                w.remaining.remove(&name);
                let program = match self.programs.get(&name) {
                    Some(p) => p.info(now),
                    None => removed_info(&name),
                };
                w.results.push(ActionResult {
                    name: name.to_string(),
                    ok,
                    message,
                    program,
                });
            }
        }
        for w in waiters {
            if w.remaining.is_empty() {
                let mut results = w.results;
                results.sort_by(|a, b| a.name.cmp(&b.name));
                self.answer(w.client, Ok(results));
            } else {
                self.waiters.push(w);
            }
        }
    }

    /// Answers every waiter still waiting: what reached its goal, and `why`
    /// for the rest.
    pub(super) fn answer_all_left(&mut self, why: &str, now: Instant) {
        for w in std::mem::take(&mut self.waiters) {
            let mut results = w.results;
            for name in w.remaining {
                let program = match self.programs.get(&name) {
                    Some(p) => p.info(now),
                    None => removed_info(&name),
                };
                results.push(ActionResult {
                    name: name.to_string(),
                    ok: false,
                    message: why.to_string(),
                    program,
                });
            }
            results.sort_by(|a, b| a.name.cmp(&b.name));
            self.answer(w.client, Ok(results));
        }
    }

    fn answer(&mut self, client: ClientId, result: Result<Vec<ActionResult>, ApiError>) {
        self.out.push(Effect::Answer {
            client,
            answer: Box::new(Answer::Act(result)),
        });
    }
}

fn removed_info(name: &str) -> ProgramInfo {
    ProgramInfo {
        name: name.to_string(),
        group: name.to_string(),
        state: State::Stopped,
        pid: None,
        uptime_secs: None,
        started_at: None,
        started_at_ms: None,
        stopped_at: None,
        exit_status: None,
        restarts: 0,
        autostart: false,
        description: "removed".into(),
        checks: Vec::new(),
        ready: false,
        net: None,
    }
}
