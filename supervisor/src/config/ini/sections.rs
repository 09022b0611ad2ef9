//! The sections other than `[program:x]`: `[supervisord]` →
//! `[supervisor]`, `[unix_http_server]` → the socket settings,
//! `[inet_http_server]` → `inet_http_server`, `[supervisorctl]`,
//! `[rpcinterface:x]` and `[ctlplugin:x]` (accepted), `[group:x]`
//! (membership and priority, applied by `program.rs`), and the sections
//! nsvisor refuses (`[eventlistener:x]`, `[fcgi-program:x]`).
//!
//! [`Mapper::run`] is the driver: `[supervisord]` first (programs inherit
//! its environment and defaults), then groups, then programs.

use super::expand::Vars;
use super::lexer::Entry;
use super::program::{GroupRef, ProgramDefaults};
use super::values;
use super::{
    absolute, common_names, environment_table, expand_entry, report, unknown_section, Front,
    IniInputs, Merged, TableBuilder,
};
use crate::config::error::Diag;
use crate::config::raw::{Loc, Value};
use crate::config::suggest::did_you_mean;

/// Every key supervisord documents for `[supervisord]`, plus nsvisor's
/// `environment_file`.
const SUPERVISORD_KEYS: &[&str] = &[
    "logfile",
    "logfile_maxbytes",
    "logfile_backups",
    "loglevel",
    "pidfile",
    "umask",
    "nodaemon",
    "silent",
    "minfds",
    "minprocs",
    "nocleanup",
    "childlogdir",
    "user",
    "directory",
    "strip_ansi",
    "environment",
    "environment_file",
    "identifier",
];
const UNIX_KEYS: &[&str] = &["file", "chmod", "chown", "username", "password"];
const INET_KEYS: &[&str] = &["port", "username", "password"];
const CTL_KEYS: &[&str] = &[
    "serverurl",
    "username",
    "password",
    "prompt",
    "history_file",
];
const GROUP_KEYS: &[&str] = &["programs", "priority"];

/// Maps every merged section; owns the diagnostics while it runs.
pub(in crate::config) struct Mapper<'d, 'i> {
    pub diag: &'d mut Diag,
    pub inputs: &'i IniInputs<'i>,
    /// `[supervisord] environment`, for `%(ENV_X)s` in program sections.
    pub sup_env: Vec<(String, String)>,
    pub defaults: ProgramDefaults,
    /// `[supervisord] childlogdir` is set (AUTO log files have a directory).
    pub has_log_dir: bool,
}

impl<'d, 'i> Mapper<'d, 'i> {
    pub fn new(diag: &'d mut Diag, inputs: &'i IniInputs<'i>) -> Self {
        Mapper {
            diag,
            inputs,
            sup_env: Vec::new(),
            defaults: ProgramDefaults::default(),
            has_log_dir: false,
        }
    }

    /// Maps every section.
    pub fn run(&mut self, merged: &[Merged]) -> Front {
        let mut front = Front::default();
        let mut sup = TableBuilder::default();
        if let Some(s) = merged.iter().find(|s| s.name == "supervisord") {
            self.supervisord(s, &mut sup);
        }
        let mut groups: Vec<GroupRef> = Vec::new();
        for s in merged {
            let (kind, name) = s.name.split_once(':').unwrap_or((s.name.as_str(), ""));
            match (kind, name) {
                ("supervisord" | "include", "") => {}
                ("unix_http_server", "") => self.unix_http_server(s, &mut sup),
                ("inet_http_server", "") => self.inet_http_server(s, &mut sup),
                ("supervisorctl", "") => self.known_keys(s, CTL_KEYS),
                ("rpcinterface", n) if !n.is_empty() => self.rpcinterface(s),
                ("ctlplugin", n) if !n.is_empty() => self.diag.warn(
                    s.loc,
                    None,
                    format!(
                        "[{}]: supervisorctl plugins are not supported; section ignored",
                        s.name
                    ),
                ),
                ("group", n) if !n.is_empty() => groups.extend(self.group(s, n, merged)),
                ("program", n) if !n.is_empty() => {}
                ("eventlistener" | "fcgi-program", n) if !n.is_empty() => self.unsupported(s, kind),
                _ => self.diag.error(s.loc, None, unknown_section(&s.name)),
            }
        }
        for s in merged {
            let Some(name) = s.name.strip_prefix("program:") else {
                continue;
            };
            let group = groups.iter().find(|g| g.members.iter().any(|m| m == name));
            if let Some(def) = super::program::map(self, s, name, group) {
                front.programs.push(def);
            }
        }
        front.supervisor = sup.table;
        front
    }

