//! One `[programs.NAME]` table → a [`Template`] (every key checked, defaults
//! applied), then [`Template::expand`] → one [`ProgramConfig`] per replica
//! (`numprocs`), with `{process_num}` substituted.
//!
//! Cross-program checks (`depends_on`, networks, duplicate log files) happen
//! later in `deps.rs`, `networks.rs` and `validate.rs`, on the expanded instances.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::Diag;
use super::raw::{Loc, Node, Table, Value};
use super::read::Reader;
use super::suggest::did_you_mean;
use super::units::{self, Conv};
use super::{AutoRestart, Condition, LogFile, ProgramConfig, StreamLog, SupervisorConfig};

const KEYS: &[&str] = &[
    "command",
    "directory",
    "environment",
    "environment_file",
    "group",
    "user",
    "umask",
    "no_new_privs",
    "autostart",
    "autorestart",
    "exitcodes",
    "startsecs",
    "startretries",
    "stopsignal",
    "stopwaitsecs",
    "stopasgroup",
    "killasgroup",
    "priority",
    "numprocs",
    "numprocs_start",
    "process_name",
    "depends_on",
    "checks",
    "critical",
    "redirect_stderr",
    "stdout_logfile",
    "stderr_logfile",
    "stdout_logfile_maxbytes",
    "stderr_logfile_maxbytes",
    "stdout_logfile_backups",
    "stderr_logfile_backups",
    "stdout_console",
    "stderr_console",
    "tail_buffer",
    "netns",
    "network",
    "address",
    "sandbox",
    "ports",
    "port_mode",
    "port_hold",
];

/// A string as written (before `{process_num}` substitution) and where.
pub(super) type Located = (String, Loc);

/// One `depends_on` entry as written: a program or group name, the
/// condition, and where it is written.
pub(super) type DependsOn = (String, Condition, Loc);

/// Network keys of a program, checked for consistency but not yet resolved.
#[derive(Debug, Default)]
pub(super) struct NetKeys {
    pub netns: Option<Located>,
    pub network: Option<Located>,
    pub address: Option<Located>,
    pub sandbox: Option<Located>,
    pub ports: Vec<Located>,
    pub port_mode: Option<Located>,
    /// `port_hold` (seconds) and where.
    pub port_hold: Option<(std::time::Duration, Loc)>,
}

/// A program table, read and checked, before replica expansion.
#[derive(Debug)]
pub(super) struct Template {
    /// Defaults and every non-templated key applied; `name` is the group name,
    /// `command` words may still contain `{process_num}`.
    pub base: ProgramConfig,
    /// Where the table starts.
    pub loc: Loc,
    pub numprocs: u32,
    pub numprocs_start: u32,
    /// `process_name`: each replica's name, with `{process_num}`.
    pub process_name: Option<Located>,
    pub depends_on: Vec<DependsOn>,
    pub directory: Option<String>,
    pub stdout_logfile: Option<Located>,
    pub stderr_logfile: Option<Located>,
    pub net: NetKeys,
    /// Directory of the file the table is in (relative paths start there).
    pub base_dir: PathBuf,
}

/// One replica: its config and its (unresolved) network keys.
#[derive(Debug)]
pub(super) struct Instance {
    pub config: ProgramConfig,
    pub net: NetKeys,
    pub depends_on: Vec<DependsOn>,
    pub loc: Loc,
    /// Where each stream's log file was configured (for duplicate messages).
    pub log_locs: [Loc; 2],
}

