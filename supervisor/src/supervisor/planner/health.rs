//! Readiness and liveness (DESIGN §9): the rules that turn check results into
//! a program's `ready` flag and liveness verdict, and what a failing
//! liveness check does.
//!
//! A check is a timer until it is due ([`Effect::CheckTimer`]), then one run
//! the actor carries out ([`Effect::RunCheck`]), whose result comes back as
//! [`Event::CheckDone`](super::Event::CheckDone). Every spawn starts a new
//! *epoch*: timers and results of an earlier process are ignored. The first
//! run is 1 s after the spawn (or `period`, if shorter); a readiness check
//! that has not passed yet runs every second (or every `period`), then every
//! `period`. Failures within `start_period` of the spawn do not count.
//!
//! An `exec` check is a process: the actor spawns it through the one spawn
//! path ([`Event::CheckSpawned`](super::Event::CheckSpawned)), the one reaper
//! reports its exit, and at its timeout its process group gets SIGKILL. A
//! shutdown SIGKILLs every check still running, and the daemon exits only
//! once they are reaped.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use nsvisor_proto::ExitStatus;

use super::{Effect, Planner};
use crate::config::{CheckConfig, CheckKind, OnFailure, ProgramName, Purpose};
use crate::health::notify::NotifyMessage;
use crate::supervisor::machine::{Input, ProgramState};

/// How often a readiness check that has not passed yet runs (at most).
const UNTIL_READY: Duration = Duration::from_secs(1);

/// Where one check of a program stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckState {
    /// Consecutive passes.
    successes: u32,
    /// Consecutive failures that count.
    failures: u32,
    /// The verdict: passing (ready / alive) or not.
    passing: bool,
    /// The last result, in words (`tcp 127.0.0.1:8080: connection refused`).
    last: Option<String>,
    /// How long the last run took, in milliseconds.
    last_ms: Option<u64>,
    /// A `notify = "watchdog"` check: `WATCHDOG=1` arrived this period.
    pinged: bool,
}

impl CheckState {
    /// The state of `check` for a process just spawned: a readiness check
    /// has not passed yet, a liveness check is alive until it fails.
    fn fresh(check: &CheckConfig) -> CheckState {
        CheckState {
            passing: check.purpose == Purpose::Liveness,
            ..CheckState::default()
        }
    }

    /// Whether it passes.
    pub fn passing(&self) -> bool {
        self.passing
    }

    /// The last result, in words.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }

    /// How long the last run took, in milliseconds.
    pub fn last_ms(&self) -> Option<u64> {
        self.last_ms
    }

    /// It has failed `threshold` times in a row (failures that count, after
    /// `start_period`): a readiness check that has not passed yet gives up
    /// the wait of a client here.
    pub fn failed(&self, threshold: u32) -> bool {
        self.failures >= threshold
    }
}

/// A running `exec` check process.
#[derive(Debug, Clone)]
pub(super) struct CheckRun {
    name: ProgramName,
    index: usize,
    epoch: u64,
    started: Instant,
    /// Killed at its timeout: it fails whatever its status.
    timed_out: bool,
}

/// The checks of a program's current process.
#[derive(Debug, Clone, Default)]
pub struct HealthState {
    /// Which process the states belong to (one more per spawn).
    pub epoch: u64,
    /// One per configured check, in config order.
    pub checks: Vec<CheckState>,
    /// Runs and failed runs of each check since the daemon started (or the
    /// program's checks last changed).
    pub totals: Vec<(u64, u64)>,
    /// The last `STATUS=` the current process sent to its notify socket.
    pub notify_status: Option<String>,
    /// `MAINPID=` was reported as ignored (once per program).
    mainpid_reported: bool,
}

