//! `nsvisor check` and start-up on bad configs: exit code 2 and messages that
//! point at file:line:column, with a suggestion for a misspelt key; a valid
//! config checks clean (exit 0).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use nsvisor_tests::{nsvisor_bin, testprog_cmd, Daemon};

/// Writes `body` to a fresh temp dir as `nsvisor.toml`.
fn write(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix("nsvisor-check-")
        .tempdir()
        .expect("temp dir");
    let path = dir.path().join("nsvisor.toml");
    std::fs::write(&path, body).expect("write config");
    (dir, path)
}

fn check(path: &Path) -> Output {
    Command::new(nsvisor_bin())
        .args(["check", "-c"])
        .arg(path)
        .output()
        .expect("run nsvisor check")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts the output names `path:line:COLUMN` for some column ≥ 1, and returns
/// the text of that message line.
fn message_at(out: &str, path: &Path, line: usize) -> String {
    let prefix = format!("{}:{line}:", path.display());
    out.lines()
        .find_map(|l| {
            let at = l.find(&prefix)?;
            let rest = &l[at + prefix.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (digits.parse::<usize>().ok()? >= 1).then(|| l.to_string())
        })
        .unwrap_or_else(|| panic!("no message at {prefix}<column> in:\n{out}"))
}

fn program(extra: &str) -> String {
    format!(
        "[programs.web]\ncommand = {}\n{extra}\n",
        testprog_cmd(&["sleep", "forever"])
    )
}

#[test]
fn valid_config_checks_clean() {
    let (_dir, path) = write(&program("startsecs = 0\nstopsignal = \"INT\""));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn unknown_key_is_located_and_a_fix_suggested() {
    let (_dir, path) = write(&program("autorestrat = \"never\""));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = message_at(&text(&out), &path, 3);
    assert!(msg.contains("autorestrat"), "names the key: {msg}");
    assert!(
        text(&out).contains("autorestart"),
        "suggests the key: {}",
        text(&out)
    );
}

#[test]
fn wrong_type_is_located() {
    let (_dir, path) = write(&program("startsecs = \"soon\""));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = message_at(&text(&out), &path, 3);
    assert!(msg.contains("startsecs"), "names the key: {msg}");
}

#[test]
fn bad_signal_is_located() {
    let (_dir, path) = write(&program("stopsignal = \"TERMINATE\""));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let msg = message_at(&text(&out), &path, 3);
    assert!(
        msg.contains("stopsignal") || msg.contains("TERMINATE"),
        "{msg}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let (_dir, path) = write(&program("autorestrat = \"never\"\nstartsecs = \"soon\""));
    let out = check(&path);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    message_at(&text(&out), &path, 3);
    message_at(&text(&out), &path, 4);
}

#[test]
fn config_from_environment_variable() {
    let (_dir, path) = write(&program("autorestrat = \"never\""));
    let out = Command::new(nsvisor_bin())
        .arg("check")
        .env("NSVISOR_CONFIG", &path)
        .output()
        .expect("run nsvisor check");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    message_at(&text(&out), &path, 3);
}

#[test]
fn daemon_refuses_to_start_on_a_bad_config() {
    let mut d = Daemon::builder()
        .config(&program("stopsignal = \"TERMINATE\""))
        .spawn();
    let status = d.wait_exit(Duration::from_secs(10));
    let out = format!("{}{}", d.stdout(), d.stderr());
    assert_eq!(status.code(), Some(2), "{out}");
    message_at(&out, &d.config_path(), 3);
}
