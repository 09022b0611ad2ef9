//! A program's (or `[supervisor]`'s) environment: the `environment` table,
//! the `environment_file` dotenv files, and their merge. Order, later
//! winning: `[supervisor] environment_file`, `[supervisor] environment`, the
//! program's `environment_file`, the program's `environment`.
//!
//! Env file syntax: blank lines and `#` comment lines are skipped; a line may
//! start with `export `; `KEY=value` (blanks around `=` allowed) where KEY is
//! `[A-Za-z_][A-Za-z0-9_.]*`; an unquoted value is trimmed and ends at a `#`
//! that follows a blank; `'single quotes'` are literal; `"double quotes"`
//! understand `\n`, `\t`, `\r`, `\"`, `\\` and `\$`; both quotes may span
//! lines. Nothing is interpolated (`$X` stays `$X`): the file means what it
//! says, whatever the daemon's environment. A line that fits none of this is
//! an error at its file and line.
//!
//! A small parser of our own rather than `dotenvy`: that crate interpolates
//! from the process environment (a hidden input to a load that must be
//! pure) and reports positions within a line rather than the line of the
//! file. Reading the env files is the only I/O here. Called by the
//! `[supervisor]` and program readers.

use std::collections::BTreeMap;
use std::path::Path;

use super::raw::{Loc, Node, Value};
use super::read::Reader;
use super::units;

/// `inherited`, then the table's `environment_file`s, then its `environment`.
pub(super) fn merged(
    r: &mut Reader,
    base: &Path,
    inherited: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = inherited.clone();
    if let Some(node) = r.node("environment_file") {
        for item in units::items(node) {
            if let Some(path) = r.check("environment_file", item, units::path(base, item)) {
                env.extend(read_file(r, &path, item.loc));
            }
        }
    }
    if let Some(node) = r.node("environment") {
        env.extend(table(r, node));
    }
    env
}

/// One env file's pairs; errors reported at the file's bad line (or at
/// `at`, the key naming it, when it cannot be read).
fn read_file(r: &mut Reader, path: &Path, at: Loc) -> Vec<(String, String)> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            r.error(
                at,
                format!("environment_file: cannot read {}: {e}", path.display()),
            );
            return Vec::new();
        }
    };
    match parse(&text) {
        Ok(pairs) => pairs,
        Err(e) => {
            let file = r.diag.add_source(path.to_path_buf(), text);
            let program = r.program;
            r.diag.error(
                Loc {
                    file,
                    offset: e.offset,
                },
                program,
                format!("environment_file: {}", e.message),
            );
            Vec::new()
        }
    }
}

fn table(r: &mut Reader, node: &Node) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Value::Table(table) = &node.value else {
        let found = units::describe(node);
        r.error(
            node.loc,
            format!("environment: expected a table like {{ KEY = \"value\" }}, found {found}"),
        );
        return env;
    };
    for entry in &table.entries {
        let key = &entry.key;
        if key.is_empty() || key.contains(['=', '\0']) {
            r.error(
                entry.key_loc,
                format!("environment: invalid variable name {key:?}"),
            );
            continue;
        }
        let value = match &entry.node.value {
            Value::Str(s) => s.clone(),
            Value::Int { value, .. } => value.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                let found = units::describe(&entry.node);
                r.error(
                    entry.node.loc,
                    format!("environment: {key}: expected a string, found {found}"),
                );
                continue;
            }
        };
        if value.contains('\0') {
            r.error(
                entry.node.loc,
                format!("environment: {key}: value contains a NUL byte"),
            );
            continue;
        }
        env.insert(key.clone(), value);
    }
    env
}

/// A bad line: byte offset in the file and what is wrong.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct EnvFileError {
    pub offset: usize,
    pub message: String,
}

