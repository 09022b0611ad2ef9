//! Value conversions shared by every section: seconds, sizes, octal modes,
//! signals, console modes, user specs, string lists.
//!
//! Each takes a parsed [`Node`] and returns the typed value or a lowercase
//! message saying what was expected and what was found; the caller prefixes
//! the key and reports it at the node. Pure: no syscalls.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::raw::{Node, Value};
use super::suggest::did_you_mean;
use super::{Condition, ConsoleMode, UserSpec};

/// Result of a conversion: the message does not name the key.
pub(super) type Conv<T> = Result<T, String>;

fn expected<T>(what: &str, node: &Node) -> Conv<T> {
    Err(format!("expected {what}, found {}", describe(node)))
}

/// `a string "x"`, `an integer 3`, `an array` … for messages.
pub(super) fn describe(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => format!("a string \"{s}\""),
        Value::Int { value, .. } => format!("an integer {value}"),
        Value::Float(f) => format!("a float {f}"),
        Value::Bool(b) => format!("a boolean {b}"),
        v => v.kind().to_string(),
    }
}

pub(super) fn string(node: &Node) -> Conv<String> {
    match &node.value {
        Value::Str(s) => Ok(s.clone()),
        _ => expected("a string", node),
    }
}

pub(super) fn non_empty_string(node: &Node) -> Conv<String> {
    let s = string(node)?;
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(s)
}

pub(super) fn boolean(node: &Node) -> Conv<bool> {
    match &node.value {
        Value::Bool(b) => Ok(*b),
        _ => expected("true or false", node),
    }
}

/// An integer in `min..=max`.
pub(super) fn int_in(node: &Node, min: i64, max: i64) -> Conv<i64> {
    let Value::Int { value, .. } = &node.value else {
        return expected(&range_text(min, max), node);
    };
    if *value > max && max >= i64::from(u32::MAX) {
        return Err(format!("{value} is too large (at most {max})"));
    }
    if *value < min || *value > max {
        return Err(format!(
            "{value} is out of range ({})",
            range_text(min, max)
        ));
    }
    Ok(*value)
}

fn range_text(min: i64, max: i64) -> String {
    if min >= 0 && max >= i64::from(u32::MAX) {
        format!("an integer ≥ {min}")
    } else {
        format!("an integer from {min} to {max}")
    }
}

pub(super) fn u32_any(node: &Node) -> Conv<u32> {
    int_in(node, 0, u32::MAX.into()).map(|v| v as u32)
}

/// Seconds as a non-negative integer or float.
pub(super) fn seconds(node: &Node) -> Conv<Duration> {
    let secs = match &node.value {
        Value::Int { value, .. } => *value as f64,
        Value::Float(f) => *f,
        _ => return expected("a number of seconds (integer or float)", node),
    };
    if secs < 0.0 || !secs.is_finite() {
        return Err(format!(
            "{secs} is not a valid number of seconds (must be ≥ 0)"
        ));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{secs} seconds is too large"))
}

/// A size in bytes: an integer, or a string like `"50MB"`, `"10 MiB"`, `"512"`
/// (K/KB/KiB = 1024, M… = 1024², G… = 1024³, as supervisord).
pub(super) fn size(node: &Node) -> Conv<u64> {
    match &node.value {
        Value::Int { value, .. } if *value >= 0 => Ok(*value as u64),
        Value::Int { value, .. } => Err(format!("{value} is not a valid size (must be ≥ 0)")),
        Value::Str(s) => parse_size(s),
        _ => expected(
            "a size (an integer number of bytes or a string like \"50MB\")",
            node,
        ),
    }
}

pub(super) fn parse_size(s: &str) -> Conv<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || {
        format!("invalid size \"{s}\" (expected a number of bytes with an optional unit: B, KB, MB, GB; 1KB = 1024 bytes)")
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size \"{s}\" is too large"))
}

/// An octal mode: a string of octal digits (`"022"`, `"0o022"`) or an
/// integer, whose digits are read as octal unless written `0o…` (so
/// `umask = 22` means 022, as in supervisord). At most `max`.
pub(super) fn octal(node: &Node, max: u32) -> Conv<u32> {
    let digits = match &node.value {
        Value::Str(s) => s.trim().to_string(),
        Value::Int { value, repr } => {
            if let Some(oct) = repr.strip_prefix("0o") {
                oct.replace('_', "")
            } else if *value >= 0 && !repr.starts_with("0x") && !repr.starts_with("0b") {
                value.to_string()
            } else {
                return Err(format!("{repr} is not an octal mode"));
            }
        }
        _ => return expected("an octal mode (a string like \"022\" or an integer)", node),
    };
    let digits = digits.strip_prefix("0o").unwrap_or(&digits);
    let mode = u32::from_str_radix(digits, 8)
        .map_err(|_| format!("\"{digits}\" is not an octal number"))?;
    if mode > max {
        return Err(format!("{mode:#o} is too large (at most {max:#o})"));
    }
    Ok(mode)
}

