//! status, start, stop, signal, pid: process state and control.

use nsvisor_proto::xmlrpc::Value;

use super::{code, exit, fault_result, items, n, namespec, s, split_namespec, Ctl};
use crate::supervisorctl::rpc::CallError;

impl Ctl {
    pub(super) async fn status(&mut self, arg: &str) -> Result<(), CallError> {
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

    pub(super) fn start_result(r: &Value) -> Result<String, CallError> {
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

    pub(super) fn signal_result(r: &Value, success: &str) -> Result<String, CallError> {
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
    pub(super) fn results(
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

    pub(super) async fn start(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let names: Vec<&str> = arg.split_whitespace().collect();
        if names.is_empty() {
            self.out("Error: start requires a process name");
            self.exit = exit::INVALID_ARGS;
            self.help_of("start");
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

    pub(super) async fn stop(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let names: Vec<&str> = arg.split_whitespace().collect();
        if names.is_empty() {
            self.out("Error: stop requires a process name");
            self.exit = exit::GENERIC;
            self.help_of("stop");
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

    pub(super) async fn signal(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let args: Vec<&str> = arg.split_whitespace().collect();
        if args.len() < 2 {
            self.out("Error: signal requires a signal name and a process name");
            self.help_of("signal");
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

    pub(super) async fn pid(&mut self, arg: &str) -> Result<(), CallError> {
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
}