impl Planner {
    /// A process was spawned: its checks start afresh.
    pub(super) fn start_checks(&mut self, name: &str, now: Instant) {
        let key = self.key(name);
        let Some(p) = self.programs.get_mut(name) else {
            return;
        };
        p.health.epoch += 1;
        p.health.checks = p.cfg.checks.iter().map(CheckState::fresh).collect();
        p.health.notify_status = None;
        if p.health.totals.len() != p.cfg.checks.len() {
            p.health.totals = vec![(0, 0); p.cfg.checks.len()];
        }
        let epoch = p.health.epoch;
        for (index, check) in p.cfg.checks.iter().enumerate() {
            // A check the program signals itself is due at its deadline: a
            // readiness one at its `timeout`, a watchdog every `period`.
            let first = match (&check.kind, check.purpose) {
                (CheckKind::NotifyWatchdog, _) => check.period,
                (kind, Purpose::Readiness) if kind.is_passive() => check.timeout,
                _ => check.period.min(UNTIL_READY),
            };
            self.out.push(Effect::CheckTimer {
                at: now + first,
                name: key.clone(),
                index,
                epoch,
            });
        }
    }

    /// A check's timer fired: run it if its process is still the one (a
    /// check the program signals itself is judged here instead).
    pub(super) fn check_due(&mut self, name: &str, index: usize, epoch: u64, now: Instant) {
        let current = self.programs.get(name).is_some_and(|p| {
            p.health.epoch == epoch
                && matches!(
                    p.machine.state(),
                    ProgramState::Starting { .. } | ProgramState::Running { .. }
                )
                && index < p.cfg.checks.len()
        });
        if !current {
            return;
        }
        let passive = self
            .programs
            .get(name)
            .is_some_and(|p| p.cfg.checks[index].kind.is_passive());
        if passive {
            if let Some((passed, detail)) = self.passive_verdict(name, index) {
                self.check_done(name, index, epoch, (passed, Duration::ZERO), detail, now);
            }
            return;
        }
        {
            let netns = self.netns_of(name);
            self.out.push(Effect::RunCheck {
                name: self.key(name),
                index,
                epoch,
                netns,
            });
        }
    }

    /// A check ran: count it, change the verdict at its threshold, act on a
    /// failed liveness check, and arm the next run.
    pub(super) fn check_done(
        &mut self,
        name: &str,
        index: usize,
        epoch: u64,
        (passed, took): (bool, Duration),
        detail: String,
        now: Instant,
    ) {
        let Some(p) = self.programs.get_mut(name) else {
            return;
        };
        let since = match p.machine.state() {
            ProgramState::Starting { since, .. } | ProgramState::Running { since, .. } => *since,
            _ => return,
        };
        if p.health.epoch != epoch {
            return;
        }
        let (Some(check), Some(state)) = (p.cfg.checks.get(index), p.health.checks.get_mut(index))
        else {
            return;
        };
        if let Some((runs, failures)) = p.health.totals.get_mut(index) {
            *runs += 1;
            *failures += u64::from(!passed);
        }
        let before = state.passing;
        state.last_ms = Some(took.as_millis() as u64);
        if passed {
            if check.purpose == Purpose::Liveness {
                p.machine.on(Input::Healthy, now);
            }
            state.successes += 1;
            state.failures = 0;
            if state.successes >= check.success_threshold {
                state.passing = true;
            }
        } else if now.saturating_duration_since(since) >= check.start_period {
            state.failures += 1;
            state.successes = 0;
            if state.failures >= check.failure_threshold {
                state.passing = false;
            }
        }
        state.last = Some(detail.clone());
        let after = state.passing;
        // A check reaching its failure threshold while already failing
        // changes no verdict, but answers clients waiting for readiness.
        let gave_up = !passed && state.failures == check.failure_threshold;
        let passive_readiness = check.kind.is_passive() && check.purpose == Purpose::Readiness;
        let next = if check.purpose == Purpose::Readiness && !after {
            check.period.min(UNTIL_READY)
        } else {
            check.period
        };
        let (purpose, on_failure) = (check.purpose, check.on_failure);
        if !passive_readiness {
            self.out.push(Effect::CheckTimer {
                at: now + next,
                name: self.key(name),
                index,
                epoch,
            });
        }
        if before == after {
            if gave_up {
                self.dirty.insert(self.key(name));
            }
            return;
        }
        self.dirty.insert(self.key(name));
        let what = match purpose {
            Purpose::Readiness if after => "ready",
            Purpose::Readiness => "not ready",
            Purpose::Liveness if after => "alive again",
            Purpose::Liveness => "liveness check failed",
        };
        tracing::info!(program = %name, "{what}: {detail}");
        if purpose == Purpose::Readiness {
            if let Some(p) = self.programs.get(name) {
                let state = p.state();
                self.out.push(Effect::Publish(super::Change {
                    name: self.key(name),
                    from: state,
                    to: state,
                    pid: p.machine.state().pid(),
                    exit_status: None,
                    ready: Some((p.ready(), detail.clone())),
                }));
            }
        }
        // During a shutdown the stop plan decides what stops when.
        if purpose == Purpose::Liveness && !after && self.shutdown.is_none() {
            self.on_liveness_failure(name, on_failure, &detail, now);
        }
    }

