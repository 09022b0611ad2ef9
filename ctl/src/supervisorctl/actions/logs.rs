//! tail, maintail, fg: program output and the daemon's log.

use nsvisor_proto::xmlrpc::Value;

use super::{code, exit, Ctl};
use crate::supervisorctl::rpc::CallError;

impl Ctl {
    pub(super) async fn tailf(&self, path: &str) -> Result<(), CallError> {
        self.out("==> Press Ctrl-C to exit <==");
        self.rpc.follow(path).await
    }

    pub(super) async fn tail(&mut self, arg: &str) -> Result<(), CallError> {
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
            self.help_of("tail");
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

    pub(super) async fn maintail(&mut self, arg: &str) -> Result<(), CallError> {
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
                self.help_of("maintail");
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
}

impl Ctl {
    /// `fg NAME`: the program's output until Ctrl-C or the end of input;
    /// each line typed goes to its stdin (nsvisor gives programs none, so
    /// nsvisor refuses it and `fg` ends, as supervisorctl's does when a
    /// write fails).
    pub(super) async fn fg(&mut self, arg: &str) -> Result<(), CallError> {
        if !self.upcheck().await? {
            return Ok(());
        }
        let names: Vec<&str> = arg.split_whitespace().collect();
        let name = match names.as_slice() {
            [] => {
                self.out("ERROR: no process name supplied");
                self.exit = exit::GENERIC;
                self.help_of("fg");
                return Ok(());
            }
            [name] => name.to_string(),
            _ => {
                self.out("ERROR: too many process names supplied");
                self.exit = exit::GENERIC;
                return Ok(());
            }
        };
        match self.call("getProcessInfo", &[Value::str(&name)]).await {
            Ok(info) if super::n(&info, "state") == RUNNING => {}
            Ok(_) => {
                self.out("ERROR: process not running");
                self.exit = exit::GENERIC;
                return Ok(());
            }
            Err(CallError::Fault(f)) if f.code == code::BAD_NAME => {
                self.out("ERROR: bad process name supplied");
                self.exit = exit::GENERIC;
                return Ok(());
            }
            Err(CallError::Fault(f)) => {
                self.out(&format!("ERROR: {}", CallError::Fault(f)));
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.out("==> Press Ctrl-C to exit <==");
        let rpc = self.rpc.clone();
        let (stdout, stderr) = (
            format!("/logtail/{name}/stdout"),
            format!("/logtail/{name}/stderr"),
        );
        let output = async {
            let _ = tokio::join!(rpc.copy_to_stdout(&stdout), rpc.copy_to_stdout(&stderr));
            std::future::pending::<()>().await
        };
        tokio::pin!(output);
        loop {
            let typed = tokio::select! {
                () = &mut output => unreachable!("the output is followed until input or Ctrl-C"),
                read = self.read_line("") => read,
            };
            let crate::supervisorctl::shell::Read::Line(line) = typed else {
                break;
            };
            let text = Value::str(format!("{line}\n"));
            match self
                .call("sendProcessStdin", &[Value::str(&name), text])
                .await
            {
                Ok(_) => {}
                Err(CallError::Fault(f)) => {
                    if f.code == code::NOT_RUNNING {
                        self.out("Process got killed");
                    } else {
                        self.out(&format!("ERROR: {}", CallError::Fault(f)));
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
            let info = self.call("getProcessInfo", &[Value::str(&name)]).await?;
            if super::n(&info, "state") != RUNNING {
                self.out("Process got killed");
                break;
            }
        }
        self.out("Exiting foreground");
        Ok(())
    }
}

/// supervisord's RUNNING state code.
const RUNNING: i64 = 20;
