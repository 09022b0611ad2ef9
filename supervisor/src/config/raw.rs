//! Parsing only: TOML text → a tree of values that remember where they were
//! written (file, byte offset), and turning offsets into line/column/snippet.
//!
//! The tree is built from `toml_edit`'s spanned document so every key and
//! value, however deeply nested, keeps its position; `validate.rs` and its
//! helpers walk it and report errors at the right place. Nothing here knows
//! what a key means. Called by `validate::load` once per file read.

use std::ops::Range;
use std::path::PathBuf;

/// Index of a file in the load's list of sources.
pub(super) type FileId = usize;

/// Where something was written: file and byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Loc {
    pub file: FileId,
    pub offset: usize,
}

/// One config file's text, with a line index for turning offsets into positions.
#[derive(Debug)]
pub(super) struct Source {
    pub path: PathBuf,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(path: PathBuf, text: String) -> Source {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            path,
            text,
            line_starts,
        }
    }

    /// 1-based line and (character) column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }

    /// Text of a 1-based line, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |&next| next - 1);
        self.text[start..end].trim_end_matches('\r')
    }
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Str(String),
    /// An integer and its literal text (`0o022`, `22`), for keys read as octal.
    Int {
        value: i64,
        repr: String,
    },
    Float(f64),
    Bool(bool),
    Datetime(String),
    Array(Vec<Node>),
    Table(Table),
}

impl Value {
    /// "a string", "an integer", … for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int { .. } => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Datetime(_) => "a date-time",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// A value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Node {
    pub value: Value,
    pub loc: Loc,
}

/// One `key = value` (or `[key]` table) of a table.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Entry {
    pub key: String,
    pub key_loc: Loc,
    pub node: Node,
}

/// A table's entries in document order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Table {
    pub entries: Vec<Entry>,
}

impl Table {
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A TOML syntax error: byte offset and the parser's message.
#[derive(Debug)]
pub(super) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// Parses one file's text into a located tree.
pub(super) fn parse(file: FileId, text: &str) -> Result<Table, SyntaxError> {
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| SyntaxError {
        offset: e.span().map_or(0, |s| s.start),
        message: e.message().trim().to_string(),
    })?;
    let root = Loc { file, offset: 0 };
    Ok(convert_table(file, text, doc.as_table(), root))
}

fn loc_of(file: FileId, span: Option<Range<usize>>, fallback: Loc) -> Loc {
    span.map_or(fallback, |s| Loc {
        file,
        offset: s.start,
    })
}

fn convert_table(file: FileId, text: &str, table: &toml_edit::Table, here: Loc) -> Table {
    let mut entries = Vec::new();
    for (key, item) in table.iter() {
        let key_span = table.get_key_value(key).and_then(|(k, _)| k.span());
        let key_loc = loc_of(file, key_span, here);
        if let Some(node) = convert_item(file, text, item, key_loc) {
            entries.push(Entry {
                key: key.to_string(),
                key_loc,
                node,
            });
        }
    }
    entries.sort_by_key(|e| e.key_loc);
    Table { entries }
}

fn convert_item(file: FileId, text: &str, item: &toml_edit::Item, key_loc: Loc) -> Option<Node> {
    match item {
        toml_edit::Item::None => None,
        toml_edit::Item::Value(v) => Some(convert_value(file, text, v, key_loc)),
        toml_edit::Item::Table(t) => {
            let loc = loc_of(file, t.span(), key_loc);
            Some(Node {
                value: Value::Table(convert_table(file, text, t, loc)),
                loc,
            })
        }
        toml_edit::Item::ArrayOfTables(a) => {
            let loc = loc_of(file, a.span(), key_loc);
            let nodes = a
                .iter()
                .map(|t| {
                    let tloc = loc_of(file, t.span(), loc);
                    Node {
                        value: Value::Table(convert_table(file, text, t, tloc)),
                        loc: tloc,
                    }
                })
                .collect();
            Some(Node {
                value: Value::Array(nodes),
                loc,
            })
        }
    }
}

fn convert_value(file: FileId, text: &str, value: &toml_edit::Value, fallback: Loc) -> Node {
    let span = value.span();
    let loc = loc_of(file, span.clone(), fallback);
    let value = match value {
        toml_edit::Value::String(s) => Value::Str(s.value().clone()),
        toml_edit::Value::Integer(i) => Value::Int {
            value: *i.value(),
            repr: span
                .and_then(|s| text.get(s))
                .map_or_else(|| i.value().to_string(), |s| s.trim().to_string()),
        },
        toml_edit::Value::Float(f) => Value::Float(*f.value()),
        toml_edit::Value::Boolean(b) => Value::Bool(*b.value()),
        toml_edit::Value::Datetime(d) => Value::Datetime(d.value().to_string()),
        toml_edit::Value::Array(a) => Value::Array(
            a.iter()
                .map(|v| convert_value(file, text, v, loc))
                .collect(),
        ),
        toml_edit::Value::InlineTable(t) => {
            let mut entries = Vec::new();
            for (key, v) in t.iter() {
                let key_span = t.get_key_value(key).and_then(|(k, _)| k.span());
                let key_loc = loc_of(file, key_span, loc);
                entries.push(Entry {
                    key: key.to_string(),
                    key_loc,
                    node: convert_value(file, text, v, key_loc),
                });
            }
            entries.sort_by_key(|e| e.key_loc);
            Value::Table(Table { entries })
        }
    };
    Node { value, loc }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(src: &Source, loc: Loc) -> (usize, usize) {
        src.line_col(loc.offset)
    }

    #[test]
    fn keys_and_values_keep_their_positions() {
        let text = "[supervisor]\nminfds = 10\n\n[programs.web]\ncommand = [\"a\", \"b\"]\nenv = { A = \"1\" }\n";
        let src = Source::new("x.toml".into(), text.into());
        let root = parse(0, text).unwrap();
        let programs = root.get("programs").unwrap();
        let Value::Table(programs) = &programs.node.value else {
            panic!()
        };
        let web = programs.get("web").unwrap();
        assert_eq!(pos(&src, web.key_loc), (4, 11));
        assert_eq!(pos(&src, web.node.loc), (4, 1));
        let Value::Table(web) = &web.node.value else {
            panic!()
        };
        let cmd = web.get("command").unwrap();
        assert_eq!(pos(&src, cmd.key_loc), (5, 1));
        assert_eq!(pos(&src, cmd.node.loc), (5, 11));
        let Value::Array(items) = &cmd.node.value else {
            panic!()
        };
        assert_eq!(pos(&src, items[1].loc), (5, 17));
        let env = web.get("env").unwrap();
        let Value::Table(env) = &env.node.value else {
            panic!()
        };
        let a = env.get("A").unwrap();
        assert_eq!(pos(&src, a.key_loc), (6, 9));
        assert_eq!(pos(&src, a.node.loc), (6, 13));
        assert_eq!(src.line_text(5), "command = [\"a\", \"b\"]");
    }

    #[test]
    fn integer_keeps_its_literal() {
        let root = parse(0, "a = 0o022\nb = 22\n").unwrap();
        assert_eq!(
            root.get("a").unwrap().node.value,
            Value::Int {
                value: 18,
                repr: "0o022".into()
            }
        );
        assert!(
            matches!(&root.get("b").unwrap().node.value, Value::Int { value: 22, repr } if repr == "22")
        );
    }

    #[test]
    fn syntax_error_has_offset() {
        let err = parse(0, "a = 1\nb = \n").unwrap_err();
        let src = Source::new("x".into(), "a = 1\nb = \n".into());
        assert_eq!(src.line_col(err.offset).0, 2);
    }
}
