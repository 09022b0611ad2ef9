//! supervisord's INI config, read natively: the main file and its
//! `[include] files=` are lexed (`lexer`), repeated sections are merged (the
//! last value of a key wins, as in supervisord), values are expanded
//! (`expand`) and typed (`values`), and each supervisord key is mapped onto
//! the raw tables the TOML loader produces (`sections` for `[supervisord]`
//! and the servers, `program` for `[program:x]` and `[group:x]`). From there
//! the TOML loader's validation runs unchanged, so one `Config` results and
//! every error or warning points at the INI file and line.
//!
//! Keys nsvisor cannot honour produce one warning each (file:line and why);
//! unknown keys are errors with the closest key suggested. Reading the files
//! (and globbing includes) is the only I/O. Called by `validate::load` and
//! `convert`.

mod expand;
mod lexer;
mod program;
mod sections;
mod values;

use std::path::{Path, PathBuf};

use super::error::Diag;
use super::raw::{FileId, Loc, Node, Table, Value};
use super::suggest::did_you_mean;
use super::validate::Defined;
use expand::{Var, Vars};
use lexer::Entry;

/// Section headers only supervisord's format has.
const SECTIONS: &[&str] = &[
    "supervisord",
    "unix_http_server",
    "inet_http_server",
    "supervisorctl",
    "include",
];
/// Section prefixes (`[program:web]`).
const PREFIXES: &[&str] = &[
    "program:",
    "group:",
    "eventlistener:",
    "fcgi-program:",
    "rpcinterface:",
    "ctlplugin:",
];

/// True when `text` has a section header only supervisord's format uses
/// (`[supervisord]`, `[program:x]`, …), which no nsvisor TOML file has.
pub(in crate::config) fn looks_like_ini(text: &str) -> bool {
    text.lines().any(|line| {
        let Some(inner) = line
            .trim()
            .strip_prefix('[')
            .and_then(|l| l.split(']').next())
        else {
            return false;
        };
        let inner = inner.trim();
        SECTIONS.contains(&inner) || PREFIXES.iter().any(|p| inner.starts_with(p))
    })
}

/// What the INI front end hands to the shared validation.
#[derive(Default)]
pub(in crate::config) struct Front {
    /// `[supervisor]` as the TOML loader would have read it.
    pub supervisor: Table,
    /// One `[programs.NAME]` table per `[program:NAME]`.
    pub programs: Vec<Defined>,
}

/// Inputs of one INI load besides the files.
pub(in crate::config) struct IniInputs<'a> {
    /// The daemon's environment (`%(ENV_X)s`, `~`).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// `%(host_node_name)s`.
    pub host_node_name: String,
    /// Skip `[eventlistener:x]` and `[fcgi-program:x]` with a warning
    /// instead of refusing them.
    pub skip_unsupported: bool,
}

/// One section after merging every `[name]` with the same name.
pub(in crate::config) struct Merged {
    pub name: String,
    /// The first header.
    pub loc: Loc,
    /// Keys in first-written order, each with its last value.
    pub entries: Vec<Entry>,
}

impl Merged {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// Reads the INI file `main` (already registered as a source with `text`)
/// and its includes, and maps them.
pub(in crate::config) fn read(
    diag: &mut Diag,
    main: FileId,
    text: &str,
    inputs: &IniInputs,
) -> Front {
    let Some(mut raw) = lex(diag, main, text) else {
        return Front::default();
    };
    let main_path = diag.path(main).to_path_buf();
    let includes = merge(&raw).into_iter().find(|s| s.name == "include");
    if let Some(include) = includes {
        for (path, loc) in include_files(diag, &include, &main_path, inputs) {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) => {
                    let message = format!("include: cannot read {}: {e}", path.display());
                    diag.error(loc, None, message);
                    continue;
                }
            };
            let id = diag.add_source(path, text.clone());
            if let Some(sections) = lex(diag, id, &text) {
                for s in sections.iter().filter(|s| s.name == "include") {
                    diag.warn(
                        s.loc,
                        None,
                        "[include] in an included file is not followed (supervisord reads includes from the main file only)",
                    );
                }
                raw.extend(sections.into_iter().filter(|s| s.name != "include"));
            }
        }
    }
    let merged = merge(&raw);
    let mut map = sections::Mapper::new(diag, inputs);
    map.run(&merged)
}

fn lex(diag: &mut Diag, file: FileId, text: &str) -> Option<Vec<lexer::Section>> {
    match lexer::parse(file, text) {
        Ok(sections) => Some(sections),
        Err(e) => {
            let loc = Loc {
                file,
                offset: e.offset,
            };
            diag.error(
                loc,
                None,
                format!("invalid supervisord config: {}", e.message),
            );
            None
        }
    }
}

