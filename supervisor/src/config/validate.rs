//! The loader: reads the main file and its includes, splits the top level
//! into `[supervisor]`, `[programs.*]` and `[networks.*]`, runs every section
//! reader and the cross-program checks, and returns a [`Config`] or every
//! error found.
//!
//! Steps: read + parse + interpolate each file (`raw`, `env`) → top level →
//! `[supervisor]` (`supervisor`) → includes → networks (`net`) → programs
//! (`program`) → replicas → `depends_on` (`deps`) → sandboxes and ports
//! (`sandboxes`)
//! → duplicate log files. The only system calls are reading files and
//! expanding include globs (DESIGN rule 6).

use super::ProgramName;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::Diag;
use super::load::Inputs;
use super::program::{self, Instance};
use super::raw::{self, FileId, Loc, Node, Table, Value};
use super::suggest::did_you_mean;
use super::{deps, env, ini, networks, sandboxes, supervisor, units};
use super::{Config, ConfigError, ConfigErrors, ConfigFormat, Loaded, LogFile};

const TOP: &[&str] = &["supervisor", "programs", "networks"];

/// A `[programs.NAME]` or `[networks.NAME]` table and where it was defined.
pub(super) struct Defined {
    pub name: String,
    pub key_loc: Loc,
    pub node: Node,
    pub file: FileId,
}

#[derive(Default)]
struct Parts {
    programs: Vec<Defined>,
    networks: Vec<Defined>,
}

/// A successful load, and for an INI file the tables it was mapped to
/// (what `convert` writes out).
pub(super) struct Outcome {
    pub loaded: Loaded,
    pub ini_tables: Option<(Table, Vec<Defined>)>,
}

/// Loads and validates a config file and its includes.
pub(super) fn load(path: &Path, inputs: &Inputs) -> Result<Outcome, ConfigErrors> {
    let env = inputs.env;
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut diag = Diag::default();
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("cannot read config file {}: {e}", path.display());
            diag.push(ConfigError::file(&path, message));
            return Err(diag.into_errors());
        }
    };
    let format = inputs
        .options
        .format
        .unwrap_or_else(|| ConfigFormat::detect(&text));
    let main = diag.add_source(path.clone(), text.clone());
    let mut parts = Parts::default();
    let sup_table = match format {
        ConfigFormat::Toml => {
            let Some(root) = parse_toml(&mut diag, main, &text, env) else {
                return Err(diag.into_errors());
            };
            split_top(&mut diag, main, root, true, &mut parts)
        }
        ConfigFormat::Ini => {
            let ini_inputs = ini::IniInputs {
                env,
                host_node_name: inputs.host_node_name.clone(),
                skip_unsupported: inputs.options.skip_unsupported,
            };
            let front = ini::read(&mut diag, main, &text, &ini_inputs);
            parts.programs = front.programs;
            Some(front.supervisor)
        }
    };
    let section = supervisor::read(&mut diag, sup_table.as_ref(), &base);
    for (file, loc) in expand_includes(&mut diag, &section.includes, &base, &path) {
        if let Some((id, root)) = read_file(&mut diag, &file, Some(loc), env) {
            split_top(&mut diag, id, root, false, &mut parts);
        }
    }
    let sup = section.config;
    let network_defs = unique(&mut diag, parts.networks, "network");
    let networks = networks::read_networks(&mut diag, &network_defs);

    let mut broken = BTreeSet::new();
    let mut instances = BTreeMap::new();
    // One shared path per file, for every program defined in it.
    let mut sources: BTreeMap<FileId, Arc<Path>> = BTreeMap::new();
    let program_defs = unique(&mut diag, parts.programs, "program");
    for def in &program_defs {
        if let Err(e) = units::check_name(&def.name) {
            diag.error(def.key_loc, None, format!("program name: {e}"));
            broken.insert(def.name.clone());
            continue;
        }
        let Value::Table(table) = &def.node.value else {
            let found = units::describe(&def.node);
            diag.error(
                def.node.loc,
                Some(&def.name),
                format!("expected a table [programs.{}], found {found}", def.name),
            );
            broken.insert(def.name.clone());
            continue;
        };
        let source = sources
            .entry(def.file)
            .or_insert_with(|| Arc::from(diag.path(def.file)))
            .clone();
        match program::read(&mut diag, &def.name, table, def.node.loc, &source, &sup) {
            Some(template) => {
                for inst in template.expand(&sup) {
                    add_instance(&mut diag, &mut instances, &template, def.key_loc, inst);
                }
            }
            None => {
                broken.insert(def.name.clone());
            }
        }
    }
    check_groups(&mut diag, &instances);
    deps::resolve(&mut diag, &mut instances, &broken);
    sandboxes::resolve(&mut diag, &networks, &mut instances);
    check_log_files(&mut diag, &instances);

    if diag.has_errors() {
        return Err(diag.into_errors());
    }
    let findings = diag.findings();
    let config = Config {
        path,
        supervisor: sup,
        programs: instances
            .into_iter()
            .map(|(name, inst)| (name, inst.config))
            .collect(),
        networks: networks.valid,
    };
    Ok(Outcome {
        loaded: Loaded {
            config,
            format,
            findings,
        },
        ini_tables: (format == ConfigFormat::Ini)
            .then(|| (sup_table.unwrap_or_default(), program_defs)),
    })
}

