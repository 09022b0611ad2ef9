//! Unit and property tests of the planner, without processes or a clock.
//!
//! [`World`] plays the actor: it hands events to the planner with a virtual
//! clock and carries out the effects the way the real actor does (a spawn
//! gets a made-up pid at once, or fails when the test says so; timers go on a
//! list and fire when the test advances time; answers are recorded). Every
//! effect is checked against the invariants as it is carried out, so a
//! violation fails at the step that caused it.

mod health;
mod properties;
mod rules;
mod signals;

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use nsvisor_proto::{ActionResult, ApiError, ExitStatus, ReloadResult, State};

use super::{Answer, ClientId, Effect, Event, Planner};
use crate::config::{
    AutoRestart, Condition, Config, Dependency, NetworkConfig, ProgramConfig, ProgramName,
    ProgramNet, SandboxSpec,
};
use crate::supervisor::handle::Action as Verb;
use crate::supervisor::machine::ProgramState;
use crate::supervisor::program::Netns;

/// A program config for tests: `startsecs = 0`, restarts on unexpected exits.
fn prog(name: &str, deps: &[&str]) -> ProgramConfig {
    let mut p = ProgramConfig::with_defaults(name, vec![format!("/bin/{name}")]);
    p.depends_on = deps
        .iter()
        .map(|d| Dependency::on(*d, Condition::Ready))
        .collect();
    p.startsecs = Duration::ZERO;
    p.startretries = 2;
    p.autorestart = AutoRestart::Unexpected;
    p
}

/// A config holding `programs` (and the test network `net0`).
fn config(programs: impl IntoIterator<Item = ProgramConfig>) -> Config {
    let mut c = Config::empty();
    c.path = "/etc/nsvisor.toml".into();
    c.programs = programs.into_iter().map(|p| (p.name.clone(), p)).collect();
    c.networks.insert("net0".into(), network());
    c
}

fn network() -> NetworkConfig {
    NetworkConfig {
        name: "net0".into(),
        bridge: "nsv-test0".into(),
        subnet: "172.30.5.0/24".parse().expect("subnet"),
        gateway: [172, 30, 5, 254].into(),
        masquerade: true,
    }
}

/// Puts `p` on `net0` with its own sandbox.
fn sandboxed(mut p: ProgramConfig, last_octet: u8) -> ProgramConfig {
    p.net = Some(Box::new(ProgramNet::Sandbox(SandboxSpec {
        sandbox: p.name.to_string(),
        network: "net0".into(),
        address: [172, 30, 5, last_octet].into(),
        ports: Vec::new(),
    })));
    p
}

/// An armed timer: when, whose, and for a check which (index, epoch).
type Armed = (Instant, ProgramName, Option<(usize, u64)>);

/// An `exec` check's deadline: when, and its process (raw pid).
type Deadline = (Instant, i32);

/// What a client got.
#[derive(Debug)]
enum Got {
    Act(Result<Vec<ActionResult>, ApiError>),
    Reload(Result<ReloadResult, ApiError>),
}

/// The planner plus a simulated actor and its world of processes.
struct World {
    planner: Planner,
    now: Instant,
    next_pid: i32,
    /// Live processes and their program.
    live: BTreeMap<Pid, ProgramName>,
    /// Armed timers: a program's machine (`None`), or one of its checks
    /// (`Some((index, epoch))`).
    timers: Vec<Armed>,
    /// Deadlines of `exec` checks.
    deadlines: Vec<Deadline>,
    /// `exec` check processes alive (a SIGKILL to their group ends them).
    check_procs: BTreeSet<Pid>,
    /// Checks asked to run and not answered yet: (program, index, epoch).
    check_runs: Vec<(ProgramName, usize, u64)>,
    /// Programs whose spawns fail (exec error, code 127).
    failing: BTreeSet<ProgramName>,
    /// Every answer, per client (more than one is a bug the checks catch).
    answers: BTreeMap<ClientId, Vec<Got>>,
    next_client: ClientId,
    /// Spawns in order (program names).
    spawns: Vec<ProgramName>,
    /// Signals sent, in order: (program, signal, group).
    signals: Vec<(ProgramName, Signal, bool)>,
    /// Live processes that got a signal.
    signalled: BTreeSet<Pid>,
    /// Processes whose stop began before the shutdown (their SIGKILL after
    /// `stopwaitsecs` continues that stop).
    stopping_before_shutdown: BTreeSet<Pid>,
    /// Sandboxes asked for and not answered yet: (program, ticket).
    sandbox_asks: Vec<(ProgramName, u64)>,
    /// Effects other than the above, in order, as debug text.
    other: Vec<String>,
    /// Whether the last event began a shutdown (spawns after it are bugs).
    shutdown_seen: bool,
}

