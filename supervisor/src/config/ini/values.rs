//! supervisord's value types (its `datatypes.py`), read the way it reads
//! them: booleans `true/false/yes/no/on/off/1/0`, integers, byte sizes
//! (`50MB`, `1KB`, `2GB`, 1 KB = 1024), exit code lists (`0,2`), signal names
//! or numbers, and `KEY=value,KEY2="v,2"` pairs split with the same
//! tokenizer rules as its `dict_of_key_value_pairs` (Python's posix `shlex`
//! with `/.+-():` counted as word characters).
//!
//! Each function returns the value or a lowercase message that does not name
//! the key (the caller adds it). Pure.

/// A boolean as supervisord spells them (case-insensitive).
pub(in crate::config) fn boolean(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!(
            "\"{s}\" is not a boolean (true/false, yes/no, on/off, 1/0)"
        )),
    }
}

/// An integer (Python's `int`: surrounding blanks, a sign and `_` allowed).
pub(in crate::config) fn integer(s: &str) -> Result<i64, String> {
    let t = s.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    let cleaned: String = digits.chars().filter(|&c| c != '_').collect();
    let valid = !digits.starts_with('_') && !digits.ends_with('_') && !digits.contains("__");
    match cleaned.parse::<i64>() {
        Ok(n) if valid => Ok(n),
        _ => Err(format!("\"{s}\" is not an integer")),
    }
}

/// A byte size: an integer with an optional `KB`, `MB` or `GB` suffix.
pub(in crate::config) fn byte_size(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let bad = || format!("\"{s}\" is not a size (such as 1024, 50MB, 1GB)");
    let suffixed = |suffix: &str, mult: u64| Some((lower.strip_suffix(suffix)?, mult));
    let (number, mult): (&str, u64) = suffixed("kb", 1 << 10)
        .or_else(|| suffixed("mb", 1 << 20))
        .or_else(|| suffixed("gb", 1 << 30))
        .unwrap_or((lower.as_str(), 1));
    let n = integer(number).map_err(|_| bad())?;
    let n = u64::try_from(n).map_err(|_| format!("\"{s}\" is negative"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("\"{s}\" is too large"))
}

/// `0,2`: exit codes from 0 to 255 (empty: none).
pub(in crate::config) fn exitcodes(s: &str) -> Result<Vec<i64>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|part| match integer(part) {
            Ok(n) if (0..=255).contains(&n) => Ok(n),
            Ok(n) => Err(format!("exit code {n} is out of range (0 to 255)")),
            Err(_) => Err(format!("\"{s}\" is not a list of exit codes like 0,2")),
        })
        .collect()
}

/// A signal name (`TERM`, `SIGTERM`) or number (`15`), as the name nsvisor reads.
pub(in crate::config) fn signal_name(s: &str) -> Result<String, String> {
    let t = s.trim();
    match t.parse::<i32>() {
        Ok(n) => nix::sys::signal::Signal::try_from(n)
            .map(|sig| sig.as_str().trim_start_matches("SIG").to_string())
            .map_err(|_| format!("{n} is not a signal number")),
        Err(_) => Ok(t.to_string()),
    }
}

/// One token of a key/value list, with its byte offset.
#[derive(Debug, PartialEq, Eq)]
struct Token {
    text: String,
    at: usize,
    /// A lone punctuation character (`=`, `,`), not a word or quoted string.
    punct: bool,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || "_/.+-():".contains(c)
}

/// Python posix-`shlex` tokens (words, quoted strings, single punctuation
/// characters; `#` starts a comment to the end of the line).
fn tokens(s: &str) -> Result<Vec<Token>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = s.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        if c == '#' {
            while chars.next_if(|&(_, c)| c != '\n').is_some() {}
            continue;
        }
        if !(is_word_char(c) || c == '"' || c == '\'' || c == '\\') {
            chars.next();
            out.push(Token {
                text: c.to_string(),
                at,
                punct: true,
            });
            continue;
        }
        let mut text = String::new();
        while let Some(&(i, c)) = chars.peek() {
            match c {
                '"' | '\'' => {
                    chars.next();
                    loop {
                        match chars.next() {
                            None => return Err((i, format!("unterminated {c}quote{c}"))),
                            Some((_, q)) if q == c => break,
                            Some((_, '\\')) if c == '"' => match chars.next() {
                                Some((_, e)) if e == '"' || e == '\\' => text.push(e),
                                Some((_, e)) => {
                                    text.push('\\');
                                    text.push(e);
                                }
                                None => return Err((i, format!("unterminated {c}quote{c}"))),
                            },
                            Some((_, q)) => text.push(q),
                        }
                    }
                }
                '\\' => {
                    chars.next();
                    if let Some((_, e)) = chars.next() {
                        text.push(e);
                    }
                }
                c if is_word_char(c) => {
                    chars.next();
                    text.push(c);
                }
                _ => break,
            }
        }
        out.push(Token {
            text,
            at,
            punct: false,
        });
    }
    Ok(out)
}

