//! The open-files budget: how many file descriptors a config's programs make
//! the daemon hold, against its `RLIMIT_NOFILE`.
//!
//! Every running program keeps the read end of its output pipe(s) open in the
//! daemon, plus its log files, its notify socket or readiness pipe, and its
//! sandbox's namespaces and port listeners. Past the open-files limit, spawns
//! fail with EMFILE. [`estimate`] counts that from the config alone (pure);
//! [`raise`] (called by `run` before anything starts) raises the soft limit
//! as far as the config needs — no privilege is needed up to the hard limit —
//! and [`shortfall`] is the warning both `nsvisor check` and the start print
//! when even the hard limit is too low. The estimate is deliberately simple:
//! it covers what programs hold while they run, not API clients beyond
//! [`DAEMON_BASE`] nor connections through proxied ports.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

use crate::config::{CheckKind, Config, LogFile, ProgramConfig, ProgramNet};

/// The daemon's own descriptors (runtime, control socket, spawn slots,
/// /dev/null, stdio) and a margin for API clients and the spawn in progress.
pub const DAEMON_BASE: u64 = 64;

/// What a config needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// Program instances (replicas counted).
    pub programs: usize,
    /// Open files the daemon needs with all of them running.
    pub fds: u64,
}

/// The open-files limit (`RLIMIT_NOFILE`) of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Soft limit: what counts.
    pub soft: u64,
    /// Hard limit: how far the soft one may be raised without privilege.
    pub hard: u64,
}

impl Limit {
    /// This process's limit; `None` if it cannot be read.
    pub fn current() -> Option<Limit> {
        getrlimit(Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(soft, hard)| Limit { soft, hard })
    }
}

/// The open files the daemon holds for one running program instance.
pub fn per_program(cfg: &ProgramConfig) -> u64 {
    let own_stderr = !cfg.redirect_stderr;
    // A stream written straight to the console needs no pipe, unless a
    // `log` check reads it.
    let log_check = cfg
        .checks
        .iter()
        .any(|c| matches!(c.kind, CheckKind::Log { .. }));
    let piped = |s: &crate::config::StreamLog| u64::from(log_check || !s.is_direct());
    let pipes = piped(&cfg.stdout) + if own_stderr { piped(&cfg.stderr) } else { 0 };
    let files = u64::from(matches!(cfg.stdout.logfile, LogFile::Path(_)))
        + u64::from(own_stderr && matches!(cfg.stderr.logfile, LogFile::Path(_)));
    let notify = u64::from(cfg.checks.iter().any(|c| c.kind.uses_notify()));
    let ready_fd = cfg
        .checks
        .iter()
        .filter(|c| matches!(c.kind, CheckKind::ReadyFd { .. }))
        .count() as u64;
    let net = match cfg.net.as_deref() {
        // Its namespace (and the names' mount namespace), and one listener per port.
        Some(ProgramNet::Sandbox(s)) => 2 + s.ports.len() as u64,
        Some(ProgramNet::Join { .. }) | None => 0,
    };
    pipes + files + notify + ready_fd + net
}

/// What `config` needs with every program running.
pub fn estimate(config: &Config) -> Estimate {
    Estimate {
        programs: config.programs.len(),
        fds: DAEMON_BASE + config.programs.values().map(per_program).sum::<u64>(),
    }
}

/// The warning when `limit` cannot give `need` open files even after
/// raising the soft limit to the hard one; `None` when it can.
pub fn shortfall(need: Estimate, limit: Limit) -> Option<String> {
    if need.fds <= limit.hard.max(limit.soft) {
        return None;
    }
    let f = need.fds;
    let room = limit.hard.saturating_sub(DAEMON_BASE);
    Some(format!(
        "{} programs need about {f} open files; the open-files hard limit is {} (room for about \
         {room} more descriptors), so spawns will fail with \"Too many open files\" past it: \
         raise it where the daemon is started (`docker run --ulimit nofile={f}:{f}`, \
         `ulimit -n {f}` as root in the shell that starts nsvisor, `LimitNOFILE={f}` in a \
         systemd unit; Kubernetes has no setting for it: the container runtime's default \
         applies, configured in containerd or CRI-O), or run fewer programs \
         (`redirect_stderr = true` saves one pipe per program; a stream with          `*_console = \"raw\"`, no log file and `tail_buffer = \"0\"` needs none)",
        need.programs, limit.hard
    ))
}

