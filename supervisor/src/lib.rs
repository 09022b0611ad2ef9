//! nsvisor: a process supervisor and PID 1 for containers.
//!
//! [`run`] is the whole life of the daemon, called by `main.rs` and by tests:
//! raise the fd limit as far as the programs need → become a subreaper unless PID 1 → install signal
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
pub mod fd_budget;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod logs;
pub mod net;
pub mod process;
pub mod safe_open;
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
/// For `main.rs`: unblocks the signals a parent left blocked, before any thread starts.
pub use sys::unblock_signals;

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
    sys::keep_large_blocks_mapped();
    fd_budget::raise(&config);
    become_reaper();
    // `nsvisor -- CMD` alone: every signal is the command's (the planner's rule too).
    let single_command = options.main_command.is_some() && config.programs.is_empty();
    let signals = signals::register(single_command).map_err(RunError::Signals)?;
    let api_config = config.supervisor.clone();
    let rpc_setup = api::xmlrpc::Setup {
        config_path: config.path.clone(),
        load_options: options.load_options.clone(),
        daemon_tail: options.daemon_tail.clone(),
        ..Default::default()
    };
    let has_command = options.main_command.is_some();
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
    let api = serve_api(handle, api_config, rpc_setup, has_command).await?;
    let code = sup.run(signals, commands).await;
    drop(probes);
    // Every program has exited: let the pumps write their last output.
    logs.shutdown(LOG_DRAIN).await;
    if let Some(api) = api {
        api.close().await;
    }
    Ok(code)
}

/// Opens the control socket. With a `--` command, a daemon must not fail
/// for want of one: when the default path is another nsvisor's (two
/// `nsvisor -- CMD` on one host), it listens on a path of its own instead
/// (`nsvisor-<pid>.sock` beside it), and any other failure is a warning.
async fn serve_api(
    handle: supervisor::handle::Handle,
    mut cfg: config::SupervisorConfig,
    rpc: api::xmlrpc::Setup,
    has_command: bool,
) -> Result<Option<api::ApiServer>, RunError> {
    let error = match api::serve(handle.clone(), &cfg, rpc.clone()).await {
        Ok(api) => return Ok(Some(api)),
        Err(e) if !has_command => return Err(e.into()),
        Err(e) => e,
    };
    let default = api::socket_path(&cfg);
    let error = if cfg.socket.is_none() && error.is_taken() {
        let own = api::instance_socket_path(&default, std::process::id());
        tracing::info!(
            "control socket {} is another nsvisor's; listening on {}",
            default.display(),
            own.display()
        );
        cfg.socket = Some(own);
        match api::serve(handle, &cfg, rpc).await {
            Ok(api) => return Ok(Some(api)),
            Err(e) => e,
        }
    } else {
        error
    };
    tracing::warn!("{error}; continuing without the control API");
    Ok(None)
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