/// Merges sections of the same name, keeping first-appearance order.
fn merge(sections: &[lexer::Section]) -> Vec<Merged> {
    let mut out: Vec<Merged> = Vec::new();
    for s in sections {
        let merged = match out.iter_mut().position(|m| m.name == s.name) {
            Some(i) => &mut out[i],
            None => {
                out.push(Merged {
                    name: s.name.clone(),
                    loc: s.loc,
                    entries: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        for e in &s.entries {
            match merged.entries.iter_mut().find(|m| m.key == e.key) {
                Some(m) => *m = e.clone(),
                None => merged.entries.push(e.clone()),
            }
        }
    }
    out
}

/// `[include] files = a.conf conf.d/*.conf`: the matching files, relative to
/// the main file's directory, each pattern's matches sorted; a pattern that
/// matches nothing is a warning (as in supervisord).
fn include_files(
    diag: &mut Diag,
    include: &Merged,
    main: &Path,
    inputs: &IniInputs,
) -> Vec<(PathBuf, Loc)> {
    for e in &include.entries {
        if e.key != "files" {
            let hint = did_you_mean(&e.key, &["files"]);
            diag.error(
                e.key_loc,
                None,
                format!("unknown key \"{}\" in [include]{hint}", e.key),
            );
        }
    }
    let Some(entry) = include.get("files") else {
        diag.error(include.loc, None, "[include] needs files = PATTERN ...");
        return Vec::new();
    };
    let base = main.parent().unwrap_or(Path::new("/"));
    let vars = Vars {
        names: common_names(base, inputs),
        env: inputs.env,
    };
    let Some(value) = expand_entry(diag, entry, &vars, None) else {
        return Vec::new();
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut seen = vec![canonical(main)];
    let mut files = Vec::new();
    for pattern in value.split_whitespace() {
        let full = base.join(expand_user(pattern, inputs.env));
        let mut matched: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
            Ok(paths) => paths
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect(),
            Err(e) => {
                let message = format!("include: invalid pattern \"{pattern}\": {e}");
                diag.error(entry.value_loc, None, message);
                continue;
            }
        };
        if matched.is_empty() {
            let message = format!("include: no file matches \"{}\"", full.display());
            diag.warn(entry.value_loc, None, message);
        }
        matched.sort();
        for p in matched {
            let c = canonical(&p);
            if !seen.contains(&c) {
                seen.push(c);
                files.push((p, entry.value_loc));
            }
        }
    }
    files
}

/// `here` and `host_node_name` for a value written in a file in `dir`.
fn common_names(dir: &Path, inputs: &IniInputs) -> Vec<(&'static str, Var)> {
    vec![
        ("here", Var::Str(dir.to_string_lossy().into_owned())),
        ("host_node_name", Var::Str(inputs.host_node_name.clone())),
    ]
}

/// Expands an entry's value, reporting a failure at the exact character.
fn expand_entry(diag: &mut Diag, e: &Entry, vars: &Vars, program: Option<&str>) -> Option<String> {
    match expand::expand(&e.value, vars) {
        Ok(v) => Some(v),
        Err(err) => {
            diag.error(
                e.loc_at(err.at),
                program,
                format!("{}: {}", e.key, err.message),
            );
            None
        }
    }
}

/// `~` and `~/x` → the daemon's `$HOME` (supervisord's `expanduser`).
fn expand_user(path: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    match (path.strip_prefix('~'), env("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            format!("{home}{rest}")
        }
        _ => path.to_string(),
    }
}

/// A path as nsvisor stores it: `~` expanded, relative paths made absolute
/// against `dir` (the directory of the file the value is written in).
fn absolute(path: &str, dir: &Path, env: &dyn Fn(&str) -> Option<String>) -> String {
    let expanded = expand_user(path, env);
    if Path::new(&expanded).is_absolute() {
        expanded
    } else {
        dir.join(expanded).to_string_lossy().into_owned()
    }
}

/// Builds `[table]` entries located at INI keys and values.
#[derive(Default)]
pub(in crate::config) struct TableBuilder {
    pub table: Table,
}

impl TableBuilder {
    /// Sets `key` (replacing an earlier value) from the INI entry `from`.
    pub fn set(&mut self, key: &str, from: &Entry, value: Value) {
        self.set_at(key, from.key_loc, from.value_loc, value);
    }

    pub fn set_at(&mut self, key: &str, key_loc: Loc, value_loc: Loc, value: Value) {
        let entry = super::raw::Entry {
            key: key.to_string(),
            key_loc,
            node: Node {
                value,
                loc: value_loc,
            },
        };
        match self.table.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => *e = entry,
            None => self.table.entries.push(entry),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.get(key).is_some()
    }
}

/// Keeps the first error of a value, for the `Conv`-style helpers.
fn report(diag: &mut Diag, e: &Entry, program: Option<&str>, message: String) {
    diag.error(e.value_loc, program, format!("{}: {message}", e.key));
}

/// The message for an unknown section, with the closest known one.
fn unknown_section(name: &str) -> String {
    let kind = name.split_once(':').map_or(name, |(k, _)| k);
    let mut known: Vec<&str> = SECTIONS.to_vec();
    let prefixes: Vec<String> = PREFIXES
        .iter()
        .map(|p| p.trim_end_matches(':').to_string())
        .collect();
    known.extend(prefixes.iter().map(String::as_str));
    format!("unknown section [{name}]{}", did_you_mean(kind, &known))
}

/// `KEY=value,...` (supervisord's `environment`) as a table located in `e`'s
/// value; a separator other than a comma is a warning, as supervisord
/// silently takes any token there.
fn environment_table(
    diag: &mut Diag,
    e: &Entry,
    expanded: &str,
    program: Option<&str>,
) -> Option<(Table, Vec<(String, String)>)> {
    // Offsets are exact only when expansion did not change the text.
    let at = |i: usize| {
        if expanded == e.value {
            e.loc_at(i)
        } else {
            e.value_loc
        }
    };
    match values::key_value_pairs(expanded) {
        Ok((pairs, odd)) => {
            for (i, token) in odd {
                diag.warn(
                    at(i),
                    program,
                    format!("environment: \"{token}\" after a value is taken as a separator (as supervisord does); quote values that hold spaces"),
                );
            }
            let mut b = TableBuilder::default();
            let mut list = Vec::new();
            for (k, v, i) in pairs {
                b.set_at(&k, at(i), at(i), Value::Str(v.clone()));
                list.push((k, v));
            }
            Some((b.table, list))
        }
        Err(err) => {
            diag.error(at(err.at), program, format!("environment: {}", err.message));
            None
        }
    }
}