    fn known_keys(&mut self, s: &Merged, known: &[&str]) {
        for e in &s.entries {
            if !known.contains(&e.key.as_str()) {
                let hint = did_you_mean(&e.key, known);
                let message = format!("unknown key \"{}\" in [{}]{hint}", e.key, s.name);
                self.diag.error(e.key_loc, None, message);
            }
        }
    }

    /// A value of a section other than a program, expanded.
    fn value(&mut self, _section: &Merged, e: &Entry) -> Option<String> {
        let dir = self.dir(e.key_loc);
        let (sup_env, inputs) = (&self.sup_env, self.inputs);
        let env = |name: &str| lookup(&[], sup_env, inputs.env, name);
        let vars = Vars {
            names: common_names(&dir, inputs),
            env: &env,
        };
        expand_entry(self.diag, e, &vars, None)
    }

    /// The directory of the file `loc` is in (`%(here)s`, relative paths).
    pub fn dir(&self, loc: Loc) -> std::path::PathBuf {
        let path = self.diag.path(loc.file);
        path.parent()
            .unwrap_or(std::path::Path::new("/"))
            .to_path_buf()
    }

    fn supervisord(&mut self, s: &Merged, sup: &mut TableBuilder) {
        self.known_keys(s, SUPERVISORD_KEYS);
        let file_logfile = s.get("logfile").and_then(|e| {
            let v = self.value(s, e)?;
            Some(!is_stdio(&v) && v != "/dev/null")
        });
        for e in &s.entries {
            let Some(v) = self.value(s, e) else { continue };
            let dir = self.dir(e.key_loc);
            let env = self.inputs.env;
            match e.key.as_str() {
                "logfile" if is_stdio(&v) || v == "/dev/null" => self.diag.note(
                    e.key_loc,
                    None,
                    format!("logfile={v}: nsvisor always logs to stderr; no log file is written"),
                ),
                "logfile" => sup.set("logfile", e, Value::Str(absolute(&v, &dir, env))),
                "logfile_maxbytes" | "logfile_backups" if file_logfile == Some(true) => {
                    self.diag.warn(
                        e.key_loc,
                        None,
                        format!("{}: nsvisor does not rotate its own log file (it reopens it on SIGUSR2)", e.key),
                    )
                }
                "logfile_maxbytes" | "logfile_backups" => {}
                "loglevel" => match log_level(&v) {
                    Some(level) => sup.set("log_level", e, Value::Str(level.into())),
                    None => report(
                        self.diag,
                        e,
                        None,
                        format!("\"{v}\" is not a log level (critical, error, warn, info, debug, trace, blather)"),
                    ),
                },
                "pidfile" => sup.set("pidfile", e, Value::Str(absolute(&v, &dir, env))),
                "umask" => {
                    self.defaults.umask = Some((v.clone(), e.clone()));
                    self.diag.note(e.key_loc, None, "umask: applied to every program that sets none (programs inherit supervisord's umask)");
                }
                "user" if matches!(v.trim(), "root" | "0") => self.diag.note(
                    e.key_loc,
                    None,
                    "user=root: programs run as the user that started nsvisor (root, where supervisord would have run)",
                ),
                "user" => {
                    self.defaults.user = Some((v.clone(), e.clone()));
                    self.diag.warn(
                        e.key_loc,
                        None,
                        format!("user={v}: nsvisor keeps running as the user that started it; programs that set no user run as {v}"),
                    );
                }
                "directory" => self.diag.warn(
                    e.key_loc,
                    None,
                    "directory: ignored; supervisord only uses it when it daemonizes, and nsvisor never does (set directory on programs)",
                ),
                "nodaemon" => match values::boolean(&v) {
                    Ok(true) => {}
                    Ok(false) => self.diag.warn(
                        e.key_loc,
                        None,
                        "nodaemon=false: nsvisor always stays in the foreground (supervisord would fork into the background, which makes a container exit at once)",
                    ),
                    Err(m) => report(self.diag, e, None, m),
                },
                "silent" => self.flag(e, &v, "silent=true: ignored; nsvisor always writes its own log to stderr"),
                "strip_ansi" => self.flag(e, &v, "strip_ansi=true: not supported; program output is kept as written"),
                "nocleanup" => match values::boolean(&v) {
                    Ok(true) => {}
                    Ok(false) => self.diag.warn(
                        e.key_loc,
                        None,
                        "nocleanup=false: nsvisor never deletes old AUTO log files at start",
                    ),
                    Err(m) => report(self.diag, e, None, m),
                },
                "minfds" => self.int(sup, "minfds", e, &v),
                "minprocs" => self.diag.warn(
                    e.key_loc,
                    None,
                    "minprocs: not supported; nsvisor does not raise RLIMIT_NPROC",
                ),
                "childlogdir" => {
                    self.has_log_dir = true;
                    sup.set("log_dir", e, Value::Str(absolute(&v, &dir, env)));
                }
                "identifier" if v == "supervisor" => {}
                "identifier" => self.diag.warn(
                    e.key_loc,
                    None,
                    "identifier: not used yet (it names the daemon to XML-RPC clients)",
                ),
                "environment" => {
                    if let Some((table, pairs)) = environment_table(self.diag, e, &v, None) {
                        self.sup_env = pairs;
                        sup.set("environment", e, Value::Table(table));
                    }
                }
                "environment_file" => sup.set("environment_file", e, Value::Str(absolute(&v, &dir, env))),
                _ => {}
            }
        }
    }

