//! `[program:x]` → a `[programs.x]` table: every key supervisord documents
//! is mapped onto nsvisor's key, or warned about once (file:line and why);
//! an unknown key is an error with the closest key suggested.
//!
//! Also applies what a program inherits: its `[group:x]` (the `group` key,
//! and the group's priority when the program sets none) and `[supervisord]`'s
//! `umask` and `user`. `%(process_num)…` is kept as `{process_num…}` for
//! nsvisor's replica expansion (`process_name` included, so processes are
//! named as supervisord names them).

use super::expand::{Var, Vars};
use super::lexer::Entry;
use super::sections::{is_stdio, lookup, Mapper};
use super::{
    absolute, common_names, environment_table, expand_entry, report, Merged, TableBuilder,
};
use crate::config::raw::{Loc, Node, Value};
use crate::config::suggest::did_you_mean;
use crate::config::validate::Defined;

/// Every key supervisord documents for `[program:x]`, plus nsvisor's
/// `environment_file`.
const KEYS: &[&str] = &[
    "command",
    "process_name",
    "numprocs",
    "numprocs_start",
    "priority",
    "autostart",
    "startsecs",
    "startretries",
    "autorestart",
    "exitcodes",
    "stopsignal",
    "stopwaitsecs",
    "stopasgroup",
    "killasgroup",
    "user",
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
    "environment",
    "environment_file",
    "directory",
    "umask",
    "serverurl",
];

/// Keys whose values may use `%(process_num)…` (supervisord reads them per
/// process; nsvisor substitutes `{process_num}` in exactly these).
const PER_PROCESS: &[&str] = &[
    "command",
    "process_name",
    "environment",
    "directory",
    "stdout_logfile",
    "stderr_logfile",
];

/// A `[group:x]` and its members.
pub(in crate::config) struct GroupRef {
    pub name: String,
    pub members: Vec<String>,
    pub priority: Option<(i64, Entry)>,
    pub loc: Loc,
}

/// What `[supervisord]` passes down to programs that do not set it.
#[derive(Default)]
pub(in crate::config) struct ProgramDefaults {
    pub umask: Option<(String, Entry)>,
    pub user: Option<(String, Entry)>,
}

fn int(n: i64) -> Value {
    Value::Int {
        value: n,
        repr: n.to_string(),
    }
}

