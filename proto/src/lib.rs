//! Wire types shared by the nsvisor daemon and `nsvisorctl`.
//!
//! Everything the control API sends or receives is defined here, and nothing
//! else: no I/O, no behaviour beyond small helpers. This file holds the JSON
//! bodies; `route.rs` the paths, verbs, streams and methods, `query.rs`
//! the query parameters, and `exec.rs` the exec request and its framed
//! stream, which the daemon parses and the client builds from the same
//! definition; `xmlrpc/` the XML-RPC codec of supervisord's `/RPC2`. The daemon turns its internal program state into these types when it answers;
//! the client renders them. Changing a field or a path here changes the API
//! documented in `docs/api.md`.
#![deny(missing_docs)]

mod exec;
mod query;
mod route;
pub mod xmlrpc;

use serde::{Deserialize, Serialize};

pub use exec::{
    encode_frame, ExecExit, ExecRequest, ExecStarted, FrameKind, FrameReader, UnknownFrame,
    EXEC_CONTENT_TYPE, FRAME_HEADER,
};
pub use query::{Param, Query};
pub use route::{encode_segment, percent_decode, HttpMethod, Level, Route, StreamKind, Verb};

/// API version prefix of every path, e.g. `/v1/programs`.
pub const API_PREFIX: &str = "/v1";

/// The state of one program, with supervisord's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Not running, and not asked to run.
    Stopped,
    /// Spawned; waiting for it to stay up `startsecs`.
    Starting,
    /// Up for at least `startsecs`.
    Running,
    /// A start failed; waiting before the next attempt.
    Backoff,
    /// `stopsignal` sent; waiting for it to exit (SIGKILL after `stopwaitsecs`).
    Stopping,
    /// Exited from RUNNING (expectedly or not).
    Exited,
    /// Could not be started after `startretries` attempts; leaves only by an explicit start.
    Fatal,
}

impl State {
    /// The upper-case name used in tables and logs (`RUNNING`).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stopped => "STOPPED",
            State::Starting => "STARTING",
            State::Running => "RUNNING",
            State::Backoff => "BACKOFF",
            State::Stopping => "STOPPING",
            State::Exited => "EXITED",
            State::Fatal => "FATAL",
        }
    }

    /// True for the states in which a process of this program exists.
    pub fn has_process(self) -> bool {
        matches!(self, State::Starting | State::Running | State::Stopping)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

impl ExitStatus {
    /// Shell convention: the code, or 128+N for signal N.
    pub fn as_shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit status {c}"),
            ExitStatus::Signal(s) => write!(f, "terminated by signal {s}"),
        }
    }
}

/// A port mapping of a program, as shown by `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortInfo {
    /// Host address the daemon listens on.
    pub host_ip: String,
    /// Host port.
    pub host_port: u16,
    /// Port inside the sandbox.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// `proxy` (forwarded by the daemon) or `nat` (by the kernel).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mode: String,
    /// Connections (UDP: none counted) being forwarded now, by the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_active: Option<u64>,
    /// Connections the proxy accepted since it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_total: Option<u64>,
    /// Of those, connections held until the program could take them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_held: Option<u64>,
}

/// Traffic of a sandbox, from its side (its veth pair's counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Traffic {
    /// Bytes the sandbox received.
    pub bytes_in: u64,
    /// Packets the sandbox received.
    pub packets_in: u64,
    /// Bytes the sandbox sent.
    pub bytes_out: u64,
    /// Packets the sandbox sent.
    pub packets_out: u64,
}

/// The network side of a program, when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetInfo {
    /// Named namespace the program runs in (as listed by `ip netns list`).
    pub netns: String,
    /// Sandbox name (several programs may share one), when the daemon created it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Network name from `[networks.NAME]`, when the daemon created the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Address inside the sandbox, e.g. `172.20.0.2/24`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Port mappings.
    #[serde(default)]
    pub ports: Vec<PortInfo>,
    /// The sandbox's traffic since it was made (sandboxes the daemon made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic: Option<Traffic>,
}

