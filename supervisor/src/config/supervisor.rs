//! The `[supervisor]` table → [`SupervisorConfig`] plus the `include` patterns
//! (expanded by `validate.rs`, which owns file reading).
//!
//! Relative paths are relative to the main config file's directory.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::Diag;
use super::raw::{Loc, Node, Table, Value};
use super::read::Reader;
use super::suggest::did_you_mean;
use super::units::{self, Conv};
use super::{Credentials, InetHttpServer, SupervisorConfig};

const KEYS: &[&str] = &[
    "minfds",
    "include",
    "socket",
    "socket_mode",
    "socket_owner",
    "allowed_uids",
    "allowed_gids",
    "read_only_uids",
    "read_only_gids",
    "log_dir",
    "console",
    "tail_buffer",
    "log_level",
    "logfile",
    "shutdown_grace",
    "health_listen",
    "environment",
    "environment_file",
    "pidfile",
    "socket_username",
    "socket_password",
    "inet_http_server",
];

const INET_KEYS: &[&str] = &["port", "username", "password"];

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// `[supervisor]` read: the config and the include patterns with their positions.
pub(super) struct Section {
    pub config: SupervisorConfig,
    pub includes: Vec<(String, Loc)>,
}

/// Reads `[supervisor]` (`None`: the table is absent, defaults apply).
pub(super) fn read(diag: &mut Diag, table: Option<&Table>, base: &Path) -> Section {
    let mut config = SupervisorConfig::default();
    let mut includes = Vec::new();
    let Some(table) = table else {
        return Section { config, includes };
    };
    let mut r = Reader::new(diag, table, "[supervisor]", KEYS, None);
    if let Some(v) = r.get("minfds", |n| units::int_in(n, 1, i64::MAX)) {
        config.minfds = v as u64;
    }
    if let Some(node) = r.node("include") {
        for item in units::items(node) {
            if let Some(p) = r.check("include", item, units::non_empty_string(item)) {
                includes.push((p, item.loc));
            }
        }
    }
    config.socket = r.get("socket", |n| units::path(base, n));
    if let Some(mode) = r.get("socket_mode", |n| units::octal(n, 0o777)) {
        config.socket_mode = mode;
    }
    config.socket_owner = r
        .get("socket_owner", units::user_spec)
        .map(|u| match u.group {
            Some(g) => format!("{}:{g}", u.user),
            None => u.user,
        });
    config.allowed_uids = id_list(&mut r, "allowed_uids");
    config.allowed_gids = id_list(&mut r, "allowed_gids");
    config.read_only_uids = id_list(&mut r, "read_only_uids");
    config.read_only_gids = id_list(&mut r, "read_only_gids");
    config.log_dir = r.get("log_dir", |n| units::path(base, n));
    if let Some(c) = r.get("console", units::console) {
        config.console = c;
    }
    if let Some(t) = r.get("tail_buffer", units::size) {
        config.tail_buffer_bytes = t;
    }
    config.log_level = r.get("log_level", log_level);
    config.logfile = r.get("logfile", |n| units::path(base, n));
    config.health_listen = r.get("health_listen", |n| {
        let text = units::string(n)?;
        text.parse::<std::net::SocketAddr>().map_err(|_| {
            format!("invalid address \"{text}\", expected IP:PORT such as \"0.0.0.0:8558\"")
        })
    });
    if let Some(g) = r.get("shutdown_grace", units::seconds) {
        config.shutdown_grace = g;
    }
    config.environment = super::environment::merged(&mut r, base, &BTreeMap::new());
    config.pidfile = r.get("pidfile", |n| units::path(base, n));
    config.socket_auth = socket_auth(&mut r, table);
    config.inet_http_server = inet_http_server(&mut r);
    Section { config, includes }
}

/// `socket_username` and `socket_password`: both or neither.
fn socket_auth(r: &mut Reader, table: &Table) -> Option<Credentials> {
    let username = r.get("socket_username", units::string);
    let password = r.get("socket_password", units::string);
    credentials(
        r,
        table,
        "socket_username",
        "socket_password",
        username,
        password,
    )
}