/// Maps one `[program:NAME]`.
pub(in crate::config) fn map(
    m: &mut Mapper,
    s: &Merged,
    name: &str,
    group: Option<&GroupRef>,
) -> Option<Defined> {
    let p = Some(name);
    for e in &s.entries {
        if !KEYS.contains(&e.key.as_str()) {
            let hint = did_you_mean(&e.key, KEYS);
            let message = format!("unknown key \"{}\" in [{}]{hint}", e.key, s.name);
            m.diag.error(e.key_loc, p, message);
        }
    }
    let group_name = group.map_or(name, |g| g.name.as_str()).to_string();
    let mut own_env: Vec<(String, String)> = Vec::new();
    let mut numprocs = 1;
    let mut t = TableBuilder::default();

    // numprocs and environment first: later values may refer to them.
    let expand = |m: &mut Mapper, e: &Entry, own: &[(String, String)], numprocs: i64| {
        let dir = m.dir(e.key_loc);
        let (sup_env, inputs) = (&m.sup_env, m.inputs);
        let env = |n: &str| lookup(own, sup_env, inputs.env, n);
        let mut names = common_names(&dir, inputs);
        names.push(("program_name", Var::Str(name.to_string())));
        names.push(("group_name", Var::Str(group_name.clone())));
        names.push(("numprocs", Var::Int(numprocs)));
        if PER_PROCESS.contains(&e.key.as_str()) {
            names.push(("process_num", Var::ProcessNum));
        }
        let vars = Vars { names, env: &env };
        expand_entry(m.diag, e, &vars, p)
    };
    if let Some(e) = s.get("numprocs") {
        if let Some(v) = expand(m, e, &[], 1) {
            match super::values::integer(&v) {
                Ok(n) => {
                    numprocs = n;
                    t.set("numprocs", e, int(n));
                }
                Err(msg) => report(m.diag, e, p, msg),
            }
        }
    }
    if let Some(e) = s.get("environment") {
        if let Some(v) = expand(m, e, &[], numprocs) {
            if let Some((table, pairs)) = environment_table(m.diag, e, &v, p) {
                own_env = pairs;
                t.set("environment", e, Value::Table(table));
            }
        }
    }
    let mut stopasgroup = None;
    let mut killasgroup = None;
    for e in &s.entries {
        if matches!(e.key.as_str(), "numprocs" | "environment") || !KEYS.contains(&e.key.as_str()) {
            continue;
        }
        let Some(v) = expand(m, e, &own_env, numprocs) else {
            continue;
        };
        let dir = m.dir(e.key_loc);
        let env = m.inputs.env;
        let key = e.key.as_str();
        let bool_key = |m: &mut Mapper, t: &mut TableBuilder| match super::values::boolean(&v) {
            Ok(b) => {
                t.set(key, e, Value::Bool(b));
                Some(b)
            }
            Err(msg) => {
                report(m.diag, e, p, msg);
                None
            }
        };
        match key {
            "command" => match shell_words::split(&v) {
                Ok(words) => t.set(
                    "command",
                    e,
                    Value::Array(
                        words
                            .into_iter()
                            .map(|w| Node {
                                value: Value::Str(w),
                                loc: e.value_loc,
                            })
                            .collect(),
                    ),
                ),
                Err(err) => report(m.diag, e, p, format!("cannot split {v:?} into words: {err}")),
            },
            "process_name" => process_name(m, &mut t, e, &v, numprocs, p),
            "numprocs_start" | "priority" | "startsecs" | "startretries" | "stopwaitsecs"
            | "stdout_logfile_backups" | "stderr_logfile_backups" => {
                match super::values::integer(&v) {
                    Ok(n) => t.set(key, e, int(n)),
                    Err(msg) => report(m.diag, e, p, msg),
                }
            }
            "autostart" | "redirect_stderr" => {
                bool_key(m, &mut t);
            }
            "stopasgroup" => stopasgroup = bool_key(m, &mut t),
            "killasgroup" => killasgroup = bool_key(m, &mut t),
            "autorestart" => match v.trim().to_ascii_lowercase().as_str() {
                "unexpected" => t.set(key, e, Value::Str("unexpected".into())),
                other => match super::values::boolean(other) {
                    Ok(b) => t.set(key, e, Value::Str(if b { "always" } else { "never" }.into())),
                    Err(_) => report(m.diag, e, p, format!("\"{v}\" is not true, false or unexpected")),
                },
            },
            "exitcodes" => match super::values::exitcodes(&v) {
                Ok(codes) => {
                    let nodes = codes
                        .into_iter()
                        .map(|c| Node {
                            value: int(c),
                            loc: e.value_loc,
                        })
                        .collect();
                    t.set(key, e, Value::Array(nodes));
                }
                Err(msg) => report(m.diag, e, p, msg),
            },
            "stopsignal" => match super::values::signal_name(&v) {
                Ok(sig) => t.set(key, e, Value::Str(sig)),
                Err(msg) => report(m.diag, e, p, msg),
            },
            "user" | "umask" => t.set(key, e, Value::Str(v.trim().to_string())),
            "directory" => t.set(key, e, Value::Str(absolute(&v, &dir, env))),
            "environment_file" => t.set(key, e, Value::Str(absolute(&v, &dir, env))),
            "stdout_logfile" | "stderr_logfile" => logfile(m, &mut t, e, &v, p),
            "stdout_logfile_maxbytes" | "stderr_logfile_maxbytes" => {
                match super::values::byte_size(&v) {
                    Ok(n) => t.set(key, e, int(n as i64)),
                    Err(msg) => report(m.diag, e, p, msg),
                }
            }
            "stdout_capture_maxbytes" | "stderr_capture_maxbytes" => match super::values::byte_size(&v) {
                Ok(0) => {}
                Ok(_) => m.diag.warn(e.key_loc, p, format!("{key}: there is no capture mode (it exists for event listeners, which are not supported)")),
                Err(msg) => report(m.diag, e, p, msg),
            },
            "stdout_events_enabled" | "stderr_events_enabled" => match super::values::boolean(&v) {
                Ok(false) => {}
                Ok(true) => m.diag.warn(e.key_loc, p, format!("{key}: event listeners are not supported (GET /v1/events streams state changes)")),
                Err(msg) => report(m.diag, e, p, msg),
            },
            "stdout_syslog" | "stderr_syslog" => match super::values::boolean(&v) {
                Ok(false) => {}
                Ok(true) => m.diag.warn(e.key_loc, p, format!("{key}: syslog is not supported; output goes to the console and log files")),
                Err(msg) => report(m.diag, e, p, msg),
            },
            "serverurl" if v.trim().eq_ignore_ascii_case("auto") => {}
            "serverurl" => m.diag.warn(
                e.key_loc,
                p,
                "serverurl: programs are not given SUPERVISOR_SERVER_URL",
            ),
            _ => {}
        }
    }
    if stopasgroup == Some(true) && killasgroup == Some(false) {
        let e = s.get("killasgroup").expect("killasgroup was read");
        m.diag.error(
            e.key_loc,
            p,
            "killasgroup: cannot be false when stopasgroup is true (as in supervisord)",
        );
    }
    if let (false, Some(e)) = (t.has("command"), s.get("command")) {
        // Already reported: keep validation from calling it missing.
        let words = vec![Node {
            value: Value::Str(e.value.clone()),
            loc: e.value_loc,
        }];
        t.set("command", e, Value::Array(words));
    }
    inherit(m, &mut t, s, group, name);
    Some(Defined {
        name: name.to_string(),
        key_loc: s.loc,
        node: Node {
            value: Value::Table(t.table),
            loc: s.loc,
        },
        file: s.loc.file,
    })
}

