//! nsvisor: a process supervisor and PID 1 for containers.
//!
//! [`run`] is the whole life of the daemon, called by `main.rs` and by tests:
//! raise the fd limit → become a subreaper unless PID 1 → install signal
//! handlers → check the host for the config's networks and clean a crashed
//! run's leftovers → open the health listener (if any) and the control
//! socket → start the supervisor task (which starts the programs) → wait for
//! it to finish a shutdown → close the control socket → return the exit code.
//!
//! Inside, `supervisor::` is the heart: a pure per-program machine, a pure
//! planner for every rule between programs, and the actor task that carries
//! out their effects. `sys::` is the only module allowed `unsafe`.
#![deny(unsafe_code)]

pub mod accounts;
pub mod api;
pub mod config;
pub mod daemon_log;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod logs;
pub mod net;
pub mod process;
pub mod signals;
pub mod supervisor;
#[allow(unsafe_code)]
pub(crate) mod sys;
#[cfg(test)]
mod test_util;

use config::Config;
pub use supervisor::RunOptions;
/// For `main.rs`: reserves the spawn fd slots before the runtime opens its fds.
pub use sys::reserve_spawn_slots;

/// How long the daemon waits, at exit, for program output still in pipes.
const LOG_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Exit code for config and usage errors.
pub const EXIT_CONFIG: i32 = 2;

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Installing signal handlers failed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    /// Opening /dev/null or another start-up resource failed.
    #[error("cannot set up the supervisor: {0}")]
    Setup(#[source] std::io::Error),
    /// The program output machinery could not start.
    #[error(transparent)]
    Logs(#[from] logs::LogError),
    /// The control socket could not be set up.
    #[error(transparent)]
    Api(#[from] api::Error),
    /// The health listener could not listen.
    #[error(transparent)]
    Probes(#[from] api::probes::ListenError),
    /// The host cannot give the config its networks (privileges, subnets).
    #[error("{}", lines(.0))]
    Network(Vec<net::Error>),
}

fn lines(errors: &[net::Error]) -> String {
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    lines.join("\n")
}

/// Runs the daemon until its shutdown completes; returns the exit code.
/// Must be called inside a tokio runtime.
pub async fn run(config: Config, options: RunOptions) -> Result<i32, RunError> {
    sys::reserve_spawn_slots();
    raise_fd_limit(config.supervisor.minfds);
    become_reaper();
    let signals = signals::register(options.main_command.is_some()).map_err(RunError::Signals)?;
    let signals_handle = signals.handle();
    let api_config = config.supervisor.clone();
    let rpc_setup = api::xmlrpc::Setup {
        config_path: config.path.clone(),
        load_options: options.load_options.clone(),
        ..Default::default()
    };
    let single_command = options.main_command.is_some();
    let net = start_network(&config).await?;
    let logs = logs::LogContext::stdio()?;
    if let Some(file) = &options.daemon_log {
        logs.set_daemon_log(file.clone());
    }
    let (sup, handle, commands) =
        supervisor::Supervisor::new(config, options, logs.clone(), net).map_err(RunError::Setup)?;
    let probes = match api_config.health_listen {
        Some(addr) => Some(api::probes::listen(addr, handle.clone()).await?),
        None => None,
    };
    let api = match api::serve(handle, &api_config, rpc_setup).await {
        Ok(api) => Some(api),
        // A tini-style init must not fail for want of a control socket.
        Err(e) if single_command => {
            tracing::warn!("{e}; continuing without the control API");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let code = sup.run(signals, commands).await;
    drop(probes);
    // Every program has exited: let the pumps write their last output.
    logs.shutdown(LOG_DRAIN).await;
    if let Some(api) = api {
        api.close().await;
    }
    signals_handle.close();
    Ok(code)
}

/// Validates the host for the config's networks, starts the network task and
/// removes what a crashed run left behind, before anything is created.
async fn start_network(config: &Config) -> Result<net::Manager, RunError> {
    net::check_host(config).await.map_err(RunError::Network)?;
    let manager = net::Manager::start();
    let uses_net = !config.networks.is_empty() || config.programs.values().any(|p| p.net.is_some());
    if uses_net && net::has_privileges() {
        for e in manager.cleanup_leftovers().await {
            tracing::warn!("cleaning up after a previous run: {e}");
        }
    }
    Ok(manager)
}

/// Raises the soft RLIMIT_NOFILE to `minfds` (and the hard one when allowed).
fn raise_fd_limit(minfds: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    if soft >= minfds {
        return;
    }
    let new_hard = hard.max(minfds);
    if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, minfds, new_hard) {
        match setrlimit(Resource::RLIMIT_NOFILE, minfds.min(hard), hard) {
            Ok(()) => tracing::warn!("minfds {minfds}: raised the open-files limit only to {} (hard limit; raising it: {e})", minfds.min(hard)),
            Err(e) => tracing::warn!("minfds {minfds}: cannot raise the open-files limit from {soft}: {e}"),
        }
    }
}

/// As PID 1 the kernel re-parents orphans to us; otherwise ask for it.
fn become_reaper() {
    if std::process::id() == 1 {
        return;
    }
    if let Err(e) = sys::set_subreaper() {
        tracing::warn!(
            "cannot become a child subreaper (orphans of programs will not be reaped): {e}"
        );
    }
}
