//! State and control methods: getState, process info, start, stop, signal,
//! shutdown, restart, sendProcessStdin.
//!
//! Each method checks what supervisord checks before acting (a start of a
//! running process is `ALREADY_STARTED`, a command that cannot be found is
//! `NO_FILE` before any spawn, a stop of a stopped process is `NOT_RUNNING`),
//! then sends the JSON API's command through the [`Handle`]. A waited start
//! follows the state events: RUNNING answers true, a fall into BACKOFF,
//! EXITED or FATAL answers `ABNORMAL_TERMINATION` (`SPAWN_ERROR` when no
//! process could be spawned), as soon as it happens, like supervisord. Group
//! and "all" methods answer an array of `{name, group, status, description}`
//! for the processes they acted on, in priority order; processes already in
//! the goal state are left out, as supervisord does.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use futures::future::join_all;
use nsvisor_proto::{ProgramInfo, State};
use tokio::sync::broadcast::error::RecvError;

use super::codec::Value;
use super::fault::{Code, Fault};
use super::info::{self, namespec, Target};
use super::Rpc;
use crate::api::routes::parse_signal;
use crate::config::ProgramConfig;
use crate::supervisor::handle::Action;

/// `getState`.
pub async fn get_state(rpc: &Rpc) -> Result<Value, Fault> {
    let health = rpc.handle.health().await?;
    let (code, name) = if health.shutting_down {
        (-1, "SHUTDOWN")
    } else {
        (1, "RUNNING")
    };
    Ok(Value::strukt([
        ("statecode", Value::Int(code)),
        ("statename", Value::str(name)),
    ]))
}

pub(super) fn configs_by_name(configs: &[ProgramConfig]) -> HashMap<&str, &ProgramConfig> {
    configs.iter().map(|c| (c.name.as_str(), c)).collect()
}

/// `getProcessInfo`.
pub async fn get_process_info(rpc: &Rpc, name: String) -> Result<Value, Fault> {
    let (list, configs) = rpc.snapshot().await?;
    let p = info::one(&list, &name)?;
    let cfgs = configs_by_name(&configs);
    Ok(info::process_info(
        p,
        cfgs.get(p.name.as_str()).copied(),
        rpc.times(p),
    ))
}

/// `getAllProcessInfo`: in group, then process name order.
pub async fn get_all_process_info(rpc: &Rpc) -> Result<Value, Fault> {
    let (mut list, configs) = rpc.snapshot().await?;
    let cfgs = configs_by_name(&configs);
    list.sort_by(|a, b| info::names(a).cmp(&info::names(b)));
    Ok(Value::Array(
        list.iter()
            .map(|p| info::process_info(p, cfgs.get(p.name.as_str()).copied(), rpc.times(p)))
            .collect(),
    ))
}

/// supervisord's `get_execv_args` checks: the command must exist and be an
/// executable file.
fn check_command(cfg: &ProgramConfig) -> Result<(), Fault> {
    let Some(program) = cfg.command.first() else {
        return Ok(());
    };
    let found: Option<PathBuf> = if program.contains('/') {
        let path = Path::new(program);
        let path = match (&cfg.directory, path.is_relative()) {
            (Some(dir), true) => dir.join(path),
            _ => path.to_path_buf(),
        };
        path.exists().then_some(path)
    } else {
        let path_var = cfg
            .environment
            .get("PATH")
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        path_var
            .split(':')
            .map(|dir| Path::new(dir).join(program))
            .find(|p| p.exists())
    };
    let Some(path) = found else {
        return Err(Fault::new(
            Code::NoFile,
            format!("can't find command '{program}'"),
        ));
    };
    let meta = std::fs::metadata(&path).map_err(|e| {
        Fault::new(
            Code::NotExecutable,
            format!("command at '{}': {e}", path.display()),
        )
    })?;
    if meta.is_dir() {
        return Err(Fault::new(
            Code::NotExecutable,
            format!("command at '{}' is a directory", path.display()),
        ));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(Fault::new(
            Code::NotExecutable,
            format!("command at '{}' is not executable", path.display()),
        ));
    }
    Ok(())
}

fn spec(p: &ProgramInfo) -> String {
    let (group, name) = info::names(p);
    namespec(group, name)
}

