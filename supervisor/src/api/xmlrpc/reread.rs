//! supervisorctl's `reread`, `update` and `avail`: `reloadConfig`,
//! `addProcessGroup`, `removeProcessGroup` and `getAllConfigInfo`.
//!
//! supervisord reads its config again without applying it (`reloadConfig`
//! answers the groups added, changed and removed), then applies it one group
//! at a time. nsvisor applies a new config as a whole (the JSON API's reload:
//! removed programs stop and go, changed ones restart with their new config,
//! added ones start). So `reloadConfig` reads the file and keeps it as
//! pending, applying nothing; the first `addProcessGroup` or
//! `removeProcessGroup` of a group in the pending difference applies the
//! whole reload once, and `addProcessGroup` then (re)starts the group's
//! autostart programs. With supervisorctl's `update` (stop the group, remove
//! it, add it) the outcome is supervisord's: removed groups are gone, changed
//! and added groups run with the new config.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::codec::Value;
use super::fault::{Code, Fault};
use super::info;
use super::Rpc;
use crate::config::{AutoRestart, Config, LogFile, ProgramConfig, StreamLog, MAIN_PROGRAM};
use crate::supervisor::handle::Action;

/// The config read by the last `reloadConfig`.
#[derive(Debug, Default)]
pub struct Pending(Mutex<Option<Reread>>);

#[derive(Debug, Clone)]
struct Reread {
    programs: Vec<ProgramConfig>,
    diff: Diff,
    applied: bool,
}

/// Group names, each sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Diff {
    added: Vec<String>,
    changed: Vec<String>,
    removed: Vec<String>,
}

impl Diff {
    fn touches(&self, group: &str) -> bool {
        [&self.added, &self.changed, &self.removed]
            .iter()
            .any(|l| l.iter().any(|g| g == group))
    }
}

fn by_group(programs: &[ProgramConfig]) -> BTreeMap<&str, Vec<&ProgramConfig>> {
    let mut groups: BTreeMap<&str, Vec<&ProgramConfig>> = BTreeMap::new();
    for p in programs.iter().filter(|p| p.name.as_str() != MAIN_PROGRAM) {
        groups.entry(&*p.group).or_default().push(p);
    }
    groups
}

/// The groups added, changed and removed from `active` to `new`.
fn diff(active: &[ProgramConfig], new: &[ProgramConfig]) -> Diff {
    let (old, new) = (by_group(active), by_group(new));
    let mut d = Diff::default();
    for (g, programs) in &new {
        match old.get(g) {
            None => d.added.push(g.to_string()),
            Some(before) if before != programs => d.changed.push(g.to_string()),
            Some(_) => {}
        }
    }
    d.removed = old
        .keys()
        .filter(|g| !new.contains_key(*g))
        .map(|g| g.to_string())
        .collect();
    d
}

impl Pending {
    fn get(&self) -> Option<Reread> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, r: Option<Reread>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = r;
    }

    /// Marks the pending config applied; false if it already was (or none).
    fn claim(&self) -> bool {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_mut() {
            Some(r) if !r.applied => {
                r.applied = true;
                true
            }
            _ => false,
        }
    }

    fn unclaim(&self) {
        if let Some(r) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            r.applied = false;
        }
    }
}

/// `reloadConfig`: `[[added, changed, removed]]`.
pub async fn reload_config(rpc: &Rpc) -> Result<Value, Fault> {
    if rpc.setup.config_path.as_os_str().is_empty() {
        return Err(Fault::new(
            Code::CantReread,
            "no config file to read (the daemon was started without -c)",
        ));
    }
    if rpc.handle.health().await?.shutting_down {
        return Err(Fault::bare(Code::ShutdownState));
    }
    let (path, options) = (
        rpc.setup.config_path.clone(),
        rpc.setup.load_options.clone(),
    );
    let loaded = tokio::task::spawn_blocking(move || Config::load_with(&path, &options))
        .await
        .map_err(|e| Fault::new(Code::CantReread, e))?
        .map_err(|e| Fault::new(Code::CantReread, e))?;
    let programs: Vec<ProgramConfig> = loaded.config.programs.into_values().collect();
    let active = rpc.handle.configs().await?;
    let d = diff(&active, &programs);
    let names = |l: &[String]| Value::Array(l.iter().map(Value::str).collect());
    let answer = Value::Array(vec![Value::Array(vec![
        names(&d.added),
        names(&d.changed),
        names(&d.removed),
    ])]);
    rpc.reread.set(Some(Reread {
        programs,
        diff: d,
        applied: false,
    }));
    Ok(answer)
}

