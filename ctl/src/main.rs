//! `nsvisorctl`: the command-line client of the nsvisor daemon.
//!
//! parse the command line (usage errors exit 2) → find the socket → run one
//! command on a current-thread runtime (`commands.rs`) → exit with its code.
//! Invoked as `supervisorctl`, it speaks supervisorctl's command line instead
//! (`supervisorctl/`).
//! The exit codes are part of the interface: documented here (`--help`), in
//! `docs/ctl.md`, and tested in `tests/tests/ctl.rs`.

mod cli;
mod client;
mod commands;
mod exec;
mod render;
mod supervisorctl;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Cmd, ExecArgs, Targets, WaitFor};

/// Exit codes, from least to most severe (the most severe outcome wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// Everything worked.
    Success = 0,
    /// An action failed (e.g. a program went FATAL instead of RUNNING).
    Failed = 1,
    /// Bad command line.
    Usage = 2,
    /// `status`, `health` or `pid` found a named program not running.
    NotRunning = 3,
    /// A program name is unknown.
    NoSuchProgram = 4,
    /// The daemon cannot be reached (or refused this user), or it stopped
    /// while `tail -f` followed a program.
    Unreachable = 5,
    /// `wait` timed out.
    TimedOut = 6,
}

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let argv0 = PathBuf::from(args.first().cloned().unwrap_or_default());
    if supervisorctl::invoked_as_supervisorctl(&argv0) {
        return supervisorctl::main(args);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nsvisorctl: cannot start: {e}");
            return ExitCode::from(Exit::Failed as u8);
        }
    };
    let socket = client::socket_path(cli.socket.clone());
    let client = client::Client::new(socket);
    if let Cmd::Exec(args) = cli.command {
        // The command's own exit code, not one of ours.
        return ExitCode::from(runtime.block_on(exec::run(args, client, cli.json)));
    }
    let exit = runtime.block_on(commands::run(cli, client));
    ExitCode::from(exit as u8)
}
