//! How answers look to a person: the status table and one-line summaries.
//!
//! Pure functions from wire types to text, no I/O; `--json` output bypasses
//! this module. The status table has supervisorctl's shape (`NAME STATE
//! DESCRIPTION`, no header, columns aligned) so habits and scripts carry over.

use std::borrow::Cow;
use std::fmt::Write as _;

use nsvisor_proto::{
    format_uptime, ActionResult, Health, NetInfo, ReloadResult, State, StateEvent,
};
use serde::Deserialize;

/// What the status table shows of a program: the fields of its
/// `ProgramInfo` it reads, borrowed from the answer where they need no
/// unescaping: no string is copied for a field the table does not show, and
/// none for one it shows unless it has escapes.
#[derive(Debug, Deserialize)]
pub struct StatusRow<'a> {
    /// Unique name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// Group.
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    /// Current state.
    pub state: State,
    /// supervisorctl's description.
    #[serde(borrow, default)]
    pub description: Cow<'a, str>,
    /// Network sandbox, if any.
    #[serde(default)]
    pub net: Option<Box<NetInfo>>,
}

/// One line per program: name, state and description, aligned.
pub fn status_table(programs: &[&StatusRow]) -> String {
    let name_w = programs
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0)
        .max(32);
    let mut out = String::with_capacity(programs.len() * (name_w + 40));
    for p in programs {
        pad(&mut out, &p.name, name_w);
        out.push(' ');
        let state = p.state.as_str();
        let net = p.net.as_deref().map(net_summary);
        if p.description.is_empty() && net.is_none() {
            out.push_str(state);
            out.push('\n');
            continue;
        }
        pad(&mut out, state, 10);
        out.push(' ');
        out.push_str(&p.description);
        match net {
            Some(net) if p.description.is_empty() => out.push_str(&net),
            Some(net) => {
                out.push_str("; ");
                out.push_str(&net);
            }
            None => {}
        }
        out.push('\n');
    }
    out
}

/// `text` left-aligned in `width` columns (as `{:<width$}` would, without
/// going through the formatter for every space: the table of 10,000
/// programs pads 300,000 of them).
fn pad(out: &mut String, text: &str, width: usize) {
    out.push_str(text);
    let columns = text.chars().count();
    out.extend(std::iter::repeat_n(' ', width.saturating_sub(columns)));
}

/// `sandbox web 172.20.0.2/24, ports 127.0.0.1:9090->8080/tcp`, or `netns blue`.
pub fn net_summary(net: &NetInfo) -> String {
    let mut out = match (&net.sandbox, &net.address) {
        (Some(sandbox), Some(address)) => format!("sandbox {sandbox} {address}"),
        _ => format!("netns {}", net.netns),
    };
    if !net.ports.is_empty() {
        let ports: Vec<String> = net
            .ports
            .iter()
            .map(|p| {
                let nat = if p.mode == "nat" { " (nat)" } else { "" };
                format!(
                    "{}:{}->{}/{}{nat}",
                    p.host_ip, p.host_port, p.port, p.protocol
                )
            })
            .collect();
        let _ = write!(out, ", ports {}", ports.join(" "));
    }
    out
}

/// `web: started`, or `web: ERROR (went FATAL: ...)`.
pub fn action_line(r: &ActionResult) -> String {
    if r.ok {
        format!("{}: {}", r.name, r.message)
    } else {
        format!("{}: ERROR ({})", r.name, r.message)
    }
}

/// `web: added`, one line per program, or `no changes`.
pub fn reload_text(r: &ReloadResult) -> String {
    let mut out = String::new();
    for (names, what) in [
        (&r.added, "added"),
        (&r.changed, "changed"),
        (&r.removed, "removed"),
    ] {
        for name in names {
            let _ = writeln!(out, "{name}: {what}");
        }
    }
    if out.is_empty() {
        out.push_str("no changes\n");
    }
    out
}

/// `healthy`, or why not.
pub fn health_text(h: &Health) -> String {
    let status = if h.healthy {
        "healthy".to_string()
    } else {
        "unhealthy".to_string()
    };
    let mut out = format!(
        "{status}: nsvisor {} (pid {}, uptime {})",
        h.version,
        h.pid,
        format_uptime(h.uptime_secs)
    );
    if h.shutting_down {
        out.push_str("; shutting down");
    }
    if !h.not_running.is_empty() {
        let _ = write!(out, "; not running: {}", h.not_running.join(", "));
    }
    if !h.failing.is_empty() {
        let _ = write!(out, "; failing liveness: {}", h.failing.join(", "));
    }
    out.push('\n');
    out
}

/// `ready: nsvisor 0.1.0 (pid 1, uptime 0:00:05)` or `not ready: ...; not ready: api`.
pub fn readiness_text(h: &Health) -> String {
    let status = if h.ready { "ready" } else { "not ready" };
    let mut out = format!(
        "{status}: nsvisor {} (pid {}, uptime {})",
        h.version,
        h.pid,
        format_uptime(h.uptime_secs)
    );
    if h.shutting_down {
        out.push_str("; shutting down");
    }
    if !h.not_ready.is_empty() {
        let _ = write!(out, "; not ready: {}", h.not_ready.join(", "));
    }
    if !h.failing.is_empty() {
        let _ = write!(out, "; failing liveness: {}", h.failing.join(", "));
    }
    out.push('\n');
    out
}

