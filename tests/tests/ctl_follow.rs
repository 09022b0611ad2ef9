//! `nsvisorctl events` in text form, and `tail -f` when a reload removes the
//! program it follows (the output ended for good while the daemon goes on:
//! exit 0). `tail -f` when the daemon stops (exit 5) is in `ctl.rs`.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nsvisor_proto::{State, StateEvent};
use nsvisor_tests::{lines_of, nsvisorctl_bin, program_toml, wait_until, Daemon};

const T: Duration = Duration::from_secs(10);

/// Starts `nsvisorctl -s <socket> args...` with stdout and stderr piped.
fn spawn_ctl(d: &Daemon, args: &[&str]) -> Child {
    Command::new(nsvisorctl_bin())
        .arg("-s")
        .arg(d.socket())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run nsvisorctl")
}

/// Waits until `n` more clients follow the event stream than `before`.
fn wait_followers(d: &Daemon, before: f64, n: f64) {
    wait_until("the event followers to subscribe", T, || {
        (d.metric("nsvisor_api_event_followers") == Some(before + n)).then_some(())
    });
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix milliseconds of an RFC 3339 UTC time with milliseconds
/// (`2026-11-24T17:33:00.088Z`); panics on anything else.
fn unix_ms(stamp: &str) -> u64 {
    let bad = || panic!("not a UTC time with milliseconds: {stamp:?}");
    let digits = |range: std::ops::Range<usize>| -> i64 {
        stamp
            .get(range)
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(bad)
    };
    let shape = stamp.len() == 24
        && stamp.as_bytes()[4] == b'-'
        && stamp.as_bytes()[7] == b'-'
        && stamp.as_bytes()[10] == b'T'
        && stamp.as_bytes()[13] == b':'
        && stamp.as_bytes()[16] == b':'
        && stamp.as_bytes()[19] == b'.'
        && stamp.ends_with('Z');
    if !shape {
        bad();
    }
    let days = days_from_civil(digits(0..4), digits(5..7), digits(8..10));
    let secs = days * 86_400 + digits(11..13) * 3600 + digits(14..16) * 60 + digits(17..19);
    (secs * 1000 + digits(20..23)) as u64
}

/// What `nsvisorctl events` prints for `e`, after the time.
fn described(e: &StateEvent) -> String {
    let mut out = format!("{} {} -> {}", e.name, e.from, e.to);
    match (e.exit_status, e.pid) {
        (Some(status), _) => out += &format!(" ({status})"),
        (None, Some(pid)) => out += &format!(" (pid {pid})"),
        (None, None) => {}
    }
    out
}

#[test]
fn events_as_text_one_line_per_change_with_its_utc_time() {
    let d = Daemon::start(&program_toml(
        "idle",
        &["term-exit", "0", "sleep", "forever"],
        "startsecs = 0\nautostart = false",
    ));
    let before = d
        .metric("nsvisor_api_event_followers")
        .expect("the followers metric");
    let mut reference = d.events();
    let mut events = spawn_ctl(&d, &["events"]);
    let lines = lines_of(&mut events);
    wait_followers(&d, before, 2.0);
    assert_eq!(d.ctl(&["start", "idle"]).status.code(), Some(0));
    assert_eq!(d.ctl(&["stop", "idle"]).status.code(), Some(0));
    reference.wait_for("idle →STOPPED", T, |e| e.to == State::Stopped);
    assert!(reference.seen.len() >= 3, "{:?}", reference.seen);

    for (i, event) in reference.seen.iter().enumerate() {
        let line = lines
            .recv_timeout(T)
            .unwrap_or_else(|e| panic!("no line for event {i} {event:?}: {e}"));
        let (stamp, rest) = line
            .split_once(' ')
            .unwrap_or_else(|| panic!("no time in {line:?}"));
        assert_eq!(rest, described(event), "line {i}: {line:?}");
        assert_eq!(unix_ms(stamp), event.time_ms, "line {i}: {line:?}");
    }
    assert!(
        events.try_wait().expect("wait").is_none(),
        "still following"
    );
    let _ = events.kill();
    let _ = events.wait();
}

#[test]
fn tail_f_ends_with_0_when_a_reload_removes_its_program() {
    let programs = |with_talker: bool| {
        let talker = program_toml(
            "talker",
            &[
                "print-lines",
                "3",
                "wait-file",
                "{dir}/go",
                "print-lines",
                "1",
                "--prefix",
                "late-",
                "sleep",
                "forever",
            ],
            "startsecs = 0",
        );
        let other = program_toml("other", &["sleep", "forever"], "startsecs = 0");
        if with_talker {
            talker + &other
        } else {
            other
        }
    };
    let d = Daemon::start(&programs(true));
    d.wait_state("talker", State::Running, T);
    wait_until("talker's lines in its tail", T, || {
        let out = d.ctl(&["tail", "talker"]);
        (out.stdout.ends_with(b"line 3\n")).then_some(())
    });
    let mut follow = spawn_ctl(&d, &["tail", "-f", "talker"]);
    let lines = lines_of(&mut follow);
    for i in 1..=3 {
        assert_eq!(lines.recv_timeout(T).ok(), Some(format!("line {i}")));
    }
    std::fs::write(d.dir().join("go"), "").expect("write go");
    assert_eq!(
        lines.recv_timeout(T).ok().as_deref(),
        Some("late-line 1"),
        "still following"
    );

    d.write_config(&programs(false));
    let reload = d.ctl(&["reload"]);
    assert_eq!(
        (
            reload.status.code(),
            String::from_utf8_lossy(&reload.stdout).into_owned()
        ),
        (Some(0), "talker: removed\n".to_string())
    );
    let status = wait_until("tail -f to end with its program", T, || {
        follow.try_wait().expect("wait")
    });
    let mut stderr = String::new();
    follow
        .stderr
        .take()
        .expect("stderr is piped")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert_eq!(
        (status.code(), stderr.as_str()),
        (Some(0), ""),
        "the output ended for good while the daemon goes on"
    );
    assert_eq!(
        lines.recv_timeout(T).ok(),
        None,
        "nothing more after the last line"
    );
    assert_eq!(d.status("other").map(|p| p.state), Some(State::Running));
}
