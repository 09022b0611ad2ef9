//! The validated configuration: what the rest of the daemon reads.
//!
//! `raw.rs` deserialises TOML (with spans) and does nothing else; `validate.rs`
//! turns raw tables into these types, collecting every error with its file,
//! line and column. Nothing here touches the system: no spawning, no netlink,
//! no file creation (DESIGN rule 6). Reading the config files and expanding
//! `include` globs are the only filesystem reads.
//!
//! Callers: `lib.rs` (start-up, `check`, reload) and the supervisor (diffing
//! program configs on reload via `PartialEq`).

mod checks;
mod convert;
mod deps;
mod env;
mod environment;
mod error;
mod ini;
mod load;
mod main_program;
mod name;
mod networks;
mod program;
mod raw;
mod read;
mod sandboxes;
mod stream_log;
mod subnet;
mod suggest;
mod supervisor;
mod units;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

pub use convert::convert;
#[cfg(feature = "fuzzing")]
pub(crate) use environment::parse as parse_env_file;
pub use error::{ConfigError, ConfigErrors, Finding, Severity};
#[cfg(feature = "fuzzing")]
pub(crate) use load::{convert_with_inputs, load_with_inputs};
pub use load::{ConfigFormat, LoadOptions, Loaded};
pub use main_program::{main_program, MAIN_PROGRAM};
pub use name::ProgramName;
pub use stream_log::{ConsoleMode, LogFile, StreamLog};
pub use subnet::{ParseSubnetError, Subnet};

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main config file, absolute (include globs are relative to its directory).
    pub path: PathBuf,
    /// `[supervisor]`.
    pub supervisor: SupervisorConfig,
    /// Every program instance (numprocs expanded), keyed by unique name.
    pub programs: BTreeMap<ProgramName, ProgramConfig>,
    /// `[networks.NAME]`.
    pub networks: BTreeMap<String, NetworkConfig>,
}

/// `[supervisor]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct SupervisorConfig {
    /// Raise RLIMIT_NOFILE to at least this at start (default 1024).
    pub minfds: u64,
    /// Control socket path (`None`: the default rule in `nsvisor_proto::default_socket_path`).
    pub socket: Option<PathBuf>,
    /// Socket file mode (default 0o600).
    pub socket_mode: u32,
    /// `user[:group]` owning the socket.
    pub socket_owner: Option<String>,
    /// Extra uids allowed on the socket (root and the daemon's uid always are).
    pub allowed_uids: Vec<u32>,
    /// Extra gids allowed on the socket.
    pub allowed_gids: Vec<u32>,
    /// Uids allowed on the socket read-only (status, events, health, metrics).
    pub read_only_uids: Vec<u32>,
    /// Gids allowed on the socket read-only.
    pub read_only_gids: Vec<u32>,
    /// Directory for `"auto"` log files.
    pub log_dir: Option<PathBuf>,
    /// Default for each program's `stdout_console`/`stderr_console`.
    pub console: ConsoleMode,
    /// Default tail buffer size per stream, in bytes (default 64 KiB).
    pub tail_buffer_bytes: u64,
    /// Daemon's own log level (`info` default; `RUST_LOG` wins).
    pub log_level: Option<String>,
    /// Daemon's own log file, in addition to stderr.
    pub logfile: Option<PathBuf>,
    /// Grace before SIGKILL for what is left of a `--` command's group (default 5 s).
    pub shutdown_grace: Duration,
    /// `health_listen`: a TCP address serving only `GET /livez` and
    /// `GET /readyz[/NAME]` for probes (off by default).
    pub health_listen: Option<std::net::SocketAddr>,
    /// The environment every program starts from (`environment_file`, then
    /// `environment`; each program's own settings win).
    pub environment: BTreeMap<String, String>,
    /// The daemon's pid is written here after start and removed at exit.
    pub pidfile: Option<PathBuf>,
    /// `socket_username`/`socket_password` (supervisord's `[unix_http_server]`
    /// credentials): HTTP basic auth required of XML-RPC clients on the socket.
    pub socket_auth: Option<Credentials>,
    /// supervisord's `[inet_http_server]`: XML-RPC over TCP (never the JSON API).
    pub inet_http_server: Option<InetHttpServer>,
}

/// HTTP basic-auth credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password as written (supervisord also accepts `{SHA}` + hex digest).
    pub password: String,
}