/// Reads `[programs.NAME]`. `None` when the table is too broken to expand
/// (errors reported).
pub(super) fn read(
    diag: &mut Diag,
    name: &str,
    table: &Table,
    loc: Loc,
    source: &Arc<Path>,
    sup: &SupervisorConfig,
) -> Option<Template> {
    let section = format!("[programs.{name}]");
    let mut r = Reader::new(diag, table, &section, KEYS, Some(name));
    let base_dir = source.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut base = ProgramConfig::with_defaults(name, Vec::new());
    base.source = source.clone();

    let command = match r.node("command") {
        Some(node) => words(&mut r, "command", node),
        None => {
            r.error(
                loc,
                "command: missing (every program needs a command)".into(),
            );
            None
        }
    };
    let directory = r.get("directory", units::non_empty_string);
    base.environment = super::environment::merged(&mut r, &base_dir, &sup.environment);
    let group = r.get("group", |n| {
        let g = units::non_empty_string(n)?;
        units::check_name(&g)?;
        Ok(g)
    });
    base.user = r.get("user", units::user_spec).map(Box::new);
    base.umask = r.get("umask", |n| units::octal(n, 0o777));
    set(
        &mut base.no_new_privs,
        r.get("no_new_privs", units::boolean),
    );
    set(&mut base.autostart, r.get("autostart", units::boolean));
    set(&mut base.autorestart, r.get("autorestart", autorestart));
    if let Some(node) = r.node("exitcodes") {
        base.exitcodes = units::items(node)
            .into_iter()
            .filter_map(|n| r.check("exitcodes", n, units::int_in(n, 0, 255)))
            .map(|c| c as i32)
            .collect();
    }
    set(&mut base.startsecs, r.get("startsecs", units::seconds));
    set(
        &mut base.startretries,
        r.get("startretries", units::u32_any),
    );
    set(&mut base.stopsignal, r.get("stopsignal", units::signal));
    set(
        &mut base.stopwaitsecs,
        r.get("stopwaitsecs", units::seconds),
    );
    set(&mut base.stopasgroup, r.get("stopasgroup", units::boolean));
    set(&mut base.killasgroup, r.get("killasgroup", units::boolean));
    base.killasgroup |= base.stopasgroup;
    let priority = r.get("priority", |n| {
        units::int_in(n, i32::MIN.into(), i32::MAX.into())
    });
    set(&mut base.priority, priority.map(|p| p as i32));
    let numprocs = r
        .get("numprocs", |n| units::int_in(n, 1, u32::MAX.into()))
        .unwrap_or(1) as u32;
    let numprocs_start = r.get("numprocs_start", units::u32_any).unwrap_or(0);
    if numprocs_start.checked_add(numprocs - 1).is_none() {
        let at = r.node("numprocs_start").map_or(loc, |n| n.loc);
        r.error(
            at,
            "numprocs_start: numprocs_start + numprocs is too large".into(),
        );
    }
    let process_name = process_name(&mut r, numprocs);
    let mut depends_on = Vec::new();
    if let Some(node) = r.node("depends_on") {
        match &node.value {
            // `{ NAME = "CONDITION", ... }`
            Value::Table(table) => {
                for entry in &table.entries {
                    let condition =
                        r.check("depends_on", &entry.node, units::condition(&entry.node));
                    if let Some(condition) = condition {
                        depends_on.push((entry.key.clone(), condition, entry.key_loc));
                    }
                }
            }
            // `["NAME", ...]`: each must be ready.
            _ => {
                for item in units::items(node) {
                    if let Some(dep) = r.check("depends_on", item, units::non_empty_string(item)) {
                        depends_on.push((dep, Condition::Ready, item.loc));
                    }
                }
            }
        }
    }
    if let Some(node) = r.node("checks") {
        base.checks = super::checks::read(&mut r, node);
    }
    set(&mut base.critical, r.get("critical", units::boolean));

    let has_log_dir = sup.log_dir.is_some();
    set(
        &mut base.redirect_stderr,
        r.get("redirect_stderr", units::boolean),
    );
    let stdout_logfile = logfile(&mut r, "stdout_logfile", has_log_dir);
    let stderr_logfile = logfile(&mut r, "stderr_logfile", has_log_dir);
    let tail = r
        .get("tail_buffer", units::size)
        .unwrap_or(sup.tail_buffer_bytes);
    base.stdout = stream(&mut r, "stdout", sup, tail);
    base.stderr = stream(&mut r, "stderr", sup, tail);

    let net = net_keys(&mut r);
    if let Some(group) = group {
        base.group = group.into();
    }
    let command = command?;
    base.command = command.into();
    Some(Template {
        base,
        loc,
        numprocs,
        numprocs_start,
        process_name,
        depends_on,
        directory,
        stdout_logfile,
        stderr_logfile,
        net,
        base_dir,
    })
}

fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// A command line: a string split like a shell does, or an array of words
/// (`key` names it in messages: `command`, a check's `exec`).
pub(super) fn words(r: &mut Reader, key: &str, node: &Node) -> Option<Vec<String>> {
    let words = match &node.value {
        Value::Str(s) => match shell_words::split(s) {
            Ok(words) => words,
            Err(e) => {
                r.error(
                    node.loc,
                    format!("{key}: cannot split {s:?} into words: {e}"),
                );
                return None;
            }
        },
        Value::Array(items) => {
            let words: Vec<Option<String>> = items
                .iter()
                .map(|item| r.check(key, item, units::string(item)))
                .collect();
            words.into_iter().collect::<Option<Vec<_>>>()?
        }
        _ => {
            let found = units::describe(node);
            r.error(
                node.loc,
                format!("{key}: expected a string or an array of strings, found {found}"),
            );
            return None;
        }
    };
    match words.first() {
        None => r.error(node.loc, format!("{key}: is empty")),
        Some(first) if first.is_empty() => {
            r.error(node.loc, format!("{key}: the program path is empty"))
        }
        Some(_) => return Some(words),
    }
    None
}

