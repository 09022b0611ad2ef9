//! The checks a program signals itself (`log`, `notify`, `ready_fd`), on the
//! supervisor's side: what each spawn needs for them, and the notify sockets
//! of programs. What the program signals comes back as planner events
//! ([`Event::CheckDone`] for a matching line or a readiness newline,
//! [`Event::Notify`] for an `sd_notify` message).
//!
//! Each spawn gets fresh log watches and a fresh readiness pipe, tied to the
//! epoch its process will have, so a signal of an earlier process is never
//! taken for the new one's. A program's notify socket lives as long as the
//! program (in `<control socket>.notify/`, one numbered file per program) and
//! is removed with it and at shutdown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::planner::Event;
use crate::config::{CheckKind, ProgramConfig, ProgramName};
use crate::health::notify::NotifySocket;
use crate::health::ready_fd::ReadyPipe;
use crate::logs::LogWatch;
use nsvisor_proto::StreamKind;

/// What one spawn needs for its program's self-signalled checks.
#[derive(Debug, Default)]
pub struct SpawnHooks {
    /// Variables for the program (`NOTIFY_SOCKET`, `WATCHDOG_USEC`).
    pub env: Vec<(String, String)>,
    /// `log` check watches for stdout and stderr.
    pub watches: [Option<LogWatch>; 2],
    /// The `ready_fd` pipe, with the check it answers.
    pub ready: Option<(usize, ReadyPipe)>,
    /// The process's epoch and spawn time (for the events).
    epoch: u64,
    t0: Option<Instant>,
}

impl SpawnHooks {
    /// The readiness pipe's (write end, fd number in the child), if any.
    pub fn extra_fd(&self) -> Option<(std::os::fd::RawFd, std::os::fd::RawFd)> {
        use std::os::fd::AsRawFd;
        self.ready
            .as_ref()
            .map(|(_, pipe)| (pipe.write.as_raw_fd(), pipe.target))
    }
}

/// The notify sockets and the way back to the planner.
#[derive(Debug)]
pub struct Passive {
    /// Where notify sockets are made.
    dir: PathBuf,
    sockets: HashMap<ProgramName, NotifySocket>,
    next_id: u64,
    jobs: mpsc::UnboundedSender<Event>,
}

impl Passive {
    /// Notify sockets will live in `dir` (made when first needed).
    pub fn new(dir: PathBuf, jobs: mpsc::UnboundedSender<Event>) -> Passive {
        Passive {
            dir,
            sockets: HashMap::new(),
            next_id: 0,
            jobs,
        }
    }

    /// Prepares a spawn of `name`, whose process will be `epoch`; an error
    /// names what could not be made (the spawn fails with it).
    pub fn prepare(
        &mut self,
        name: &ProgramName,
        cfg: &ProgramConfig,
        epoch: u64,
    ) -> Result<SpawnHooks, String> {
        let mut hooks = SpawnHooks {
            epoch,
            ..SpawnHooks::default()
        };
        if cfg.checks.is_empty() {
            return Ok(hooks);
        }
        let t0 = Instant::now();
        hooks.t0 = Some(t0);
        for (index, check) in cfg.checks.iter().enumerate() {
            match &check.kind {
                CheckKind::Log { pattern, stream } => {
                    let regex = regex::bytes::Regex::new(pattern)
                        .map_err(|e| format!("log check /{pattern}/: {e}"))?;
                    let (regex, fired) = (Arc::new(regex), Arc::new(AtomicBool::new(false)));
                    let on_match = self.on_signal(name, index, epoch, t0, move |line| {
                        format!("log matched \"{}\"", line)
                    });
                    let on_match: crate::logs::log_watch::OnMatch = Arc::new(on_match);
                    for (slot, kind) in [StreamKind::Stdout, StreamKind::Stderr]
                        .into_iter()
                        .enumerate()
                    {
                        if stream.is_none_or(|s| s == kind) {
                            hooks.watches[slot] = Some(LogWatch::new(
                                regex.clone(),
                                fired.clone(),
                                on_match.clone(),
                            ));
                        }
                    }
                }
                CheckKind::ReadyFd { fd } => {
                    let pipe = ReadyPipe::new(*fd)
                        .map_err(|e| format!("ready_fd {fd}: cannot create a pipe: {e}"))?;
                    hooks.ready = Some((index, pipe));
                }
                CheckKind::NotifyWatchdog => {
                    let usec = check.period.as_micros().to_string();
                    hooks.env.push(("WATCHDOG_USEC".into(), usec));
                }
                _ => {}
            }
        }
        if cfg.checks.iter().any(|c| c.kind.uses_notify()) {
            let path = self.socket(name, cfg)?;
            hooks.env.push(("NOTIFY_SOCKET".into(), path));
        }
        Ok(hooks)
    }

    /// The spawn succeeded: start watching its readiness pipe.
    pub fn spawned(&self, name: &ProgramName, hooks: SpawnHooks) {
        let (Some((index, pipe)), Some(t0)) = (hooks.ready, hooks.t0) else {
            return;
        };
        let fd = pipe.target;
        let report = self.on_signal(name, index, hooks.epoch, t0, move |()| {
            format!("ready_fd {fd}: newline")
        });
        pipe.watch(move || report(()));
    }

    /// `name` is gone (removed or replaced): remove its notify socket.
    pub fn forget(&mut self, name: &ProgramName) {
        self.sockets.remove(name);
    }

    /// Shutdown: remove every notify socket and their directory.
    pub fn clear(&mut self) {
        if !self.sockets.is_empty() {
            self.sockets.clear();
            let _ = std::fs::remove_dir(&self.dir);
        }
    }

    /// A callback sending a passing [`Event::CheckDone`] for check `index`
    /// of process `epoch`, described by `detail`.
    fn on_signal<T>(
        &self,
        name: &ProgramName,
        index: usize,
        epoch: u64,
        t0: Instant,
        detail: impl Fn(T) -> String + Send + Sync + 'static,
    ) -> impl Fn(T) + Send + Sync + 'static {
        let (jobs, name) = (self.jobs.clone(), name.clone());
        move |what| {
            let took = t0.elapsed();
            let _ = jobs.send(Event::CheckDone {
                name: name.clone(),
                index,
                epoch,
                passed: true,
                took,
                detail: format!("{} after {} ms", detail(what), took.as_millis()),
            });
        }
    }

    /// The path of `name`'s notify socket, made at its first spawn.
    fn socket(&mut self, name: &ProgramName, cfg: &ProgramConfig) -> Result<String, String> {
        if let Some(s) = self.sockets.get(name) {
            return Ok(s.path().display().to_string());
        }
        let fail = |what: &str, e: std::io::Error| {
            format!(
                "notify socket in {}: cannot {what}: {e}",
                self.dir.display()
            )
        };
        std::fs::create_dir_all(&self.dir).map_err(|e| fail("create the directory", e))?;
        self.next_id += 1;
        let path = self.dir.join(self.next_id.to_string());
        let owner = match &cfg.user {
            Some(u) => Some(
                crate::process::spawn::owner_ids(&cfg.command[0], u)
                    .map_err(|e| format!("notify socket: {e}"))?,
            ),
            None => None,
        };
        let (jobs, program) = (self.jobs.clone(), name.clone());
        let socket = NotifySocket::bind(
            &path,
            owner,
            Arc::new(move |message| {
                let _ = jobs.send(Event::Notify {
                    name: program.clone(),
                    message,
                });
            }),
        )
        .map_err(|e| fail("bind", e))?;
        let shown = socket.path().display().to_string();
        self.sockets.insert(name.clone(), socket);
        Ok(shown)
    }
}
