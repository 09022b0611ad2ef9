//! `nsvisorctl`'s command line as clap definitions, and nothing else: no
//! behaviour, no other module of the crate. `main.rs` parses with it; the
//! `xtask` crate includes this file to generate the man page and the shell
//! completions of the release tarball, so the two never drift apart.
//!
//! Only `clap`, `clap_complete` and `std` may be used here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `--version`: the version and the commit it was built from (`../build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NSVISOR_COMMIT"),
    ")"
);

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  an action failed (e.g. a program went FATAL instead of RUNNING)
  2  usage error
  3  status/health/pid: a named program (health: an autostart program) is not running
     (health: or fails its liveness checks; health --ready: or is not ready)
  4  unknown program name
  5  the daemon cannot be reached (or refused this user), or it stopped during tail -f
  6  wait: the timeout passed first
exec exits with the command's code instead (see nsvisorctl exec --help)";

/// Control a running nsvisor daemon.
#[derive(Debug, Parser)]
#[command(name = "nsvisorctl", version = VERSION, after_help = EXIT_CODES)]
pub struct Cli {
    /// Control socket [default: $NSVISOR_SOCKET, else the daemon's default:
    /// /run/nsvisor.sock as root, $XDG_RUNTIME_DIR/nsvisor.sock, /tmp/nsvisor-<uid>.sock]
    #[arg(short, long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Print JSON (one document, or one per line for streams) instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WaitFor {
    /// RUNNING and passing its readiness checks.
    Ready,
    /// RUNNING.
    Running,
    /// STOPPED, EXITED or FATAL: no process.
    Stopped,
    /// EXITED (ended on its own), whatever its status.
    Exited,
    /// EXITED with exit status 0.
    Completed,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Show programs: NAME STATE DESCRIPTION (all, or the names / GROUP:* given).
    Status {
        /// Program names or GROUP:*.
        names: Vec<String>,
    },
    /// Start programs; waits until they are RUNNING and ready (or failed).
    Start(Targets),
    /// Stop programs; waits until they are STOPPED.
    Stop(Targets),
    /// Stop, then start programs; waits until they are RUNNING and ready (or failed).
    Restart(Targets),
    /// Wait until programs reach a condition (ready, running, stopped, exited, completed).
    Wait {
        /// Program names or GROUP:*.
        #[arg(required = true)]
        names: Vec<String>,
        /// The condition every named program must reach.
        #[arg(long = "for", value_enum, default_value = "ready")]
        condition: WaitFor,
        /// Give up after this many seconds (exit 6); default: wait as long as it takes.
        #[arg(long)]
        timeout: Option<f64>,
    },
    /// Send a signal to programs (HUP, SIGUSR1, 15 ...).
    Signal {
        /// Signal name or number.
        signal: String,
        /// Program names, GROUP:* or all.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Print the end of a program's output.
    Tail {
        /// Keep printing new output until the program's stream ends.
        #[arg(short, long)]
        follow: bool,
        /// Number of lines to show first.
        #[arg(short = 'n', long, default_value_t = 10, conflicts_with = "bytes")]
        lines: usize,
        /// Show the last N bytes instead of lines.
        #[arg(short = 'c', long, value_name = "N")]
        bytes: Option<usize>,
        /// Read stderr instead of stdout.
        #[arg(long)]
        stderr: bool,
        /// Program name.
        name: String,
    },
    /// Print a program's pid (0 when not running), or the daemon's pid.
    Pid {
        /// Program name (none: the daemon).
        name: Option<String>,
    },
    /// Re-read the configuration and apply the difference.
    Reload,
    /// Stop every program and the daemon.
    Shutdown,
    /// Exit 0 when every autostart program is RUNNING and passes its
    /// liveness checks (for liveness probes); with --ready, when every one
    /// is also ready (for readiness probes).
    Health {
        /// Whether the container is ready: every program that should run
        /// passes its readiness checks.
        #[arg(long)]
        ready: bool,
    },
    /// Follow state changes as they happen.
    Events,
    /// Run a command inside a program's sandbox (its network namespace and
    /// names), as the program runs: its user, directory and environment unless
    /// overridden, like `docker exec`. Output is streamed; Ctrl-C (SIGINT,
    /// and SIGTERM, SIGHUP, SIGQUIT) is sent on to the command's process group.
    /// Exits with the command's code (128+N when killed by signal N; 126 not
    /// executable, 127 not found), or 125 when the exec itself failed.
    #[command(after_help = "Example: nsvisorctl exec web -- getent hosts db")]
    Exec(ExecArgs),
    /// Print the client's and the daemon's versions and commits.
    Version,
    /// Print a shell completion script.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
}

/// What `exec` runs, and how.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Run as this user (USER or USER:GROUP, names or numbers) instead of
    /// the program's.
    #[arg(short, long, value_name = "USER[:GROUP]")]
    pub user: Option<String>,
    /// Set a variable over the program's environment (repeatable).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory instead of the program's.
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Kill the command (SIGKILL to its process group) after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,
    /// The program whose sandbox the command runs in.
    pub program: String,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Targets of start/stop/restart.
#[derive(Debug, clap::Args)]
pub struct Targets {
    /// Answer at once instead of waiting for the target state.
    #[arg(long)]
    pub no_wait: bool,
    /// Program names, GROUP:* or all.
    #[arg(required = true)]
    pub names: Vec<String>,
}
