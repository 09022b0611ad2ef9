//! `[[programs.NAME.checks]]` → [`CheckConfig`]: readiness and liveness
//! checks, their kind (`tcp`, `http`, `exec`, `log`, `notify`, `ready_fd`),
//! timing and what a failed liveness check does.
//!
//! Called by `program.rs` for the `checks` key. Pure: addresses and URLs are
//! parsed, never resolved or connected to.

use std::time::Duration;

use super::raw::{Node, Value};
use super::read::Reader;
use super::suggest::did_you_mean;
use super::units::{self, Conv};
use super::{CheckConfig, CheckKind, OnFailure, Purpose};
use nsvisor_proto::StreamKind;

/// How long a program with a `log`, `notify = "ready"` or `ready_fd` check
/// has to become ready, by default.
pub const PASSIVE_TIMEOUT: Duration = Duration::from_secs(60);

const KEYS: &[&str] = &[
    "purpose",
    "tcp",
    "http",
    "exec",
    "log",
    "stream",
    "notify",
    "ready_fd",
    "status",
    "period",
    "timeout",
    "start_period",
    "success_threshold",
    "failure_threshold",
    "on_failure",
];

/// Reads `checks = [...]` (an array of tables, usually `[[programs.NAME.checks]]`).
pub(super) fn read(r: &mut Reader<'_, '_>, node: &Node) -> Vec<CheckConfig> {
    let mut checks = Vec::new();
    for item in units::items(node) {
        let Value::Table(table) = &item.value else {
            r.error(
                item.loc,
                format!("checks: expected a table, found {}", units::describe(item)),
            );
            continue;
        };
        let program = r.program;
        let mut c = Reader::new(&mut *r.diag, table, "a check", KEYS, program);
        if let Some(check) = one(&mut c, item) {
            checks.push(check);
        }
    }
    checks
}

