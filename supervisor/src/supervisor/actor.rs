//! The supervisor task: the one owner of every program's state (DESIGN rule 1),
//! and a thin shell around the [`Planner`] (DESIGN rule 2).
//!
//! Its loop waits for a signal, a client's command, the next timer or an
//! answer of a background job (a sandbox built, a config file read), turns it
//! into a planner [`Event`], and carries out the [`Effect`]s the planner
//! returns: spawn, signal, arm a timer, answer a client, ask the network task
//! for a sandbox, publish a state change. SIGCHLD only wakes it: the reaping
//! happens here, between spawns, never concurrently with one (DESIGN rule 3).
//! Queries (`status`, health, counters, tail buffers) read the planner's
//! table without changing it. Signals sent on a client's request are carried
//! out here too, since their answer is the outcome of the syscall, and so is
//! the job control of a `--` command (a stop of it seen at SIGCHLD, the
//! daemon stopping itself, the terminal handed back). Check runs
//! are in `actor/checks.rs`, reading the config for a reload in
//! `actor/reload.rs`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::{Stream, StreamExt};
use nix::sys::signal::Signal;
use nsvisor_proto::{ActionResult, ApiError, ErrorKind, ReloadResult, StateEvent};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::exec::Sessions;
use super::handle::{Action, Command, DaemonStats, Handle};
use super::linger::Lingering;
use super::passive::Passive;
use super::planner::{Answer, ClientId, Effect, Event, Planner};
use super::program::{Netns, Role};
use super::spawner::Spawner;

mod checks;
mod listing;
mod reload;
use crate::config::{Config, ProgramName};
use crate::daemon_log::batch;
use crate::logs::{LogContext, ProgramLogs};
use crate::process::reaper;
use crate::signals::Received;
use crate::sys;

/// Options of the daemon that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `-- CMD ARGS`: the main program of single-command / sidecar mode.
    pub main_command: Option<Vec<String>>,
    /// Forward signals to the main program's pid only, not its group.
    pub single_child: bool,
    /// The daemon's own log file (`[supervisor] logfile`), reopened on SIGUSR2.
    pub daemon_log: Option<crate::daemon_log::DaemonLogFile>,
    /// The tail of the daemon's own log kept in memory (`maintail`).
    pub daemon_tail: Option<crate::daemon_log::DaemonLogTail>,
    /// How the config file is read (at start, and again by every reload).
    pub load_options: crate::config::LoadOptions,
}

/// What a timer is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    /// A program's state machine.
    Program(ProgramName),
    /// A program's check (index, epoch).
    Check(ProgramName, usize, u64),
    /// An `exec` check's process must be done by now.
    CheckDeadline(i32),
    /// An exec session's timeout.
    ExecDeadline(u64),
    /// SIGKILL what is left of a finished main program's group.
    Linger,
}

/// A client's reply channel, by what it waits for.
#[derive(Debug)]
enum Reply {
    Act(oneshot::Sender<Result<Vec<ActionResult>, ApiError>>),
    Reload(oneshot::Sender<Result<ReloadResult, ApiError>>),
}

/// The supervisor's state. Only [`Supervisor::run`] touches it.
pub struct Supervisor {
    planner: Planner,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    events: broadcast::Sender<StateEvent>,
    clients: HashMap<ClientId, Reply>,
    next_client: ClientId,
    /// Answers of background jobs, fed back as planner events.
    jobs: mpsc::UnboundedSender<Event>,
    job_answers: Option<mpsc::UnboundedReceiver<Event>>,
    logs: LogContext,
    /// Each program's output pumps and tail buffers, made at its first spawn
    /// or `tail` (never for the main program, which keeps the terminal).
    program_logs: HashMap<ProgramName, ProgramLogs>,
    net: crate::net::Manager,
    lingering: Lingering,
    grace: std::time::Duration,
    config_path: PathBuf,
    load_options: crate::config::LoadOptions,
    started: Instant,
    spawner: Spawner,
    /// Notify sockets, and what each spawn needs for `log`, `notify` and
    /// `ready_fd` checks.
    passive: Passive,
    /// `tcp`/`http` check runs waiting for a slot (`checks.rs`).
    probes_waiting: std::collections::VecDeque<checks::ProbeJob>,
    /// Commands clients run in programs' sandboxes.
    exec: Sessions,
    /// When each program last stopped or exited (unix seconds), for
    /// `status` and supervisord's `stop`: kept here, where every change
    /// passes, rather than by a follower of `events`, which loses changes
    /// once thousands come at once.
    stops: HashMap<ProgramName, u64>,
}