    /// An `exec` check's process was spawned (or not): arm its deadline.
    pub(super) fn check_spawned(
        &mut self,
        name: &str,
        index: usize,
        epoch: u64,
        result: Result<Pid, (String, Option<Pid>)>,
        now: Instant,
    ) {
        match result {
            Ok(pid) => {
                let timeout = self
                    .programs
                    .get(name)
                    .and_then(|p| p.cfg.checks.get(index))
                    .map_or(Duration::from_secs(1), |c| c.timeout);
                self.check_pids.insert(
                    pid,
                    CheckRun {
                        name: self.key(name),
                        index,
                        epoch,
                        started: now,
                        timed_out: false,
                    },
                );
                if self.shutdown.is_some() {
                    self.kill_checks();
                } else {
                    self.out.push(Effect::CheckDeadline {
                        at: now + timeout,
                        pid,
                    });
                }
            }
            Err((error, failed)) => {
                if let Some(pid) = failed {
                    self.failed_spawns.insert(pid);
                }
                let what = self.check_description(name, index);
                let result = (false, Duration::ZERO);
                self.check_done(name, index, epoch, result, format!("{what}: {error}"), now);
            }
        }
    }

    /// An `exec` check's deadline: SIGKILL its process group if it still runs.
    pub(super) fn check_deadline(&mut self, pid: Pid) {
        if let Some(run) = self.check_pids.get_mut(&pid) {
            run.timed_out = true;
            let name = run.name.clone();
            self.out.push(Effect::Signal {
                name,
                pid,
                signal: Signal::SIGKILL,
                group: true,
            });
        }
    }

    /// SIGKILLs every running `exec` check (a shutdown does not wait for them).
    pub(super) fn kill_checks(&mut self) {
        let pids: Vec<Pid> = self.check_pids.keys().copied().collect();
        for pid in pids {
            self.check_deadline(pid);
        }
    }

    /// The reaper collected an `exec` check's process.
    pub(super) fn check_exited(&mut self, run: CheckRun, status: ExitStatus, now: Instant) {
        let what = self.check_description(&run.name, run.index);
        let (passed, detail) = if run.timed_out {
            let timeout = self
                .programs
                .get(run.name.as_str())
                .and_then(|p| p.cfg.checks.get(run.index))
                .map_or(0.0, |c| c.timeout.as_secs_f64());
            (false, format!("{what}: no answer within {timeout} s"))
        } else {
            let ms = now.saturating_duration_since(run.started).as_millis();
            (
                status == ExitStatus::Code(0),
                format!("{what} → {status} after {ms} ms"),
            )
        };
        let took = now.saturating_duration_since(run.started);
        self.check_done(&run.name, run.index, run.epoch, (passed, took), detail, now);
    }

