//! avail, reread, update, add, remove, clear, shutdown, reload: the
//! configuration and the daemon itself.

use nsvisor_proto::xmlrpc::Value;

use super::{code, exit, fault_result, items, n, namespec, s, split_namespec, Ctl};
use crate::supervisorctl::rpc::CallError;

impl Ctl {
    pub(super) fn no_args(&mut self, cmd: &str, arg: &str) -> bool {
        if arg.is_empty() {
            return true;
        }
        self.out(&format!("Error: {cmd} accepts no arguments"));
        self.exit = exit::GENERIC;
        self.help_of(cmd);
        false
    }

    pub(super) async fn avail(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.no_args("avail", arg) {
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

    pub(super) fn changes(&self, result: &Value) {
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

    pub(super) async fn reread(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.no_args("reread", arg) {
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

    pub(super) async fn update(&mut self, arg: &str) -> Result<(), CallError> {
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

    pub(super) async fn add(&mut self, arg: &str) -> Result<(), CallError> {
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

    pub(super) async fn remove(&mut self, arg: &str) -> Result<(), CallError> {
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

    pub(super) fn clear_result(r: &Value) -> Result<String, CallError> {
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

    pub(super) async fn clear(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let names: Vec<&str> = arg.split_whitespace().collect();
        if names.is_empty() {
            self.out("Error: clear requires a process name");
            self.exit = exit::GENERIC;
            self.help_of("clear");
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

    pub(super) async fn shutdown(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.no_args("shutdown", arg)
            || !self
                .really("Really shut the remote supervisord process down y/N? ")
                .await
        {
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

    pub(super) async fn reload(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.no_args("reload", arg)
            || !self
                .really("Really restart the remote supervisord process y/N? ")
                .await
        {
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
