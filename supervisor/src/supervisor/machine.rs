//! The per-program state machine (DESIGN §3, supervisord semantics), pure.
//!
//! `Machine::on(input, now)` changes the state and returns the effects the
//! supervisor must carry out (spawn, signal, arm a timer). No I/O, no clock of
//! its own: every rule is a unit test below. The supervisor feeds back the
//! results of effects (`Spawned`, `SpawnFailed`) and the reaper's statuses
//! (`Exited`), and calls `on(Tick)` when a timer it armed fires. Stale timers
//! are harmless: `Tick` only acts on deadlines that have passed in the
//! current state.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use nsvisor_proto::{ExitStatus, State};

use crate::config::{AutoRestart, ProgramConfig};

/// A run shorter than this counts towards the crash-loop delay.
pub const QUICK_RUN: Duration = Duration::from_secs(1);
/// Upper bound of the crash-loop delay.
pub const MAX_CRASH_DELAY: Duration = Duration::from_secs(30);

/// A program's state; each variant carries exactly what is valid in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramState {
    /// Not running.
    Stopped,
    /// Spawned; RUNNING once up `startsecs`.
    Starting {
        /// Process id.
        pid: Pid,
        /// Spawn time.
        since: Instant,
    },
    /// Up for `startsecs`.
    Running {
        /// Process id.
        pid: Pid,
        /// Spawn time.
        since: Instant,
    },
    /// A start failed; the next attempt is at `until`.
    Backoff {
        /// Failed attempts so far.
        attempt: u32,
        /// When to retry.
        until: Instant,
    },
    /// Stop signal sent.
    Stopping {
        /// Process id.
        pid: Pid,
        /// When to SIGKILL; `None` once SIGKILL was sent.
        kill_at: Option<Instant>,
    },
    /// Ended after RUNNING.
    Exited {
        /// How it ended.
        status: ExitStatus,
        /// When it will be started again, if it will.
        restart_at: Option<Instant>,
    },
    /// Gave up after `startretries` failed attempts.
    Fatal {
        /// Why, in words.
        reason: String,
    },
}

impl ProgramState {
    /// The wire state.
    pub fn kind(&self) -> State {
        match self {
            ProgramState::Stopped => State::Stopped,
            ProgramState::Starting { .. } => State::Starting,
            ProgramState::Running { .. } => State::Running,
            ProgramState::Backoff { .. } => State::Backoff,
            ProgramState::Stopping { .. } => State::Stopping,
            ProgramState::Exited { .. } => State::Exited,
            ProgramState::Fatal { .. } => State::Fatal,
        }
    }

    /// The process id while a process exists.
    pub fn pid(&self) -> Option<Pid> {
        match self {
            ProgramState::Starting { pid, .. }
            | ProgramState::Running { pid, .. }
            | ProgramState::Stopping { pid, .. } => Some(*pid),
            _ => None,
        }
    }
}

/// What happened to a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Start requested (by a user, autostart or a dependency becoming ready).
    Start,
    /// Stop requested.
    Stop,
    /// Stop, then start again once stopped.
    Restart,
    /// The spawn effect succeeded.
    Spawned(Pid),
    /// The spawn effect failed; counts as a failed start.
    SpawnFailed(String),
    /// The process ended.
    Exited(ExitStatus),
    /// A timer armed earlier fired.
    Tick,
    /// No more automatic restarts or retries (the daemon is shutting down).
    DisableAutorestart,
    /// A liveness check failed: stop it (`stopsignal`, `stopwaitsecs`), then
    /// start it again as after a crash: counted and backed off.
    Unhealthy,
    /// A liveness check passed: the program works, so the next failure is
    /// restarted without delay.
    Healthy,
}

/// What the supervisor must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Spawn the program now and report `Spawned` / `SpawnFailed`.
    Spawn,
    /// Send a signal to the process (its group when `group`).
    Signal {
        /// Target pid (also the pgid: programs lead their own group).
        pid: Pid,
        /// Signal.
        signal: Signal,
        /// To the whole process group.
        group: bool,
    },
    /// Call `on(Tick)` at this instant.
    Timer(Instant),
    /// The program ended for good: exited without restart, or went FATAL.
    Finished,
}

/// What follows the end of a process being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    /// Nothing: it stays STOPPED.
    Stay,
    /// Start it again (a requested restart).
    Start,
    /// Start it again after the crash-loop delay, counted as a restart (a
    /// failed liveness check).
    Recover,
}

/// The rules that drive the machine, taken from the program's config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `autorestart`.
    pub autorestart: AutoRestart,
    /// `exitcodes`.
    pub exitcodes: std::sync::Arc<[i32]>,
    /// `startsecs`.
    pub startsecs: Duration,
    /// `startretries`.
    pub startretries: u32,
    /// `stopsignal`.
    pub stopsignal: Signal,
    /// `stopwaitsecs`.
    pub stopwaitsecs: Duration,
    /// `stopasgroup`.
    pub stopasgroup: bool,
    /// `killasgroup` (or `stopasgroup`).
    pub killasgroup: bool,
}