impl Supervisor {
    /// A supervisor for `config` (not yet started) and the handle to talk to it.
    pub fn new(
        config: Config,
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
        let (jobs, job_answers) = mpsc::unbounded_channel();
        let jobs_for_passive = jobs.clone();
        let notify_dir = crate::api::socket_path(&config.supervisor).with_extension("notify");
        let main = options
            .main_command
            .map(|cmd| crate::config::main_program(cmd, &config.supervisor));
        let sup = Supervisor {
            grace: config.supervisor.shutdown_grace,
            config_path: config.path.clone(),
            load_options: options.load_options.clone(),
            planner: Planner::new(config, main, options.single_child),
            timers: BinaryHeap::new(),
            events,
            clients: HashMap::new(),
            next_client: 0,
            jobs,
            job_answers: Some(job_answers),
            logs,
            program_logs: HashMap::new(),
            net,
            lingering: Lingering::default(),
            started: Instant::now(),
            spawner: Spawner::new()?,
            passive: Passive::new(notify_dir, jobs_for_passive),
            probes_waiting: std::collections::VecDeque::new(),
            exec: Sessions::default(),
            stops: HashMap::new(),
        };
        Ok((sup, handle, rx))
    }

    /// Runs until every program is gone after a shutdown; returns the exit code.
    /// `signals` yields every signal delivered to the daemon (registered
    /// before this is called, so no SIGCHLD is missed).
    pub async fn run(
        mut self,
        mut signals: impl Stream<Item = Received> + Unpin,
        mut commands: mpsc::Receiver<Command>,
    ) -> i32 {
        let t0 = Instant::now();
        batch(|| self.handle(Event::Boot));
        let spawned = self.planner.programs().filter(|p| p.has_process()).count();
        tracing::info!(
            "spawned {spawned} programs in {:.1} ms",
            t0.elapsed().as_secs_f64() * 1000.0
        );
        let mut commands_open = true;
        let mut job_answers = self
            .job_answers
            .take()
            .unwrap_or_else(|| mpsc::unbounded_channel().1);
        let mut probes = futures::stream::FuturesUnordered::new();
        loop {
            if let Some(code) = self.planner.exit_code() {
                self.exec.kill_all();
                if self.lingering.is_empty() && self.exec.is_empty() {
                    self.teardown_network().await;
                    return code;
                }
            }
            self.start_probes(&mut probes);
            let next = self.timers.peek().map(|Reverse((at, _))| *at);
            // Each turn's log lines are written together.
            tokio::select! {
                Some(sig) = signals.next() => batch(|| self.on_signal(sig)),
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(cmd) => batch(|| self.on_command(cmd)),
                    None => commands_open = false,
                },
                () = sleep_until(next), if next.is_some() => batch(|| self.on_timers()),
                Some(event) = job_answers.recv() => batch(|| self.handle(event)),
                Some(event) = probes.next(), if !probes.is_empty() => batch(|| self.handle(event)),
            }
        }
    }

    /// Hands an event to the planner and carries out the effects, including
    /// the events they cause at once (a spawn's result).
    fn handle(&mut self, event: Event) {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            for effect in self.planner.on(event, Instant::now()) {
                if let Some(next) = self.perform(effect) {
                    queue.push_back(next);
                }
            }
        }
    }

    /// Carries out one effect; returns the event it causes at once, if any.
    fn perform(&mut self, effect: Effect) -> Option<Event> {
        match effect {
            Effect::Spawn { name, netns } => return Some(self.spawn(name, netns)),
            Effect::Signal {
                name,
                pid,
                signal,
                group,
            } => {
                if let Err(e) = sys::send_signal(pid, signal, group) {
                    tracing::warn!(
                        program = name.as_str(),
                        "cannot send {signal} to pid {pid}: {e}"
                    );
                }
            }
            Effect::Forward { pid, signal, group } => {
                if let Err(e) = sys::send_signal_number(pid, signal.number(), group) {
                    tracing::warn!("cannot forward {signal} to the command (pid {pid}): {e}");
                }
            }
            Effect::Suspend { why } => suspend(&why),
            Effect::Foreground(pgid) => {
                if let Err(e) = sys::give_terminal(pgid) {
                    tracing::warn!("cannot give the terminal back to the command: {e}");
                }
            }
            Effect::Timer { at, name } => self.timers.push(Reverse((at, TimerKey::Program(name)))),
            Effect::CheckTimer {
                at,
                name,
                index,
                epoch,
            } => self
                .timers
                .push(Reverse((at, TimerKey::Check(name, index, epoch)))),
            Effect::RunCheck {
                name,
                index,
                epoch,
                netns,
            } => return self.run_check(name, index, epoch, netns),
            Effect::CheckDeadline { at, pid } => self
                .timers
                .push(Reverse((at, TimerKey::CheckDeadline(pid.as_raw())))),
            Effect::Answer { client, answer } => match (self.clients.remove(&client), *answer) {
                (Some(Reply::Act(tx)), Answer::Act(a)) => drop(tx.send(a)),
                (Some(Reply::Reload(tx)), Answer::Reload(a)) => drop(tx.send(a)),
                (reply, answer) => {
                    tracing::error!(
                        "internal error: answer {answer:?} for client {client} ({reply:?})"
                    )
                }
            },
            Effect::EnsureSandbox {
                name,
                spec,
                network,
                ticket,
            } => {
                let group = self.planner.program(&name).map(|p| p.cfg.group.clone());
                let group = group.unwrap_or_else(|| name.as_str().into());
                let answer = self.net.ensure(&name, &group, &spec, &network);
                let jobs = self.jobs.clone();
                tokio::spawn(async move {
                    let result = answer
                        .await
                        .map(|sandbox| Netns {
                            net: Arc::new(sandbox.fd),
                            mnt: sandbox.mntns,
                        })
                        .map_err(|e| e.to_string());
                    let _ = jobs.send(Event::SandboxReady {
                        name,
                        ticket,
                        result,
                    });
                });
            }
            Effect::ReleaseSandbox(name) => {
                let done = self.net.release(&name);
                tokio::spawn(async move {
                    for e in done.await {
                        tracing::error!(program = name.as_str(), "{e}");
                    }
                });
            }
            Effect::DropLogs(name) => {
                drop(self.program_logs.remove(&name));
                self.passive.forget(&name);
            }
            Effect::Publish(change) => {
                self.update_forwarding(&change.name);
                let time_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64);
                if change.is_stop() {
                    self.stops.insert(change.name.clone(), time_ms / 1000);
                }
                if self.events.receiver_count() == 0 {
                    return None; // Nobody follows: no event to build.
                }
                let _ = self.events.send(StateEvent {
                    name: change.name.to_string(),
                    from: change.from,
                    to: change.to,
                    pid: change.pid.map(|p| p.as_raw() as u32),
                    exit_status: change.exit_status,
                    ready: change.ready.as_ref().map(|(ready, _)| *ready),
                    detail: change.ready.map(|(_, detail)| detail),
                    time_ms,
                });
            }
            Effect::Linger(pgid) => {
                if let Some(at) = self.lingering.begin(pgid, self.grace, Instant::now()) {
                    self.timers.push(Reverse((at, TimerKey::Linger)));
                }
            }
            Effect::LoadConfig => self.load_config(None),
            Effect::ReopenLogs => {
                self.logs.reopen_all();
                // After the reopening, so this line starts the new daemon log file.
                tracing::info!("received SIGUSR2: reopening log files");
            }
        }
        None
    }

    fn on_signal(&mut self, received: Received) {
        let signal = received.signal.named();
        if signal == Some(Signal::SIGCHLD) {
            let mut statuses = reaper::reap_all();
            self.exec.reaped(&mut statuses);
            if !statuses.is_empty() {
                self.handle(Event::Reaped(statuses));
            }
            self.lingering.prune();
            // A SIGCHLD also says a child stopped: job control of `-- CMD`.
            if let Some(by) = self.planner.job_control_pid().and_then(sys::stopped_by) {
                self.handle(Event::CommandStopped(by));
            }
            return;
        }
        if matches!(
            signal,
            Some(Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT)
        ) {
            tracing::info!("received {}", received.signal);
        }
        self.handle(Event::Signal(received));
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let mut due = Vec::new();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            if let Some(Reverse((_, key))) = self.timers.pop() {
                if !due.contains(&key) {
                    due.push(key);
                }
            }
        }
        for key in due {
            match key {
                TimerKey::Program(name) => self.handle(Event::Tick(name)),
                TimerKey::Check(name, index, epoch) => {
                    self.handle(Event::CheckDue { name, index, epoch })
                }
                TimerKey::CheckDeadline(pid) => {
                    self.handle(Event::CheckDeadline(nix::unistd::Pid::from_raw(pid)))
                }
                TimerKey::Linger => self.lingering.kill_due(now),
                TimerKey::ExecDeadline(id) => self.exec.expire(id),
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::List { reply } => drop(reply.send(self.list(now))),
            Command::ListJson { reply } => drop(reply.send(self.list_json(now))),
            Command::Act {
                action: Action::Signal(signal),
                target,
                reply,
                ..
            } => drop(reply.send(self.signal_programs(&target, signal))),
            Command::Act {
                action,
                target,
                wait,
                reply,
            } => {
                let client = self.client(Reply::Act(reply));
                self.handle(Event::Act {
                    client,
                    verb: action,
                    target,
                    wait,
                });
            }
            Command::Reload { reply } => {
                let client = self.client(Reply::Reload(reply));
                self.load_config(Some(client));
            }
            Command::Shutdown { reply } => {
                self.handle(Event::Shutdown);
                let _ = reply.send(());
            }
            Command::Health { reply } => {
                let _ = reply.send(self.planner.health(self.uptime_secs()));
            }
            Command::Stats { reply } => {
                let _ = reply.send(DaemonStats {
                    orphans_reaped: self.planner.orphans_reaped(),
                    uptime_secs: self.uptime_secs(),
                });
            }
            Command::Configs { reply } => {
                let configs = self.planner.programs().map(|p| p.cfg.clone()).collect();
                let _ = reply.send(configs);
            }
            Command::Tail {
                name,
                stream,
                reply,
            } => {
                let answer = match self.planner.program(&name) {
                    None => Err(super::planner::unknown(&name)),
                    Some(p) if p.role == Role::Main => Err(ApiError::new(
                        ErrorKind::NotFound,
                        format!("program \"{name}\": its output goes to the terminal, it is not captured"),
                    )),
                    Some(p) => Ok(self
                        .program_logs
                        .entry(p.cfg.name.clone())
                        .or_insert_with(|| ProgramLogs::new(&self.logs, &p.cfg))
                        .ring(stream)),
                };
                let _ = reply.send(answer);
            }
            Command::Exec {
                name,
                request,
                reply,
            } => {
                let started = match self.planner.program(&name) {
                    None => Err(super::planner::unknown(&name)),
                    Some(p) => self.exec.start(&self.spawner, p, request),
                };
                let _ = reply.send(started.map(|(output, timeout)| {
                    if let Some(t) = timeout {
                        let key = TimerKey::ExecDeadline(output.id);
                        self.timers.push(Reverse((now + t, key)));
                    }
                    output
                }));
            }
            Command::ExecSignal { id, signal, reply } => {
                let _ = reply.send(self.exec.signal(id, signal));
            }
            Command::ExecDetach { id } => self.exec.detach(id),
        }
    }

    fn client(&mut self, reply: Reply) -> ClientId {
        self.next_client += 1;
        self.clients.insert(self.next_client, reply);
        self.next_client
    }

    /// Sends `signal` to the processes of `target` (their groups when `stopasgroup`).
    fn signal_programs(&self, target: &str, signal: Signal) -> Result<Vec<ActionResult>, ApiError> {
        let now = Instant::now();
        let names = self.planner.resolve(target)?;
        let mut results = Vec::new();
        for name in &names {
            let Some(p) = self.planner.program(name) else {
                continue;
            };
            let (ok, message) = match p.machine.state().pid() {
                Some(pid) => match sys::send_signal(pid, signal, p.cfg.stopasgroup) {
                    Ok(()) => (true, format!("sent {signal}")),
                    Err(e) => (false, format!("cannot send {signal}: {e}")),
                },
                None => (false, format!("not running ({})", p.state())),
            };
            results.push(ActionResult {
                name: name.to_string(),
                ok,
                message,
                program: p.info(now),
            });
        }
        if let [only] = results.as_slice() {
            if target != "all" && !only.ok && !only.program.state.has_process() {
                return Err(ApiError::new(
                    ErrorKind::WrongState,
                    format!("program \"{}\": {}", only.name, only.message),
                ));
            }
        }
        Ok(results)
    }

    fn spawn(&mut self, name: ProgramName, netns: Option<Netns>) -> Event {
        let Some(prog) = self.planner.program(&name) else {
            return Event::SpawnFailed {
                name,
                error: "program removed".into(),
                code: 1,
                pid: None,
            };
        };
        let logs = match prog.role {
            Role::Main => None,
            Role::Configured => Some(
                &*self
                    .program_logs
                    .entry(name.clone())
                    .or_insert_with(|| ProgramLogs::new(&self.logs, &prog.cfg)),
            ),
        };
        let epoch = prog.health.epoch + 1;
        let mut hooks = match self.passive.prepare(&name, &prog.cfg, epoch) {
            Ok(hooks) => hooks,
            Err(error) => {
                tracing::error!(program = name.as_str(), "{error}");
                return Event::SpawnFailed {
                    name,
                    error,
                    code: 1,
                    pid: None,
                };
            }
        };
        let event = self
            .spawner
            .program(name.clone(), &prog.cfg, logs, netns.as_ref(), &mut hooks);
        if matches!(event, Event::Spawned { .. }) {
            self.passive.spawned(&name, hooks);
        }
        event
    }

    /// End of shutdown, every program gone: remove every sandbox, proxy and
    /// bridge the daemon made.
    async fn teardown_network(&mut self) {
        self.passive.clear();
        for e in self.net.shutdown().await {
            tracing::error!("{e}");
        }
    }

    /// Seconds since the daemon started.
    fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

/// Job control: stops the whole daemon until a SIGCONT. PID 1 cannot be
/// stopped (the kernel ignores SIGSTOP for it), so it only says so.
fn suspend(why: &str) {
    if std::process::id() == 1 {
        tracing::info!("{why}: as PID 1, nsvisor itself cannot stop (job control)");
        return;
    }
    tracing::info!("{why}: nsvisor stops too, until SIGCONT (job control)");
    if let Err(e) = sys::stop_self() {
        tracing::warn!("cannot stop nsvisor: {e}");
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
