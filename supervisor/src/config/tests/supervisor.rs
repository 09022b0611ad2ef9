//! `[supervisor]` keys and defaults.

use std::path::PathBuf;
use std::time::Duration;

use super::helpers::{assert_at, error, ok};
use crate::config::{ConsoleMode, SupervisorConfig};

#[test]
fn defaults_without_a_supervisor_table() {
    let c = ok("");
    assert_eq!(c.supervisor, SupervisorConfig::default());
    assert_eq!(c.supervisor.minfds, 1024);
    assert_eq!(c.supervisor.socket_mode, 0o600);
    assert_eq!(c.supervisor.shutdown_grace, Duration::from_secs(5));
    assert_eq!(c.supervisor.tail_buffer_bytes, 64 << 10);
    assert!(c.programs.is_empty() && c.networks.is_empty());
}

#[test]
fn every_key() {
    let c = ok(r#"[supervisor]
minfds = 4096
socket = "/run/nsvisor.sock"
socket_mode = "0660"
socket_owner = "root:wheel"
allowed_uids = [1000, 1001]
allowed_gids = [50]
read_only_uids = [2000]
read_only_gids = [60, 61]
log_dir = "logs"
console = "raw"
tail_buffer = "1MB"
log_level = "DEBUG"
logfile = "/var/log/nsvisor.log"
shutdown_grace = 2.5
"#);
    let s = &c.supervisor;
    let dir = c.path.parent().unwrap();
    assert_eq!(s.minfds, 4096);
    assert_eq!(s.socket, Some(PathBuf::from("/run/nsvisor.sock")));
    assert_eq!(s.socket_mode, 0o660);
    assert_eq!(s.socket_owner.as_deref(), Some("root:wheel"));
    assert_eq!(s.allowed_uids, vec![1000, 1001]);
    assert_eq!(s.allowed_gids, vec![50]);
    assert_eq!(s.read_only_uids, vec![2000]);
    assert_eq!(s.read_only_gids, vec![60, 61]);
    assert_eq!(s.log_dir, Some(dir.join("logs")));
    assert_eq!(s.console, ConsoleMode::Raw);
    assert_eq!(s.tail_buffer_bytes, 1 << 20);
    assert_eq!(s.log_level.as_deref(), Some("debug"));
    assert_eq!(s.logfile, Some(PathBuf::from("/var/log/nsvisor.log")));
    assert_eq!(s.shutdown_grace, Duration::from_millis(2500));
    let warn = ok("[supervisor]\nlog_level = \"warning\"\n");
    assert_eq!(warn.supervisor.log_level.as_deref(), Some("warn"));
    assert_eq!(
        ok("[supervisor]\nsocket_mode = 0o666\n")
            .supervisor
            .socket_mode,
        0o666
    );
    assert_eq!(
        ok("[supervisor]\nsocket_mode = 660\n")
            .supervisor
            .socket_mode,
        0o660
    );
}

#[test]
fn health_listen_is_off_by_default_and_takes_ip_port() {
    assert_eq!(ok("").supervisor.health_listen, None);
    let c = ok("[supervisor]\nhealth_listen = \"0.0.0.0:8558\"\n");
    assert_eq!(
        c.supervisor.health_listen,
        Some("0.0.0.0:8558".parse().unwrap())
    );
}

#[test]
fn console_and_tail_defaults_flow_into_programs() {
    let c = ok("[supervisor]\nconsole = false\ntail_buffer = 10\n[programs.p]\ncommand = \"x\"\nstderr_console = \"prefixed\"\n");
    let p = &c.programs["p"];
    assert_eq!(p.stdout.console, ConsoleMode::Off);
    assert_eq!(p.stderr.console, ConsoleMode::Prefixed);
    assert_eq!(p.stderr.tail_bytes, 10);
}

#[test]
fn errors() {
    let s = "[supervisor]\n";
    assert_at(
        &error(&format!("{s}health_listen = \"8558\"\n")),
        2,
        17,
        "health_listen: invalid address \"8558\", expected IP:PORT such as \"0.0.0.0:8558\"",
    );
    assert_at(
        &error(&format!("{s}minfds = 0\n")),
        2,
        10,
        "minfds: 0 is out of range",
    );
    assert_at(
        &error(&format!("{s}socket_mode = \"0999\"\n")),
        2,
        15,
        "not an octal number",
    );
    assert_at(
        &error(&format!("{s}socket_mode = \"10000\"\n")),
        2,
        15,
        "too large",
    );
    assert_at(
        &error(&format!("{s}allowed_uids = [1, -1]\n")),
        2,
        20,
        "allowed_uids: -1 is out of range",
    );
    assert_at(
        &error(&format!("{s}log_level = \"verbose\"\n")),
        2,
        13,
        "invalid log level",
    );
    assert_at(
        &error(&format!("{s}log_level = \"inf\"\n")),
        2,
        13,
        "did you mean \"info\"",
    );
    assert_at(
        &error(&format!("{s}shutdown_grace = -1\n")),
        2,
        18,
        "must be ≥ 0",
    );
    assert_at(
        &error(&format!("{s}socket = \"\"\n")),
        2,
        10,
        "socket: must not be empty",
    );
    assert_at(
        &error(&format!("{s}include = [1]\n")),
        2,
        12,
        "include: expected a string",
    );
    assert_at(
        &error("supervisor = 1\n"),
        1,
        14,
        "supervisor: expected a table",
    );
}