/// XML-RPC over TCP, as supervisord's `[inet_http_server]` configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InetHttpServer {
    /// `HOST:PORT` or `PORT` as written (`*:PORT` or `:PORT` = every address).
    pub port: String,
    /// Credentials clients must give.
    pub auth: Option<Credentials>,
}

/// When to restart a program that exited from RUNNING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoRestart {
    /// Always.
    Always,
    /// When the exit code is not in `exitcodes` (or it was killed by a signal).
    Unexpected,
    /// Never.
    Never,
}

/// `user = "name" | "uid" | "name:group"`, resolved at spawn preparation (not in config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    /// User name or numeric uid, as written.
    pub user: String,
    /// Group name or numeric gid, as written (`None`: the user's primary group).
    pub group: Option<String>,
}

/// One program instance.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgramConfig {
    /// Unique name.
    pub name: ProgramName,
    /// Group (`[programs.NAME]` table name), shared by its replicas.
    pub group: Arc<str>,
    /// Replica number (`numprocs_start`, default 0, when numprocs = 1).
    pub process_num: u32,
    /// argv; never empty. Shared by the replicas whose command has no
    /// `%(process_num)` to substitute.
    pub command: Arc<[String]>,
    /// Working directory.
    pub directory: Option<PathBuf>,
    /// Extra environment (added to the daemon's).
    pub environment: BTreeMap<String, String>,
    /// Run as this user (boxed: most programs have none, and every program
    /// would pay its size inline).
    pub user: Option<Box<UserSpec>>,
    /// File mode creation mask.
    pub umask: Option<u32>,
    /// Start with `PR_SET_NO_NEW_PRIVS`: setuid/setgid bits and file
    /// capabilities of what it executes grant nothing (default false).
    pub no_new_privs: bool,
    /// Start with the daemon (default true).
    pub autostart: bool,
    /// Restart policy (default `unexpected`).
    pub autorestart: AutoRestart,
    /// Expected exit codes (default `[0]`), shared by the replicas and
    /// their state machines.
    pub exitcodes: Arc<[i32]>,
    /// Seconds it must stay up to count as started (default 1).
    pub startsecs: Duration,
    /// Failed start attempts retried before FATAL (default 3).
    pub startretries: u32,
    /// Signal sent to stop it (default TERM).
    pub stopsignal: Signal,
    /// Wait after stopsignal before SIGKILL (default 10 s).
    pub stopwaitsecs: Duration,
    /// Send stopsignal to the whole process group (default false; implies killasgroup).
    pub stopasgroup: bool,
    /// Send SIGKILL to the whole process group (default false).
    pub killasgroup: bool,
    /// Lower starts first, stops last (default 999).
    pub priority: i32,
    /// Unique names of programs that must be RUNNING before this one starts.
    pub depends_on: Vec<Dependency>,
    /// `[[programs.NAME.checks]]`: readiness and liveness checks.
    pub checks: Vec<CheckConfig>,
    /// When it ends for good, the daemon shuts down with its status.
    pub critical: bool,
    /// Merge stderr into stdout.
    pub redirect_stderr: bool,
    /// stdout log settings.
    pub stdout: StreamLog,
    /// stderr log settings.
    pub stderr: StreamLog,
    /// Network placement (boxed, like `user`).
    pub net: Option<Box<ProgramNet>>,
    /// Where this program was defined (for messages), shared by the
    /// programs of one file.
    pub source: Arc<Path>,
}

/// One readiness or liveness check of a program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckConfig {
    /// What passing means.
    pub purpose: Purpose,
    /// How to check.
    pub kind: CheckKind,
    /// Time between checks once the check has passed (before that, at most 1 s).
    pub period: Duration,
    /// A check that takes longer fails.
    pub timeout: Duration,
    /// After a spawn, failures during this long do not count.
    pub start_period: Duration,
    /// Consecutive passes that make the check pass.
    pub success_threshold: u32,
    /// Consecutive failures that make the check fail.
    pub failure_threshold: u32,
    /// What a failing liveness check does.
    pub on_failure: OnFailure,
}

impl CheckConfig {
    /// A check with the default timing (Kubernetes' probe defaults).
    pub fn new(purpose: Purpose, kind: CheckKind) -> CheckConfig {
        CheckConfig {
            purpose,
            kind,
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            start_period: Duration::ZERO,
            success_threshold: 1,
            failure_threshold: 3,
            on_failure: OnFailure::Restart,
        }
    }
}