    /// A boolean that nsvisor cannot honour when true.
    fn flag(&mut self, e: &Entry, v: &str, why: &str) {
        match values::boolean(v) {
            Ok(true) => self.diag.warn(e.key_loc, None, why),
            Ok(false) => {}
            Err(m) => report(self.diag, e, None, m),
        }
    }

    fn int(&mut self, table: &mut TableBuilder, key: &str, e: &Entry, v: &str) {
        match values::integer(v) {
            Ok(n) => table.set(
                key,
                e,
                Value::Int {
                    value: n,
                    repr: n.to_string(),
                },
            ),
            Err(m) => report(self.diag, e, None, m),
        }
    }

    fn unix_http_server(&mut self, s: &Merged, sup: &mut TableBuilder) {
        self.known_keys(s, UNIX_KEYS);
        for e in &s.entries {
            let Some(v) = self.value(s, e) else { continue };
            let dir = self.dir(e.key_loc);
            match e.key.as_str() {
                "file" => sup.set(
                    "socket",
                    e,
                    Value::Str(absolute(v.trim(), &dir, self.inputs.env)),
                ),
                "chmod" => sup.set("socket_mode", e, Value::Str(v)),
                "chown" => sup.set("socket_owner", e, Value::Str(v)),
                "username" => sup.set("socket_username", e, Value::Str(v)),
                "password" => sup.set("socket_password", e, Value::Str(v)),
                _ => {}
            }
        }
    }

    fn inet_http_server(&mut self, s: &Merged, sup: &mut TableBuilder) {
        self.known_keys(s, INET_KEYS);
        let mut table = TableBuilder::default();
        for e in &s.entries {
            if INET_KEYS.contains(&e.key.as_str()) {
                if let Some(v) = self.value(s, e) {
                    table.set(&e.key, e, Value::Str(v));
                }
            }
        }
        if !table.has("port") {
            self.diag
                .error(s.loc, None, "[inet_http_server] needs port = HOST:PORT");
            return;
        }
        sup.set_at("inet_http_server", s.loc, s.loc, Value::Table(table.table));
    }