impl Policy {
    /// The policy of a program config.
    pub fn of(cfg: &ProgramConfig) -> Policy {
        Policy {
            autorestart: cfg.autorestart,
            exitcodes: cfg.exitcodes.clone(),
            startsecs: cfg.startsecs,
            startretries: cfg.startretries,
            stopsignal: cfg.stopsignal,
            stopwaitsecs: cfg.stopwaitsecs,
            stopasgroup: cfg.stopasgroup,
            killasgroup: cfg.killasgroup || cfg.stopasgroup,
        }
    }

    /// Whether an exit with `status` is expected (in `exitcodes`).
    pub fn expected(&self, status: ExitStatus) -> bool {
        matches!(status, ExitStatus::Code(c) if self.exitcodes.contains(&c))
    }
}

/// One program's state plus the counters the rules need.
///
/// Every field is written only by [`Machine::on`]; the rest of the daemon
/// reads them through the accessors.
#[derive(Debug, Clone)]
pub struct Machine {
    state: ProgramState,
    policy: Policy,
    /// Failed starts since the last RUNNING (supervisord's `backoff`).
    backoff: u32,
    /// Consecutive failed runs: shorter than [`QUICK_RUN`], or ended by a
    /// failed liveness check before any passed.
    quick_exits: u32,
    /// Automatic restarts so far.
    restarts: u32,
    /// How the last process ended.
    last_exit: Option<ExitStatus>,
    /// Why the last spawn failed, if it did.
    last_spawn_error: Option<String>,
    /// What to do once the process being stopped has ended.
    after_stop: AfterStop,
    /// Automatic restarts allowed (false during shutdown).
    autorestart_enabled: bool,
}

impl Machine {
    /// A STOPPED program with `policy`.
    pub fn new(policy: Policy) -> Machine {
        Machine {
            state: ProgramState::Stopped,
            policy,
            backoff: 0,
            quick_exits: 0,
            restarts: 0,
            last_exit: None,
            last_spawn_error: None,
            after_stop: AfterStop::Stay,
            autorestart_enabled: true,
        }
    }

    /// Current state.
    pub fn state(&self) -> &ProgramState {
        &self.state
    }

    /// The rules it follows.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Automatic restarts so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// How the last process ended.
    pub fn last_exit(&self) -> Option<ExitStatus> {
        self.last_exit
    }

    /// Why the last spawn failed, if the last attempt did.
    pub fn last_spawn_error(&self) -> Option<&str> {
        self.last_spawn_error.as_deref()
    }

    /// A restart is in progress: it starts again once STOPPED.
    pub fn restart_pending(&self) -> bool {
        self.after_stop != AfterStop::Stay
    }

