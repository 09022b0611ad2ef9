//! `nsvisor` command line: parse arguments → set up the daemon's own log →
//! load the config → run the supervisor → exit with its code.
//!
//! Invoked as `supervisord`, it first turns supervisord's options into its
//! own (`supervisord_args.rs`).
//!
//! Exit codes: 0 after a requested shutdown; the critical / `--` program's
//! status when it ended (128+N when killed by signal N, 127 not found, 126 not
//! executable); 2 for config and usage errors; 1 when the daemon itself
//! cannot start.

mod cli;
mod supervisord_args;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nsvisor::config::{Config, ConfigErrors, ConfigFormat, LoadOptions, Loaded};
use nsvisor::{RunOptions, EXIT_CONFIG};

use cli::{Cli, FormatArg, LogFormat, Sub};

const DEFAULT_CONFIG: &str = "/etc/nsvisor/nsvisor.toml";

/// How long the daemon waits at exit for its queued log lines to be written.
const LOG_FLUSH_AT_EXIT: std::time::Duration = std::time::Duration::from_secs(1);

fn main() -> ExitCode {
    // Before any thread starts (they inherit the mask): a signal a parent
    // left blocked would never reach its handler.
    if let Err(e) = nsvisor::unblock_signals() {
        eprintln!("nsvisor: cannot unblock signals: {e}");
    }
    let stderr_log = nsvisor::daemon_log::StderrLog::stderr()
        .map_err(|e| {
            eprintln!(
                "nsvisor: cannot start the log writer thread ({e}); logging to stderr directly"
            )
        })
        .ok();
    // The release build aborts on a panic, so a log batch's end never comes:
    // its lines, which tell what led to the panic, are written first.
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        nsvisor::daemon_log::write_batch_so_far();
        previous_hook(info);
    }));
    let code = daemon_main(stderr_log.clone());
    if let Some(log) = stderr_log {
        log.flush(LOG_FLUSH_AT_EXIT);
    }
    code
}

fn daemon_main(stderr_log: Option<nsvisor::daemon_log::StderrLog>) -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = PathBuf::from(args.first().cloned().unwrap_or_default());
    let (args, overrides) = if supervisord_args::invoked_as_supervisord(&argv0) {
        match supervisord_args::translate(args) {
            Ok(translated) => translated,
            Err(exit) => return exit,
        }
    } else {
        (args, supervisord_args::Overrides::default())
    };
    let cli = Cli::parse_from(args);
    let path = config_path(&cli);
    let options = LoadOptions {
        format: cli.config_format.map(|f| match f {
            FormatArg::Toml => ConfigFormat::Toml,
            FormatArg::Ini => ConfigFormat::Ini,
        }),
        skip_unsupported: cli.skip_unsupported,
    };
    let default_path = std::path::Path::new(DEFAULT_CONFIG);
    match &cli.subcommand {
        Some(Sub::Check) => return check(path.as_deref().unwrap_or(default_path), &options),
        Some(Sub::Convert { file }) => {
            let file = file.as_deref().or(path.as_deref()).unwrap_or(default_path);
            return convert(file, &options);
        }
        None => {}
    }
    let (mut config, warnings) = match &path {
        Some(p) => match Config::load_with(p, &options) {
            Ok(loaded) => {
                let warnings = warning_lines(&loaded);
                (loaded.config, warnings)
            }
            Err(e) => return config_failure(&e),
        },
        None => (Config::empty(), Vec::new()),
    };
    overrides.apply(&mut config.supervisor);
    // A tini-style init stays quiet unless something goes wrong.
    let quiet = path.is_none().then_some("warn");
    let daemon_log = config.supervisor.logfile.as_deref().and_then(|path| {
        nsvisor::daemon_log::DaemonLogFile::open(path)
            .map_err(|e| eprintln!("nsvisor: {e}; logging to stderr only"))
            .ok()
    });
    let daemon_tail = nsvisor::daemon_log::DaemonLogTail::new();
    init_tracing(
        &cli,
        config.supervisor.log_level.as_deref().or(quiet),
        stderr_log,
        daemon_log.clone(),
        daemon_tail.clone(),
    );
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if let Some(grace) = cli.grace {
        if !(grace.is_finite() && grace >= 0.0) {
            eprintln!("nsvisor: --grace must be a non-negative number of seconds, not {grace}");
            return ExitCode::from(EXIT_CONFIG as u8);
        }
        config.supervisor.shutdown_grace = std::time::Duration::from_secs_f64(grace);
    }
    let options = RunOptions {
        main_command: (!cli.command.is_empty()).then(|| cli.command.clone()),
        single_child: cli.single_child,
        daemon_log,
        daemon_tail: Some(daemon_tail),
        load_options: options.clone(),
    };
    if options.main_command.is_some()
        && config
            .programs
            .contains_key(nsvisor::supervisor::MAIN_PROGRAM)
    {
        eprintln!(
            "nsvisor: program name \"main\" is reserved for the -- command in {}",
            config.path.display()
        );
        return ExitCode::from(EXIT_CONFIG as u8);
    }
    if options.main_command.is_none() && config.programs.is_empty() {
        tracing::warn!("no programs configured; waiting for a reload or a signal");
    }
    // Low fd numbers for spawning, taken before the runtime opens its own.
    nsvisor::reserve_spawn_slots();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nsvisor: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let pidfile = config.supervisor.pidfile.clone();
    if let Some(path) = &pidfile {
        write_pidfile(path);
    }
    let result = runtime.block_on(nsvisor::run(config, options));
    if let Some(path) = &pidfile {
        if let Err(e) = std::fs::remove_file(path) {
            tracing::warn!("cannot remove pidfile {}: {e}", path.display());
        }
    }
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::from(1)
        }
    }
}