    fn rpcinterface(&mut self, s: &Merged) {
        const MAIN: &str = "supervisor.rpcinterface:make_main_rpcinterface";
        match s.get("supervisor.rpcinterface_factory") {
            Some(e) if e.value.trim() == MAIN => {}
            Some(e) => self.diag.warn(
                e.key_loc,
                None,
                format!(
                    "[{}]: XML-RPC plugins are not supported; section ignored",
                    s.name
                ),
            ),
            None => self.diag.error(
                s.loc,
                None,
                format!("[{}] needs supervisor.rpcinterface_factory", s.name),
            ),
        }
    }

    /// `[eventlistener:x]` / `[fcgi-program:x]`: an error, or with
    /// `--skip-unsupported` a warning and the section skipped.
    fn unsupported(&mut self, s: &Merged, kind: &str) {
        let why = if kind == "eventlistener" {
            "event listeners are not supported"
        } else {
            "FastCGI programs are not supported"
        };
        if self.inputs.skip_unsupported {
            self.diag
                .warn(s.loc, None, format!("[{}]: {why}; section skipped", s.name));
        } else {
            self.diag.error(
                s.loc,
                None,
                format!("[{}]: {why} (start with --skip-unsupported to skip this section with a warning)", s.name),
            );
        }
    }

    /// `[group:x] programs = a,b priority = N`.
    fn group(&mut self, s: &Merged, name: &str, merged: &[Merged]) -> Option<GroupRef> {
        self.known_keys(s, GROUP_KEYS);
        let Some(e) = s.get("programs") else {
            self.diag.error(
                s.loc,
                None,
                format!("[{}] needs programs = NAME,...", s.name),
            );
            return None;
        };
        let programs = self.value(s, e)?;
        let known: Vec<&str> = merged
            .iter()
            .filter_map(|m| m.name.strip_prefix("program:"))
            .collect();
        let mut members = Vec::new();
        for member in programs.split(',').map(str::trim).filter(|m| !m.is_empty()) {
            let skipped = merged.iter().any(|m| {
                m.name == format!("fcgi-program:{member}")
                    || m.name == format!("eventlistener:{member}")
            });
            if known.contains(&member) {
                members.push(member.to_string());
            } else if !skipped {
                let hint = did_you_mean(member, &known);
                let message = format!(
                    "programs: [{}] names unknown program \"{member}\"{hint}",
                    s.name
                );
                self.diag.error(e.value_loc, None, message);
            }
        }
        let priority = match s.get("priority") {
            Some(p) => {
                let v = self.value(s, p)?;
                match values::integer(&v) {
                    Ok(n) => Some((n, p.clone())),
                    Err(m) => {
                        report(self.diag, p, None, m);
                        None
                    }
                }
            }
            None => None,
        };
        Some(GroupRef {
            name: name.to_string(),
            members,
            priority,
            loc: s.loc,
        })
    }
}

/// `ENV_X`: a program's own `environment`, then `[supervisord]`'s, then the
/// daemon's environment (supervisord's order).
pub(super) fn lookup(
    own: &[(String, String)],
    sup_env: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Option<String> {
    own.iter()
        .rev()
        .chain(sup_env.iter().rev())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .or_else(|| env(name))
}

/// `/dev/stdout`, `/dev/stderr` and their `/dev/fd`, `/proc/self/fd` spellings.
pub(super) fn is_stdio(path: &str) -> bool {
    matches!(
        path,
        "/dev/stdout"
            | "/dev/stderr"
            | "/dev/fd/1"
            | "/dev/fd/2"
            | "/proc/self/fd/1"
            | "/proc/self/fd/2"
    )
}

/// supervisord's log levels → nsvisor's.
fn log_level(v: &str) -> Option<&'static str> {
    Some(match v.trim().to_ascii_lowercase().as_str() {
        "critical" | "error" => "error",
        "warn" => "warn",
        "info" => "info",
        "debug" => "debug",
        "trace" | "blather" => "trace",
        _ => return None,
    })
}
