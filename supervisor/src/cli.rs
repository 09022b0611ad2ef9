//! `nsvisor`'s command line as clap definitions, and nothing else: no
//! behaviour, no other module of the crate. `main.rs` parses with it; the
//! `xtask` crate includes this file to generate the man page and the shell
//! completions of the release tarball, so the two never drift apart.
//!
//! Only `clap` and `std` may be used here.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// `--version`: the version and the commit it was built from (`../build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NSVISOR_COMMIT"),
    ")"
);

/// A process supervisor and PID 1 for containers.
///
/// Reads a list of programs (nsvisor's TOML, or supervisord's INI as is), starts them, restarts them by policy, and on
/// SIGTERM stops each with its own stopsignal, waits stopwaitsecs, then
/// SIGKILLs what is left. With `-- CMD ARGS`, it is a tini-style init for one
/// command (and with `-c FILE -- CMD`, CMD runs beside the config's programs
/// as the critical main program).
#[derive(Debug, Parser)]
#[command(
    name = "nsvisor",
    version = VERSION,
    after_help = "\
Signals: TERM, INT, QUIT shut down gracefully; HUP reloads the config; USR2 reopens log files;
any other is logged and ignored (or forwarded to CMD, with -c FILE -- CMD).
In single-command mode (no config), every signal except CHLD is forwarded to CMD, real-time
ones too; TSTP, TTIN, TTOU (Ctrl-Z) stop CMD, then nsvisor; CONT resumes both.

Exit codes:
  0    shut down on request
  N    status of the critical program or CMD (128+N when killed by signal N,
       127 command not found, 126 not executable)
  1    the daemon could not start
  2    invalid configuration or usage

Examples:
  nsvisor -c /etc/nsvisor/nsvisor.toml
  nsvisor -c /etc/supervisord.conf
  nsvisor check -c nsvisor.toml
  nsvisor convert /etc/supervisord.conf > nsvisor.toml
  nsvisor -- python3 app.py
  nsvisor -c sidecars.toml -- ./server --port 8080"
)]
pub struct Cli {
    /// Config file [default: $NSVISOR_CONFIG, else /etc/nsvisor/nsvisor.toml;
    /// with `-- CMD`, no config unless given]
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,

    /// Format of the config file [default: recognised by content: a
    /// [supervisord], [program:x], [group:x] or [include] section means
    /// supervisord's INI, anything else TOML]
    #[arg(long, value_enum, value_name = "FORMAT", global = true)]
    pub config_format: Option<FormatArg>,

    /// In a supervisord config, skip [eventlistener:x] and [fcgi-program:x]
    /// sections with a warning instead of refusing the config
    #[arg(long, global = true)]
    pub skip_unsupported: bool,

    /// Format of the daemon's own log on stderr
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Level of the daemon's own log: error, warn, info, debug, trace
    /// [default: the config's log_level, else info; RUST_LOG overrides]
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// Forward signals to CMD's pid only, not to its whole process group
    #[arg(long)]
    pub single_child: bool,

    /// Seconds between SIGTERM and SIGKILL for what is left of CMD's process
    /// group after CMD exits, and CMD's own stop grace in sidecar mode
    /// [default: the config's shutdown_grace, else 5]
    #[arg(long, value_name = "SECS")]
    pub grace: Option<f64>,

    #[command(subcommand)]
    pub subcommand: Option<Sub>,

    /// Command to run as the main program (single-command mode)
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Sub {
    /// Validate the config (and its includes) without starting anything:
    /// exit 0 when valid, 2 with every error otherwise. Warnings about
    /// settings nsvisor drops or honours differently are printed too, and
    /// one when the programs need more open files than the hard limit here
    Check,
    /// Print a supervisord INI config as the equivalent nsvisor TOML, with a
    /// comment at each setting dropped or changed: exit 0, or 2 with every
    /// error when the config is invalid
    Convert {
        /// The supervisord config [default: the -c file]
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// nsvisor's TOML
    Toml,
    /// supervisord's INI (supervisord.conf)
    Ini,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines (coloured only on a terminal without a logfile; NO_COLOR turns colour off)
    Text,
    /// One JSON object per line
    Json,
}
