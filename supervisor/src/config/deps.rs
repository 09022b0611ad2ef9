//! `depends_on`: resolves names (a group means all its replicas, else a unique
//! name), each with its condition, into [`super::ProgramConfig::depends_on`],
//! and rejects unknown names and cycles (each cycle reported once, with its path).
//!
//! Called by `validate::load` after replicas are expanded. Pure.

use super::{Condition, Dependency, ProgramName};
use std::collections::{BTreeMap, BTreeSet};

use super::error::Diag;
use super::program::Instance;
use super::raw::Loc;
use super::suggest::did_you_mean;

/// Fills every instance's `config.depends_on`. Names in `broken` (programs
/// whose table had errors already reported) are skipped silently.
pub(super) fn resolve(
    diag: &mut Diag,
    instances: &mut BTreeMap<ProgramName, Instance>,
    broken: &BTreeSet<String>,
) {
    let mut groups: BTreeMap<String, Vec<ProgramName>> = BTreeMap::new();
    for (name, inst) in instances.iter() {
        groups
            .entry(inst.config.group.to_string())
            .or_default()
            .push(name.clone());
    }
    let mut known: Vec<&str> = groups.keys().map(String::as_str).collect();
    known.extend(instances.keys().map(ProgramName::as_str));
    known.sort_unstable();
    known.dedup();

    // name -> [(dependency, where it was written)], and the conditions
    let mut edges: BTreeMap<ProgramName, Vec<(ProgramName, Loc)>> = BTreeMap::new();
    let mut conditions: BTreeMap<(ProgramName, ProgramName), Condition> = BTreeMap::new();
    for (name, inst) in instances.iter() {
        let mut out: Vec<(ProgramName, Loc)> = Vec::new();
        for (dep, condition, loc) in &inst.depends_on {
            let targets = match groups.get(dep) {
                Some(members) => members.clone(),
                None if instances.contains_key(dep.as_str()) => vec![dep.as_str().into()],
                None if broken.contains(dep) => continue,
                None => {
                    diag.error(
                        *loc,
                        Some(name),
                        format!(
                            "depends_on: unknown program \"{dep}\"{}",
                            did_you_mean(dep, &known)
                        ),
                    );
                    continue;
                }
            };
            for t in targets {
                if !out.iter().any(|(d, _)| *d == t) {
                    conditions.insert((name.clone(), t.clone()), *condition);
                    out.push((t, *loc));
                }
            }
        }
        edges.insert(name.clone(), out);
    }
    report_cycles(diag, &edges);
    for (name, inst) in instances.iter_mut() {
        let mut deps: Vec<Dependency> = edges[name]
            .iter()
            .map(|(d, _)| Dependency {
                name: d.clone(),
                condition: conditions[&(name.clone(), d.clone())],
            })
            .collect();
        deps.sort_by(|a, b| a.name.cmp(&b.name));
        inst.config.depends_on = deps;
    }
}

/// Depth-first search; each back edge closes a cycle, reported unless it
/// touches a program already named in a reported cycle.
fn report_cycles(diag: &mut Diag, edges: &BTreeMap<ProgramName, Vec<(ProgramName, Loc)>>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Color {
        White,
        Gray,
        Black,
    }
    let mut color: BTreeMap<&str, Color> =
        edges.keys().map(|k| (k.as_str(), Color::White)).collect();
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    for start in edges.keys() {
        if color[start.as_str()] != Color::White {
            continue;
        }
        color.insert(start, Color::Gray);
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        while let Some((node, next)) = stack.last_mut() {
            let node: &str = node;
            let Some((dep, _)) = edges[node].get(*next) else {
                color.insert(node, Color::Black);
                stack.pop();
                continue;
            };
            *next += 1;
            match color[dep.as_str()] {
                Color::White => {
                    color.insert(dep, Color::Gray);
                    stack.push((dep, 0));
                }
                Color::Gray => {
                    let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                    let cycle: Vec<&str> = stack[from..].iter().map(|(n, _)| *n).collect();
                    if cycle.iter().any(|n| reported.contains(n)) {
                        continue;
                    }
                    reported.extend(cycle.iter().copied());
                    let first = cycle[0];
                    let second = cycle.get(1).copied().unwrap_or(first);
                    let loc = edges[first]
                        .iter()
                        .find(|(d, _)| d == second)
                        .map(|(_, loc)| *loc)
                        .unwrap_or_else(|| edges[first][0].1);
                    let mut path = cycle.join(" -> ");
                    path.push_str(&format!(" -> {first}"));
                    diag.error(
                        loc,
                        Some(first),
                        format!("depends_on: dependency cycle: {path}"),
                    );
                }
                Color::Black => {}
            }
        }
    }
}