/// Applies the pending config once (the JSON API's reload).
async fn apply(rpc: &Rpc) -> Result<(), Fault> {
    if !rpc.reread.claim() {
        return Ok(());
    }
    let replaced_at = super::unix_now_ms();
    match rpc.handle.reload().await {
        Ok(result) => {
            if let Some(r) = rpc.reread.get() {
                let fresh: BTreeSet<&str> = r
                    .diff
                    .added
                    .iter()
                    .chain(&r.diff.changed)
                    .map(String::as_str)
                    .collect();
                rpc.replaced(
                    r.programs
                        .iter()
                        .filter(|c| fresh.contains(&*c.group))
                        .map(|c| c.name.as_str()),
                    replaced_at,
                );
            }
            tracing::info!(
                added = ?result.added, changed = ?result.changed, removed = ?result.removed,
                "XML-RPC: configuration applied"
            );
            Ok(())
        }
        Err(e) => {
            rpc.reread.unclaim();
            Err(e.into())
        }
    }
}

/// `addProcessGroup`.
pub async fn add_group(rpc: &Rpc, name: &str) -> Result<Value, Fault> {
    let pending = rpc.reread.get();
    let in_diff = pending.as_ref().is_some_and(|r| {
        r.diff
            .added
            .iter()
            .chain(&r.diff.changed)
            .any(|g| g == name)
    });
    if !in_diff {
        let active = rpc.handle.configs().await?;
        return if active.iter().any(|c| *c.group == *name) {
            Err(Fault::new(Code::AlreadyAdded, name))
        } else {
            Err(Fault::new(Code::BadName, name))
        };
    }
    apply(rpc).await?;
    for cfg in rpc.handle.configs().await? {
        if *cfg.group == *name && cfg.autostart {
            rpc.handle.act(Action::Start, &cfg.name, false).await?;
        }
    }
    Ok(Value::Bool(true))
}

/// `removeProcessGroup`.
pub async fn remove_group(rpc: &Rpc, name: &str) -> Result<Value, Fault> {
    let pending = rpc.reread.get();
    if pending
        .as_ref()
        .is_some_and(|r| r.applied && r.diff.touches(name))
    {
        // Already replaced (or removed) when the reread config was applied.
        return Ok(Value::Bool(true));
    }
    let list = rpc.handle.list().await?;
    let members: Vec<_> = list.iter().filter(|p| p.group == name).collect();
    if members.is_empty() {
        return Err(Fault::new(Code::BadName, name));
    }
    if members
        .iter()
        .any(|p| p.state.has_process() || info::is_running(p.state))
    {
        return Err(Fault::new(Code::StillRunning, name));
    }
    if !pending.is_some_and(|r| r.diff.touches(name)) {
        return Err(Fault::new(
            Code::Failed,
            format!("{name}: nsvisor removes a group once it is gone from the config file (edit it, then reread and update)"),
        ));
    }
    apply(rpc).await?;
    Ok(Value::Bool(true))
}

fn none_or(path: Option<String>) -> Value {
    Value::str(path.unwrap_or_else(|| "none".into()))
}

fn logfile(s: &StreamLog) -> Value {
    none_or(match &s.logfile {
        LogFile::Path(p) => Some(p.display().to_string()),
        LogFile::None => None,
    })
}

