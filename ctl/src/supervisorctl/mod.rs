//! `nsvisorctl` invoked as `supervisorctl` (`ln -s nsvisorctl
//! /usr/bin/supervisorctl`): supervisorctl's command line, its output and its
//! exit codes, speaking supervisord's XML-RPC to `/RPC2` as supervisorctl does.
//!
//! parse supervisorctl's options (`-c FILE`, `-s URL`, `-u USER`, `-p
//! PASSWORD`, `-i`; `-r` is accepted and ignored) → find the server: `-s`,
//! else the config's `[supervisorctl] serverurl`, else its
//! `[unix_http_server] file`, else nsvisor's own socket (the config file is
//! searched where supervisorctl searches) → run one action ([`actions`]) and
//! exit with the status supervisorctl would, or, without an action, open the
//! shell ([`shell`]). Called by `main.rs`.

mod actions;
mod conf;
mod rpc;
mod shell;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use self::rpc::{Rpc, Server};

/// supervisorctl's options, as given.
#[derive(Debug, Default)]
struct Options {
    config: Option<PathBuf>,
    serverurl: Option<String>,
    username: Option<String>,
    password: Option<String>,
    interactive: bool,
    action: Vec<String>,
}

const USAGE: &str = "\
supervisorctl (nsvisorctl) -- control the programs of nsvisor (or supervisord).

Usage: supervisorctl [options] [action [arguments]]

Options:
-c/--configuration FILENAME -- configuration file path (searches if not given)
-h/--help -- print usage message and exit
-i/--interactive -- start an interactive shell after executing commands
-s/--serverurl URL -- URL on which the server is listening
     (unix:///path/to/socket or http://host:port)
-u/--username USERNAME -- username to use for authentication with server
-p/--password PASSWORD -- password to use for authentication with server

Actions: status, start, stop, restart, signal, tail, pid, avail, reread,
update, add, remove, clear, maintail, fg, open, shutdown, reload, version,
help. Without an action, a shell reads actions line by line (quit, exit or
end of input leave it).
";

fn usage(msg: &str) -> ExitCode {
    eprintln!("Error: {msg}");
    eprintln!("For help, use supervisorctl -h");
    ExitCode::from(2)
}

/// Whether the client was invoked under the name `supervisorctl`.
pub fn invoked_as_supervisorctl(argv0: &Path) -> bool {
    argv0.file_name().is_some_and(|n| n == "supervisorctl")
}

fn parse(args: Vec<OsString>) -> Result<Options, ExitCode> {
    let mut o = Options::default();
    let mut it = args
        .into_iter()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned());
    while let Some(arg) = it.next() {
        if !arg.starts_with('-') || arg == "-" {
            o.action.push(arg);
            o.action.extend(it.by_ref());
            break;
        }
        let (name, inline) = match arg.strip_prefix("--") {
            Some(long) => match long.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (long.to_string(), None),
            },
            None => {
                let (flag, rest) =
                    arg[1..].split_at(arg[1..].chars().next().map_or(0, char::len_utf8));
                (
                    flag.to_string(),
                    (!rest.is_empty()).then(|| rest.to_string()),
                )
            }
        };
        let mut value = |what: &str| match inline.clone().or_else(|| it.next()) {
            Some(v) => Ok(v),
            None => Err(usage(&format!("option {what} requires argument"))),
        };
        match name.as_str() {
            "h" | "?" | "help" => {
                print!("{USAGE}");
                return Err(ExitCode::SUCCESS);
            }
            "c" | "configuration" => o.config = Some(PathBuf::from(value("-c")?)),
            "s" | "serverurl" => o.serverurl = Some(value("-s")?),
            "u" | "username" => o.username = Some(value("-u")?),
            "p" | "password" => o.password = Some(value("-p")?),
            "i" | "interactive" => o.interactive = true,
            "r" | "history-file" | "history_file" => {
                let _ = value("-r")?;
            }
            other => return Err(usage(&format!("option -{other} not recognized"))),
        }
    }
    Ok(o)
}

/// Runs supervisorctl's command line; returns its exit status.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let argv0 = PathBuf::from(args.first().cloned().unwrap_or_default());
    let o = match parse(args) {
        Ok(o) => o,
        Err(exit) => return exit,
    };
    let file = conf::read(o.config.as_deref(), &argv0);
    let file = match file {
        Ok(f) => f,
        Err(e) => return usage(&e),
    };
    let serverurl = o
        .serverurl
        .or(file.serverurl)
        .unwrap_or_else(|| format!("unix://{}", crate::client::socket_path(None).display()));
    let Some(server) = Server::parse(&serverurl) else {
        return usage(&format!("unknown protocol for serverurl {serverurl}"));
    };
    let username = o.username.or(file.username);
    let password = o.password.or(file.password).unwrap_or_default();
    let rpc = Rpc {
        server,
        auth: username.map(|u| rpc::basic_auth(&u, &password)),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("supervisorctl: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let interactive = o.interactive || o.action.is_empty();
    let mut ctl = actions::Ctl::new(rpc, serverurl, interactive);
    let code = if o.action.is_empty() {
        let prompt = file.prompt.unwrap_or_else(|| "supervisor".to_string());
        runtime.block_on(shell::run(ctl, &prompt))
    } else {
        runtime.block_on(ctl.onecmd(&o.action.join(" ")));
        ctl.exit_status()
    };
    ExitCode::from(code)
}
