//! supervisord's INI syntax, as lenient as its parser (Python's
//! `RawConfigParser` with `inline_comment_prefixes=(';', '#')` and
//! `strict=False`): text → sections of `key = value` entries, each with the
//! byte offsets of its section header, key and value.
//!
//! Rules, as supervisord reads them:
//! - a line whose first non-blank character is `;` or `#` is a comment;
//!   `;` or `#` after whitespace starts an inline comment;
//! - `[name]` starts a section (the name is what lies between the first `[`
//!   and the last `]`); section names keep their case, keys are lowercased;
//! - `key = value` or `key: value` (the first `=` or `:` splits); values are
//!   trimmed; an empty value is allowed;
//! - a line indented deeper than its key's line continues the value (joined
//!   with `\n`); blank lines inside a continued value are kept, trailing ones
//!   dropped;
//! - a section written twice, or a key written twice, is not an error: the
//!   sections are merged later ([`super::merge`]) and the last value wins.
//!
//! Pure: called once per file by `ini::read_files`.

use crate::config::raw::{FileId, Loc};

/// One `[section]` as written in one file.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::config) struct Section {
    pub name: String,
    /// Where the header's name starts (just after `[`).
    pub loc: Loc,
    pub entries: Vec<Entry>,
}

/// One `key = value`.
#[derive(Debug, Clone, PartialEq)]
pub(in crate::config) struct Entry {
    /// Lowercased, trimmed.
    pub key: String,
    pub key_loc: Loc,
    /// Trimmed; continuation lines joined with `\n`.
    pub value: String,
    /// Where the value's first character is (or where it would be, when empty).
    pub value_loc: Loc,
}

impl Entry {
    /// The position of byte `at` of the value: exact on a one-line value,
    /// else the start of the value.
    pub fn loc_at(&self, at: usize) -> Loc {
        if self.value.contains('\n') {
            self.value_loc
        } else {
            Loc {
                file: self.value_loc.file,
                offset: self.value_loc.offset + at.min(self.value.len()),
            }
        }
    }
}

/// A line supervisord's parser would refuse.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::config) struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// Splits one file's text into sections.
pub(in crate::config) fn parse(file: FileId, text: &str) -> Result<Vec<Section>, SyntaxError> {
    let mut sections: Vec<Section> = Vec::new();
    // Indentation of the current key's line, while its value may continue.
    let mut open_value: Option<usize> = None;
    let mut blank_run = 0usize;
    let mut offset = 0usize;
    for raw_line in text.split_inclusive('\n') {
        let start = offset;
        offset += raw_line.len();
        let line = raw_line.trim_end_matches(['\n', '\r']);
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.starts_with([';', '#']) {
            continue;
        }
        let body = strip_inline_comment(line);
        if body.trim().is_empty() {
            if open_value.is_some() {
                blank_run += 1;
            }
            continue;
        }
        if let (Some(key_indent), Some(section)) = (open_value, sections.last_mut()) {
            if indent > key_indent {
                let entry = section
                    .entries
                    .last_mut()
                    .expect("an open value has an entry");
                for _ in 0..blank_run {
                    entry.value.push('\n');
                }
                if !entry.value.is_empty() || blank_run > 0 {
                    entry.value.push('\n');
                }
                entry.value.push_str(body.trim());
                blank_run = 0;
                continue;
            }
        }
        open_value = None;
        blank_run = 0;
        let body_trimmed = body.trim();
        if body_trimmed.starts_with('[') {
            let close = body_trimmed.rfind(']').filter(|&i| i > 1);
            let Some(close) = close else {
                return Err(SyntaxError {
                    offset: start + indent,
                    message:
                        "a section header needs a name and a closing \"]\", like [program:web]"
                            .into(),
                });
            };
            let name = &body_trimmed[1..close];
            let lead = name.len() - name.trim_start().len();
            sections.push(Section {
                name: name.trim().to_string(),
                loc: Loc {
                    file,
                    offset: start + indent + 1 + lead,
                },
                entries: Vec::new(),
            });
            continue;
        }
        let Some(split) = body.find(['=', ':']) else {
            return Err(SyntaxError {
                offset: start + indent,
                message: format!(
                    "expected \"key = value\", a [section] or a comment, found {:?}",
                    body_trimmed
                ),
            });
        };
        let key = body[..split].trim();
        if key.is_empty() {
            return Err(SyntaxError {
                offset: start + indent,
                message: "a key is missing before \"=\"".into(),
            });
        }
        let Some(section) = sections.last_mut() else {
            return Err(SyntaxError {
                offset: start + indent,
                message: format!(
                    "\"{key}\" is outside any section (start the file with a header such as [supervisord])"
                ),
            });
        };
        let after = &body[split + 1..];
        let value_lead = after.len() - after.trim_start().len();
        section.entries.push(Entry {
            key: key.to_ascii_lowercase(),
            key_loc: Loc {
                file,
                offset: start + indent,
            },
            value: after.trim().to_string(),
            value_loc: Loc {
                file,
                offset: start + split + 1 + value_lead,
            },
        });
        open_value = Some(indent);
    }
    Ok(sections)
}