/// Both halves of a username/password pair, or neither (an error).
fn credentials(
    r: &mut Reader,
    table: &Table,
    user_key: &str,
    password_key: &str,
    username: Option<String>,
    password: Option<String>,
) -> Option<Credentials> {
    match (username, password) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        (None, None) => None,
        (u, _) => {
            let (given, missing) = if u.is_some() {
                (user_key, password_key)
            } else {
                (password_key, user_key)
            };
            if let Some(entry) = table.get(given) {
                r.error(
                    entry.key_loc,
                    format!("{given}: needs {missing} too (give both or neither)"),
                );
            }
            None
        }
    }
}

/// `inet_http_server = { port = "127.0.0.1:9001", username = "u", password = "p" }`.
fn inet_http_server(r: &mut Reader) -> Option<InetHttpServer> {
    let node = r.node("inet_http_server")?;
    let Value::Table(table) = &node.value else {
        let found = units::describe(node);
        r.error(
            node.loc,
            format!("inet_http_server: expected a table like {{ port = \"127.0.0.1:9001\" }}, found {found}"),
        );
        return None;
    };
    for entry in &table.entries {
        if !INET_KEYS.contains(&entry.key.as_str()) {
            let hint = did_you_mean(&entry.key, INET_KEYS);
            r.error(
                entry.key_loc,
                format!("inet_http_server: unknown key \"{}\"{hint}", entry.key),
            );
        }
    }
    let field = |r: &mut Reader, key: &str| {
        let e = table.get(key)?;
        r.check(
            &format!("inet_http_server: {key}"),
            &e.node,
            units::string(&e.node),
        )
    };
    let port = match table.get("port") {
        Some(e) => r.check("inet_http_server: port", &e.node, inet_port(&e.node))?,
        None => {
            r.error(node.loc, "inet_http_server: port is missing".into());
            return None;
        }
    };
    let (username, password) = (field(r, "username"), field(r, "password"));
    let auth = credentials(r, table, "username", "password", username, password);
    if auth.is_none() && !is_loopback(&port) {
        r.error(
            node.loc,
            format!("inet_http_server: \"{port}\" is reachable from other hosts: set username and password, or bind to a loopback address (127.0.0.1:PORT)"),
        );
        return None;
    }
    Some(InetHttpServer { port, auth })
}

/// Whether `PORT` / `HOST:PORT` binds a loopback address only (a bare port or
/// `*` binds every address, as in supervisord).
fn is_loopback(port: &str) -> bool {
    let Some((host, _)) = port.rsplit_once(':') else {
        return false;
    };
    let host = host.trim_matches(['[', ']']);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `PORT`, `HOST:PORT`, `*:PORT` or `:PORT` (port 1 to 65535), as written.
fn inet_port(node: &Node) -> Conv<String> {
    let text = match &node.value {
        Value::Int { value, .. } => value.to_string(),
        _ => units::string(node)?,
    };
    let port = text.rsplit_once(':').map_or(text.as_str(), |(_, p)| p);
    match port.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(text),
        _ => Err(format!(
            "invalid address \"{text}\", expected PORT or HOST:PORT (port 1 to 65535)"
        )),
    }
}

fn id_list(r: &mut Reader, key: &str) -> Vec<u32> {
    let Some(node) = r.node(key) else {
        return Vec::new();
    };
    units::items(node)
        .into_iter()
        .filter_map(|item| r.check(key, item, units::u32_any(item)))
        .collect()
}

fn log_level(node: &Node) -> Conv<String> {
    let mut s = units::string(node)?.to_ascii_lowercase();
    if s == "warning" {
        s = "warn".into();
    }
    if LEVELS.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(format!(
            "invalid log level \"{s}\", expected one of {}{}",
            LEVELS.join(", "),
            did_you_mean(&s, LEVELS)
        ))
    }
}