fn one(r: &mut Reader<'_, '_>, node: &Node) -> Option<CheckConfig> {
    let purpose = r.get("purpose", purpose);
    let tcp = r.get("tcp", tcp_address);
    let http = r.get("http", http_url);
    let exec = r
        .node("exec")
        .and_then(|n| super::program::words(r, "exec", n));
    let status = r.get("status", status_range);
    let log = r.get("log", log_pattern);
    let stream = r.get("stream", stream_kind);
    let notify = r.get("notify", notify_kind);
    let ready_fd = r.get("ready_fd", |n| units::int_in(n, 3, 1023).map(|v| v as i32));
    let passive = match (&log, &notify, ready_fd) {
        (Some(_), _, _) | (_, _, Some(_)) | (_, Some(CheckKind::NotifyReady), _) => {
            Some(Purpose::Readiness)
        }
        (_, Some(_), _) => Some(Purpose::Liveness),
        _ => None,
    };
    let default_purpose = passive.unwrap_or(Purpose::Readiness);
    let mut check = CheckConfig::new(
        purpose.unwrap_or(default_purpose),
        CheckKind::Tcp {
            host: String::new(),
            port: 0,
        },
    );
    if let Some(kind_purpose) = passive {
        if purpose.is_some_and(|p| p != kind_purpose) {
            let at = r.node("purpose").map_or(node.loc, |n| n.loc);
            let (what, only) = match kind_purpose {
                Purpose::Readiness => (
                    "log, notify = \"ready\" and ready_fd checks say when a program is ready",
                    "readiness",
                ),
                Purpose::Liveness => ("notify = \"watchdog\" is a liveness check", "liveness"),
            };
            r.error(at, format!("purpose: {what}; only \"{only}\" fits here"));
        }
        check.timeout = PASSIVE_TIMEOUT;
        if kind_purpose == Purpose::Readiness {
            // Its one verdict before the signal is at `timeout`.
            check.failure_threshold = 1;
        }
        let fixed: &[&str] = if kind_purpose == Purpose::Readiness {
            &[
                "period",
                "start_period",
                "success_threshold",
                "failure_threshold",
            ]
        } else {
            &["timeout", "success_threshold"]
        };
        for key in fixed {
            if let Some(n) = r.node(key) {
                let loc = n.loc;
                let why = if kind_purpose == Purpose::Readiness {
                    "the program says when it is ready; `timeout` is how long it has"
                } else {
                    "the program pings every `period`; `failure_threshold` missed periods fail it"
                };
                r.error(
                    loc,
                    format!("{key}: not used by this kind of check ({why})"),
                );
            }
        }
    }
    let seconds = |r: &mut Reader<'_, '_>, key: &str, dst: &mut Duration, min: Duration| {
        if let Some(d) = r.get(key, units::seconds) {
            if d < min {
                let at = r.node(key).map_or(node.loc, |n| n.loc);
                r.error(
                    at,
                    format!("{key}: must be at least {} s", min.as_secs_f64()),
                );
            } else {
                *dst = d;
            }
        }
    };
    seconds(r, "period", &mut check.period, Duration::from_millis(100));
    seconds(r, "timeout", &mut check.timeout, Duration::from_millis(10));
    seconds(r, "start_period", &mut check.start_period, Duration::ZERO);
    let threshold = |n: &Node| units::int_in(n, 1, 1000).map(|v| v as u32);
    if let Some(t) = r.get("success_threshold", threshold) {
        check.success_threshold = t;
    }
    if let Some(t) = r.get("failure_threshold", threshold) {
        check.failure_threshold = t;
    }
    if let Some(action) = r.get("on_failure", on_failure) {
        if check.purpose == Purpose::Readiness {
            let at = r.node("on_failure").map_or(node.loc, |n| n.loc);
            r.error(
                at,
                "on_failure: only liveness checks act on failure (add purpose = \"liveness\")"
                    .into(),
            );
        }
        check.on_failure = action;
    }
    let kinds = ["tcp", "http", "exec", "log", "notify", "ready_fd"]
        .iter()
        .filter(|k| r.node(k).is_some())
        .count();
    if kinds > 1 {
        r.error(
            node.loc,
            "a check has one kind: tcp, http, exec, log, notify or ready_fd".into(),
        );
        return None;
    }
    if stream.is_some() && r.node("log").is_none() {
        let at = r.node("stream").map_or(node.loc, |n| n.loc);
        r.error(at, "stream: only log checks read a stream".into());
    }
    if let Some(pattern) = log {
        check.kind = CheckKind::Log {
            pattern,
            stream: stream.flatten(),
        };
        return Some(check);
    }
    if let Some(kind) = notify {
        check.kind = kind;
        return Some(check);
    }
    if let Some(fd) = ready_fd {
        check.kind = CheckKind::ReadyFd { fd };
        return Some(check);
    }
    if status.is_some() && r.node("http").is_none() {
        let at = r.node("status").map_or(node.loc, |n| n.loc);
        r.error(at, "status: only http checks have a status".into());
    }
    if let Some(command) = exec {
        check.kind = CheckKind::Exec { command };
        return Some(check);
    }
    check.kind = match (tcp, http) {
        (Some((host, port)), None) => CheckKind::Tcp { host, port },
        (None, Some((host, port, path))) => CheckKind::Http {
            host,
            port,
            path,
            status: status.unwrap_or((200, 399)),
        },
        _ => {
            if kinds == 0 {
                r.error(
                    node.loc,
                    "a check needs its kind: tcp = \"HOST:PORT\", http = \"http://HOST:PORT/PATH\", exec = [\"COMMAND\", ...], log = \"REGEX\", notify = \"ready\"|\"watchdog\" or ready_fd = N"
                        .into(),
                );
            }
            return None;
        }
    };
    Some(check)
}

/// `log = "REGEX"`: compiled here so that a bad pattern is a load error.
fn log_pattern(node: &Node) -> Conv<String> {
    let pattern = units::string(node)?;
    match regex::bytes::Regex::new(&pattern) {
        Ok(_) => Ok(pattern),
        Err(e) => Err(format!(
            "invalid regular expression: {}",
            e.to_string().replace('\n', " ")
        )),
    }
}

/// `stream = "stdout" | "stderr" | "both"` (`None`: both).
fn stream_kind(node: &Node) -> Conv<Option<StreamKind>> {
    match units::string(node)?.as_str() {
        "stdout" => Ok(Some(StreamKind::Stdout)),
        "stderr" => Ok(Some(StreamKind::Stderr)),
        "both" => Ok(None),
        other => Err(format!(
            "unknown stream \"{other}\", expected \"stdout\", \"stderr\" or \"both\"{}",
            did_you_mean(other, &["stdout", "stderr", "both"])
        )),
    }
}