/// Starts one process; with `wait`, answers once it is RUNNING or has failed.
async fn start_one(
    rpc: &Rpc,
    p: &ProgramInfo,
    cfg: Option<&ProgramConfig>,
    wait: bool,
) -> Result<(), Fault> {
    if let Some(cfg) = cfg {
        check_command(cfg)?;
    }
    let name = spec(p);
    if info::is_running(p.state) {
        return Err(Fault::new(Code::AlreadyStarted, name));
    }
    // Subscribed before the start, so no change is missed.
    let mut events = rpc.handle.events();
    let results = rpc.handle.act(Action::Start, &p.name, false).await?;
    if !wait
        || results
            .first()
            .is_some_and(|r| r.program.state == State::Running)
    {
        return Ok(());
    }
    let failed = |spawned: bool| {
        let code = if spawned {
            Code::AbnormalTermination
        } else {
            Code::SpawnError
        };
        Err(Fault::new(code, &name))
    };
    loop {
        match events.recv().await {
            Ok(ev) if ev.name != p.name || ev.ready.is_some() => {}
            Ok(ev) => match ev.to {
                State::Running => return Ok(()),
                State::Starting | State::Stopping => {}
                State::Backoff | State::Exited | State::Fatal => {
                    return failed(ev.exit_status.is_some())
                }
                State::Stopped => return failed(true),
            },
            Err(RecvError::Lagged(_)) => {
                let list = rpc.handle.list().await?;
                match list.iter().find(|q| q.name == p.name).map(|q| q.state) {
                    Some(State::Running) => return Ok(()),
                    Some(State::Starting | State::Stopped) => {}
                    Some(_) | None => return failed(true),
                }
            }
            Err(RecvError::Closed) => return Err(Fault::bare(Code::ShutdownState)),
        }
    }
}

/// `startProcess`: one process, or a group for `group:*`.
pub async fn start_process(rpc: &Rpc, name: &str, wait: bool) -> Result<Value, Fault> {
    let (list, configs) = rpc.snapshot().await?;
    match info::resolve(&list, name)? {
        Target::Group(group) => {
            let group = group.to_string();
            start_group(rpc, Some(&group), wait).await
        }
        Target::Process(p) => {
            let cfgs = configs_by_name(&configs);
            start_one(rpc, p, cfgs.get(p.name.as_str()).copied(), wait).await?;
            Ok(Value::Bool(true))
        }
    }
}

/// The processes of a group (BAD_NAME if none) or of every group, in
/// supervisord's priority order.
pub(super) fn members<'a>(
    list: &'a [ProgramInfo],
    configs: &HashMap<&str, &ProgramConfig>,
    group: Option<&str>,
) -> Result<Vec<&'a ProgramInfo>, Fault> {
    let mut members: Vec<&ProgramInfo> = list
        .iter()
        .filter(|p| group.is_none_or(|g| p.group == g))
        .collect();
    if let (Some(g), true) = (group, members.is_empty()) {
        return Err(Fault::new(Code::BadName, g));
    }
    let priority = |p: &ProgramInfo| configs.get(p.name.as_str()).map_or(999, |c| c.priority);
    members.sort_by(|a, b| (priority(a), info::names(a)).cmp(&(priority(b), info::names(b))));
    Ok(members)
}

fn outcome(p: &ProgramInfo, r: Result<(), Fault>) -> Value {
    match r {
        Ok(()) => info::result(p, Code::Success, "OK"),
        Err(f) => info::result(p, f.code, &f.text),
    }
}

/// `startProcessGroup` (`group`) and `startAllProcesses` (`None`).
pub async fn start_group(rpc: &Rpc, group: Option<&str>, wait: bool) -> Result<Value, Fault> {
    let (list, configs) = rpc.snapshot().await?;
    let cfgs = configs_by_name(&configs);
    let todo: Vec<&ProgramInfo> = members(&list, &cfgs, group)?
        .into_iter()
        .filter(|p| !info::is_running(p.state))
        .collect();
    let starts = todo.iter().map(|p| async {
        let r = start_one(rpc, p, cfgs.get(p.name.as_str()).copied(), wait).await;
        outcome(p, r)
    });
    Ok(Value::Array(join_all(starts).await))
}

/// `stopProcess`: one process, or a group for `group:*`.
pub async fn stop_process(rpc: &Rpc, name: &str, wait: bool) -> Result<Value, Fault> {
    let list = rpc.handle.list().await?;
    let p = match info::resolve(&list, name)? {
        Target::Group(group) => {
            let group = group.to_string();
            return stop_group(rpc, Some(&group), wait).await;
        }
        Target::Process(p) => p,
    };
    if !info::is_running(p.state) {
        return Err(Fault::new(Code::NotRunning, spec(p)));
    }
    let results = rpc.handle.act(Action::Stop, &p.name, wait).await?;
    match results.into_iter().next() {
        Some(r) if !r.ok => Err(Fault::new(Code::Failed, r.message)),
        _ => Ok(Value::Bool(true)),
    }
}

/// `stopProcessGroup` (`group`) and `stopAllProcesses` (`None`): one stop of
/// the whole target, so dependants stop before what they depend on.
pub async fn stop_group(rpc: &Rpc, group: Option<&str>, wait: bool) -> Result<Value, Fault> {
    let (list, configs) = rpc.snapshot().await?;
    let cfgs = configs_by_name(&configs);
    let running: Vec<&ProgramInfo> = members(&list, &cfgs, group)?
        .into_iter()
        .filter(|p| info::is_running(p.state))
        .collect();
    if running.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    let target = group.map_or_else(|| "all".to_string(), |g| format!("{g}:*"));
    let results = rpc.handle.act(Action::Stop, &target, wait).await?;
    let by_name: HashMap<&str, _> = results.iter().map(|r| (r.name.as_str(), r)).collect();
    Ok(Value::Array(
        running
            .into_iter()
            .map(|p| match by_name.get(p.name.as_str()) {
                Some(r) if !r.ok => info::result(p, Code::Failed, &r.message),
                _ => info::result(p, Code::Success, "OK"),
            })
            .collect(),
    ))
}