/// One program as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramInfo {
    /// Unique name (`web`, or `web:0` for replicas).
    pub name: String,
    /// Group (the `[programs.NAME]` table name).
    pub group: String,
    /// Current state.
    pub state: State,
    /// Pid while a process exists.
    pub pid: Option<u32>,
    /// Seconds since the current process started, while it runs.
    pub uptime_secs: Option<u64>,
    /// Unix time (seconds) of the last start.
    pub started_at: Option<u64>,
    /// The same, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// Unix time (seconds) of the last stop or exit (supervisord's `stop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<u64>,
    /// How the last process ended.
    pub exit_status: Option<ExitStatus>,
    /// How many times the daemon started it again after the first start.
    pub restarts: u32,
    /// Whether it is started with the daemon.
    pub autostart: bool,
    /// A line like supervisorctl's: `pid 42, uptime 0:01:02`.
    pub description: String,
    /// RUNNING and passing every readiness check (a program without
    /// readiness checks is ready once RUNNING).
    #[serde(default)]
    pub ready: bool,
    /// Network sandbox, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net: Option<NetInfo>,
    /// Its readiness and liveness checks, in config order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckInfo>,
}

/// One check of a program, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckInfo {
    /// What it checks: `tcp 127.0.0.1:8080`, `http GET http://...`, `exec ...`.
    pub check: String,
    /// `readiness` or `liveness`.
    pub purpose: String,
    /// Whether it passes now (for the current process).
    pub passing: bool,
    /// Runs since the daemon started.
    pub runs: u64,
    /// Failed runs since the daemon started.
    pub failures: u64,
    /// How long the last run took, in milliseconds.
    pub last_ms: Option<u64>,
    /// What the last run said.
    pub last: Option<String>,
}

/// Answer to a start/stop/restart/signal request on one program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// Program name.
    pub name: String,
    /// Whether the action reached its goal (e.g. RUNNING after start).
    pub ok: bool,
    /// What happened, in words (`started`, `already running`, `went FATAL: ...`).
    pub message: String,
    /// The program after the action.
    pub program: ProgramInfo,
}

/// Answer to a reload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResult {
    /// Programs that were added (and started when autostart).
    pub added: Vec<String>,
    /// Programs whose configuration changed (restarted).
    pub changed: Vec<String>,
    /// Programs that were removed (stopped).
    pub removed: Vec<String>,
}

/// A state change, as streamed by the events endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateEvent {
    /// Program name.
    pub name: String,
    /// Previous state.
    pub from: State,
    /// New state.
    pub to: State,
    /// Pid, when the new state has a process.
    pub pid: Option<u32>,
    /// Exit status, when the change was caused by an exit.
    pub exit_status: Option<ExitStatus>,
    /// For a change of readiness (then `from` and `to` are the same state):
    /// whether the program is ready now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// What the last check said, for a change of readiness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Unix time in milliseconds.
    pub time_ms: u64,
}

/// Daemon health and identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// True when every autostart program is RUNNING (or finished as expected).
    pub healthy: bool,
    /// Daemon version.
    pub version: String,
    /// The commit the daemon was built from (what `nsvisor --version` shows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Daemon pid.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Autostart programs that are not RUNNING.
    pub not_running: Vec<String>,
    /// Programs whose liveness check fails (they count as not healthy).
    #[serde(default)]
    pub failing: Vec<String>,
    /// True when healthy and every autostart program that should run is
    /// ready (passes its readiness checks): the container is ready.
    #[serde(default)]
    pub ready: bool,
    /// Autostart programs that should run but are not ready.
    #[serde(default)]
    pub not_ready: Vec<String>,
    /// True once a shutdown has begun.
    pub shutting_down: bool,
}

/// Kinds of API errors; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Unknown program or path (404).
    NotFound,
    /// The program is in a state that does not allow the action (409).
    WrongState,
    /// The request is malformed (400).
    BadRequest,
    /// The peer is not allowed (403).
    PermissionDenied,
    /// The body is too large (413).
    PayloadTooLarge,
    /// The action was tried and failed (e.g. went FATAL) (500).
    Failed,
    /// The daemon is shutting down (503).
    ShuttingDown,
    /// A new configuration was rejected (422).
    InvalidConfig,
    /// The method is not allowed on this path (405).
    MethodNotAllowed,
    /// The daemon cannot serve the request now: it has run out of file
    /// descriptors (503); the request was not read.
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::WrongState => 409,
            ErrorKind::BadRequest => 400,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Failed => 500,
            ErrorKind::ShuttingDown => 503,
            ErrorKind::InvalidConfig => 422,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Unavailable => 503,
        }
    }
}