/// `2024-05-01T12:00:00.123Z web RUNNING -> EXITED (exit status 3)`.
pub fn event_line(e: &StateEvent) -> String {
    if let Some(ready) = e.ready {
        let now = if ready { "ready" } else { "not ready" };
        let mut out = format!("{} {} {now}", utc(e.time_ms), e.name);
        if let Some(detail) = &e.detail {
            let _ = write!(out, " ({detail})");
        }
        out.push('\n');
        return out;
    }
    let mut out = format!("{} {} {} -> {}", utc(e.time_ms), e.name, e.from, e.to);
    match (e.pid, e.exit_status) {
        (_, Some(status)) => {
            let _ = write!(out, " ({status})");
        }
        (Some(pid), None) => {
            let _ = write!(out, " (pid {pid})");
        }
        (None, None) => {}
    }
    out.push('\n');
    out
}

/// Unix milliseconds as an RFC 3339 UTC timestamp.
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// `ready`, `running`, ... as `wait` prints it.
pub fn wait_condition(c: crate::WaitFor) -> &'static str {
    match c {
        crate::WaitFor::Ready => "ready",
        crate::WaitFor::Running => "running",
        crate::WaitFor::Stopped => "stopped",
        crate::WaitFor::Exited => "exited",
        crate::WaitFor::Completed => "completed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nsvisor_proto::{ExitStatus, ProgramInfo};

    /// The table of `programs` as `status` makes it: from their JSON, the
    /// way the daemon sends it.
    fn table(programs: &[&ProgramInfo]) -> String {
        let data = serde_json::to_vec(programs).unwrap();
        let rows: Vec<StatusRow> = serde_json::from_slice(&data).unwrap();
        status_table(&rows.iter().collect::<Vec<_>>())
    }

    fn info(name: &str, state: State, description: &str) -> ProgramInfo {
        ProgramInfo {
            name: name.into(),
            group: name.into(),
            state,
            pid: None,
            uptime_secs: None,
            started_at: None,
            started_at_ms: None,
            stopped_at: None,
            exit_status: None,
            restarts: 0,
            autostart: true,
            description: description.into(),
            ready: false,
            net: None,
            checks: Vec::new(),
        }
    }

    #[test]
    fn status_is_aligned_like_supervisorctl() {
        let a = info("web", State::Running, "pid 42, uptime 0:01:02");
        let b = info("worker:0", State::Stopped, "");
        assert_eq!(
            table(&[&a, &b]),
            format!(
                "{:<32} RUNNING    pid 42, uptime 0:01:02\n{:<32} STOPPED\n",
                "web", "worker:0"
            )
        );
        let long = info(&"x".repeat(40), State::Fatal, "gave up");
        let wide = table(&[&long, &a]);
        let state_columns: Vec<Option<usize>> = wide
            .lines()
            .map(|l| l.find(|c: char| c.is_ascii_uppercase()))
            .collect();
        assert_eq!(state_columns, [Some(41), Some(41)], "{wide}");
    }

    #[test]
    fn status_pads_by_characters_and_unescapes() {
        // A name and a description the JSON escapes cannot be borrowed from
        // the answer; a name of several-byte characters still takes one
        // column per character, as `{:<32}` counts them.
        let a = info("café\"1", State::Running, "pid 1, status \"warming\tup\"");
        let b = info("b", State::Backoff, "");
        assert_eq!(
            table(&[&a, &b]),
            format!(
                "{:<32} RUNNING    pid 1, status \"warming\tup\"\n{:<32} BACKOFF\n",
                "café\"1", "b"
            )
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_714_564_800_123), "2024-05-01T12:00:00.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn events_and_reloads() {
        let e = StateEvent {
            ready: None,
            detail: None,
            name: "web".into(),
            from: State::Running,
            to: State::Exited,
            pid: None,
            exit_status: Some(ExitStatus::Code(3)),
            time_ms: 0,
        };
        assert_eq!(
            event_line(&e),
            "1970-01-01T00:00:00.000Z web RUNNING -> EXITED (exit status 3)\n"
        );
        let r = StateEvent {
            ready: Some(false),
            detail: Some("tcp 127.0.0.1:80: Connection refused (os error 111)".into()),
            from: State::Running,
            ..e
        };
        assert_eq!(
            event_line(&r),
            "1970-01-01T00:00:00.000Z web not ready (tcp 127.0.0.1:80: Connection refused (os error 111))\n"
        );
        assert_eq!(reload_text(&ReloadResult::default()), "no changes\n");
        let r = ReloadResult {
            added: vec!["a".into()],
            changed: vec![],
            removed: vec!["b".into()],
        };
        assert_eq!(reload_text(&r), "a: added\nb: removed\n");
    }

    #[test]
    fn status_shows_the_sandbox_address_and_ports() {
        let mut p = info("web", State::Running, "pid 7, uptime 0:00:01");
        p.net = Some(NetInfo {
            netns: "nsvisor-web".into(),
            sandbox: Some("web".into()),
            network: Some("front".into()),
            address: Some("172.20.0.2/24".into()),
            ports: vec![
                nsvisor_proto::PortInfo {
                    host_ip: "0.0.0.0".into(),
                    host_port: 9090,
                    port: 8080,
                    protocol: "tcp".into(),
                    ..Default::default()
                },
                nsvisor_proto::PortInfo {
                    host_ip: "0.0.0.0".into(),
                    host_port: 9443,
                    port: 443,
                    protocol: "tcp".into(),
                    mode: "nat".into(),
                    ..Default::default()
                },
            ],
            traffic: None,
        });
        let line = table(&[&p]);
        assert!(
            line.ends_with(
                "pid 7, uptime 0:00:01; sandbox web 172.20.0.2/24, ports 0.0.0.0:9090->8080/tcp 0.0.0.0:9443->443/tcp (nat)\n"
            ),
            "{line}"
        );
        p.net = Some(NetInfo {
            netns: "blue".into(),
            sandbox: None,
            network: None,
            address: None,
            ports: vec![],
            traffic: None,
        });
        assert!(table(&[&p]).ends_with("; netns blue\n"));
    }
}
