//! The `[supervisor]` table → [`SupervisorConfig`] plus the `include` patterns
//! (expanded by `validate.rs`, which owns file reading).
//!
//! Relative paths are relative to the main config file's directory.

use std::path::Path;

use super::error::Diag;
use super::raw::{Loc, Table};
use super::read::Reader;
use super::suggest::did_you_mean;
use super::units::{self, Conv};
use super::SupervisorConfig;

const KEYS: &[&str] = &[
    "minfds",
    "include",
    "socket",
    "socket_mode",
    "socket_owner",
    "allowed_uids",
    "allowed_gids",
    "log_dir",
    "console",
    "tail_buffer",
    "log_level",
    "logfile",
    "shutdown_grace",
    "health_listen",
];

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
    Section { config, includes }
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

fn log_level(node: &super::raw::Node) -> Conv<String> {
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
