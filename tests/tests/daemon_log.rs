//! The daemon's own log on stderr: its level (`--log-level`, which beats the
//! config's `log_level`, and `RUST_LOG`, which beats both) and its colours
//! (only on a terminal, and never with `NO_COLOR`).
//!
//! Every daemon here runs without `RUST_LOG` and `NO_COLOR` from the test's
//! environment unless the test sets them. Checks read whole log lines
//! (timestamps removed) after the daemon has exited, so nothing is still queued.

use std::io::Read;
use std::time::Duration;

use nsvisor_tests::{log_lines, program_toml, Daemon, DaemonBuilder};

const T: Duration = Duration::from_secs(10);

/// A daemon with one program and `log_level = "info"` in its config, with a
/// clean environment for its log settings.
fn builder() -> DaemonBuilder {
    Daemon::builder()
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .config(&format!(
            "[supervisor]\nlog_level = \"info\"\n\n{}",
            program_toml("p", &["sleep", "forever"], "startsecs = 0")
        ))
}

/// Starts, makes one bad request (a DEBUG line), shuts down; returns the log lines.
fn run(b: DaemonBuilder) -> Vec<String> {
    let mut d = b.start();
    d.wait_state("p", nsvisor_proto::State::Running, T);
    let _ = d.request_raw(b"\x00 not http\r\n\r\n");
    assert_eq!(d.terminate().code(), Some(0));
    log_lines(&d.stderr())
}

fn levels(lines: &[String]) -> Vec<&str> {
    let mut levels: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    levels.sort_unstable();
    levels.dedup();
    levels
}

#[test]
fn log_level_flag_beats_the_config_and_rust_log_beats_both() {
    let info = run(builder());
    assert_eq!(levels(&info), ["INFO"], "the config's info: {info:#?}");
    assert!(info.contains(&"INFO shutting down (received SIGTERM)".to_string()));

    let warn = run(builder().args(["--log-level", "warn"]));
    assert_eq!(
        warn,
        Vec::<String>::new(),
        "nothing at warn or above happened"
    );

    let debug = run(builder().args(["--log-level", "debug"]));
    assert_eq!(levels(&debug), ["DEBUG", "INFO"], "{debug:#?}");
    assert!(
        debug
            .iter()
            .any(|l| l.starts_with("DEBUG control socket: connection ended: ")),
        "the bad request is logged at debug: {debug:#?}"
    );

    let env = run(builder()
        .args(["--log-level", "debug"])
        .env("RUST_LOG", "warn"));
    assert_eq!(
        env,
        Vec::<String>::new(),
        "RUST_LOG=warn wins over --log-level"
    );
}

/// Runs the daemon with its stderr on a pseudo-terminal; returns what it wrote.
fn on_a_terminal(b: DaemonBuilder) -> String {
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let mut master = std::fs::File::from(pty.master);
    // Read as it comes, so the terminal's buffer never fills. The daemon holds
    // the only other end: once it is gone, the read ends (EIO on a pty).
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    let mut d = b.stderr_to(pty.slave).start();
    assert_eq!(d.terminate().code(), Some(0));
    reader.join().expect("the reader thread")
}

#[test]
fn colours_on_a_terminal_unless_no_color() {
    let coloured = on_a_terminal(builder());
    assert!(
        coloured.contains("shutting down (received SIGTERM)") && coloured.contains("\x1b["),
        "a terminal gets colours: {coloured:?}"
    );
    let plain = on_a_terminal(builder().env("NO_COLOR", "1"));
    assert!(
        plain.contains("shutting down (received SIGTERM)") && !plain.contains('\x1b'),
        "NO_COLOR: no escape sequences: {plain:?}"
    );
}
