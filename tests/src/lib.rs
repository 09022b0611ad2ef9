//! End-to-end test harness: starts the real binaries in temp dirs.
//!
//! Tests build a [`Daemon`] from a TOML string; the harness writes it into a fresh
//! temp dir (with the control socket inside it), starts `nsvisor -c` with stdout
//! and stderr captured to files there, and waits until `GET /v1/health` answers.
//! Dropping the daemon SIGTERMs it, SIGKILLs it after a bound, and prints what it
//! wrote when the test is failing. Talking to it is plain HTTP/1.1 over a
//! `UnixStream` ([`http`]), with timeouts so a broken daemon fails a test instead
//! of hanging it.
//!
//! Synchronisation is [`wait_until`] only: poll a condition until it holds or a
//! generous bound passes. No fixed sleeps.
//!
//! Config strings may use two placeholders: `{dir}` (the daemon's temp dir) and
//! `{testprog}` (the fixture binary), so commands can be written inline.

mod bins;
mod config_files;
mod daemon;
pub mod engine;
pub mod http;
pub mod image;
mod launch;
pub mod procs;
mod rng;
pub mod supervisord;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

pub use bins::{is_root, nsvisor_bin, nsvisorctl_bin, require_root, testprog};
pub use daemon::{Daemon, DaemonBuilder};
pub use http::{EventStream, KeepAlive, Response, StreamBody};
pub use procs::{
    children_of, comm_of, fd_count, is_alive, ppid_of, proc_state, read_lines, read_records,
    status_kb, zombie_children, KillOnDrop, Record,
};
pub use rng::Rng;

/// Polls `probe` every 10 ms until it returns `Some`, and returns that value.
/// Panics with "timed out after {timeout:?} waiting for {what}" otherwise.
pub fn wait_until<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll(timeout, probe).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

/// Polls `probe` every 10 ms until it returns `Some` or `timeout` passes.
pub fn poll<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the `testprog` record file `file` holds a line with `event`
/// (`"start"`, `"signal TERM"`, `"exit 0"`, ...) and returns the first such record.
pub fn wait_record(file: &Path, event: &str, timeout: Duration) -> Record {
    let what = format!("{event:?} in {}", file.display());
    wait_until(&what, timeout, || {
        read_records(file).into_iter().find(|r| r.event == event)
    })
}

/// The lines of the daemon's text log without their timestamps, each as
/// `LEVEL message fields...` (`"WARN no programs configured; ..."`), so tests can
/// compare whole lines. Lines that do not start with a timestamp (program
/// output on the console) are left out.
pub fn log_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|line| {
            let (stamp, rest) = line.split_once(' ')?;
            let is_stamp = stamp.len() >= 20
                && stamp.ends_with('Z')
                && stamp.as_bytes().get(10) == Some(&b'T')
                && stamp[..4].bytes().all(|b| b.is_ascii_digit());
            is_stamp.then(|| rest.trim_start().to_string())
        })
        .collect()
}

/// The lines a child prints on stdout, as they come (read on a thread).
pub fn lines_of(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::{BufRead, BufReader};
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Quotes a string as a TOML basic string (`"..."`).
pub fn toml_quote(s: impl AsRef<OsStr>) -> String {
    let s = s.as_ref().to_string_lossy();
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML array of strings for `command = [...]`: `testprog` followed by `args`.
pub fn testprog_cmd(args: &[&str]) -> String {
    let mut items = vec![toml_quote(testprog())];
    items.extend(args.iter().map(toml_quote));
    format!("[{}]", items.join(", "))
}

/// One `[programs.NAME]` table running `testprog args...`, followed by `extra`
/// lines (e.g. `"startsecs = 0\nautorestart = \"never\""`).
pub fn program_toml(name: &str, args: &[&str], extra: &str) -> String {
    format!(
        "[programs.{name}]\ncommand = {}\n{extra}\n\n",
        testprog_cmd(args)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_quoting() {
        assert_eq!(toml_quote("a\"b\\c"), r#""a\"b\\c""#);
    }

    #[test]
    fn log_lines_drop_timestamps_and_console_output() {
        let log = "2026-12-01T08:10:44.903974Z  INFO control API listening socket=/s\n\
                   web | a program line\n\
                   2026-12-01T08:10:45.943153Z  WARN changes to [supervisor] take effect\n";
        assert_eq!(
            log_lines(log),
            [
                "INFO control API listening socket=/s",
                "WARN changes to [supervisor] take effect"
            ]
        );
    }

    #[test]
    fn wait_until_returns_the_value() {
        let mut n = 0;
        let v = wait_until("n to reach 3", Duration::from_secs(1), || {
            n += 1;
            (n >= 3).then_some(n)
        });
        assert_eq!(v, 3);
    }
}