/// `notify = "ready" | "watchdog"`.
fn notify_kind(node: &Node) -> Conv<CheckKind> {
    match units::string(node)?.as_str() {
        "ready" => Ok(CheckKind::NotifyReady),
        "watchdog" => Ok(CheckKind::NotifyWatchdog),
        other => Err(format!(
            "unknown notify check \"{other}\", expected \"ready\" (READY=1) or \"watchdog\" (WATCHDOG=1){}",
            did_you_mean(other, &["ready", "watchdog"])
        )),
    }
}

fn purpose(node: &Node) -> Conv<Purpose> {
    match units::string(node)?.as_str() {
        "readiness" => Ok(Purpose::Readiness),
        "liveness" => Ok(Purpose::Liveness),
        other => Err(format!(
            "unknown purpose \"{other}\", expected \"readiness\" or \"liveness\"{}",
            did_you_mean(other, &["readiness", "liveness"])
        )),
    }
}

fn on_failure(node: &Node) -> Conv<OnFailure> {
    const NAMES: &[&str] = &["restart", "stop", "shutdown", "ignore"];
    match units::string(node)?.as_str() {
        "restart" => Ok(OnFailure::Restart),
        "stop" => Ok(OnFailure::Stop),
        "shutdown" => Ok(OnFailure::Shutdown),
        "ignore" => Ok(OnFailure::Ignore),
        other => Err(format!(
            "unknown action \"{other}\", expected \"restart\", \"stop\", \"shutdown\" or \"ignore\"{}",
            did_you_mean(other, NAMES)
        )),
    }
}

/// `"HOST:PORT"`, or a port alone (`8080` or `"8080"`: on 127.0.0.1).
fn tcp_address(node: &Node) -> Conv<(String, u16)> {
    let text = match &node.value {
        Value::Int { value, .. } => value.to_string(),
        Value::Str(s) => s.clone(),
        _ => {
            return Err(format!(
                "expected \"HOST:PORT\" or a port, found {}",
                units::describe(node)
            ))
        }
    };
    host_port(&text).map_err(|why| format!("invalid address \"{text}\": {why}"))
}

/// `"http://HOST[:PORT]/PATH"` (port 80 by default, path `/` by default).
fn http_url(node: &Node) -> Conv<(String, u16, String)> {
    let url = units::string(node)?;
    let invalid = |why: &str| format!("invalid URL \"{url}\": {why}");
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(invalid(if url.starts_with("https://") {
            "https is not supported (checks talk plain HTTP to the program)"
        } else {
            "expected http://HOST:PORT/PATH"
        }));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = if authority.contains(':') {
        host_port(authority).map_err(|why| invalid(&why))?
    } else {
        (authority.to_string(), 80)
    };
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    if path.contains(char::is_whitespace) {
        return Err(invalid("the path contains spaces"));
    }
    Ok((host, port, path))
}

fn host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), p),
        None => ("127.0.0.1", text),
    };
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("the port must be 1 to 65535, not \"{port}\""))?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err("the host is empty or contains spaces".into());
    }
    Ok((host.to_string(), port))
}

/// `"200-399"` or `200`: the statuses that pass.
fn status_range(node: &Node) -> Conv<(u16, u16)> {
    let text = match &node.value {
        Value::Int { value, .. } => value.to_string(),
        Value::Str(s) => s.clone(),
        _ => {
            return Err(format!(
                "expected a status or a range like \"200-399\", found {}",
                units::describe(node)
            ))
        }
    };
    let code = |s: &str| {
        s.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=599).contains(c))
    };
    let range = match text.split_once('-') {
        Some((a, b)) => code(a).zip(code(b)),
        None => code(&text).map(|c| (c, c)),
    };
    match range {
        Some((a, b)) if a <= b => Ok((a, b)),
        _ => Err(format!(
            "invalid status range \"{text}\", expected e.g. \"200-399\" or 204"
        )),
    }
}