fn autorestart(node: &Node) -> Conv<AutoRestart> {
    const WORDS: &[&str] = &["always", "unexpected", "never", "true", "false"];
    match &node.value {
        Value::Bool(true) => Ok(AutoRestart::Always),
        Value::Bool(false) => Ok(AutoRestart::Never),
        Value::Str(s) => match s.to_ascii_lowercase().as_str() {
            "always" | "true" => Ok(AutoRestart::Always),
            "unexpected" => Ok(AutoRestart::Unexpected),
            "never" | "false" => Ok(AutoRestart::Never),
            _ => Err(format!(
                "invalid value \"{s}\", expected \"always\", \"unexpected\" or \"never\"{}",
                did_you_mean(s, WORDS)
            )),
        },
        _ => Err(format!(
            "expected \"always\", \"unexpected\", \"never\" or a boolean, found {}",
            units::describe(node)
        )),
    }
}

/// `stdout_logfile` / `stderr_logfile` as written; `"auto"` needs `log_dir`.
/// `process_name`: must tell replicas apart. Whether the names it gives are
/// valid and unique is checked on the expanded instances (`validate.rs`).
fn process_name(r: &mut Reader, numprocs: u32) -> Option<Located> {
    let node = r.node("process_name")?;
    let value = r.check("process_name", node, units::non_empty_string(node))?;
    if numprocs > 1 && !value.contains("{process_num") {
        r.error(
            node.loc,
            "process_name: must contain {process_num} when numprocs > 1 (each replica needs its own name)".into(),
        );
        return None;
    }
    Some((value, node.loc))
}

fn logfile(r: &mut Reader, key: &str, has_log_dir: bool) -> Option<Located> {
    let node = r.node(key)?;
    let value = r.check(key, node, units::non_empty_string(node))?;
    if value.eq_ignore_ascii_case("auto") && !has_log_dir {
        r.error(
            node.loc,
            format!("{key}: \"auto\" needs [supervisor] log_dir to be set"),
        );
        return None;
    }
    Some((value, node.loc))
}

fn stream(r: &mut Reader, which: &str, sup: &SupervisorConfig, tail: u64) -> StreamLog {
    let defaults = ProgramConfig::with_defaults("", Vec::new()).stdout;
    StreamLog {
        logfile: LogFile::None,
        maxbytes: r
            .get(&format!("{which}_logfile_maxbytes"), units::size)
            .unwrap_or(defaults.maxbytes),
        backups: r
            .get(&format!("{which}_logfile_backups"), units::u32_any)
            .unwrap_or(defaults.backups),
        console: r
            .get(&format!("{which}_console"), units::console)
            .unwrap_or(sup.console),
        tail_bytes: tail,
    }
}

fn net_keys(r: &mut Reader) -> NetKeys {
    let located = |r: &mut Reader, key: &str| {
        let node = r.node(key)?;
        r.check(key, node, units::non_empty_string(node))
            .map(|s| (s, node.loc))
    };
    let mut keys = NetKeys {
        netns: located(r, "netns"),
        network: located(r, "network"),
        address: located(r, "address"),
        sandbox: located(r, "sandbox"),
        ports: Vec::new(),
        port_mode: located(r, "port_mode"),
        port_hold: r.node("port_hold").and_then(|n| {
            r.check("port_hold", n, units::seconds(n))
                .map(|d| (d, n.loc))
        }),
    };
    if let Some(node) = r.node("ports") {
        for item in units::items(node) {
            let port = match &item.value {
                Value::Str(s) => Some(s.clone()),
                Value::Int { value, .. } => Some(value.to_string()),
                _ => {
                    let found = units::describe(item);
                    r.error(
                        item.loc,
                        format!("ports: expected a mapping like \"8080:80\", found {found}"),
                    );
                    None
                }
            };
            keys.ports.extend(port.map(|p| (p, item.loc)));
        }
    }
    if let Some((ns, loc)) = &keys.netns {
        if ns.contains(['/', '\0']) || ns == "." || ns == ".." {
            r.error(*loc, format!("netns: invalid namespace name \"{ns}\""));
        }
        if keys.network.is_some() {
            r.error(
                *loc,
                "netns: cannot be combined with network (netns joins an existing namespace, network creates one)".into(),
            );
        }
    }
    if keys.network.is_none() {
        for key in ["address", "sandbox", "ports", "port_mode", "port_hold"] {
            if let Some(node) = r.node(key) {
                r.error(node.loc, format!("{key}: needs network to be set"));
            }
        }
        keys.address = None;
        keys.sandbox = None;
        keys.ports.clear();
        keys.port_mode = None;
        keys.port_hold = None;
    }
    keys
}