/// Reads, parses and interpolates one included TOML file. `from`: the
/// include that named it.
fn read_file(
    diag: &mut Diag,
    path: &Path,
    from: Option<Loc>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(FileId, Table)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            let message = format!("cannot read config file {}: {e}", path.display());
            match from {
                Some(loc) => diag.error(loc, None, format!("include: {message}")),
                None => diag.push(ConfigError::file(path, message)),
            }
            return None;
        }
    };
    let id = diag.add_source(path.to_path_buf(), text.clone());
    parse_toml(diag, id, &text, env).map(|t| (id, t))
}

/// Parses and interpolates one registered TOML file.
fn parse_toml(
    diag: &mut Diag,
    id: FileId,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Table> {
    match raw::parse(id, text) {
        Ok(mut table) => {
            env::interpolate_tree(diag, text, &mut table, env);
            Some(table)
        }
        Err(e) => {
            let loc = Loc {
                file: id,
                offset: e.offset,
            };
            diag.error(loc, None, format!("invalid TOML: {}", e.message));
            None
        }
    }
}

/// Adds one replica; a name made by `process_name` must be a valid name,
/// and no two processes may have the same name.
fn add_instance(
    diag: &mut Diag,
    instances: &mut BTreeMap<ProgramName, Instance>,
    template: &program::Template,
    table_loc: Loc,
    inst: Instance,
) {
    let name = inst.config.name.as_str();
    let program = template.base.name.as_str();
    let at = template
        .process_name
        .as_ref()
        .map_or(table_loc, |(_, loc)| *loc);
    if template.process_name.is_some() {
        if let Err(e) = units::check_name(name) {
            diag.error(at, Some(program), format!("process_name: {e}"));
            return;
        }
    }
    if let Some(other) = instances.get(name) {
        let message = format!(
            "process name \"{name}\" is used twice (also by a process of group \"{}\"); process_name must give every process its own name",
            other.config.group
        );
        diag.error(at, Some(program), message);
        return;
    }
    instances.insert(inst.config.name.clone(), inst);
}

/// A program's `group` must not be the name of another program.
fn check_groups(diag: &mut Diag, instances: &BTreeMap<ProgramName, Instance>) {
    for inst in instances.values() {
        let group: &str = &inst.config.group;
        let own = inst.config.name.as_str();
        let template = own.split(':').next().unwrap_or(own);
        if group != template && instances.contains_key(group) {
            diag.error(
                inst.loc,
                Some(own),
                format!("group \"{group}\" has the name of program \"{group}\" (give the group another name)"),
            );
        }
    }
}

/// Sorts a file's top-level tables into `parts`; returns `[supervisor]`.
fn split_top(
    diag: &mut Diag,
    file: FileId,
    root: Table,
    main: bool,
    parts: &mut Parts,
) -> Option<Table> {
    let mut sup = None;
    for entry in root.entries {
        let key = entry.key.as_str();
        if !TOP.contains(&key) {
            diag.error(
                entry.key_loc,
                None,
                format!(
                    "unknown top-level key \"{key}\", expected [supervisor], [programs.NAME] or [networks.NAME]{}",
                    did_you_mean(key, TOP)
                ),
            );
            continue;
        }
        let Value::Table(table) = entry.node.value else {
            let found = units::describe(&entry.node);
            diag.error(
                entry.node.loc,
                None,
                format!("{key}: expected a table, found {found}"),
            );
            continue;
        };
        match key {
            "supervisor" if !main => diag.error(
                entry.key_loc,
                None,
                "[supervisor] is only allowed in the main config file, not in an included file",
            ),
            "supervisor" => sup = Some(table),
            _ => {
                let list = if key == "programs" {
                    &mut parts.programs
                } else {
                    &mut parts.networks
                };
                list.extend(table.entries.into_iter().map(|e| Defined {
                    name: e.key,
                    key_loc: e.key_loc,
                    node: e.node,
                    file,
                }));
            }
        }
    }
    sup
}

/// Drops (and reports) a second definition of the same name across files.
fn unique(diag: &mut Diag, defs: Vec<Defined>, what: &str) -> Vec<Defined> {
    let mut seen: BTreeMap<String, Loc> = BTreeMap::new();
    let mut out = Vec::new();
    for def in defs {
        if let Some(first) = seen.get(&def.name) {
            let first_path = diag.path(first.file).display().to_string();
            let here = diag.path(def.file).display().to_string();
            let message = format!(
                "{what} \"{}\" is defined twice: in {first_path} and in {here}",
                def.name
            );
            diag.error(def.key_loc, None, message);
            continue;
        }
        seen.insert(def.name.clone(), def.key_loc);
        out.push(def);
    }
    out
}

/// Files named by `include` patterns (relative to `base`), in order, each once,
/// never the main file. A glob matching nothing is fine; a literal path that
/// does not exist is an error.
fn expand_includes(
    diag: &mut Diag,
    patterns: &[(String, Loc)],
    base: &Path,
    main: &Path,
) -> Vec<(PathBuf, Loc)> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let mut seen = BTreeSet::from([canonical(main)]);
    let mut files = Vec::new();
    for (pattern, loc) in patterns {
        let full = units::path_in(base, pattern);
        let mut matched = Vec::new();
        if pattern.contains(['*', '?', '[']) {
            let Some(text) = full.to_str() else {
                diag.error(*loc, None, "include: pattern is not valid UTF-8");
                continue;
            };
            match glob::glob(text) {
                Ok(paths) => {
                    for p in paths {
                        match p {
                            Ok(p) if p.is_file() => matched.push(p),
                            Ok(_) => {}
                            Err(e) => diag.error(*loc, None, format!("include: {e}")),
                        }
                    }
                }
                Err(e) => diag.error(
                    *loc,
                    None,
                    format!("include: invalid pattern \"{pattern}\": {e}"),
                ),
            }
            matched.sort();
        } else if full.is_file() {
            matched.push(full);
        } else {
            diag.error(
                *loc,
                None,
                format!("include: file {} does not exist", full.display()),
            );
        }
        for p in matched {
            if seen.insert(canonical(&p)) {
                files.push((p, *loc));
            }
        }
    }
    files
}

/// Two streams (of any programs) writing the same log file is an error.
fn check_log_files(diag: &mut Diag, instances: &BTreeMap<ProgramName, Instance>) {
    let mut owners: BTreeMap<&Path, (&str, &str)> = BTreeMap::new();
    for (name, inst) in instances {
        let streams = [
            ("stdout", &inst.config.stdout),
            ("stderr", &inst.config.stderr),
        ];
        for (i, (stream, log)) in streams.into_iter().enumerate() {
            let LogFile::Path(path) = &log.logfile else {
                continue;
            };
            match owners.get(path.as_path()) {
                Some((other, other_stream)) => diag.error(
                    inst.log_locs[i],
                    Some(name),
                    format!(
                        "{stream}_logfile: {} is also the {other_stream} log of program \"{other}\" (use {{process_num}} to give replicas their own files)",
                        path.display()
                    ),
                ),
                None => {
                    owners.insert(path, (name, stream));
                }
            }
        }
    }
}