/// Group membership and priority, and `[supervisord]`'s umask and user.
fn inherit(m: &mut Mapper, t: &mut TableBuilder, s: &Merged, group: Option<&GroupRef>, name: &str) {
    if let Some(g) = group {
        t.set_at("group", g.loc, g.loc, Value::Str(g.name.clone()));
        m.diag.note(
            g.loc,
            Some(name),
            format!(
                "[group:{}]: program \"{name}\" is in group \"{}\"",
                g.name, g.name
            ),
        );
        if let Some((prio, e)) = &g.priority {
            if !t.has("priority") {
                t.set("priority", e, int(*prio));
            } else if let Some(own) = s.get("priority") {
                m.diag.note(
                    own.key_loc,
                    Some(name),
                    format!(
                        "priority: the program's own priority is used, not its group's ({prio})"
                    ),
                );
            }
        }
    }
    for (key, default) in [("umask", &m.defaults.umask), ("user", &m.defaults.user)] {
        if let (false, Some((v, e))) = (t.has(key), default) {
            t.set(key, e, Value::Str(v.clone()));
        }
    }
}

/// `process_name`: the name of each process, `%(process_num)…` kept as
/// `{process_num…}` for the replica expansion (the default,
/// `%(program_name)s` with one process, needs no key).
fn process_name(
    m: &mut Mapper,
    t: &mut TableBuilder,
    e: &Entry,
    v: &str,
    numprocs: i64,
    p: Option<&str>,
) {
    if numprocs > 1 && !e.value.contains("%(process_num)") {
        m.diag.error(
            e.value_loc,
            p,
            "process_name: must contain %(process_num) when numprocs > 1 (as in supervisord)",
        );
        return;
    }
    if numprocs > 1 || Some(v) != p {
        t.set("process_name", e, Value::Str(v.to_string()));
    }
}

/// `stdout_logfile` / `stderr_logfile`: AUTO, NONE, syslog, the console
/// idiom (`/dev/stdout`), `/dev/null`, or a file.
fn logfile(m: &mut Mapper, t: &mut TableBuilder, e: &Entry, v: &str, p: Option<&str>) {
    let stream = e.key.trim_end_matches("_logfile");
    let console = format!("{stream}_console");
    let lower = v.trim().to_ascii_lowercase();
    match lower.as_str() {
        "none" | "off" => t.set(&e.key, e, Value::Str("none".into())),
        "auto" if m.has_log_dir => t.set(&e.key, e, Value::Str("auto".into())),
        "auto" => {
            t.set(&e.key, e, Value::Str("none".into()));
            m.diag.warn(e.key_loc, p, format!("{}=AUTO: no file is written because [supervisord] childlogdir is not set (supervisord would write to /tmp); the output is on the console", e.key));
        }
        "syslog" => {
            t.set(&e.key, e, Value::Str("none".into()));
            m.diag.warn(
                e.key_loc,
                p,
                format!(
                    "{}=syslog: syslog is not supported; output goes to the console",
                    e.key
                ),
            );
        }
        "/dev/null" => {
            t.set(&e.key, e, Value::Str("none".into()));
            t.set(&console, e, Value::Str("off".into()));
            m.diag.note(
                e.key_loc,
                p,
                format!("{}=/dev/null: no log file and {console} = \"off\"", e.key),
            );
        }
        _ if is_stdio(v.trim()) => {
            t.set(&e.key, e, Value::Str("none".into()));
            t.set(&console, e, Value::Str("prefixed".into()));
            m.diag.note(
                e.key_loc,
                p,
                format!("{}={}: output goes to nsvisor's console, each line prefixed with the program name ({console} = \"raw\" for lines as written)", e.key, v.trim()),
            );
        }
        _ => {
            let dir = m.dir(e.key_loc);
            t.set(
                &e.key,
                e,
                Value::Str(absolute(v.trim(), &dir, m.inputs.env)),
            );
        }
    }
}