/// A problem in a key/value list: where (byte offset) and what.
#[derive(Debug, PartialEq, Eq)]
pub(in crate::config) struct PairsError {
    pub at: usize,
    pub message: String,
}

/// `KEY=value,KEY2="a, b"` → pairs in order, each with the offset of its
/// key. Like supervisord, the token after each value is taken as the
/// separator whatever it is; a separator other than `,` is returned in
/// `odd` (its offset and text) so the caller can warn about it.
pub(in crate::config) type Pairs = Vec<(String, String, usize)>;

pub(in crate::config) fn key_value_pairs(
    s: &str,
) -> Result<(Pairs, Vec<(usize, String)>), PairsError> {
    let toks = tokens(s).map_err(|(at, message)| PairsError { at, message })?;
    let mut pairs = Vec::new();
    let mut odd = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let (Some(k), Some(eq), Some(v)) = (toks.get(i), toks.get(i + 1), toks.get(i + 2)) else {
            return Err(PairsError {
                at: toks[i].at,
                message: "expected KEY=value pairs separated by commas (quote values holding spaces or commas)".into(),
            });
        };
        if !(eq.punct && eq.text == "=") {
            return Err(PairsError {
                at: eq.at,
                message: format!("expected \"=\" after \"{}\"", k.text),
            });
        }
        pairs.push((k.text.clone(), v.text.clone(), k.at));
        if let Some(sep) = toks.get(i + 3) {
            if !(sep.punct && sep.text == ",") {
                odd.push((sep.at, sep.text.clone()));
            }
        }
        i += 4;
    }
    Ok((pairs, odd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_in_every_spelling() {
        for t in ["true", "Yes", "ON", "1"] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for f in ["false", "no", "Off", "0"] {
            assert_eq!(boolean(f), Ok(false), "{f}");
        }
        assert!(boolean("maybe").unwrap_err().contains("not a boolean"));
    }

    #[test]
    fn integers_and_sizes() {
        assert_eq!(integer(" 10 "), Ok(10));
        assert_eq!(integer("+3"), Ok(3));
        assert_eq!(integer("1_000"), Ok(1000));
        assert!(integer("1.5").is_err());
        assert_eq!(byte_size("50MB"), Ok(50 << 20));
        assert_eq!(byte_size("1kb"), Ok(1024));
        assert_eq!(byte_size("2GB"), Ok(2 << 30));
        assert_eq!(byte_size("0"), Ok(0));
        assert_eq!(byte_size("50 MB"), Ok(50 << 20));
        assert!(byte_size("5TB").is_err());
        // A suffix is matched on characters, not on the last two bytes.
        assert!(byte_size("ϲb").is_err());
        assert!(byte_size("éb").is_err());
        assert!(byte_size("-1").unwrap_err().contains("negative"));
    }

    #[test]
    fn exit_code_lists() {
        assert_eq!(exitcodes("0,2"), Ok(vec![0, 2]));
        assert_eq!(exitcodes(" 0 , 1 "), Ok(vec![0, 1]));
        assert_eq!(exitcodes(""), Ok(vec![]));
        assert!(exitcodes("0,256").unwrap_err().contains("out of range"));
        assert!(exitcodes("0;2").is_err());
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_name("15"), Ok("TERM".into()));
        assert_eq!(signal_name("QUIT"), Ok("QUIT".into()));
        assert!(signal_name("999").is_err());
    }

    #[test]
    fn key_value_pairs_like_supervisord() {
        let (p, odd) =
            key_value_pairs(r#"A="x",B=y, C='a, b',PATH=/usr/bin:/bin,E="",F="q\"q""#).unwrap();
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v, _)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            p,
            [
                ("A", "x"),
                ("B", "y"),
                ("C", "a, b"),
                ("PATH", "/usr/bin:/bin"),
                ("E", ""),
                ("F", "q\"q")
            ]
        );
        assert!(odd.is_empty());
        // supervisord takes whatever follows a value as the separator.
        let (p, odd) = key_value_pairs("A=hello world").unwrap();
        assert_eq!(p[0].1, "hello");
        assert_eq!(odd, [(8, "world".to_string())]);
        let (p, _) = key_value_pairs("A=1,\nB=2").unwrap();
        assert_eq!((p[1].0.as_str(), p[1].2), ("B", 5));
    }

    #[test]
    fn key_value_errors() {
        assert!(key_value_pairs("A")
            .unwrap_err()
            .message
            .contains("KEY=value"));
        assert!(key_value_pairs("A;1")
            .unwrap_err()
            .message
            .contains("expected \"=\""));
        let e = key_value_pairs("A=\"x").unwrap_err();
        assert_eq!(e.at, 2);
        assert!(e.message.contains("unterminated"));
    }
}