/// The body of every error answer: `{"error": {"kind": ..., "message": ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ApiError,
}

/// An API error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// What kind of error.
    pub kind: ErrorKind,
    /// Human message naming the object and the cause.
    pub message: String,
}

impl ApiError {
    /// Builds an error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// Formats seconds as supervisorctl does: `0:01:02`, or `2 days, 3:04:05`.
pub fn format_uptime(secs: u64) -> String {
    Uptime(secs).to_string()
}

/// An uptime written like supervisorctl's (see [`format_uptime`]), for
/// writing straight into a longer line without a `String` of its own.
#[derive(Debug, Clone, Copy)]
pub struct Uptime(pub u64);

impl std::fmt::Display for Uptime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0;
        let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
        match secs / 86_400 {
            0 => write!(f, "{h}:{m:02}:{s:02}"),
            1 => write!(f, "1 day, {h}:{m:02}:{s:02}"),
            d => write!(f, "{d} days, {h}:{m:02}:{s:02}"),
        }
    }
}

/// Where supervisord and supervisorctl look for `supervisord.conf` without
/// `-c`, in order (relative to the executable's directory's parent, then the
/// current directory, then /etc): the same list for `nsvisor` invoked as
/// `supervisord` and `nsvisorctl` invoked as `supervisorctl`.
pub fn supervisord_conf_paths(argv0: &std::path::Path) -> Vec<std::path::PathBuf> {
    use std::path::PathBuf;
    let here = argv0
        .parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    vec![
        here.join("etc").join("supervisord.conf"),
        here.join("supervisord.conf"),
        PathBuf::from("supervisord.conf"),
        PathBuf::from("etc/supervisord.conf"),
        PathBuf::from("/etc/supervisord.conf"),
        PathBuf::from("/etc/supervisor/supervisord.conf"),
    ]
}

/// The default control socket path for a uid, the same rule for daemon and ctl:
/// `/run/nsvisor.sock` for root, else `$XDG_RUNTIME_DIR/nsvisor.sock`, else
/// `/tmp/nsvisor-<uid>.sock`.
pub fn default_socket_path(uid: u32, xdg_runtime_dir: Option<&str>) -> String {
    if uid == 0 {
        return "/run/nsvisor.sock".to_string();
    }
    match xdg_runtime_dir {
        Some(dir) if !dir.is_empty() => format!("{}/nsvisor.sock", dir.trim_end_matches('/')),
        _ => format!("/tmp/nsvisor-{uid}.sock"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_format_matches_supervisorctl() {
        assert_eq!(format_uptime(62), "0:01:02");
        assert_eq!(format_uptime(86_400 + 3600 + 5), "1 day, 1:00:05");
        assert_eq!(format_uptime(3 * 86_400), "3 days, 0:00:00");
    }

    #[test]
    fn shell_codes() {
        assert_eq!(ExitStatus::Code(3).as_shell_code(), 3);
        assert_eq!(ExitStatus::Signal(9).as_shell_code(), 137);
    }

    #[test]
    fn socket_path_rule() {
        assert_eq!(default_socket_path(0, Some("/x")), "/run/nsvisor.sock");
        assert_eq!(
            default_socket_path(1000, Some("/run/user/1000/")),
            "/run/user/1000/nsvisor.sock"
        );
        assert_eq!(default_socket_path(1000, None), "/tmp/nsvisor-1000.sock");
        assert_eq!(
            default_socket_path(1000, Some("")),
            "/tmp/nsvisor-1000.sock"
        );
    }

    #[test]
    fn state_json_is_upper_case() {
        assert_eq!(
            serde_json::to_string(&State::Running).unwrap_or_default(),
            "\"RUNNING\""
        );
    }
}