fn config_info(c: &ProgramConfig, inuse: bool) -> Value {
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let autorestart = match c.autorestart {
        AutoRestart::Always => Value::Bool(true),
        AutoRestart::Never => Value::Bool(false),
        AutoRestart::Unexpected => Value::str("unexpected"),
    };
    let user = c.user.as_ref().map(|u| match &u.group {
        Some(g) => format!("{}:{g}", u.user),
        None => u.user.clone(),
    });
    let name = info::process_name(&c.name, &c.group);
    Value::strukt([
        ("autostart", Value::Bool(c.autostart)),
        ("autorestart", autorestart),
        (
            "directory",
            none_or(c.directory.as_ref().map(|d| d.display().to_string())),
        ),
        ("uid", none_or(user)),
        ("command", Value::str(shell_words::join(c.command.iter()))),
        (
            "exitcodes",
            Value::Array(c.exitcodes.iter().map(|&e| Value::Int(e.into())).collect()),
        ),
        ("group", Value::str(&*c.group)),
        ("group_prio", Value::Int(c.priority.into())),
        ("inuse", Value::Bool(inuse)),
        ("killasgroup", Value::Bool(c.killasgroup)),
        ("name", Value::str(name)),
        ("process_prio", Value::Int(c.priority.into())),
        ("redirect_stderr", Value::Bool(c.redirect_stderr)),
        ("startretries", Value::Int(c.startretries.into())),
        ("startsecs", int(c.startsecs.as_secs())),
        ("stdout_capture_maxbytes", Value::Int(0)),
        ("stdout_events_enabled", Value::Bool(false)),
        ("stdout_logfile", logfile(&c.stdout)),
        (
            "stdout_logfile_backups",
            Value::Int(c.stdout.backups.into()),
        ),
        ("stdout_logfile_maxbytes", int(c.stdout.maxbytes)),
        ("stdout_syslog", Value::Bool(false)),
        ("stopsignal", Value::Int(c.stopsignal as i64)),
        ("stopwaitsecs", int(c.stopwaitsecs.as_secs())),
        ("stderr_capture_maxbytes", Value::Int(0)),
        ("stderr_events_enabled", Value::Bool(false)),
        ("stderr_logfile", logfile(&c.stderr)),
        (
            "stderr_logfile_backups",
            Value::Int(c.stderr.backups.into()),
        ),
        ("stderr_logfile_maxbytes", int(c.stderr.maxbytes)),
        ("stderr_syslog", Value::Bool(false)),
        ("serverurl", Value::str("auto")),
    ])
}

/// `getAllConfigInfo`: the config of the last `reloadConfig` (else the
/// running one), sorted by process name.
pub async fn all_config_info(rpc: &Rpc) -> Result<Value, Fault> {
    let active = rpc.handle.configs().await?;
    let in_use: BTreeSet<&str> = active.iter().map(|c| &*c.group).collect();
    let pending = rpc.reread.get();
    let mut programs: Vec<&ProgramConfig> = match &pending {
        Some(r) => r.programs.iter().collect(),
        None => active.iter().collect(),
    };
    programs.retain(|c| c.name.as_str() != MAIN_PROGRAM);
    programs.sort_by(|a, b| {
        info::process_name(&a.name, &a.group).cmp(info::process_name(&b.name, &b.group))
    });
    Ok(Value::Array(
        programs
            .into_iter()
            .map(|c| config_info(c, in_use.contains(&*c.group)))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(name: &str, group: &str, cmd: &str) -> ProgramConfig {
        let mut c = ProgramConfig::with_defaults(name, vec![cmd.into()]);
        c.group = group.into();
        c
    }

    #[test]
    fn diff_is_by_group() {
        let active = vec![
            prog("a", "a", "x"),
            prog("b:0", "b", "x"),
            prog("b:1", "b", "x"),
            prog("c", "c", "x"),
        ];
        let new = vec![
            prog("a", "a", "x"),
            prog("b:0", "b", "y"),
            prog("b:1", "b", "y"),
            prog("d", "d", "x"),
        ];
        assert_eq!(
            diff(&active, &new),
            Diff {
                added: vec!["d".into()],
                changed: vec!["b".into()],
                removed: vec!["c".into()],
            }
        );
        assert_eq!(diff(&new, &new), Diff::default());
    }

    #[test]
    fn config_info_has_supervisords_fields() {
        let v = config_info(&prog("web:0", "web", "/bin/web"), true);
        assert_eq!(v.member("name"), Some(&Value::str("0")));
        assert_eq!(v.member("group"), Some(&Value::str("web")));
        assert_eq!(v.member("inuse"), Some(&Value::Bool(true)));
        assert_eq!(v.member("autorestart"), Some(&Value::str("unexpected")));
        assert_eq!(v.member("stopsignal"), Some(&Value::Int(15)));
        assert_eq!(v.member("directory"), Some(&Value::str("none")));
        assert_eq!(v.member("group_prio"), Some(&Value::Int(999)));
    }
}