async fn signal_one(rpc: &Rpc, p: &ProgramInfo, signal: &str) -> Result<(), Fault> {
    let Some(sig) = parse_signal(signal) else {
        return Err(Fault::new(Code::BadSignal, signal));
    };
    if !info::is_signallable(p.state) {
        return Err(Fault::new(Code::NotRunning, spec(p)));
    }
    let results = rpc.handle.act(Action::Signal(sig), &p.name, false).await?;
    match results.into_iter().next() {
        Some(r) if !r.ok => Err(Fault::new(Code::Failed, r.message)),
        _ => Ok(()),
    }
}

/// `signalProcess`: one process, or a group for `group:*`.
pub async fn signal_process(rpc: &Rpc, name: &str, signal: &str) -> Result<Value, Fault> {
    let list = rpc.handle.list().await?;
    match info::resolve(&list, name)? {
        Target::Group(group) => {
            let group = group.to_string();
            signal_group(rpc, Some(&group), signal).await
        }
        Target::Process(p) => signal_one(rpc, p, signal).await.map(|()| Value::Bool(true)),
    }
}

/// `signalProcessGroup` (`group`) and `signalAllProcesses` (`None`).
pub async fn signal_group(rpc: &Rpc, group: Option<&str>, signal: &str) -> Result<Value, Fault> {
    let (list, configs) = rpc.snapshot().await?;
    let cfgs = configs_by_name(&configs);
    let mut out = Vec::new();
    for p in members(&list, &cfgs, group)? {
        if info::is_signallable(p.state) {
            out.push(outcome(p, signal_one(rpc, p, signal).await));
        }
    }
    Ok(Value::Array(out))
}

/// `shutdown`.
pub async fn shutdown(rpc: &Rpc) -> Result<Value, Fault> {
    if rpc.handle.health().await?.shutting_down {
        return Err(Fault::bare(Code::ShutdownState));
    }
    rpc.handle.shutdown().await?;
    Ok(Value::Bool(true))
}

/// `restart` (supervisorctl's `reload`): answered at once; then every program
/// stops, the config file is read again and applied, and the autostart
/// programs start, each with a new process, as supervisord's restart does.
/// Until they start, supervisord's processes are new: "Not started".
pub async fn restart(rpc: &Rpc) -> Result<Value, Fault> {
    if rpc.handle.health().await?.shutting_down {
        return Err(Fault::bare(Code::ShutdownState));
    }
    let handle = rpc.handle.clone();
    let resets = rpc.resets.clone();
    tokio::spawn(async move {
        tracing::info!("XML-RPC restart: stopping every program, then reading the config again");
        if let Err(e) = handle.act(Action::Stop, "all", true).await {
            tracing::warn!("XML-RPC restart: {e}");
        }
        let replaced_at = super::unix_now_ms();
        if let Err(e) = handle.reload().await {
            tracing::warn!("XML-RPC restart: the config was not read again: {e}");
        }
        let Ok(configs) = handle.configs().await else {
            return;
        };
        resets.mark(configs.iter().map(|c| c.name.as_str()), replaced_at);
        for cfg in configs.iter().filter(|c| c.autostart) {
            if let Err(e) = handle.act(Action::Start, &cfg.name, false).await {
                tracing::warn!(program = %cfg.name, "XML-RPC restart: {e}");
            }
        }
    });
    Ok(Value::Bool(true))
}

/// `sendProcessStdin`: nsvisor gives programs /dev/null as stdin.
pub async fn send_stdin(rpc: &Rpc, name: &str) -> Result<Value, Fault> {
    let list = rpc.handle.list().await?;
    let p = info::one(&list, name)?;
    if p.pid.is_none() || p.state == State::Stopping {
        return Err(Fault::new(Code::NotRunning, name));
    }
    Err(Fault::new(
        Code::NoFile,
        format!("{name}: nsvisor gives programs /dev/null as stdin; there is nothing to write to"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked_like_supervisord() {
        let mut cfg = ProgramConfig::with_defaults("x", vec!["/no/such/thing".into()]);
        let e = check_command(&cfg).err();
        assert_eq!(
            e.map(|f| (f.code, f.text)),
            Some((
                Code::NoFile,
                "NO_FILE: can't find command '/no/such/thing'".into()
            ))
        );
        cfg.command = vec!["/".into()].into();
        assert_eq!(
            check_command(&cfg).err().map(|f| f.code),
            Some(Code::NotExecutable)
        );
        cfg.command = vec!["sh".into()].into();
        assert!(check_command(&cfg).is_ok());
        cfg.command = vec!["no-such-command-xyz".into()].into();
        assert_eq!(
            check_command(&cfg).err().map(|f| f.code),
            Some(Code::NoFile)
        );
    }
}