/// Parses a whole env file into `(key, value)` pairs in file order.
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, EnvFileError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line = &text[pos..line_end];
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if body.trim().is_empty() || body.starts_with('#') {
            pos = line_end + 1;
            continue;
        }
        let start = pos + indent;
        let body = body
            .strip_prefix("export")
            .filter(|rest| rest.starts_with([' ', '\t']))
            .map_or(body, str::trim_start);
        let err = |offset: usize, message: String| EnvFileError { offset, message };
        let Some(eq) = body.find('=') else {
            return Err(err(
                start,
                format!("expected KEY=value, found {:?}", body.trim_end()),
            ));
        };
        let key = body[..eq].trim();
        if !valid_key(key) {
            return Err(err(start, format!("invalid variable name {key:?}")));
        }
        let key_offset = pos + line.len() - body.len();
        let value_start = key_offset + eq + 1;
        let rest = &text[value_start..];
        let lead = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let (value, next) = value(text, value_start + lead).map_err(|m| err(start, m))?;
        out.push((key.to_string(), value));
        pos = next;
    }
    Ok(out)
}

fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c == '.' || c.is_ascii_alphanumeric())
}

/// The value starting at `at`, and where the next line starts.
fn value(text: &str, at: usize) -> Result<(String, usize), String> {
    let rest = &text[at..];
    let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
        let end = rest.find('\n').map_or(rest.len(), |i| i);
        let line = rest[..end].trim_end_matches('\r');
        let cut = line
            .char_indices()
            .find(|&(i, c)| c == '#' && i > 0 && line[..i].ends_with([' ', '\t']))
            .map_or(line.len(), |(i, _)| i);
        return Ok((line[..cut].trim_end().to_string(), at + end + 1));
    };
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    loop {
        let Some((i, c)) = chars.next() else {
            return Err(format!("unterminated {quote}quote{quote}"));
        };
        match c {
            c if c == quote => {
                let after = &rest[i + 1..];
                let end = after.find('\n').map_or(after.len(), |j| j);
                let tail = after[..end].trim();
                if !(tail.is_empty() || tail.starts_with('#')) {
                    return Err(format!(
                        "unexpected {tail:?} after the closing {quote}quote{quote}"
                    ));
                }
                return Ok((out, at + i + 1 + end + 1));
            }
            '\\' if quote == '"' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, e @ ('"' | '\\' | '$'))) => out.push(e),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => return Err(format!("unterminated {quote}quote{quote}")),
            },
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<(String, String)> {
        parse(text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn pairs(text: &str) -> Vec<(&'static str, String)> {
        ok(text)
            .into_iter()
            .map(|(k, v)| (&*Box::leak(k.into_boxed_str()), v))
            .collect()
    }

    #[test]
    fn every_form() {
        let text = "# comment\n\nA=1\nexport B = two words  # note\nC='lit $X \\n'\nD=\"a\\tb\\n\\\"q\\\" \\$Y\"\n  E=\nF=x#not-a-comment\nexport=3\nG=\"multi\nline\" # c\nH.I=y\n";
        assert_eq!(
            pairs(text),
            [
                ("A", "1".into()),
                ("B", "two words".into()),
                ("C", "lit $X \\n".into()),
                ("D", "a\tb\n\"q\" $Y".into()),
                ("E", String::new()),
                ("F", "x#not-a-comment".into()),
                ("export", "3".into()),
                ("G", "multi\nline".into()),
                ("H.I", "y".into()),
            ]
        );
    }

    #[test]
    fn crlf_and_no_final_newline() {
        assert_eq!(
            pairs("A=1\r\nB=\"2\"\r\nC=3"),
            [("A", "1".into()), ("B", "2".into()), ("C", "3".into())]
        );
    }

    #[test]
    fn bad_lines_are_errors_at_their_line() {
        let text = "A=1\nnot a pair\n";
        let e = parse(text).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("expected KEY=value"), "{}", e.message);
        let e = parse("A=1\n1X=2\n").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("invalid variable name"));
        let e = parse("A=1\nB=\"open\n").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("unterminated"));
        let e = parse("B='x' y\n").unwrap_err();
        assert!(e.message.contains("after the closing"), "{}", e.message);
    }
}