/// Replaces `{process_num}` and `{process_num:0N}` (zero-padded to N digits).
pub(super) fn substitute(s: &str, n: u32) -> String {
    const TOKEN: &str = "{process_num";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(TOKEN) {
        out.push_str(&rest[..i]);
        let after = &rest[i + TOKEN.len()..];
        if let Some(tail) = after.strip_prefix('}') {
            out.push_str(&n.to_string());
            rest = tail;
            continue;
        }
        let width = after
            .strip_prefix(":0")
            .and_then(|w| w.split_once('}'))
            .filter(|(w, _)| {
                !w.is_empty() && w.len() <= 2 && w.bytes().all(|b| b.is_ascii_digit())
            });
        match width {
            Some((w, tail)) => {
                let w: usize = w.parse().unwrap_or(0);
                out.push_str(&format!("{n:0w$}"));
                rest = tail;
            }
            None => {
                out.push_str(TOKEN);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Template {
    /// The replicas of this program, for K in
    /// numprocs_start..numprocs_start+numprocs: each named by `process_name`
    /// with K substituted, else `NAME` when numprocs = 1 and `NAME:K` when
    /// more.
    pub fn expand(&self, sup: &SupervisorConfig) -> Vec<Instance> {
        let group = &self.base.name;
        let last = self.numprocs_start.saturating_add(self.numprocs - 1);
        (self.numprocs_start..=last)
            .map(|k| {
                let name = match &self.process_name {
                    Some((pattern, _)) => substitute(pattern, k),
                    None if self.numprocs == 1 => group.to_string(),
                    None => format!("{group}:{k}"),
                };
                self.instance(name, k, sup)
            })
            .collect()
    }

    fn instance(&self, name: String, k: u32, sup: &SupervisorConfig) -> Instance {
        let sub = |s: &str| substitute(s, k);
        let mut config = self.base.clone();
        config.process_num = k;
        // Replicas whose command names no `{process_num}` share one argv.
        let words: Vec<String> = self.base.command.iter().map(|w| sub(w)).collect();
        if *words != *self.base.command {
            config.command = words.into();
        }
        config.directory = self
            .directory
            .as_deref()
            .map(|d| units::path_in(&self.base_dir, &sub(d)));
        for value in config.environment.values_mut() {
            *value = sub(value);
        }
        let file_stem = name.replace(':', "_");
        let log = |spec: &Option<Located>, stream: &str| -> LogFile {
            let auto = || match &sup.log_dir {
                Some(dir) => LogFile::Path(dir.join(format!("{file_stem}.{stream}.log"))),
                None => LogFile::None,
            };
            match spec {
                None => auto(),
                Some((v, _)) if v.eq_ignore_ascii_case("auto") => auto(),
                Some((v, _)) if v.eq_ignore_ascii_case("none") => LogFile::None,
                Some((v, _)) => LogFile::Path(units::path_in(&self.base_dir, &sub(v))),
            }
        };
        config.stdout.logfile = log(&self.stdout_logfile, "stdout");
        config.stderr.logfile = if config.redirect_stderr {
            LogFile::None
        } else {
            log(&self.stderr_logfile, "stderr")
        };
        let located = |l: &Option<Located>| l.as_ref().map(|(s, loc)| (sub(s), *loc));
        let net = NetKeys {
            netns: self.net.netns.clone(),
            network: self.net.network.clone(),
            address: located(&self.net.address),
            sandbox: located(&self.net.sandbox).or_else(|| {
                self.net
                    .network
                    .as_ref()
                    .map(|_| (name.replace(':', "-"), self.loc))
            }),
            ports: self
                .net
                .ports
                .iter()
                .map(|(p, loc)| (sub(p), *loc))
                .collect(),
            port_mode: self.net.port_mode.clone(),
            port_hold: self.net.port_hold,
        };
        let log_loc = |l: &Option<Located>| l.as_ref().map_or(self.loc, |(_, loc)| *loc);
        config.name = name.into();
        Instance {
            config,
            net,
            depends_on: self.depends_on.clone(),
            loc: self.loc,
            log_locs: [log_loc(&self.stdout_logfile), log_loc(&self.stderr_logfile)],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_process_num() {
        assert_eq!(substitute("w{process_num}", 3), "w3");
        assert_eq!(substitute("80{process_num:02}", 3), "8003");
        assert_eq!(substitute("{process_num:03}-{process_num}", 12), "012-12");
        assert_eq!(substitute("{process_num:x}", 1), "{process_num:x}");
        assert_eq!(substitute("awk '{print $1}'", 1), "awk '{print $1}'");
        assert_eq!(substitute("{process_num", 1), "{process_num");
    }
}