/// The line up to a `;` or `#` that follows whitespace.
fn strip_inline_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if (b == b';' || b == b'#') && i > 0 && bytes[i - 1].is_ascii_whitespace() {
            return &line[..i];
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::raw::Source;

    fn sections(text: &str) -> Vec<Section> {
        parse(0, text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn pairs(s: &Section) -> Vec<(&str, &str)> {
        s.entries
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect()
    }

    #[test]
    fn comments_full_line_and_inline_after_whitespace() {
        let s = sections(
            "; top\n# also\n[program:web]  ; trailing\n  ; indented comment\ncommand = run --a=b;c # note\nurl = http://x/#frag\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].name, "program:web");
        assert_eq!(
            pairs(&s[0]),
            [("command", "run --a=b;c"), ("url", "http://x/#frag")]
        );
    }

    #[test]
    fn colon_or_equals_and_keys_lowercased() {
        let s = sections("[supervisord]\nNoDaemon: true\nlogfile=\nchmod = 0700\n");
        assert_eq!(
            pairs(&s[0]),
            [("nodaemon", "true"), ("logfile", ""), ("chmod", "0700")]
        );
    }

    #[test]
    fn continuation_lines_join_with_newlines() {
        let s =
            sections("[program:a]\nenvironment = A=1,\n    B=2,\n\n    C=3\n\ncommand=x\n  more\n");
        assert_eq!(
            pairs(&s[0]),
            [("environment", "A=1,\nB=2,\n\nC=3"), ("command", "x\nmore")]
        );
    }

    #[test]
    fn repeated_sections_stay_separate_here() {
        let s = sections("[supervisord]\na=1\n[supervisord]\nb=2\n");
        assert_eq!(s.len(), 2);
        assert_eq!(pairs(&s[1]), [("b", "2")]);
    }

    #[test]
    fn positions_point_at_names_keys_and_values() {
        let text = "[supervisord]\n\n  [ program:web ]\ncommand =  /bin/x\n";
        let src = Source::new("s.conf".into(), text.into());
        let s = sections(text);
        assert_eq!(src.line_col(s[1].loc.offset), (3, 5));
        let e = &s[1].entries[0];
        assert_eq!(src.line_col(e.key_loc.offset), (4, 1));
        assert_eq!(src.line_col(e.value_loc.offset), (4, 12));
        assert_eq!(src.line_col(e.loc_at(5).offset), (4, 17));
    }

    #[test]
    fn broken_lines_are_errors_with_offsets() {
        let text = "[supervisord]\nnodaemon\n";
        let e = parse(0, text).unwrap_err();
        assert_eq!(e.offset, 14);
        assert!(
            e.message.contains("expected \"key = value\""),
            "{}",
            e.message
        );
        let e = parse(0, "command=x\n").unwrap_err();
        assert!(e.message.contains("outside any section"), "{}", e.message);
        let e = parse(0, "[]\n").unwrap_err();
        assert!(e.message.contains("section header"), "{}", e.message);
        let e = parse(0, "[a]\n=1\n").unwrap_err();
        assert!(e.message.contains("key is missing"), "{}", e.message);
    }

    #[test]
    fn crlf_line_ends() {
        let s = sections("[a]\r\nx = 1\r\n  y\r\n");
        assert_eq!(pairs(&s[0]), [("x", "1\ny")]);
    }
}
