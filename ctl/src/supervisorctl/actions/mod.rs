//! supervisorctl's actions: what each calls, what it prints, which exit status
//! it leaves (supervisorctl 4's `DefaultControllerPlugin`, line for line in
//! behaviour: the same messages, the same `LSBInitExitStatuses`).

use nsvisor_proto::xmlrpc::Value;

use super::rpc::{CallError, Rpc, Server};
use super::shell::{self, Input};

mod config;
mod control;
mod help;
mod logs;

/// supervisord's fault codes that supervisorctl tells apart.
mod code {
    pub const UNKNOWN_METHOD: i64 = 1;
    pub const SHUTDOWN_STATE: i64 = 6;
    pub const BAD_NAME: i64 = 10;
    pub const BAD_SIGNAL: i64 = 11;
    pub const NO_FILE: i64 = 20;
    pub const NOT_EXECUTABLE: i64 = 21;
    pub const FAILED: i64 = 30;
    pub const ABNORMAL_TERMINATION: i64 = 40;
    pub const SPAWN_ERROR: i64 = 50;
    pub const ALREADY_STARTED: i64 = 60;
    pub const NOT_RUNNING: i64 = 70;
    pub const SUCCESS: i64 = 80;
    pub const ALREADY_ADDED: i64 = 90;
    pub const STILL_RUNNING: i64 = 91;
    pub const CANT_REREAD: i64 = 92;
}

/// supervisorctl's exit statuses (LSB init script conventions).
mod exit {
    pub const GENERIC: u8 = 1;
    pub const INVALID_ARGS: u8 = 2;
    pub const UNIMPLEMENTED_FEATURE: u8 = 3;
    pub const INSUFFICIENT_PRIVILEGES: u8 = 4;
    pub const NOT_INSTALLED: u8 = 5;
    pub const NOT_RUNNING: u8 = 7;
    /// `status`: a process is not running / the status is unknown.
    pub const STATUS_NOT_RUNNING: u8 = 3;
    pub const STATUS_UNKNOWN: u8 = 4;
}

fn s(v: &Value, key: &str) -> String {
    match v.member(key) {
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Int(n)) => n.to_string(),
        _ => String::new(),
    }
}

fn n(v: &Value, key: &str) -> i64 {
    match v.member(key) {
        Some(Value::Int(n)) => *n,
        Some(Value::Bool(b)) => i64::from(*b),
        _ => 0,
    }
}

fn items(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        _ => Vec::new(),
    }
}

fn namespec(group: &str, name: &str) -> String {
    if group == name {
        name.to_string()
    } else {
        format!("{group}:{name}")
    }
}

fn split_namespec(spec: &str) -> (String, Option<String>) {
    match spec.split_once(':') {
        Some((g, "" | "*")) => (g.to_string(), None),
        Some((g, p)) => (g.to_string(), Some(p.to_string())),
        None => (spec.to_string(), Some(spec.to_string())),
    }
}

/// A result struct made from a fault on one process.
fn fault_result(fault: &nsvisor_proto::xmlrpc::FaultAnswer, group: &str, name: &str) -> Value {
    Value::strukt([
        ("status", Value::Int(fault.code)),
        ("name", Value::str(name)),
        ("group", Value::str(group)),
        ("description", Value::str(&fault.text)),
    ])
}

/// One supervisorctl run: one action, or the shell's many.
pub struct Ctl {
    rpc: Rpc,
    url: String,
    exit: u8,
    /// The shell, or `-i`: `shutdown` and `reload` ask first.
    interactive: bool,
    /// Lines from stdin (the shell's commands, answers, `fg` input), opened
    /// when first read.
    input: Option<Input>,
}

/// What the shell does after a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Read the next command.
    Continue,
    /// Leave the shell (`quit`, `exit`, `EOF`).
    Quit,
}

/// supervisorctl's command line split as `cmd.Cmd.parseline` splits it: the
/// action is the leading letters, digits and `_`, the rest is its argument;
/// `?` is `help`. `None` for an empty line.
fn parse_line(line: &str) -> Option<(String, String, String)> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    let line = match line.strip_prefix('?') {
        Some(rest) => format!("help {rest}"),
        None => line.to_string(),
    };
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(line.len());
    let (cmd, arg) = line.split_at(end);
    Some((cmd.to_string(), arg.trim().to_string(), line.clone()))
}

impl Ctl {
    /// A run against the server at `url`.
    pub fn new(rpc: Rpc, url: String, interactive: bool) -> Ctl {
        Ctl {
            rpc,
            url,
            exit: 0,
            interactive,
            input: None,
        }
    }

    /// The exit status the commands so far leave.
    pub fn exit_status(&self) -> u8 {
        self.exit
    }

    /// The next line of stdin, after `prompt`.
    pub async fn read_line(&mut self, prompt: &str) -> shell::Read {
        self.input
            .get_or_insert_with(Input::stdin)
            .line(prompt)
            .await
    }

    fn out(&self, line: &str) {
        println!("{line}");
    }

    fn set_exit_from_fault(&mut self, code: i64, ignored: Option<i64>) {
        if Some(code) == ignored || code == code::SUCCESS {
        } else if [
            code::SPAWN_ERROR,
            code::ABNORMAL_TERMINATION,
            code::NOT_RUNNING,
        ]
        .contains(&code)
        {
            self.exit = exit::NOT_RUNNING;
        } else {
            self.exit = exit::GENERIC;
        }
    }