    /// Applies one input at `now`; returns the effects to carry out, in order.
    pub fn on(&mut self, input: Input, now: Instant) -> Vec<Effect> {
        use ProgramState as S;
        match (input, &self.state) {
            (Input::Start, S::Stopped | S::Exited { .. } | S::Fatal { .. } | S::Backoff { .. }) => {
                self.backoff = 0;
                self.quick_exits = 0;
                vec![Effect::Spawn]
            }
            (Input::Start, S::Stopping { .. }) => {
                self.after_stop = AfterStop::Start;
                vec![]
            }
            (Input::Start, S::Starting { .. } | S::Running { .. }) => vec![],

            (Input::Restart, S::Starting { .. } | S::Running { .. }) => {
                let effects = self.on(Input::Stop, now);
                self.after_stop = AfterStop::Start;
                effects
            }
            (Input::Restart, _) => self.on(Input::Start, now),

            (Input::Unhealthy, S::Starting { .. } | S::Running { .. }) => {
                let effects = self.on(Input::Stop, now);
                self.after_stop = AfterStop::Recover;
                effects
            }
            (Input::Unhealthy, _) => vec![],
            (Input::Healthy, _) => {
                self.quick_exits = 0;
                vec![]
            }

            (Input::Stop, S::Starting { pid, .. } | S::Running { pid, .. }) => {
                let pid = *pid;
                let kill_at = now + self.policy.stopwaitsecs;
                self.state = S::Stopping {
                    pid,
                    kill_at: Some(kill_at),
                };
                self.after_stop = AfterStop::Stay;
                vec![
                    Effect::Signal {
                        pid,
                        signal: self.policy.stopsignal,
                        group: self.policy.stopasgroup,
                    },
                    Effect::Timer(kill_at),
                ]
            }
            (Input::Stop, S::Backoff { .. }) => {
                self.state = S::Stopped;
                vec![]
            }
            (
                Input::Stop,
                S::Exited {
                    status,
                    restart_at: Some(_),
                },
            ) => {
                self.state = S::Exited {
                    status: *status,
                    restart_at: None,
                };
                vec![]
            }
            (Input::Stop, _) => {
                self.after_stop = AfterStop::Stay;
                vec![]
            }

            (Input::Spawned(pid), _) => {
                self.last_spawn_error = None;
                self.state = S::Starting { pid, since: now };
                if self.policy.startsecs.is_zero() {
                    self.enter_running(pid, now);
                    vec![]
                } else {
                    vec![Effect::Timer(now + self.policy.startsecs)]
                }
            }
            (Input::SpawnFailed(reason), _) => {
                self.last_spawn_error = Some(reason.clone());
                self.failed_start(reason, now)
            }

            (Input::Exited(status), S::Starting { .. }) => {
                self.last_exit = Some(status);
                self.failed_start(format!("exited too quickly ({status})"), now)
            }
            (Input::Exited(status), S::Running { since, .. }) => {
                self.last_exit = Some(status);
                let ran = now.saturating_duration_since(*since);
                self.quick_exits = if ran < QUICK_RUN {
                    self.quick_exits + 1
                } else {
                    0
                };
                if !self.should_restart(status) {
                    self.state = S::Exited {
                        status,
                        restart_at: None,
                    };
                    return vec![Effect::Finished];
                }
                self.restart_later(status, now)
            }
            (Input::Exited(status), S::Stopping { .. }) => {
                self.last_exit = Some(status);
                self.state = S::Stopped;
                match std::mem::replace(&mut self.after_stop, AfterStop::Stay) {
                    AfterStop::Stay => vec![],
                    AfterStop::Start => {
                        self.backoff = 0;
                        vec![Effect::Spawn]
                    }
                    AfterStop::Recover if !self.autorestart_enabled => vec![],
                    AfterStop::Recover => {
                        self.quick_exits += 1;
                        self.restart_later(status, now)
                    }
                }
            }
            (Input::Exited(_), _) => vec![],

            (Input::Tick, S::Starting { pid, since }) if now >= *since + self.policy.startsecs => {
                let (pid, since) = (*pid, *since);
                self.enter_running(pid, since);
                vec![]
            }
            (Input::Tick, S::Backoff { until, .. }) if now >= *until => {
                self.restarts += 1;
                vec![Effect::Spawn]
            }
            (
                Input::Tick,
                S::Stopping {
                    pid,
                    kill_at: Some(at),
                },
            ) if now >= *at => {
                let pid = *pid;
                self.state = S::Stopping { pid, kill_at: None };
                vec![Effect::Signal {
                    pid,
                    signal: Signal::SIGKILL,
                    group: self.policy.killasgroup,
                }]
            }
            (
                Input::Tick,
                S::Exited {
                    restart_at: Some(at),
                    ..
                },
            ) if now >= *at => {
                self.restarts += 1;
                vec![Effect::Spawn]
            }
            (Input::Tick, _) => vec![],

            (Input::DisableAutorestart, _) => {
                self.autorestart_enabled = false;
                vec![]
            }
        }
    }

    /// EXITED with a restart after the crash-loop delay (now if none).
    fn restart_later(&mut self, status: ExitStatus, now: Instant) -> Vec<Effect> {
        let at = now + self.crash_delay();
        self.state = ProgramState::Exited {
            status,
            restart_at: Some(at),
        };
        if at <= now {
            self.restarts += 1;
            vec![Effect::Spawn]
        } else {
            vec![Effect::Timer(at)]
        }
    }

    fn enter_running(&mut self, pid: Pid, since: Instant) {
        self.backoff = 0;
        self.state = ProgramState::Running { pid, since };
    }

    /// supervisord's rule: each failed start waits one second longer; after
    /// `startretries` retries the program is FATAL.
    fn failed_start(&mut self, reason: String, now: Instant) -> Vec<Effect> {
        self.backoff += 1;
        if self.backoff > self.policy.startretries || !self.autorestart_enabled {
            self.backoff = 0;
            self.state = ProgramState::Fatal { reason };
            return vec![Effect::Finished];
        }
        let until = now + Duration::from_secs(u64::from(self.backoff));
        self.state = ProgramState::Backoff {
            attempt: self.backoff,
            until,
        };
        vec![Effect::Timer(until)]
    }

    fn should_restart(&self, status: ExitStatus) -> bool {
        self.autorestart_enabled
            && match self.policy.autorestart {
                AutoRestart::Always => true,
                AutoRestart::Unexpected => !self.policy.expected(status),
                AutoRestart::Never => false,
            }
    }

    /// No delay for the first quick exit; then 1 s, 2 s, … up to
    /// [`MAX_CRASH_DELAY`] while runs stay shorter than [`QUICK_RUN`].
    fn crash_delay(&self) -> Duration {
        let n = u64::from(self.quick_exits.saturating_sub(1));
        Duration::from_secs(n).min(MAX_CRASH_DELAY)
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
