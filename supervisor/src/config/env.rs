//! `${NAME}` / `${NAME:-default}` / `$$` interpolation of string values.
//!
//! Applied to every string value of a parsed file (inside arrays and tables
//! too, never to keys) before anything reads it. Rules:
//! - `${NAME}`: the variable's value; unset is an error naming it.
//! - `${NAME:-default}`: the value, or `default` (taken literally) when the
//!   variable is unset or empty, as in the shell.
//! - `$$`: a literal `$`.
//! - a `$` followed by anything else is kept as is (`$HOME` stays `$HOME`).
//!
//! The lookup is a closure so tests do not depend on the process environment.

use super::error::Diag;
use super::raw::{Loc, Node, Table, Value};

/// Why a string could not be interpolated; `at` is a byte offset in the string.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct EnvError {
    pub at: usize,
    pub message: String,
}

/// Expands one string.
pub(super) fn interpolate(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, EnvError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let at = s.len() - rest.len() + i;
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                return Err(EnvError {
                    at,
                    message: "unterminated \"${\" (write \"$$\" for a literal \"$\")".into(),
                });
            };
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !valid_name(name) {
                return Err(EnvError {
                    at,
                    message: format!(
                        "invalid variable reference \"${{{inner}}}\" (expected ${{NAME}} or ${{NAME:-default}})"
                    ),
                });
            }
            match (env(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(EnvError {
                        at,
                        message: format!(
                            "environment variable \"{name}\" is not set (use ${{{name}:-default}} to give a default)"
                        ),
                    })
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Interpolates every string value of a parsed file in place, reporting each
/// failure at the string (at the exact character when the literal has no
/// escapes) and, under `[programs.NAME]`, naming the program.
pub(super) fn interpolate_tree(
    diag: &mut Diag,
    source_text: &str,
    root: &mut Table,
    env: &dyn Fn(&str) -> Option<String>,
) {
    for entry in &mut root.entries {
        match &mut entry.node.value {
            Value::Table(programs) if entry.key == "programs" => {
                for program in &mut programs.entries {
                    let name = Some(program.key.as_str());
                    interpolate_node(diag, source_text, &mut program.node, name, env);
                }
            }
            _ => interpolate_node(diag, source_text, &mut entry.node, None, env),
        }
    }
}

fn interpolate_node(
    diag: &mut Diag,
    text: &str,
    node: &mut Node,
    program: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) {
    match &mut node.value {
        Value::Str(s) => match interpolate(s, env) {
            Ok(v) => *s = v,
            Err(e) => {
                let loc = exact_loc(text, node.loc, s, e.at);
                diag.error(loc, program, e.message);
            }
        },
        Value::Array(items) => {
            for item in items {
                interpolate_node(diag, text, item, program, env);
            }
        }
        Value::Table(t) => {
            for entry in &mut t.entries {
                interpolate_node(diag, text, &mut entry.node, program, env);
            }
        }
        _ => {}
    }
}

/// The position of byte `at` of a string value: exact when the source literal
/// is a one-line string without escapes, else the start of the literal.
fn exact_loc(text: &str, loc: Loc, value: &str, at: usize) -> Loc {
    let literal = &text[loc.offset.min(text.len())..];
    let plain = ['"', '\''].iter().any(|q| {
        literal.starts_with(*q)
            && literal[1..].starts_with(value)
            && literal[1 + value.len()..].starts_with(*q)
    });
    if plain && !literal.starts_with("\"\"\"") && !literal.starts_with("'''") {
        Loc {
            file: loc.file,
            offset: loc.offset + 1 + at,
        }
    } else {
        loc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/root".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn ok(s: &str) -> String {
        interpolate(s, &env).unwrap()
    }

    #[test]
    fn expands_every_form() {
        assert_eq!(ok("${HOME}/x"), "/root/x");
        assert_eq!(ok("a${HOME}b${HOME}"), "a/rootb/root");
        assert_eq!(ok("${NOPE:-/tmp}"), "/tmp");
        assert_eq!(ok("${HOME:-/tmp}"), "/root");
        assert_eq!(ok("${EMPTY:-dflt}"), "dflt");
        assert_eq!(ok("${EMPTY}"), "");
        assert_eq!(ok("${NOPE:-}"), "");
        assert_eq!(ok("cost $$5"), "cost $5");
        assert_eq!(ok("$$${HOME}"), "$/root");
        assert_eq!(ok("$HOME and $ alone $"), "$HOME and $ alone $");
        assert_eq!(ok("no dollars"), "no dollars");
        assert_eq!(ok("${NOPE:-a:-b}"), "a:-b");
    }

    #[test]
    fn reports_errors_with_offsets() {
        let e = interpolate("ab${MISSING}", &env).unwrap_err();
        assert_eq!(e.at, 2);
        assert!(
            e.message.contains("\"MISSING\" is not set"),
            "{}",
            e.message
        );
        let e = interpolate("x${HOME", &env).unwrap_err();
        assert_eq!(e.at, 1);
        assert!(e.message.contains("unterminated"));
        let e = interpolate("${1X}", &env).unwrap_err();
        assert!(
            e.message.contains("invalid variable reference \"${1X}\""),
            "{}",
            e.message
        );
        assert!(interpolate("${}", &env).is_err());
    }

    #[test]
    fn error_position_points_into_plain_literals() {
        let text = "a = \"xy${NOPE}\"\nb = \"\\t${NOPE}\"\n";
        let mut diag = Diag::default();
        let f = diag.add_source("t.toml".into(), text.into());
        let mut table = super::super::raw::parse(f, text).unwrap();
        interpolate_tree(&mut diag, text, &mut table, &env);
        let errs = diag.into_errors().0;
        assert_eq!(errs.len(), 2);
        assert_eq!((errs[0].line, errs[0].column), (Some(1), Some(8)));
        assert_eq!((errs[1].line, errs[1].column), (Some(2), Some(5)));
    }
}