/// `[supervisor] pidfile`: the daemon's pid and a newline. A failure is
/// logged, not fatal (as in supervisord). In a directory other users can
/// write, a planted link or file is refused (`safe_open`).
fn write_pidfile(path: &std::path::Path) {
    use std::io::Write;
    let how = nsvisor::safe_open::Open {
        truncate: true,
        create: Some(0o644),
        ..Default::default()
    };
    let written = nsvisor::safe_open::open(path, how)
        .and_then(|mut f| f.write_all(format!("{}\n", std::process::id()).as_bytes()));
    if let Err(e) = written {
        tracing::warn!("cannot write pidfile {}: {e}", path.display());
    }
}

/// `-c FILE`, else `$NSVISOR_CONFIG`, else the default path — except in
/// single-command mode, which needs no config.
fn config_path(cli: &Cli) -> Option<PathBuf> {
    if let Some(p) = &cli.config {
        return Some(p.clone());
    }
    if let Some(p) = std::env::var_os("NSVISOR_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    if cli.command.is_empty() || cli.subcommand.is_some() {
        Some(PathBuf::from(DEFAULT_CONFIG))
    } else {
        None
    }
}

fn check(path: &std::path::Path, options: &LoadOptions) -> ExitCode {
    match Config::load_with(path, options) {
        Ok(loaded) => {
            for w in warning_lines(&loaded) {
                eprintln!("warning: {w}");
            }
            let c = &loaded.config;
            if !check_network(c) {
                return ExitCode::from(EXIT_CONFIG as u8);
            }
            let fd_warning = fd_shortfall(c);
            if let Some(w) = &fd_warning {
                eprintln!("warning: {w}");
            }
            let n = loaded.warnings().count() + usize::from(fd_warning.is_some());
            let warned = match n {
                0 => String::new(),
                1 => ", 1 warning".to_string(),
                n => format!(", {n} warnings"),
            };
            println!(
                "{}: ok ({} programs{warned})",
                path.display(),
                c.programs.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => config_failure(&e),
    }
}

/// The open-files warning for `nsvisor check`, against this process's limit
/// (the one a daemon started from this shell would have).
fn fd_shortfall(config: &Config) -> Option<String> {
    use nsvisor::fd_budget::{estimate, shortfall, Limit};
    let limit = Limit::current()?;
    shortfall(estimate(config), limit).map(|w| format!("{w} (checked against the limits here)"))
}

/// `file:line:col: [program "p": ]message` for each warning of a load.
fn warning_lines(loaded: &Loaded) -> Vec<String> {
    loaded.warnings().map(|w| w.headline()).collect()
}

fn convert(path: &std::path::Path, options: &LoadOptions) -> ExitCode {
    match nsvisor::config::convert(path, options) {
        Ok(toml) => {
            print!("{toml}");
            ExitCode::SUCCESS
        }
        Err(e) => config_failure(&e),
    }
}

/// Host checks of the config's networks (subnets against host routes).
/// Missing privileges only warn: a config may be checked by another user
/// than the one who runs it.
fn check_network(config: &Config) -> bool {
    if config.networks.is_empty() {
        return true;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().build();
    let Ok(Err(errors)) = runtime.map(|rt| rt.block_on(nsvisor::net::check_host(config))) else {
        return true;
    };
    let mut ok = true;
    for e in &errors {
        if matches!(e, nsvisor::net::Error::Privileges { .. }) {
            eprintln!("warning: {e}");
        } else {
            eprintln!("{}: {e}", config.path.display());
            ok = false;
        }
    }
    if !ok {
        eprintln!("nsvisor: the host cannot give this configuration its networks");
    }
    ok
}

fn config_failure(e: &ConfigErrors) -> ExitCode {
    let n = e.0.len();
    eprintln!("{e}");
    eprintln!(
        "nsvisor: {n} error{} in the configuration",
        if n == 1 { "" } else { "s" }
    );
    ExitCode::from(EXIT_CONFIG as u8)
}

/// The daemon's own log: stderr (through the log writer thread when there is
/// one), plus `[supervisor] logfile` when set, plus the tail kept for
/// `maintail` (last, so a follower woken by it finds the line in the file).
fn init_tracing(
    cli: &Cli,
    config_level: Option<&str>,
    stderr_log: Option<nsvisor::daemon_log::StderrLog>,
    file: Option<nsvisor::daemon_log::DaemonLogFile>,
    tail: nsvisor::daemon_log::DaemonLogTail,
) {
    use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt, OptionalWriter};
    use tracing_subscriber::EnvFilter;
    let level = cli.log_level.as_deref().or(config_level).unwrap_or("info");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // Colours only for a person at a terminal: not in `docker logs`, not in
    // the log file (which gets the same lines), not with NO_COLOR.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && file.is_none()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let file_writer = move || match &file {
        Some(f) => OptionalWriter::some(tracing_subscriber::fmt::MakeWriter::make_writer(f)),
        None => OptionalWriter::none(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(match stderr_log {
            Some(log) => BoxMakeWriter::new(log.and(file_writer).and(tail)),
            None => BoxMakeWriter::new(std::io::stderr.and(file_writer).and(tail)),
        })
        .with_target(false);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