impl World {
    fn new(config: Config) -> World {
        World::with_main(config, None)
    }

    fn with_main(config: Config, main: Option<ProgramConfig>) -> World {
        World {
            planner: Planner::new(config, main, false),
            now: Instant::now(),
            next_pid: 100,
            live: BTreeMap::new(),
            timers: Vec::new(),
            deadlines: Vec::new(),
            check_procs: BTreeSet::new(),
            check_runs: Vec::new(),
            failing: BTreeSet::new(),
            answers: BTreeMap::new(),
            next_client: 0,
            spawns: Vec::new(),
            signals: Vec::new(),
            signalled: BTreeSet::new(),
            stopping_before_shutdown: BTreeSet::new(),
            sandbox_asks: Vec::new(),
            other: Vec::new(),
            shutdown_seen: false,
        }
    }

    /// Hands `event` to the planner and carries out the effects (and the
    /// events they cause at once), checking the invariants on each.
    fn on(&mut self, event: Event) {
        let mut queue = std::collections::VecDeque::from([event]);
        let mut steps = 0;
        while let Some(event) = queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "events keep causing events");
            let effects = self.planner.on(event, self.now);
            for effect in effects {
                if let Some(next) = self.perform(effect) {
                    queue.push_back(next);
                }
            }
            if !self.shutdown_seen && self.planner.shutting_down() {
                self.shutdown_seen = true;
                self.stopping_before_shutdown = self.signalled.clone();
            }
            self.check_state();
        }
    }

    fn perform(&mut self, effect: Effect) -> Option<Event> {
        match effect {
            Effect::Spawn { name, netns } => {
                assert!(
                    !self.shutdown_seen,
                    "{name} spawned after the shutdown began"
                );
                self.check_deps_running(&name);
                let wants_sandbox = matches!(
                    self.planner
                        .program(&name)
                        .and_then(|p| p.cfg.net.as_deref()),
                    Some(ProgramNet::Sandbox(_))
                );
                assert_eq!(
                    netns.is_some(),
                    wants_sandbox,
                    "{name} spawned without its sandbox, or with one it does not have"
                );
                self.spawns.push(name.clone());
                if self.failing.contains(&name) {
                    return Some(Event::SpawnFailed {
                        name,
                        error: "cannot execute: No such file or directory".into(),
                        code: 127,
                        pid: None,
                    });
                }
                self.next_pid += 1;
                let pid = Pid::from_raw(self.next_pid);
                assert!(
                    !self.live.values().any(|n| *n == name),
                    "{name} spawned while a process of it is alive"
                );
                self.live.insert(pid, name.clone());
                return Some(Event::Spawned {
                    name,
                    pid,
                    wall: SystemTime::UNIX_EPOCH,
                });
            }
            Effect::Signal {
                pid,
                signal: Signal::SIGKILL,
                group: true,
                ..
            } if self.check_procs.contains(&pid) => {
                self.check_procs.remove(&pid);
                self.other.push(format!("SIGKILL check {pid}"));
            }
            Effect::Signal {
                name,
                pid,
                signal,
                group,
            } => {
                assert_eq!(self.live.get(&pid), Some(&name), "signal to a dead pid");
                if self.shutdown_seen && !self.stopping_before_shutdown.contains(&pid) {
                    self.check_no_live_dependant(&name);
                }
                self.signalled.insert(pid);
                self.signals.push((name, signal, group));
            }
            Effect::Forward { pid, signal, group } => {
                let name = self.live.get(&pid).cloned();
                let name = name.unwrap_or_else(|| panic!("{signal} forwarded to a dead pid"));
                match signal.named() {
                    Some(named) => self.signals.push((name, named, group)),
                    None => self.other.push(format!("Forward {signal}")),
                }
            }
            Effect::Timer { at, name } => self.timers.push((at, name, None)),
            Effect::CheckTimer {
                at,
                name,
                index,
                epoch,
            } => self.timers.push((at, name, Some((index, epoch)))),
            Effect::CheckDeadline { at, pid } => self.deadlines.push((at, pid.as_raw())),
            Effect::RunCheck {
                name, index, epoch, ..
            } => {
                let p = self.planner.program(&name).expect("checked program exists");
                assert!(
                    p.has_process(),
                    "a check of {name} runs while it has no process"
                );
                self.check_runs.push((name, index, epoch));
            }
            Effect::Answer { client, answer } => {
                let got = match *answer {
                    Answer::Act(a) => Got::Act(a),
                    Answer::Reload(r) => Got::Reload(r),
                };
                let answers = self.answers.entry(client).or_default();
                answers.push(got);
                assert_eq!(
                    answers.len(),
                    1,
                    "client {client} answered twice: {answers:?}"
                );
            }
            Effect::EnsureSandbox { name, ticket, .. } => {
                self.sandbox_asks.push((name, ticket));
            }
            other => self.other.push(format!("{other:?}")),
        }
        None
    }

    /// No program spawns before each dependency meets its condition.
    fn check_deps_running(&self, name: &str) {
        let p = self.planner.program(name).expect("spawned program exists");
        for dep in &p.cfg.depends_on {
            let Some(d) = self.planner.program(&dep.name) else {
                continue;
            };
            let met = match (dep.condition, d.machine.state()) {
                (Condition::Started, s) => s.pid().is_some() && d.state() != State::Stopping,
                (Condition::Running, s) => s.kind() == State::Running,
                (Condition::Ready, _) => d.ready(),
                (Condition::Completed, s) => s.kind() == State::Exited,
                (Condition::CompletedSuccessfully, ProgramState::Exited { status, .. }) => {
                    d.machine.policy().expected(*status)
                }
                (Condition::CompletedSuccessfully, _) => false,
            };
            assert!(
                met,
                "{name} spawned while its dependency {} is {} (condition {})",
                dep.name,
                d.state(),
                dep.condition.name()
            );
        }
    }

    /// During shutdown nothing is signalled while a dependant still has a process.
    fn check_no_live_dependant(&self, name: &str) {
        for p in self.planner.programs() {
            if p.cfg.depends_on.iter().any(|d| d.name == name) {
                assert!(
                    !p.has_process(),
                    "{name} signalled during shutdown while {} (which depends on it) is {}",
                    p.cfg.name,
                    p.state()
                );
            }
        }
    }

    /// At most one live process per program, and the planner agrees with
    /// the world about which; the daemon may exit only when none is left.
    fn check_state(&self) {
        for p in self.planner.programs() {
            let alive: Vec<&Pid> = self
                .live
                .iter()
                .filter(|(_, n)| **n == p.cfg.name)
                .map(|(pid, _)| pid)
                .collect();
            assert!(
                alive.len() <= 1,
                "{} has {} processes",
                p.cfg.name,
                alive.len()
            );
            if let Some(pid) = p.machine.state().pid() {
                assert_eq!(alive, [&pid], "{}: planner and world disagree", p.cfg.name);
            }
        }
        if self.planner.exit_code().is_some() {
            assert!(
                self.live.is_empty(),
                "exit allowed with live processes {:?}",
                self.live
            );
        }
    }

    // ---- what tests do ----

    fn boot(&mut self) {
        self.on(Event::Boot);
    }

    fn act(&mut self, verb: Verb, target: &str, wait: bool) -> ClientId {
        self.next_client += 1;
        let client = self.next_client;
        self.on(Event::Act {
            client,
            verb,
            target: target.into(),
            wait,
        });
        client
    }

    fn signal(&mut self, signal: Signal) {
        self.signal_caught(signal.into());
    }

    fn signal_caught(&mut self, signal: crate::signals::Caught) {
        let sender = None;
        self.on(Event::Signal(crate::signals::Received { signal, sender }));
    }

    fn reload(&mut self, config: Config) -> ClientId {
        self.next_client += 1;
        let client = self.next_client;
        self.on(Event::Reloaded {
            client: Some(client),
            config: Ok(Box::new(config)),
        });
        client
    }

    /// The live process of `name` exits with `status`.
    fn exit(&mut self, name: &str, status: ExitStatus) {
        let pid = self
            .pid(name)
            .unwrap_or_else(|| panic!("{name} has no process"));
        self.live.remove(&pid);
        self.on(Event::Reaped(vec![(pid, status)]));
    }

    fn pid(&self, name: &str) -> Option<Pid> {
        self.live
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(pid, _)| *pid)
    }

    /// Moves the clock on by `d`, firing the timers that fall due, in order.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for step in 0.. {
            assert!(step < 100_000, "timers keep firing: {:?}", self.timers);
            self.timers.sort();
            self.deadlines.sort();
            let next_timer = self.timers.first().map(|t| t.0);
            match self.deadlines.first() {
                Some((at, pid)) if *at <= end && next_timer.is_none_or(|t| *at <= t) => {
                    let (at, pid) = (*at, *pid);
                    self.deadlines.remove(0);
                    self.now = self.now.max(at);
                    self.on(Event::CheckDeadline(Pid::from_raw(pid)));
                    continue;
                }
                _ => {}
            }
            match self.timers.first() {
                Some((at, _, _)) if *at <= end => {
                    let (at, name, check) = self.timers.remove(0);
                    self.now = self.now.max(at);
                    match check {
                        None => self.on(Event::Tick(name)),
                        Some((index, epoch)) => self.on(Event::CheckDue { name, index, epoch }),
                    }
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// Every check run under way reports `passed` for checks of `name`
    /// (other programs' runs are answered too, with their own verdicts left
    /// to `others`).
    fn checks_report(&mut self, name: &str, passed: bool) {
        let runs: Vec<_> = self
            .check_runs
            .iter()
            .filter(|(n, _, _)| n == name)
            .cloned()
            .collect();
        self.check_runs.retain(|(n, _, _)| n != name);
        for (name, index, epoch) in runs {
            let detail = if passed {
                "tcp 127.0.0.1:80 → connected after 1 ms".to_string()
            } else {
                "tcp 127.0.0.1:80: Connection refused (os error 111)".to_string()
            };
            self.on(Event::CheckDone {
                name,
                index,
                epoch,
                took: Duration::from_millis(1),
                passed,
                detail,
            });
        }
    }

    /// The network task answers the oldest request for `name`'s sandbox.
    fn sandbox_answer(&mut self, name: &str, ok: bool) {
        let i = self
            .sandbox_asks
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no sandbox request for {name}"));
        let (name, ticket) = self.sandbox_asks.remove(i);
        let result = if ok {
            Ok(Netns {
                net: Arc::new(dev_null()),
                mnt: None,
            })
        } else {
            Err(format!(
                "program \"{name}\": cannot bind 0.0.0.0:80: Address in use"
            ))
        };
        self.on(Event::SandboxReady {
            name,
            ticket,
            result,
        });
    }

    fn state(&self, name: &str) -> State {
        self.planner.program(name).expect("program exists").state()
    }

    fn description(&self, name: &str) -> String {
        self.planner
            .program(name)
            .expect("program exists")
            .info(self.now)
            .description
    }

    /// The one answer of an action.
    fn act_answer(&self, client: ClientId) -> &Result<Vec<ActionResult>, ApiError> {
        match self.answers.get(&client).map(Vec::as_slice) {
            Some([Got::Act(a)]) => a,
            other => panic!("client {client}: expected one action answer, got {other:?}"),
        }
    }

    fn answered(&self, client: ClientId) -> bool {
        self.answers.contains_key(&client)
    }

    /// Signals sent to `name`.
    fn signals_to(&self, name: &str) -> Vec<Signal> {
        self.signals
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, s, _)| *s)
            .collect()
    }

    /// Every live process exits the way a well-behaved one does after its
    /// stop signal, all reaped in one pass.
    fn exit_all_signalled(&mut self) {
        let signalled: Vec<Pid> = self
            .live
            .keys()
            .filter(|pid| self.signalled.contains(pid))
            .copied()
            .collect();
        if signalled.is_empty() {
            return;
        }
        for pid in &signalled {
            self.live.remove(pid);
        }
        let statuses = signalled
            .into_iter()
            .map(|pid| (pid, ExitStatus::Code(0)))
            .collect();
        self.on(Event::Reaped(statuses));
    }
}

fn dev_null() -> OwnedFd {
    std::fs::File::open("/dev/null")
        .expect("open /dev/null")
        .into()
}