/// Signal names accepted by `stopsignal`, in their canonical spelling.
const SIGNALS: &[&str] = &[
    "TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2", "ABRT", "ALRM", "WINCH", "PWR", "CONT",
    "TSTP", "TTIN", "TTOU", "XCPU", "XFSZ", "VTALRM", "PROF", "IO", "SYS", "TRAP", "URG", "BUS",
    "SEGV", "FPE", "ILL", "PIPE", "CHLD", "STKFLT",
];

/// A signal name, case-insensitive, with or without `SIG` (`"term"`,
/// `"SIGTERM"`). `STOP` is refused: a stopped program never exits.
pub(super) fn signal(node: &Node) -> Conv<Signal> {
    let name = string(node).map_err(|_| {
        format!(
            "expected a signal name like \"TERM\", found {}",
            describe(node)
        )
    })?;
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    if bare == "STOP" {
        return Err(
            "SIGSTOP cannot stop a program (it pauses it); use TERM, INT, QUIT, KILL…".into(),
        );
    }
    if !SIGNALS.contains(&bare) {
        return Err(format!(
            "unknown signal \"{name}\"{}",
            did_you_mean(bare, SIGNALS)
        ));
    }
    Signal::from_str(&format!("SIG{bare}")).map_err(|_| format!("unknown signal \"{name}\""))
}

/// `"prefixed" | "raw" | "off"` (case-insensitive) or true (prefixed) / false (off).
pub(super) fn console(node: &Node) -> Conv<ConsoleMode> {
    const MODES: &[&str] = &["prefixed", "raw", "off"];
    match &node.value {
        Value::Bool(true) => Ok(ConsoleMode::Prefixed),
        Value::Bool(false) => Ok(ConsoleMode::Off),
        Value::Str(s) => match s.to_ascii_lowercase().as_str() {
            "prefixed" => Ok(ConsoleMode::Prefixed),
            "raw" => Ok(ConsoleMode::Raw),
            "off" => Ok(ConsoleMode::Off),
            _ => Err(format!(
                "invalid console mode \"{s}\", expected \"prefixed\", \"raw\" or \"off\"{}",
                did_you_mean(s, MODES)
            )),
        },
        _ => expected("\"prefixed\", \"raw\", \"off\" or a boolean", node),
    }
}

/// A `depends_on` condition: `"started"`, `"running"`, `"ready"`,
/// `"completed"` or `"completed_successfully"`.
pub(super) fn condition(node: &Node) -> Conv<Condition> {
    let names: Vec<&str> = Condition::NAMES.iter().map(|(n, _)| *n).collect();
    let Value::Str(s) = &node.value else {
        return expected(
            "a condition (\"ready\", \"completed_successfully\", ...)",
            node,
        );
    };
    Condition::NAMES
        .iter()
        .find(|(n, _)| *n == s)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            format!(
                "unknown condition \"{s}\", expected one of {}{}",
                names
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                did_you_mean(s, &names)
            )
        })
}

/// `"name"`, `"1000"`, `"name:group"` (or an integer uid).
pub(super) fn user_spec(node: &Node) -> Conv<UserSpec> {
    let text = match &node.value {
        Value::Str(s) => s.clone(),
        Value::Int { value, .. } if *value >= 0 && *value <= u32::MAX.into() => value.to_string(),
        _ => return expected("a user like \"name\", \"1000\" or \"name:group\"", node),
    };
    let bad = |why: &str| {
        format!("invalid user \"{text}\": {why} (expected \"name\", \"1000\" or \"name:group\")")
    };
    let (user, group) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text.as_str(), None),
    };
    let valid = |s: &str| !s.is_empty() && !s.contains([':', '/', ' ', '\t', '\n', '\0']);
    if !valid(user) {
        return Err(bad("the user part is empty or contains invalid characters"));
    }
    if let Some(g) = group {
        if !valid(g) {
            return Err(bad(
                "the group part is empty or contains invalid characters",
            ));
        }
    }
    Ok(UserSpec {
        user: user.to_string(),
        group: group.map(str::to_string),
    })
}

/// An array whose items are converted one by one; a single value is taken as
/// a one-item array. Errors are reported per item (with the item's node).
pub(super) fn items(node: &Node) -> Vec<&Node> {
    match &node.value {
        Value::Array(items) => items.iter().collect(),
        _ => vec![node],
    }
}

