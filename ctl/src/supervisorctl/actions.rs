//! supervisorctl's actions: what each calls, what it prints, which exit status
//! it leaves (supervisorctl 4's `DefaultControllerPlugin`, line for line in
//! behaviour: the same messages, the same `LSBInitExitStatuses`).

use nsvisor_proto::xmlrpc::Value;

use super::rpc::{CallError, Rpc};

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

const HELP_START: &[&str] = &[
    "start <name>\t\tStart a process",
    "start <gname>:*\t\tStart all processes in a group",
    "start <name> <name>\tStart multiple processes or groups",
    "start all\t\tStart all processes",
];
const HELP_STOP: &[&str] = &[
    "stop <name>\t\tStop a process",
    "stop <gname>:*\t\tStop all processes in a group",
    "stop <name> <name>\tStop multiple processes or groups",
    "stop all\t\tStop all processes",
];
const HELP_RESTART: &[&str] = &[
    "restart <name>\t\tRestart a process",
    "restart <gname>:*\tRestart all processes in a group",
    "restart <name> <name>\tRestart multiple processes or groups",
    "restart all\t\tRestart all processes",
    "Note: restart does not reread config files. For that, see reread and update.",
];
const HELP_SIGNAL: &[&str] = &[
    "signal <signal name> <name>\t\tSignal a process",
    "signal <signal name> <gname>:*\t\tSignal all processes in a group",
    "signal <signal name> <name> <name>\tSignal multiple processes or groups",
    "signal <signal name> all\t\tSignal all processes",
];
const HELP_TAIL: &[&str] = &["tail [-f] <name> [stdout|stderr] (default stdout)\nEx:\ntail -f <name>\t\tContinuous tail of named process stdout\n\t\t\tCtrl-C to exit.\ntail -100 <name>\tlast 100 *bytes* of process stdout\ntail <name> stderr\tlast 1600 *bytes* of process stderr"];
const HELP_MAINTAIL: &[&str] = &["maintail -f \tContinuous tail of supervisor main log file (Ctrl-C to exit)\nmaintail -100\tlast 100 *bytes* of supervisord main log file\nmaintail\tlast 1600 *bytes* of supervisor main log file\n"];
const HELP_CLEAR: &[&str] = &[
    "clear <name>\t\tClear a process' log files.",
    "clear <name> <name>\tClear multiple process' log files",
    "clear all\t\tClear all process' log files",
];

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

    async fn status(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            self.exit = exit::STATUS_UNKNOWN;
            return Ok(());
        }
        let all = items(&self.call("getAllProcessInfo", &[]).await?);
        let names: Vec<&str> = arg.split_whitespace().collect();
        let matching: Vec<Value> = if names.is_empty() || names.contains(&"all") {
            all
        } else {
            let mut matching = Vec::new();
            for name in names {
                let (group, process) = split_namespec(name);
                let hits: Vec<&Value> = all
                    .iter()
                    .filter(|i| {
                        s(i, "group") == group
                            && process.as_ref().is_none_or(|p| s(i, "name") == *p)
                    })
                    .collect();
                if hits.is_empty() {
                    match process {
                        None => self.out(&format!("{group}: ERROR (no such group)")),
                        Some(_) => self.out(&format!("{name}: ERROR (no such process)")),
                    }
                    self.exit = exit::STATUS_UNKNOWN;
                }
                matching.extend(hits.into_iter().cloned());
            }
            matching
        };
        let specs: Vec<String> = matching
            .iter()
            .map(|i| namespec(&s(i, "group"), &s(i, "name")))
            .collect();
        let width = specs.iter().map(String::len).max().unwrap_or(0).max(30) + 3;
        for (spec, info) in specs.iter().zip(&matching) {
            self.out(&format!(
                "{spec:<width$}{:<10}{}",
                s(info, "statename"),
                s(info, "description")
            ));
        }
        if matching
            .iter()
            .any(|i| [0, 100, 200, 1000].contains(&n(i, "state")))
        {
            self.exit = exit::STATUS_NOT_RUNNING;
        }
        Ok(())
    }

    fn start_result(r: &Value) -> Result<String, CallError> {
        let name = namespec(&s(r, "group"), &s(r, "name"));
        let why = match n(r, "status") {
            code::BAD_NAME => "no such process",
            code::NO_FILE => "no such file",
            code::NOT_EXECUTABLE => "file is not executable",
            code::ALREADY_STARTED => "already started",
            code::SPAWN_ERROR => "spawn error",
            code::ABNORMAL_TERMINATION => "abnormal termination",
            code::SUCCESS => return Ok(format!("{name}: started")),
            other => {
                return Err(CallError::Protocol(format!(
                    "Unknown result code {other} for {name}"
                )))
            }
        };
        Ok(format!("{name}: ERROR ({why})"))
    }

    fn signal_result(r: &Value, success: &str) -> Result<String, CallError> {
        let name = namespec(&s(r, "group"), &s(r, "name"));
        let why = match n(r, "status") {
            code::BAD_NAME => "no such process",
            code::BAD_SIGNAL => "bad signal name",
            code::NOT_RUNNING => "not running",
            code::SUCCESS => return Ok(format!("{name}: {success}")),
            code::FAILED => return Ok(s(r, "description")),
            other => {
                return Err(CallError::Protocol(format!(
                    "Unknown result code {other} for {name}"
                )))
            }
        };
        Ok(format!("{name}: ERROR ({why})"))
    }

    /// Prints group results with `fmt` and sets the exit status from each.
    fn results(
        &mut self,
        results: &Value,
        fmt: fn(&Value) -> Result<String, CallError>,
        ignored: Option<i64>,
    ) -> Result<(), CallError> {
        for r in items(results) {
            self.out(&fmt(&r)?);
            self.set_exit_from_fault(n(&r, "status"), ignored);
        }
        Ok(())
    }

    async fn start(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let names: Vec<&str> = arg.split_whitespace().collect();
        if names.is_empty() {
            self.out("Error: start requires a process name");
            self.exit = exit::INVALID_ARGS;
            self.help(HELP_START);
            return Ok(());
        }
        let ignored = Some(code::ALREADY_STARTED);
        if names.contains(&"all") {
            let results = self.call("startAllProcesses", &[]).await?;
            return self.results(&results, Self::start_result, ignored);
        }
        for name in names {
            let (group, process) = split_namespec(name);
            match process {
                None => match self.call("startProcessGroup", &[Value::str(&group)]).await {
                    Ok(results) => self.results(&results, Self::start_result, ignored)?,
                    Err(CallError::Fault(f)) if f.code == code::BAD_NAME => {
                        self.out(&format!("{group}: ERROR (no such group)"));
                        self.exit = exit::INVALID_ARGS;
                    }
                    Err(e) => {
                        self.exit = exit::GENERIC;
                        return Err(e);
                    }
                },
                Some(process) => match self.call("startProcess", &[Value::str(name)]).await {
                    Ok(_) => self.out(&format!("{}: started", namespec(&group, &process))),
                    Err(CallError::Fault(f)) => {
                        let r = fault_result(&f, &group, &process);
                        self.out(&Self::start_result(&r)?);
                        self.set_exit_from_fault(f.code, ignored);
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    async fn stop(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let names: Vec<&str> = arg.split_whitespace().collect();
        if names.is_empty() {
            self.out("Error: stop requires a process name");
            self.exit = exit::GENERIC;
            self.help(HELP_STOP);
            return Ok(());
        }
        let ignored = Some(code::NOT_RUNNING);
        let stopped = |r: &Value| Self::signal_result(r, "stopped");
        if names.contains(&"all") {
            let results = self.call("stopAllProcesses", &[]).await?;
            return self.results(&results, stopped, ignored);
        }
        for name in names {
            let (group, process) = split_namespec(name);
            match process {
                None => match self.call("stopProcessGroup", &[Value::str(&group)]).await {
                    Ok(results) => self.results(&results, stopped, ignored)?,
                    Err(CallError::Fault(f)) if f.code == code::BAD_NAME => {
                        self.exit = exit::GENERIC;
                        self.out(&format!("{group}: ERROR (no such group)"));
                    }
                    Err(e) => {
                        self.exit = exit::GENERIC;
                        return Err(e);
                    }
                },
                Some(process) => match self.call("stopProcess", &[Value::str(name)]).await {
                    Ok(_) => self.out(&format!("{}: stopped", namespec(&group, &process))),
                    Err(CallError::Fault(f)) => {
                        let r = fault_result(&f, &group, &process);
                        self.out(&stopped(&r)?);
                        self.set_exit_from_fault(f.code, ignored);
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    async fn signal(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let args: Vec<&str> = arg.split_whitespace().collect();
        if args.len() < 2 {
            self.out("Error: signal requires a signal name and a process name");
            self.help(HELP_SIGNAL);
            self.exit = exit::GENERIC;
            return Ok(());
        }
        let sig = Value::str(args[0]);
        let signalled = |r: &Value| Self::signal_result(r, "signalled");
        let names = &args[1..];
        if names.contains(&"all") {
            let results = self.call("signalAllProcesses", &[sig]).await?;
            return self.results(&results, signalled, None);
        }
        for name in names {
            let (group, process) = split_namespec(name);
            match process {
                None => match self
                    .call("signalProcessGroup", &[Value::str(&group), sig.clone()])
                    .await
                {
                    Ok(results) => self.results(&results, signalled, None)?,
                    Err(CallError::Fault(f)) if f.code == code::BAD_NAME => {
                        self.out(&format!("{group}: ERROR (no such group)"));
                        self.exit = exit::GENERIC;
                    }
                    Err(e) => return Err(e),
                },
                Some(process) => match self
                    .call("signalProcess", &[Value::str(*name), sig.clone()])
                    .await
                {
                    Ok(_) => self.out(&format!("{}: signalled", namespec(&group, &process))),
                    Err(CallError::Fault(f)) => {
                        let r = fault_result(&f, &group, &process);
                        self.out(&signalled(&r)?);
                        self.set_exit_from_fault(f.code, None);
                    }
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(())
    }

    async fn pid(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let names: Vec<&str> = arg.split_whitespace().collect();
        if names.is_empty() {
            let pid = self.call("getPID", &[]).await?;
            self.out(&match pid {
                Value::Int(n) => n.to_string(),
                other => format!("{other:?}"),
            });
        } else if names.contains(&"all") {
            for info in items(&self.call("getAllProcessInfo", &[]).await?) {
                self.out(&n(&info, "pid").to_string());
            }
        } else {
            for name in names {
                match self.call("getProcessInfo", &[Value::str(name)]).await {
                    Ok(info) => {
                        let pid = n(&info, "pid");
                        self.out(&pid.to_string());
                        if pid == 0 {
                            self.exit = exit::NOT_RUNNING;
                        }
                    }
                    Err(CallError::Fault(f)) if f.code == code::BAD_NAME => {
                        self.exit = exit::GENERIC;
                        self.out(&format!("No such process {name}"));
                    }
                    Err(e) => {
                        self.exit = exit::GENERIC;
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    async fn tailf(&self, path: &str) -> Result<(), CallError> {
        self.out("==> Press Ctrl-C to exit <==");
        self.rpc.follow(path).await
    }

    async fn tail(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let mut args: Vec<&str> = arg.split_whitespace().collect();
        if args.is_empty() || args.len() > 3 {
            let what = if args.is_empty() {
                "too few"
            } else {
                "too many"
            };
            self.out(&format!("Error: {what} arguments"));
            self.exit = exit::GENERIC;
            self.help(HELP_TAIL);
            return Ok(());
        }
        let modifier = args
            .first()
            .filter(|a| a.starts_with('-'))
            .map(|m| m.to_string());
        if modifier.is_some() {
            args.remove(0);
        }
        let (name, channel) = match args.as_slice() {
            [name] => (name.to_string(), "stdout".to_string()),
            [name, .., channel] => {
                let channel = channel.to_lowercase();
                if channel != "stdout" && channel != "stderr" {
                    self.out(&format!("Error: bad channel '{channel}'"));
                    self.exit = exit::GENERIC;
                    return Ok(());
                }
                (name.to_string(), channel)
            }
            [] => {
                self.out("Error: tail requires process name");
                self.exit = exit::GENERIC;
                return Ok(());
            }
        };
        let mut bytes = 1600;
        if let Some(m) = modifier {
            if m == "-f" {
                return self.tailf(&format!("/logtail/{name}/{channel}")).await;
            }
            match m[1..].parse::<i64>() {
                Ok(b) => bytes = b,
                Err(_) => {
                    self.out(&format!("Error: bad argument {m}"));
                    self.exit = exit::GENERIC;
                    return Ok(());
                }
            }
        }
        let method = if channel == "stdout" {
            "readProcessStdoutLog"
        } else {
            "readProcessStderrLog"
        };
        match self
            .call(
                method,
                &[Value::str(&name), Value::Int(-bytes), Value::Int(0)],
            )
            .await
        {
            Ok(Value::Str(text)) => self.out(&text),
            Ok(other) => self.out(&format!("{other:?}")),
            Err(CallError::Fault(f)) => {
                self.exit = exit::GENERIC;
                let why = match f.code {
                    code::NO_FILE => "no log file",
                    code::FAILED => "unknown error reading log",
                    code::BAD_NAME => "no such process name",
                    _ => return Err(CallError::Fault(f)),
                };
                self.out(&format!("{name}: ERROR ({why})"));
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn maintail(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let args: Vec<&str> = arg.split_whitespace().collect();
        let bytes = match args.as_slice() {
            [] => 1600,
            [a] if *a == "-f" => return self.tailf("/mainlogtail").await,
            [a] => match a.strip_prefix('-').and_then(|n| n.parse::<i64>().ok()) {
                Some(n) => n,
                None => {
                    self.out(&format!("Error: bad argument {a}"));
                    self.exit = exit::GENERIC;
                    return Ok(());
                }
            },
            _ => {
                self.out("Error: too many arguments");
                self.exit = exit::GENERIC;
                self.help(HELP_MAINTAIL);
                return Ok(());
            }
        };
        match self
            .call("readLog", &[Value::Int(-bytes), Value::Int(0)])
            .await
        {
            Ok(Value::Str(text)) => self.out(&text),
            Ok(other) => self.out(&format!("{other:?}")),
            Err(CallError::Fault(f)) if f.code == code::NO_FILE || f.code == code::FAILED => {
                self.exit = exit::GENERIC;
                let why = if f.code == code::NO_FILE {
                    "no log file"
                } else {
                    "unknown error reading log"
                };
                self.out(&format!("supervisord: ERROR ({why})"));
            }
            Err(e) => {
                self.exit = exit::GENERIC;
                return Err(e);
            }
        }
        Ok(())
    }

    fn no_args(&mut self, cmd: &str, arg: &str, help: &str) -> bool {
        if arg.is_empty() {
            return true;
        }
        self.out(&format!("Error: {cmd} accepts no arguments"));
        self.exit = exit::GENERIC;
        self.out(help);
        false
    }

    async fn avail(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.no_args("avail", arg, "avail\t\t\tDisplay all configured processes") {
            return Ok(());
        }
        match self.call("getAllConfigInfo", &[]).await {
            Ok(infos) => {
                for c in items(&infos) {
                    let name = namespec(&s(&c, "group"), &s(&c, "name"));
                    let inuse = if n(&c, "inuse") != 0 {
                        "in use"
                    } else {
                        "avail"
                    };
                    let auto = if n(&c, "autostart") != 0 {
                        "auto"
                    } else {
                        "manual"
                    };
                    let prio = format!("{}:{}", s(&c, "group_prio"), s(&c, "process_prio"));
                    self.out(&format!("{name:<32} {inuse:<9} {auto:<9} {prio}"));
                }
                Ok(())
            }
            Err(CallError::Fault(f)) if f.code == code::SHUTDOWN_STATE => {
                self.exit = exit::GENERIC;
                self.out("ERROR: supervisor shutting down");
                Ok(())
            }
            Err(e) => {
                self.exit = exit::GENERIC;
                Err(e)
            }
        }
    }

    fn changes(&self, result: &Value) {
        let groups = items(result);
        let lists: Vec<Vec<Value>> = items(groups.first().unwrap_or(&Value::Nil))
            .iter()
            .map(items)
            .collect();
        let mut changes: Vec<(String, &str)> = Vec::new();
        for (list, what) in lists.iter().zip(["available", "changed", "disappeared"]) {
            for g in list {
                if let Value::Str(name) = g {
                    changes.retain(|(n, _)| n != name);
                    changes.push((name.clone(), what));
                }
            }
        }
        if changes.is_empty() {
            self.out("No config updates to processes");
        }
        changes.sort();
        for (name, what) in changes {
            self.out(&format!("{name}: {what}"));
        }
    }

    async fn reread(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.no_args(
            "reread",
            arg,
            "reread \t\t\tReload the daemon's configuration files without add/remove",
        ) {
            return Ok(());
        }
        match self.call("reloadConfig", &[]).await {
            Ok(result) => self.changes(&result),
            Err(CallError::Fault(f))
                if f.code == code::SHUTDOWN_STATE || f.code == code::CANT_REREAD =>
            {
                self.exit = exit::GENERIC;
                if f.code == code::SHUTDOWN_STATE {
                    self.out("ERROR: supervisor shutting down");
                } else {
                    self.out(&format!("ERROR: {}", f.text));
                }
            }
            Err(e) => {
                self.exit = exit::GENERIC;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn update(&mut self, arg: &str) -> Result<(), CallError> {
        let result = match self.call("reloadConfig", &[]).await {
            Ok(r) => r,
            Err(CallError::Fault(f)) if f.code == code::SHUTDOWN_STATE => {
                self.exit = exit::GENERIC;
                self.out("ERROR: already shutting down");
                return Ok(());
            }
            Err(e) => {
                self.exit = exit::GENERIC;
                return Err(e);
            }
        };
        let lists: Vec<Vec<String>> = items(items(&result).first().unwrap_or(&Value::Nil))
            .iter()
            .map(|l| {
                items(l)
                    .into_iter()
                    .filter_map(|v| match v {
                        Value::Str(s) => Some(s),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let [added, changed, removed] =
            [0, 1, 2].map(|i| lists.get(i).cloned().unwrap_or_default());
        let mut wanted: Vec<&str> = arg.split_whitespace().collect();
        if wanted.contains(&"all") {
            wanted.clear();
        }
        if !wanted.is_empty() {
            let mut groups: Vec<String> = items(&self.call("getAllProcessInfo", &[]).await?)
                .iter()
                .map(|i| s(i, "group"))
                .collect();
            groups.extend(added.iter().cloned());
            for g in &wanted {
                if !groups.iter().any(|x| x == g) {
                    self.out(&format!("ERROR: no such group: {g}"));
                    self.exit = exit::GENERIC;
                }
            }
        }
        let skip = |g: &str| !wanted.is_empty() && !wanted.contains(&g);
        for g in removed.iter().filter(|g| !skip(g)) {
            let results = self.call("stopProcessGroup", &[Value::str(g)]).await?;
            self.out(&format!("{g}: stopped"));
            if items(&results)
                .iter()
                .any(|r| n(r, "status") == code::FAILED)
            {
                self.out(&format!("{g}: has problems; not removing"));
                self.exit = exit::GENERIC;
                continue;
            }
            self.call("removeProcessGroup", &[Value::str(g)]).await?;
            self.out(&format!("{g}: removed process group"));
        }
        for g in changed.iter().filter(|g| !skip(g)) {
            self.call("stopProcessGroup", &[Value::str(g)]).await?;
            self.out(&format!("{g}: stopped"));
            self.call("removeProcessGroup", &[Value::str(g)]).await?;
            self.call("addProcessGroup", &[Value::str(g)]).await?;
            self.out(&format!("{g}: updated process group"));
        }
        for g in added.iter().filter(|g| !skip(g)) {
            self.call("addProcessGroup", &[Value::str(g)]).await?;
            self.out(&format!("{g}: added process group"));
        }
        Ok(())
    }

    async fn add(&mut self, arg: &str) -> Result<(), CallError> {
        for name in arg.split_whitespace() {
            match self.call("addProcessGroup", &[Value::str(name)]).await {
                Ok(_) => self.out(&format!("{name}: added process group")),
                Err(CallError::Fault(f)) if f.code == code::SHUTDOWN_STATE => {
                    self.out("ERROR: shutting down");
                    self.exit = exit::GENERIC;
                }
                Err(CallError::Fault(f)) if f.code == code::ALREADY_ADDED => {
                    self.out("ERROR: process group already active");
                }
                Err(CallError::Fault(f)) if f.code == code::BAD_NAME => {
                    self.out(&format!("ERROR: no such process/group: {name}"));
                    self.exit = exit::GENERIC;
                }
                Err(e) => {
                    self.exit = exit::GENERIC;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn remove(&mut self, arg: &str) -> Result<(), CallError> {
        for name in arg.split_whitespace() {
            match self.call("removeProcessGroup", &[Value::str(name)]).await {
                Ok(_) => self.out(&format!("{name}: removed process group")),
                Err(CallError::Fault(f))
                    if f.code == code::STILL_RUNNING || f.code == code::BAD_NAME =>
                {
                    self.exit = exit::GENERIC;
                    if f.code == code::STILL_RUNNING {
                        self.out(&format!("ERROR: process/group still running: {name}"));
                    } else {
                        self.out(&format!("ERROR: no such process/group: {name}"));
                    }
                }
                Err(e) => {
                    self.exit = exit::GENERIC;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn clear_result(r: &Value) -> Result<String, CallError> {
        let name = namespec(&s(r, "group"), &s(r, "name"));
        match n(r, "status") {
            code::BAD_NAME => Ok(format!("{name}: ERROR (no such process)")),
            code::FAILED => Ok(format!("{name}: ERROR (failed)")),
            code::SUCCESS => Ok(format!("{name}: cleared")),
            other => Err(CallError::Protocol(format!(
                "Unknown result code {other} for {name}"
            ))),
        }
    }

    async fn clear(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let names: Vec<&str> = arg.split_whitespace().collect();
        if names.is_empty() {
            self.out("Error: clear requires a process name");
            self.exit = exit::GENERIC;
            self.help(HELP_CLEAR);
            return Ok(());
        }
        if names.contains(&"all") {
            let results = self.call("clearAllProcessLogs", &[]).await?;
            return self.results(&results, Self::clear_result, None);
        }
        for name in names {
            let (group, process) = split_namespec(name);
            match self.call("clearProcessLogs", &[Value::str(name)]).await {
                Ok(_) => self.out(&format!(
                    "{}: cleared",
                    namespec(&group, process.as_deref().unwrap_or(&group))
                )),
                Err(CallError::Fault(f)) => {
                    let r = fault_result(&f, &group, process.as_deref().unwrap_or(""));
                    self.out(&Self::clear_result(&r)?);
                    self.set_exit_from_fault(f.code, None);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn shutdown(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.no_args(
            "shutdown",
            arg,
            "shutdown \tShut the remote supervisord down.",
        ) {
            return Ok(());
        }
        match self.call("shutdown", &[]).await {
            Ok(_) => self.out("Shut down"),
            Err(CallError::Fault(f)) if f.code == code::SHUTDOWN_STATE => {
                self.out("ERROR: already shutting down");
            }
            Err(CallError::Connect(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) =>
            {
                self.exit = exit::GENERIC;
                let what = if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file"
                } else {
                    "refused connection"
                };
                self.out(&format!("ERROR: {} {what} (already shut down?)", self.url));
            }
            Err(e) => {
                self.exit = exit::GENERIC;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn reload(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.no_args("reload", arg, "reload \t\tRestart the remote supervisord.") {
            return Ok(());
        }
        match self.call("restart", &[]).await {
            Ok(_) => self.out("Restarted supervisord"),
            Err(CallError::Fault(f)) if f.code == code::SHUTDOWN_STATE => {
                self.exit = exit::GENERIC;
                self.out("ERROR: already shutting down");
            }
            Err(e) => {
                self.exit = exit::GENERIC;
                return Err(e);
            }
        }
        Ok(())
    }
}