    /// The verdict on a self-signalled check at its deadline: a watchdog
    /// passes if `WATCHDOG=1` came this period; a readiness check that has
    /// not passed yet fails (it keeps waiting for its signal, but waiting
    /// clients are answered). `None` for a check that runs, or nothing to say.
    fn passive_verdict(&mut self, name: &str, index: usize) -> Option<(bool, String)> {
        let p = self.programs.get_mut(name)?;
        let (check, state) = (p.cfg.checks.get(index)?, p.health.checks.get_mut(index)?);
        let what = crate::health::describe(&check.kind);
        match (&check.kind, check.purpose) {
            (CheckKind::NotifyWatchdog, _) => Some(if std::mem::take(&mut state.pinged) {
                (
                    true,
                    format!("{what} within {} s", check.period.as_secs_f64()),
                )
            } else {
                (
                    false,
                    format!("no WATCHDOG=1 within {} s", check.period.as_secs_f64()),
                )
            }),
            (kind, Purpose::Readiness) if kind.is_passive() => (!state.passing).then(|| {
                let waited = check.timeout.as_secs_f64();
                let detail = match kind {
                    CheckKind::Log { pattern, .. } => {
                        format!("no line matched /{pattern}/ within {waited} s")
                    }
                    CheckKind::NotifyReady => format!("no READY=1 within {waited} s"),
                    _ => format!("{what}: no newline within {waited} s"),
                };
                (false, detail)
            }),
            _ => None,
        }
    }

    /// A program's `sd_notify` message: `READY=1` passes its `notify =
    /// "ready"` checks, `WATCHDOG=1` feeds its watchdog, `STATUS=` is shown.
    pub(super) fn notified(&mut self, name: &str, message: NotifyMessage, now: Instant) {
        let Some(p) = self.programs.get_mut(name) else {
            return;
        };
        let since = match p.machine.state() {
            ProgramState::Starting { since, .. } | ProgramState::Running { since, .. } => {
                now.saturating_duration_since(*since)
            }
            _ => return,
        };
        let epoch = p.health.epoch;
        if let Some(text) = message.status {
            p.health.notify_status = Some(text);
            self.dirty.insert(self.key(name));
        }
        let Some(p) = self.programs.get_mut(name) else {
            return;
        };
        if message.mainpid.is_some() && !std::mem::replace(&mut p.health.mainpid_reported, true) {
            tracing::warn!(
                program = %name,
                "MAINPID= is ignored: nsvisor keeps supervising the process it started"
            );
        }
        if message.stopping {
            tracing::info!(program = %name, "the program says it is stopping (STOPPING=1)");
        }
        if message.reloading {
            tracing::info!(program = %name, "the program says it is reloading (RELOADING=1)");
        }
        let mut ready = Vec::new();
        for (index, (check, state)) in p.cfg.checks.iter().zip(&mut p.health.checks).enumerate() {
            match check.kind {
                CheckKind::NotifyWatchdog if message.watchdog => state.pinged = true,
                CheckKind::NotifyWatchdog if message.watchdog_trigger => {
                    // The program says it is broken: fail at once.
                    state.failures = check.failure_threshold.saturating_sub(1);
                    ready.push((index, false, "WATCHDOG=trigger".to_string()));
                }
                CheckKind::NotifyReady if message.ready && !state.passing => {
                    ready.push((index, true, String::new()));
                }
                _ => {}
            }
        }
        for (index, passed, detail) in ready {
            let detail = if passed {
                format!("notify READY=1 after {} ms", since.as_millis())
            } else {
                detail
            };
            self.check_done(name, index, epoch, (passed, since), detail, now);
        }
    }

    /// `exec /bin/check --fast`, `tcp 127.0.0.1:80`...
    fn check_description(&self, name: &str, index: usize) -> String {
        self.programs
            .get(name)
            .and_then(|p| p.cfg.checks.get(index))
            .map_or_else(|| "check".to_string(), |c| crate::health::describe(&c.kind))
    }

    fn on_liveness_failure(&mut self, name: &str, action: OnFailure, detail: &str, now: Instant) {
        match action {
            OnFailure::Restart => {
                tracing::warn!(program = %name, "restarting: liveness check failed ({detail})");
                self.drive(name, Input::Unhealthy, now);
            }
            OnFailure::Stop => {
                tracing::warn!(program = %name, "stopping: liveness check failed ({detail})");
                self.stop_now(name, now);
            }
            OnFailure::Shutdown => self.begin_shutdown(
                1,
                &format!("liveness check of {name} failed ({detail})"),
                now,
            ),
            OnFailure::Ignore => {}
        }
    }
}
