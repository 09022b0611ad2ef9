//! The supervisor task: the one owner of every program's state (DESIGN rule 1).
//!
//! Its loop waits for a signal, a command or the next timer, hands the event
//! to the programs' state machines and carries out the effects they return
//! (spawn, signal, timers). SIGCHLD only wakes it: the reaping happens here,
//! between spawns, never concurrently with one (DESIGN rule 3). After each
//! event, [`Supervisor::settle`] runs the cross-program rules: dependencies,
//! waiting clients, reload replacements and the shutdown plan.
//!
//! Commands live in `commands.rs`, reload in `reload.rs`, shutdown and exit
//! in `shutdown.rs`; they are further `impl Supervisor` blocks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use nsvisor_proto::StateEvent;
use tokio::sync::{broadcast, mpsc};

use super::command::{Command, Handle};
use super::commands::PendingAct;
use super::entry::Program;
use super::program::{Effect, Input};
use super::shutdown::{Lingering, ShutdownState};
use crate::config::{Config, ProgramConfig};
use crate::logs::LogContext;
use crate::process::reaper;
use crate::process::spawn::{self, SpawnOptions};
use crate::sys::{self, Session};

/// What a timer is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKey {
    /// Tick this program's state machine.
    Program(String),
    /// SIGKILL what is left of a finished main program's group.
    Linger,
}

/// Options of the daemon that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `-- CMD ARGS`: the main program of single-command / sidecar mode.
    pub main_command: Option<Vec<String>>,
    /// Forward signals to the main program's pid only, not its group.
    pub single_child: bool,
    /// The daemon's own log file (`[supervisor] logfile`), reopened on SIGUSR2.
    pub daemon_log: Option<crate::daemon_log::DaemonLogFile>,
}

/// The supervisor's state. Only [`Supervisor::run`] touches it.
pub struct Supervisor {
    pub(super) config: Config,
    pub(super) programs: BTreeMap<String, Program>,
    pub(super) pids: HashMap<Pid, String>,
    pub(super) timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    pub(super) events: broadcast::Sender<StateEvent>,
    pub(super) pending_acts: Vec<PendingAct>,
    pub(super) shutdown: Option<ShutdownState>,
    pub(super) lingering: Vec<Lingering>,
    pub(super) stop_plans: Vec<super::order::StopPlan>,
    pub(super) dirty: BTreeSet<String>,
    pub(super) failed_spawns: HashSet<Pid>,
    pub(super) orphans_reaped: u64,
    pub(super) started: Instant,
    pub(super) options: RunOptions,
    pub(super) logs: LogContext,
    pub(super) net: super::network::Net,
    dev_null: OwnedFd,
    tty: bool,
}

/// Name of the single-command main program.
pub const MAIN_PROGRAM: &str = "main";

impl Supervisor {
    /// A supervisor for `config` (not yet started) and the handle to talk to it.
    pub fn new(
        mut config: Config,
        options: RunOptions,
        logs: LogContext,
        net: crate::net::Manager,
    ) -> std::io::Result<(Supervisor, Handle, mpsc::Receiver<Command>)> {
        let (commands, rx) = mpsc::channel(1024);
        let (events, _) = broadcast::channel(4096);
        let handle = Handle {
            commands,
            events: events.clone(),
        };
        // The programs' configs move into their `Program`s: the supervisor
        // keeps one copy of each (`config.programs` stays empty).
        let mut programs: BTreeMap<String, Program> = std::mem::take(&mut config.programs)
            .into_iter()
            .map(|(name, cfg)| (name, Program::new(cfg)))
            .collect();
        if let Some(cmd) = &options.main_command {
            let mut cfg = ProgramConfig::with_defaults(MAIN_PROGRAM, cmd.clone());
            cfg.autorestart = crate::config::AutoRestart::Never;
            cfg.startsecs = std::time::Duration::ZERO;
            cfg.startretries = 0;
            cfg.critical = true;
            cfg.stopwaitsecs = config.supervisor.shutdown_grace;
            let mut main = Program::new(cfg);
            main.main = true;
            programs.insert(MAIN_PROGRAM.to_string(), main);
        }
        let mut sup = Supervisor {
            config,
            programs,
            pids: HashMap::new(),
            timers: BinaryHeap::new(),
            events,
            pending_acts: Vec::new(),
            shutdown: None,
            lingering: Vec::new(),
            stop_plans: Vec::new(),
            dirty: BTreeSet::new(),
            failed_spawns: HashSet::new(),
            orphans_reaped: 0,
            started: Instant::now(),
            options,
            logs,
            net: super::network::Net::new(net),
            dev_null: sys::open_dev_null()?,
            tty: sys::stdin_is_tty(),
        };
        sup.refresh_net_info();
        Ok((sup, handle, rx))
    }