/// What a check says about its program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Passing means ready (to serve, to be depended on).
    Readiness,
    /// Failing means broken: `on_failure` acts.
    Liveness,
}

/// How a check checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connection to HOST:PORT succeeds.
    Tcp {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
    },
    /// A command exits 0 (run with the program's user, environment,
    /// directory and network namespace; killed with its process group at
    /// the timeout).
    Exec {
        /// The command and its arguments.
        command: Vec<String>,
    },
    /// `GET http://HOST:PORT/PATH` answers with a status in `status`.
    Http {
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Path (with query).
        path: String,
        /// Passing statuses, inclusive.
        status: (u16, u16),
    },
    /// A line of the program's output matches a regular expression
    /// (readiness only; compiled when the config is read, so known valid).
    Log {
        /// The regular expression.
        pattern: String,
        /// Which output: `None` for both.
        stream: Option<nsvisor_proto::StreamKind>,
    },
    /// The program sends `READY=1` to `$NOTIFY_SOCKET` (systemd's protocol).
    NotifyReady,
    /// The program sends `WATCHDOG=1` to `$NOTIFY_SOCKET` at least once per
    /// `period` (`WATCHDOG_USEC`); liveness only.
    NotifyWatchdog,
    /// The program writes a newline to file descriptor `fd` (s6's
    /// notification fd); readiness only.
    ReadyFd {
        /// The descriptor number the program writes to (3 or more).
        fd: i32,
    },
}

impl CheckKind {
    /// The program signals this check itself (no run to schedule): `log`,
    /// `notify`, `ready_fd`.
    pub fn is_passive(&self) -> bool {
        matches!(
            self,
            CheckKind::Log { .. }
                | CheckKind::NotifyReady
                | CheckKind::NotifyWatchdog
                | CheckKind::ReadyFd { .. }
        )
    }

    /// The program talks to `$NOTIFY_SOCKET`.
    pub fn uses_notify(&self) -> bool {
        matches!(self, CheckKind::NotifyReady | CheckKind::NotifyWatchdog)
    }
}

/// What a failing liveness check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Restart the program (its stop signal, then a new start).
    Restart,
    /// Stop it.
    Stop,
    /// Shut the whole daemon down (exit code 1).
    Shutdown,
    /// Only report it.
    Ignore,
}

/// A program this one waits for before it starts, and for what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The program depended on (a unique instance name).
    pub name: ProgramName,
    /// What it must reach first.
    pub condition: Condition,
}

/// What a dependency must reach before its dependant is spawned
/// (`depends_on = { NAME = "CONDITION" }`; the list form means `ready`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// It has a process (STARTING or RUNNING).
    Started,
    /// It is RUNNING (up for `startsecs`).
    Running,
    /// It is RUNNING and ready (a program without readiness checks is ready
    /// once RUNNING). The list form `depends_on = ["db"]` means this.
    Ready,
    /// It exited on its own and will not be restarted, whatever its status.
    Completed,
    /// It exited on its own with one of its `exitcodes`, and will not be
    /// restarted (a one-shot job such as a migration).
    CompletedSuccessfully,
}

impl Dependency {
    /// A dependency on `name` for `condition`.
    pub fn on(name: impl Into<ProgramName>, condition: Condition) -> Dependency {
        Dependency {
            name: name.into(),
            condition,
        }
    }
}

impl Condition {
    /// Every condition with its config name.
    pub const NAMES: [(&'static str, Condition); 5] = [
        ("started", Condition::Started),
        ("running", Condition::Running),
        ("ready", Condition::Ready),
        ("completed", Condition::Completed),
        ("completed_successfully", Condition::CompletedSuccessfully),
    ];

    /// Its name in the config.
    pub fn name(self) -> &'static str {
        Condition::NAMES
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("ready", |(n, _)| n)
    }
}

/// Network placement of one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProgramNet {
    /// `netns = "NAME"`: join `/run/netns/NAME`.
    Join {
        /// Namespace name.
        netns: String,
    },
    /// `network = "NET"`: a sandbox the daemon creates.
    Sandbox(SandboxSpec),
}