/// At start, before anything is opened for programs: raises the soft limit
/// to `max(minfds, need)` (and the hard limit too when the daemon is
/// privileged), else as far as the hard limit allows; then logs a warning
/// when the programs will not fit, or when `minfds` could not be met.
pub fn raise(config: &Config) {
    let Some(before) = Limit::current() else {
        return;
    };
    let need = estimate(config);
    let minfds = config.supervisor.minfds;
    let want = minfds.max(need.fds);
    if before.soft < want {
        let raised = setrlimit(Resource::RLIMIT_NOFILE, want, before.hard.max(want))
            .or_else(|_| setrlimit(Resource::RLIMIT_NOFILE, want.min(before.hard), before.hard));
        if let Err(e) = raised {
            tracing::warn!(
                "cannot raise the open-files limit from {}: {e}",
                before.soft
            );
        }
    }
    let Some(now) = Limit::current() else {
        return;
    };
    if let Some(warning) = shortfall(need, now) {
        tracing::warn!("{warning}");
    } else if now.soft < minfds {
        tracing::warn!(
            "minfds {minfds}: raised the open-files limit only to {} (the hard limit; raising \
             it needs CAP_SYS_RESOURCE)",
            now.soft
        );
    }
}

/// Words to add to an EMFILE error: which limit was reached.
pub fn emfile_hint() -> String {
    match Limit::current() {
        Some(l) => format!(
            " (the daemon's open-files limit is {}; see minfds and docs/reliability.md)",
            l.soft
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProgramConfig, StreamLog};

    fn program(redirect: bool, out_file: bool, err_file: bool) -> ProgramConfig {
        let mut p = ProgramConfig::with_defaults("p", vec!["x".into()]);
        p.redirect_stderr = redirect;
        let base = p.stdout.clone();
        let file = |on: bool| StreamLog {
            logfile: if on {
                LogFile::Path("/l".into())
            } else {
                LogFile::None
            },
            ..base.clone()
        };
        p.stdout = file(out_file);
        p.stderr = file(err_file);
        p
    }

    #[test]
    fn two_pipes_per_program_one_with_redirect_stderr() {
        assert_eq!(per_program(&program(false, false, false)), 2);
        assert_eq!(per_program(&program(true, false, false)), 1);
    }

    #[test]
    fn a_stream_straight_to_the_console_needs_no_pipe_unless_a_log_check_reads_it() {
        let mut p = program(false, false, false);
        for s in [&mut p.stdout, &mut p.stderr] {
            s.console = crate::config::ConsoleMode::Raw;
            s.tail_bytes = 0;
        }
        assert_eq!(per_program(&p), 0);
        p.stderr.tail_bytes = 1024;
        assert_eq!(per_program(&p), 1, "a tail buffer needs the bytes");
        p.checks.push(crate::config::CheckConfig::new(
            crate::config::Purpose::Readiness,
            CheckKind::Log {
                pattern: "ready".into(),
                stream: None,
            },
        ));
        assert_eq!(per_program(&p), 2);
    }

    #[test]
    fn log_files_count_and_a_merged_stderr_has_none() {
        assert_eq!(per_program(&program(false, true, true)), 4);
        assert_eq!(per_program(&program(true, true, true)), 2);
    }

    #[test]
    fn shortfall_names_programs_need_and_hard_limit() {
        let need = Estimate {
            programs: 10_000,
            fds: 20_064,
        };
        let limit = Limit {
            soft: 1024,
            hard: 20_000,
        };
        let w = shortfall(need, limit).unwrap_or_default();
        assert!(
            w.starts_with(
                "10000 programs need about 20064 open files; the open-files hard limit is 20000"
            ),
            "{w}"
        );
        assert!(w.contains("--ulimit nofile=20064:20064"), "{w}");
    }

    #[test]
    fn no_shortfall_when_the_soft_limit_can_be_raised() {
        let need = Estimate {
            programs: 100,
            fds: 264,
        };
        let limit = Limit {
            soft: 128,
            hard: 1024,
        };
        assert_eq!(shortfall(need, limit), None);
    }
}