/// A path from the config: relative paths are relative to `base` (the
/// directory of the file the value is written in).
pub(super) fn path_in(base: &Path, s: &str) -> PathBuf {
    let p = Path::new(s);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// A non-empty path string, resolved with [`path_in`].
pub(super) fn path(base: &Path, node: &Node) -> Conv<PathBuf> {
    let s = non_empty_string(node)?;
    if s.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    Ok(path_in(base, &s))
}

/// Names allowed for programs, networks and sandboxes: `[A-Za-z0-9_.-]+`,
/// not `.` or `..` (they become file and namespace names).
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("\"{name}\" is not a valid name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        let why = if c == ':' {
            "\":\" is reserved for replica names (NAME:K)".to_string()
        } else {
            format!("character {c:?} is not allowed")
        };
        return Err(format!(
            "invalid name \"{name}\": {why}; use letters, digits, \"_\", \".\" and \"-\""
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::raw::Loc;
    use super::*;

    fn node(value: Value) -> Node {
        Node {
            value,
            loc: Loc { file: 0, offset: 0 },
        }
    }
    fn s(v: &str) -> Node {
        node(Value::Str(v.into()))
    }
    fn i(v: i64) -> Node {
        node(Value::Int {
            value: v,
            repr: v.to_string(),
        })
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50MB"), Ok(50 << 20));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("10 MiB"), Ok(10 << 20));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("1.5MB").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("5 TB").is_err());
        assert!(parse_size("99999999999999GB")
            .unwrap_err()
            .contains("too large"));
        assert_eq!(size(&i(7)), Ok(7));
        assert!(size(&i(-1)).unwrap_err().contains("≥ 0"));
        assert!(size(&node(Value::Bool(true)))
            .unwrap_err()
            .contains("found a boolean"));
    }

    #[test]
    fn seconds_accept_ints_and_floats() {
        assert_eq!(seconds(&i(3)), Ok(Duration::from_secs(3)));
        assert_eq!(
            seconds(&node(Value::Float(0.5))),
            Ok(Duration::from_millis(500))
        );
        assert!(seconds(&i(-1)).unwrap_err().contains("≥ 0"));
        assert!(seconds(&node(Value::Float(f64::NAN))).is_err());
        assert!(seconds(&s("1s"))
            .unwrap_err()
            .contains("found a string \"1s\""));
    }

    #[test]
    fn octal_modes() {
        assert_eq!(octal(&s("022"), 0o777), Ok(0o22));
        assert_eq!(octal(&s("0o660"), 0o7777), Ok(0o660));
        assert_eq!(octal(&i(22), 0o777), Ok(0o22));
        let oct = node(Value::Int {
            value: 0o660,
            repr: "0o660".into(),
        });
        assert_eq!(octal(&oct, 0o7777), Ok(0o660));
        assert!(octal(&s("089"), 0o777).is_err());
        assert!(octal(&s("1777"), 0o777).unwrap_err().contains("too large"));
        assert!(octal(&i(-2), 0o777).is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(signal(&s("TERM")), Ok(Signal::SIGTERM));
        assert_eq!(signal(&s("sigquit")), Ok(Signal::SIGQUIT));
        assert_eq!(signal(&s("Kill")), Ok(Signal::SIGKILL));
        assert_eq!(signal(&s("usr1")), Ok(Signal::SIGUSR1));
        assert!(signal(&s("STOP")).unwrap_err().contains("SIGSTOP"));
        assert!(signal(&s("TREM"))
            .unwrap_err()
            .contains("did you mean \"TERM\""));
        assert!(signal(&i(15))
            .unwrap_err()
            .contains("expected a signal name"));
    }

    #[test]
    fn consoles_and_users() {
        assert_eq!(console(&s("RAW")), Ok(ConsoleMode::Raw));
        assert_eq!(console(&node(Value::Bool(false))), Ok(ConsoleMode::Off));
        assert!(console(&s("prefix"))
            .unwrap_err()
            .contains("did you mean \"prefixed\""));
        let u = user_spec(&s("www:adm")).unwrap();
        assert_eq!((u.user.as_str(), u.group.as_deref()), ("www", Some("adm")));
        assert_eq!(user_spec(&i(1000)).unwrap().user, "1000");
        assert!(user_spec(&s("a:b:c")).is_err());
        assert!(user_spec(&s(":g")).is_err());
        assert!(user_spec(&s("")).is_err());
    }

    #[test]
    fn names() {
        assert!(check_name("web-1.a_b").is_ok());
        assert!(check_name("web:1").unwrap_err().contains("reserved"));
        assert!(check_name("a b").is_err());
        assert!(check_name("..").is_err());
        assert!(check_name("").is_err());
    }
}