/// A sandbox the daemon creates for a program on a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Sandbox name (`sandbox` key, default the program name with `:` replaced by `-`);
    /// the namespace is `nsvisor-<sandbox>`.
    pub sandbox: String,
    /// Network name.
    pub network: String,
    /// Address inside the sandbox (static or allocated at validation, stable for a config).
    pub address: Ipv4Addr,
    /// Port mappings.
    pub ports: Vec<PortMapping>,
}

/// Transport of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// `"[IP:]HOSTPORT:PORT[/udp]"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// Host address to listen on (default 0.0.0.0).
    pub host_ip: IpAddr,
    /// Host port.
    pub host_port: u16,
    /// Port inside the sandbox.
    pub port: u16,
    /// Transport.
    pub protocol: Protocol,
    /// How the host port reaches the sandbox.
    pub mode: PortMode,
    /// `port_hold`: how long the proxy holds a new connection while the
    /// program cannot take it (restarting, not RUNNING or not ready); zero:
    /// forwarded at once, refused if nothing listens.
    pub hold: std::time::Duration,
}

/// `port_hold` when not set.
pub const DEFAULT_PORT_HOLD: std::time::Duration = std::time::Duration::from_secs(5);

/// How a mapped port is forwarded (`port_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PortMode {
    /// The daemon listens on the host port and copies each connection or
    /// flow into the sandbox (Docker's userland proxy). The program sees the
    /// proxy's address as the client.
    #[default]
    Proxy,
    /// The kernel rewrites the destination (DNAT in nsvisor's nftables
    /// table; Docker's `--userland-proxy=false`). The program sees the
    /// client's own address, except for connections to the host's loopback.
    Nat,
}

/// `[networks.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Network name.
    pub name: String,
    /// Bridge interface name (≤ 15 bytes).
    pub bridge: String,
    /// Subnet (at most /30).
    pub subnet: Subnet,
    /// Bridge address (default: last usable address of the subnet).
    pub gateway: Ipv4Addr,
    /// Source-NAT traffic from the subnet that leaves through any other
    /// interface, and let the host forward it (default true).
    pub masquerade: bool,
}

impl Config {
    /// A config with no programs, for single-command mode without `-c`.
    pub fn empty() -> Config {
        Config {
            path: PathBuf::new(),
            supervisor: SupervisorConfig::default(),
            programs: BTreeMap::new(),
            networks: BTreeMap::new(),
        }
    }
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            minfds: 1024,
            socket: None,
            socket_mode: 0o600,
            socket_owner: None,
            allowed_uids: Vec::new(),
            allowed_gids: Vec::new(),
            read_only_uids: Vec::new(),
            read_only_gids: Vec::new(),
            log_dir: None,
            console: ConsoleMode::Prefixed,
            tail_buffer_bytes: 64 * 1024,
            log_level: None,
            logfile: None,
            shutdown_grace: Duration::from_secs(5),
            health_listen: None,
            environment: BTreeMap::new(),
            pidfile: None,
            socket_auth: None,
            inet_http_server: None,
        }
    }
}

impl ProgramConfig {
    /// A program with supervisord's defaults (adjusted for containers), for
    /// single-command mode and tests.
    pub fn with_defaults(name: &str, command: Vec<String>) -> ProgramConfig {
        let stream = StreamLog {
            logfile: LogFile::None,
            maxbytes: 50 * 1024 * 1024,
            backups: 10,
            console: ConsoleMode::Prefixed,
            tail_bytes: 64 * 1024,
        };
        ProgramConfig {
            name: name.into(),
            group: name.into(),
            process_num: 0,
            command: command.into(),
            directory: None,
            environment: BTreeMap::new(),
            user: None,
            umask: None,
            no_new_privs: false,
            autostart: true,
            autorestart: AutoRestart::Unexpected,
            exitcodes: Arc::new([0]),
            startsecs: Duration::from_secs(1),
            startretries: 3,
            stopsignal: Signal::SIGTERM,
            stopwaitsecs: Duration::from_secs(10),
            stopasgroup: false,
            killasgroup: false,
            priority: 999,
            depends_on: Vec::new(),
            checks: Vec::new(),
            critical: false,
            redirect_stderr: false,
            stdout: stream.clone(),
            stderr: stream,
            net: None,
            source: Arc::from(Path::new("")),
        }
    }
}
