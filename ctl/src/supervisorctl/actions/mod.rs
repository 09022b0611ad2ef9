//! supervisorctl's actions: what each calls, what it prints, which exit status
//! it leaves (supervisorctl 4's `DefaultControllerPlugin`, line for line in
//! behaviour: the same messages, the same `LSBInitExitStatuses`).

use nsvisor_proto::xmlrpc::Value;

use super::rpc::{CallError, Rpc};

mod config;
mod control;
mod logs;

const HELP_RESTART: &[&str] = &[
    "restart <name>\t\tRestart a process",
    "restart <gname>:*\tRestart all processes in a group",
    "restart <name> <name>\tRestart multiple processes or groups",
    "restart all\t\tRestart all processes",
    "Note: restart does not reread config files. For that, see reread and update.",
];

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

/// One supervisorctl run.
pub struct Ctl {
    rpc: Rpc,
    url: String,
    exit: u8,
}

impl Ctl {
    /// A run against the server at `url`.
    pub fn new(rpc: Rpc, url: String) -> Ctl {
        Ctl { rpc, url, exit: 0 }
    }

    fn out(&self, line: &str) {
        println!("{line}");
    }

    fn help(&self, lines: &[&str]) {
        for l in lines {
            self.out(l);
        }
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

    /// Runs one action line; returns the exit status.
    pub async fn run(mut self, line: &str) -> u8 {
        let (cmd, arg) = match line.trim().split_once(char::is_whitespace) {
            Some((c, a)) => (c.to_string(), a.trim().to_string()),
            None => (line.trim().to_string(), String::new()),
        };
        let result = self.action(&cmd, &arg).await;
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
        self.exit
    }

    async fn action(&mut self, cmd: &str, arg: &str) -> Result<(), CallError> {
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
                    self.help(HELP_RESTART);
                    return Ok(());
                }
                self.stop(arg).await?;
                self.start(arg).await
            }
            "signal" => self.signal(arg).await,
            "pid" => self.pid(arg).await,
            "tail" => self.tail(arg).await,
            "maintail" => self.maintail(arg).await,
            "avail" => self.avail(arg).await,
            "reread" => self.reread(arg).await,
            "update" => self.update(arg).await,
            "add" => self.add(arg).await,
            "remove" => self.remove(arg).await,
            "clear" => self.clear(arg).await,
            "shutdown" => self.shutdown(arg).await,
            "reload" => self.reload(arg).await,
            "version" => {
                if !arg.is_empty() {
                    self.out("Error: version accepts no arguments");
                    self.exit = exit::GENERIC;
                    self.out("version\t\t\tShow the version of the remote supervisord process");
                    return Ok(());
                }
                if !self.upcheck().await? {
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
                let line = if arg.is_empty() {
                    cmd.to_string()
                } else {
                    format!("{cmd} {arg}")
                };
                self.out(&format!("*** Unknown syntax: {line}"));
                self.exit = exit::GENERIC;
                Ok(())
            }
        }
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