    /// Runs until every program is gone after a shutdown; returns the exit code.
    /// `signals` yields every signal delivered to the daemon (registered
    /// before this is called, so no SIGCHLD is missed).
    pub async fn run(
        mut self,
        mut signals: impl Stream<Item = i32> + Unpin,
        mut commands: mpsc::Receiver<Command>,
    ) -> i32 {
        self.start_autostart();
        self.settle();
        let mut commands_open = true;
        let mut net_events = self.net.take_events();
        loop {
            if let Some(code) = self.exit_code() {
                self.teardown_network().await;
                return code;
            }
            let next = self.timers.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                Some(sig) = signals.next() => self.on_signal(sig),
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => commands_open = false,
                },
                () = sleep_until(next), if next.is_some() => self.on_timers(),
                Some(ready) = net_events.recv() => self.on_net_ready(ready),
            }
            self.settle();
        }
    }

    fn start_autostart(&mut self) {
        let t0 = Instant::now();
        let tiers = super::order::tiers(self.programs.values().map(|p| &p.cfg));
        for name in super::order::start_order(&tiers) {
            if self.programs.get(&name).is_some_and(|p| p.cfg.autostart) {
                self.request_start(&name);
            }
        }
        let spawned = self.pids.len();
        tracing::info!(
            "spawned {spawned} programs in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1000.0
        );
    }

    fn on_signal(&mut self, sig: i32) {
        let Ok(signal) = Signal::try_from(sig) else {
            return;
        };
        match signal {
            Signal::SIGCHLD => self.reap(),
            _ if self.forwards_everything() => self.forward(signal),
            Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT => {
                tracing::info!("received {signal}: shutting down");
                self.begin_shutdown(0, &format!("received {signal}"));
            }
            Signal::SIGHUP => match self.reload() {
                Ok(diff) => tracing::info!(
                    added = ?diff.added, changed = ?diff.changed, removed = ?diff.removed,
                    "received SIGHUP: configuration reloaded"
                ),
                Err(e) => tracing::error!(
                    "received SIGHUP: configuration not reloaded, nothing changed:\n{e}"
                ),
            },
            Signal::SIGUSR2 => {
                self.logs.reopen_all();
                // After the reopening, so this line starts the new daemon log file.
                tracing::info!("received SIGUSR2: reopening log files");
            }
            _ => self.forward(signal),
        }
    }

    /// Pure single-command mode (no config programs): every signal goes to CMD.
    fn forwards_everything(&self) -> bool {
        self.options.main_command.is_some() && self.programs.values().all(|p| p.main)
    }

    /// Forwards a signal to the main program (its group unless `--single-child`).
    fn forward(&mut self, signal: Signal) {
        let Some(pid) = self
            .programs
            .get(MAIN_PROGRAM)
            .and_then(|p| p.machine.state.pid())
        else {
            return;
        };
        if let Err(e) = sys::send_signal(pid, signal, !self.options.single_child) {
            tracing::warn!("cannot forward {signal} to the main program (pid {pid}): {e}");
        }
    }

    fn reap(&mut self) {
        for (pid, status) in reaper::reap_all() {
            match self.pids.remove(&pid) {
                Some(name) => {
                    tracing::info!(program = %name, pid = pid.as_raw(), "{status}");
                    self.drive(&name, Input::Exited(status));
                    if self.programs.get(&name).is_some_and(|p| p.main) {
                        self.linger(pid);
                    }
                }
                None if self.failed_spawns.remove(&pid) => {}
                None => {
                    self.orphans_reaped += 1;
                    tracing::debug!(pid = pid.as_raw(), "reaped orphan ({status})");
                }
            }
        }
        self.check_lingering();
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let mut due = BTreeSet::new();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, key))) = self.timers.pop() {
                due.insert(key);
            }
        }
        for key in due {
            match key {
                TimerKey::Program(name) => self.drive(&name, Input::Tick),
                TimerKey::Linger => self.kill_lingering(now),
            }
        }
    }

    /// Feeds one input to a program's machine and carries out the effects.
    pub(super) fn drive(&mut self, name: &str, input: Input) {
        let now = Instant::now();
        let Some(prog) = self.programs.get_mut(name) else {
            return;
        };
        let before = prog.state();
        let effects = prog.machine.on(input, now);
        let after = prog.state();
        if before != after {
            self.publish(name, before, after);
        }
        for effect in effects {
            match effect {
                Effect::Spawn if self.shutdown.is_some() => self.drive(name, Input::Stop),
                Effect::Spawn => {
                    let input = self.spawn(name);
                    self.drive(name, input);
                }
                Effect::Signal { pid, signal, group } => {
                    if let Err(e) = sys::send_signal(pid, signal, group) {
                        tracing::warn!(program = name, "cannot send {signal} to pid {pid}: {e}");
                    }
                }
                Effect::Timer(at) => self
                    .timers
                    .push(Reverse((at, TimerKey::Program(name.to_string())))),
                Effect::Finished => self.on_finished(name),
            }
        }
    }

    fn spawn(&mut self, name: &str) -> Input {
        let netns = match self.netns_for_spawn(name) {
            Ok(fd) => fd,
            Err(why) => {
                tracing::error!(program = name, "{why}");
                return Input::SpawnFailed(why);
            }
        };
        let Some(prog) = self.programs.get_mut(name) else {
            return Input::SpawnFailed("program removed".into());
        };
        let pipes = if prog.main {
            None
        } else {
            match prog.logs(&self.logs).open_pipes() {
                Ok(pipes) => Some(pipes),
                Err(e) => {
                    tracing::error!("{e}");
                    return Input::SpawnFailed(e.to_string());
                }
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
                netns: None,
            },
            Some(pipes) => SpawnOptions {
                session: Session::NewSession,
                stdio: [
                    Some(self.dev_null.as_raw_fd()),
                    Some(pipes.stdout.as_raw_fd()),
                    Some(pipes.stderr.as_raw_fd()),
                ],
                netns: None,
            },
        };
        let opts = SpawnOptions {
            netns: netns.as_ref().map(|fd| fd.as_raw_fd()),
            ..opts
        };
        let spawned = spawn::spawn(&prog.cfg, opts);
        // The child has its own copies now; the pumps see the end of the
        // output once the child (and anything it forked) has closed them.
        drop(pipes);
        match spawned {
            Ok(pid) => {
                tracing::info!(program = name, pid = pid.as_raw(), "spawned");
                prog.started_wall = Some(SystemTime::now());
                prog.spawn_error_code = None;
                self.pids.insert(pid, name.to_string());
                Input::Spawned(pid)
            }
            Err(e) => {
                tracing::error!(program = name, "{e}");
                if let Some(pid) = e.failed_pid() {
                    self.failed_spawns.insert(pid);
                }
                prog.spawn_error_code = Some(e.shell_code());
                Input::SpawnFailed(e.to_string())
            }
        }
    }

    fn publish(&mut self, name: &str, from: nsvisor_proto::State, to: nsvisor_proto::State) {
        self.dirty.insert(name.to_string());
        let Some(prog) = self.programs.get(name) else {
            return;
        };
        tracing::info!(program = name, "{from} -> {to}");
        let event = StateEvent {
            name: name.to_string(),
            from,
            to,
            pid: prog.machine.state.pid().map(|p| p.as_raw() as u32),
            exit_status: if matches!(
                from,
                nsvisor_proto::State::Starting
                    | nsvisor_proto::State::Running
                    | nsvisor_proto::State::Stopping
            ) && !to.has_process()
            {
                prog.machine.last_exit
            } else {
                None
            },
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
        };
        let _ = self.events.send(event);
    }

    /// Starts a program once its dependencies are RUNNING, starting them first.
    pub(super) fn request_start(&mut self, name: &str) {
        if self.shutdown.is_some() {
            return;
        }
        let Some(prog) = self.programs.get_mut(name) else {
            return;
        };
        prog.blocked = None;
        let deps = prog.cfg.depends_on.clone();
        let waiting: Vec<String> = deps
            .into_iter()
            .filter(|d| {
                self.programs
                    .get(d)
                    .is_some_and(|p| p.state() != nsvisor_proto::State::Running)
            })
            .collect();
        if waiting.is_empty() {
            let net_ready = self.sandbox_ready(name);
            if let Some(p) = self.programs.get_mut(name) {
                p.pending_start = !net_ready;
            }
            if net_ready {
                self.drive(name, Input::Start);
            } else {
                self.dirty.insert(name.to_string());
            }
            return;
        }
        if let Some(p) = self.programs.get_mut(name) {
            p.pending_start = true;
        }
        self.dirty.insert(name.to_string());
        for dep in waiting {
            let dep_prog = &self.programs[&dep];
            if !dep_prog.state().has_process() && !dep_prog.pending_start {
                self.request_start(&dep);
            }
        }
    }

    /// Cross-program rules, run after every event until nothing changes.
    fn settle(&mut self) {
        while !self.dirty.is_empty() {
            let changed = std::mem::take(&mut self.dirty);
            self.start_ready_dependents(&changed);
            self.apply_replacements(&changed);
            self.answer_waiters(&changed);
            self.advance_stop_plans();
        }
    }

    fn start_ready_dependents(&mut self, changed: &BTreeSet<String>) {
        use nsvisor_proto::State;
        let pending: Vec<String> = self
            .programs
            .values()
            .filter(|p| p.pending_start && p.cfg.depends_on.iter().any(|d| changed.contains(d)))
            .map(|p| p.cfg.name.clone())
            .collect();
        for name in pending {
            let deps = self.programs[&name].cfg.depends_on.clone();
            let failed = deps.iter().find(|d| {
                self.programs.get(*d).is_some_and(|p| {
                    matches!(p.state(), State::Fatal)
                        || (p.is_down() && p.state() != State::Running)
                })
            });
            if let Some(dep) = failed {
                let why = format!("dependency {dep} is {}", self.programs[dep].state());
                tracing::warn!(program = %name, "not started: {why}");
                if let Some(p) = self.programs.get_mut(&name) {
                    p.pending_start = false;
                    p.blocked = Some(why);
                }
                self.dirty.insert(name);
            } else if deps.iter().all(|d| {
                self.programs
                    .get(d)
                    .is_none_or(|p| p.state() == State::Running)
            }) {
                self.request_start(&name);
            }
        }
    }

    /// Seconds since the daemon started.
    pub(super) fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