    async fn call(&self, method: &str, params: &[Value]) -> Result<Value, CallError> {
        self.rpc.call(method, params).await
    }

    /// Runs one command line (supervisorctl's `onecmd`).
    pub async fn onecmd(&mut self, line: &str) -> Next {
        let Some((cmd, arg, line)) = parse_line(line) else {
            return Next::Continue;
        };
        match cmd.as_str() {
            "EOF" | "quit" | "exit" => {
                self.out("");
                return Next::Quit;
            }
            "help" => {
                self.help(&arg);
                return Next::Continue;
            }
            _ => {}
        }
        let result = self.action(&cmd, &arg, &line).await;
        match result {
            Ok(()) => {}
            Err(CallError::Http(401)) => {
                self.out("Server requires authentication");
                self.exit = exit::GENERIC;
            }
            Err(e) => {
                self.out(&format!("error: {e}"));
                self.exit = exit::GENERIC;
            }
        }
        Next::Continue
    }

    /// Whether the command handles Ctrl-C itself (it follows output until
    /// then, and the shell goes on afterwards).
    pub fn follows(line: &str) -> bool {
        match parse_line(line) {
            Some((cmd, arg, _)) => match cmd.as_str() {
                "tail" | "maintail" => arg.split_whitespace().next() == Some("-f"),
                "fg" => true,
                _ => false,
            },
            None => false,
        }
    }

    /// In the shell, `shutdown` and `reload` ask first; anything but an
    /// answer starting with `y` (or the end of input) is no.
    async fn really(&mut self, question: &str) -> bool {
        if !self.interactive {
            return true;
        }
        match self.read_line(question).await {
            shell::Read::Line(answer) => answer.to_lowercase().starts_with('y'),
            shell::Read::Eof | shell::Read::Interrupted => false,
        }
    }

    async fn action(&mut self, cmd: &str, arg: &str, line: &str) -> Result<(), CallError> {
        match cmd {
            "status" => self.status(arg).await,
            "start" => self.start(arg).await,
            "stop" => self.stop(arg).await,
            "restart" => {
                if !self.upcheck().await? {
                    return Ok(());
                }
                if arg.is_empty() {
                    self.out("Error: restart requires a process name");
                    self.exit = exit::GENERIC;
                    self.help_of("restart");
                    return Ok(());
                }
                self.stop(arg).await?;
                self.start(arg).await
            }
            "signal" => self.signal(arg).await,
            "pid" => self.pid(arg).await,
            "tail" => self.tail(arg).await,
            "maintail" => self.maintail(arg).await,
            "fg" => self.fg(arg).await,
            "avail" => self.avail(arg).await,
            "reread" => self.reread(arg).await,
            "update" => self.update(arg).await,
            "add" => self.add(arg).await,
            "remove" => self.remove(arg).await,
            "clear" => self.clear(arg).await,
            "shutdown" => self.shutdown(arg).await,
            "reload" => self.reload(arg).await,
            "open" => self.open(arg).await,
            "version" => {
                if !self.no_args("version", arg) || !self.upcheck().await? {
                    return Ok(());
                }
                let v = self.call("getSupervisorVersion", &[]).await?;
                self.out(&match v {
                    Value::Str(s) => s,
                    other => format!("{other:?}"),
                });
                Ok(())
            }
            _ => {
                self.out(&format!("*** Unknown syntax: {line}"));
                self.exit = exit::GENERIC;
                Ok(())
            }
        }
    }

    /// `open URL`: talk to another server from now on, and show its status
    /// (which leaves the exit status as it was).
    async fn open(&mut self, arg: &str) -> Result<(), CallError> {
        let url = arg.trim();
        let Some(server) = Server::parse(url) else {
            self.out("ERROR: url must be http:// or unix://");
            self.exit = exit::GENERIC;
            return Ok(());
        };
        self.rpc.server = server;
        self.url = url.to_string();
        let exit = self.exit;
        let shown = self.status("").await;
        self.exit = exit;
        shown
    }

    /// supervisorctl's `upcheck`: the server answers with API 3.0.
    async fn upcheck(&mut self) -> Result<bool, CallError> {
        match self.call("getVersion", &[]).await {
            Ok(Value::Str(v)) if v == "3.0" => Ok(true),
            Ok(v) => {
                self.out(&format!("Sorry, this version of supervisorctl expects to talk to a server with API version 3.0, but the remote version is {}.", match v { Value::Str(s) => s, other => format!("{other:?}") }));
                self.exit = exit::NOT_INSTALLED;
                Ok(false)
            }
            Err(CallError::Fault(f)) if f.code == code::UNKNOWN_METHOD => {
                self.out("Sorry, supervisord responded but did not recognize the supervisor namespace commands that supervisorctl uses to control it.  Please check that the [rpcinterface:supervisor] section is enabled in the configuration file (see sample.conf).");
                self.exit = exit::UNIMPLEMENTED_FEATURE;
                Ok(false)
            }
            Err(CallError::Connect(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.out(&format!("{} refused connection", self.url));
                self.exit = exit::INSUFFICIENT_PRIVILEGES;
                Ok(false)
            }
            Err(CallError::Connect(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                self.out(&format!("{} no such file", self.url));
                self.exit = exit::NOT_RUNNING;
                Ok(false)
            }
            Err(e) => {
                self.exit = exit::GENERIC;
                Err(e)
            }
        }
    }
}
