//! `nsvisorctl` end to end: every command against a real daemon, its output
//! (text and `--json`) and its exit code (0 ok, 1 action failed, 2 usage,
//! 3 not running, 4 unknown program, 5 daemon unreachable), and how it finds
//! the daemon's socket. `signal` in detail is in `ctl_signal.rs`, `events` and
//! `tail -f` in `ctl_follow.rs`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nsvisor_proto::{ActionResult, Health, ProgramInfo, ReloadResult, State, StateEvent};
use nsvisor_tests::{lines_of, nsvisor_bin, nsvisorctl_bin, testprog_cmd, wait_until, Daemon};

const T: Duration = Duration::from_secs(10);

/// `[programs.NAME]` running testprog with `args`, plus `extra` keys.
fn program(name: &str, args: &[&str], extra: &str) -> String {
    format!(
        "[programs.{name}]\ncommand = {}\n{extra}\n\n",
        testprog_cmd(args)
    )
}

/// web (running), idle (not autostarted), pool:0 and pool:1 (running).
fn three_kinds() -> String {
    [
        program("web", &["sleep", "forever"], "startsecs = 0"),
        program(
            "idle",
            &["sleep", "forever"],
            "startsecs = 0\nautostart = false",
        ),
        program("pool", &["sleep", "forever"], "startsecs = 0\nnumprocs = 2"),
    ]
    .concat()
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ctl(d: &Daemon, args: &[&str]) -> Out {
    let out = d.ctl(args);
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn ctl_at(socket: &str, args: &[&str]) -> Out {
    let out = Command::new(nsvisorctl_bin())
        .args(["-s", socket])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run nsvisorctl");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Replaces the daemon's config file (keeping its socket), for reloads.
fn rewrite_config(d: &Daemon, programs: &str) {
    let socket = nsvisor_tests::toml_quote(d.socket());
    let body = format!("[supervisor]\nsocket = {socket}\n\n{programs}");
    std::fs::write(d.dir().join("nsvisor.toml"), body).expect("cannot write the config");
}

fn json<T: serde::de::DeserializeOwned>(out: &Out) -> T {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not the JSON expected ({e}): {}", out.stdout))
}

#[test]
fn status_table_matches_json_and_exit_codes() {
    let d = Daemon::start(&three_kinds());
    for name in ["web", "pool:0", "pool:1"] {
        d.wait_state(name, State::Running, T);
    }
    let table = ctl(&d, &["status"]);
    assert_eq!(table.code, 0, "{}", table.stderr);
    let programs: Vec<ProgramInfo> = json(&ctl(&d, &["status", "--json"]));
    assert_eq!(programs.len(), 4);
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), programs.len(), "{}", table.stdout);
    let state_col = lines[0]
        .find(programs[0].state.as_str())
        .expect("a state column");
    for (line, p) in lines.iter().zip(&programs) {
        assert!(line.starts_with(&format!("{} ", p.name)), "{line}");
        assert_eq!(
            line.find(p.state.as_str()),
            Some(state_col),
            "aligned: {}",
            table.stdout
        );
        assert!(line.ends_with(p.description.as_str()), "{line}");
        if p.state == State::Running {
            let pid = p.pid.expect("a running program has a pid");
            assert!(line.contains(&format!("pid {pid}, uptime ")), "{line}");
        }
    }

    assert_eq!(ctl(&d, &["status", "web"]).code, 0);
    assert_eq!(ctl(&d, &["status", "pool:*"]).stdout.lines().count(), 2);
    let idle = ctl(&d, &["status", "idle"]);
    assert_eq!(
        (idle.code, idle.stdout.split_whitespace().nth(1)),
        (3, Some("STOPPED"))
    );
    let ghost = ctl(&d, &["status", "web", "ghost"]);
    assert_eq!(ghost.code, 4);
    assert!(
        ghost.stderr.contains("no such program: \"ghost\""),
        "{}",
        ghost.stderr
    );
    assert!(
        ghost.stdout.starts_with("web "),
        "the known one is still shown"
    );
}

#[test]
fn start_stop_restart_and_their_exit_codes() {
    let config = three_kinds()
        + &program(
            "broken",
            &["exit", "3"],
            "autostart = false\nstartsecs = 1\nstartretries = 0",
        );
    let d = Daemon::start(&config);
    let web = d.wait_state("web", State::Running, T);

    let start = ctl(&d, &["start", "idle"]);
    assert_eq!(
        (start.code, start.stdout.as_str()),
        (0, "idle: started\n"),
        "{}",
        start.stderr
    );
    assert_eq!(
        d.status("idle").map(|p| p.state),
        Some(State::Running),
        "answered only once RUNNING"
    );
    let stop = ctl(&d, &["stop", "idle"]);
    assert_eq!(stop.code, 0, "{}", stop.stderr);
    assert_eq!(
        d.status("idle").map(|p| p.state),
        Some(State::Stopped),
        "answered only once STOPPED"
    );

    let restart: Vec<ActionResult> = json(&ctl(&d, &["restart", "--json", "web"]));
    assert_eq!(restart.len(), 1);
    assert!(restart[0].ok, "{restart:?}");
    assert_eq!(restart[0].program.state, State::Running);
    assert_ne!(restart[0].program.pid, web.pid, "a new process");

    let stop_group = ctl(&d, &["stop", "pool:*"]);
    assert_eq!(stop_group.code, 0, "{}", stop_group.stderr);
    assert_eq!(
        stop_group.stdout.lines().count(),
        2,
        "{}",
        stop_group.stdout
    );

    let failed = ctl(&d, &["start", "broken"]);
    assert_eq!(failed.code, 1, "{} {}", failed.stdout, failed.stderr);
    assert!(
        failed.stdout.starts_with("broken: ERROR ("),
        "{}",
        failed.stdout
    );

    let unknown = ctl(&d, &["start", "ghost"]);
    assert_eq!(unknown.code, 4);
    assert!(unknown.stderr.contains("ghost"), "{}", unknown.stderr);

    let began = Instant::now();
    let no_wait = ctl(&d, &["start", "--no-wait", "idle"]);
    assert_eq!(no_wait.code, 0, "{}", no_wait.stderr);
    assert!(began.elapsed() < Duration::from_secs(5));
    d.wait_state("idle", State::Running, T);

    let all = ctl(&d, &["stop", "all"]);
    assert_eq!(all.code, 0, "{}", all.stderr);
    let programs: Vec<ProgramInfo> = json(&ctl(&d, &["--json", "status"]));
    assert!(
        programs.iter().all(|p| !p.state.has_process()),
        "{programs:?}"
    );
}

#[test]
fn signal_reaches_the_program() {
    let d0 = Daemon::builder();
    let record = d0.dir().join("record");
    let record_s = record.to_string_lossy().into_owned();
    let d = d0
        .config(&program(
            "web",
            &["record", &record_s, "trap", "HUP", "sleep", "forever"],
            "startsecs = 0",
        ))
        .start();
    d.wait_state("web", State::Running, T);
    wait_until("web to record its start", T, || {
        nsvisor_tests::read_lines(&record).first().cloned()
    });
    let sent = ctl(&d, &["signal", "HUP", "web"]);
    assert_eq!(
        (sent.code, sent.stdout.as_str()),
        (0, "web: sent SIGHUP\n"),
        "{}",
        sent.stderr
    );
    wait_until("web to record SIGHUP", T, || {
        nsvisor_tests::read_lines(&record)
            .iter()
            .any(|l| l.ends_with("signal HUP"))
            .then_some(())
    });
    let bad = ctl(&d, &["signal", "NOPE", "web"]);
    assert_eq!(
        bad.code, 2,
        "an unknown signal is a usage error: {}",
        bad.stderr
    );
    assert_eq!(ctl(&d, &["signal", "HUP", "ghost"]).code, 4);
}

#[test]
fn pid_of_daemon_and_programs() {
    let d = Daemon::start(&three_kinds());
    let web = d.wait_state("web", State::Running, T);
    let daemon = ctl(&d, &["pid"]);
    assert_eq!(
        (daemon.code, daemon.stdout.trim()),
        (0, d.pid().to_string().as_str())
    );
    let pid = ctl(&d, &["pid", "web"]);
    assert_eq!(
        (pid.code, pid.stdout.trim().parse::<u32>().ok()),
        (0, web.pid)
    );
    let idle = ctl(&d, &["pid", "idle"]);
    assert_eq!((idle.code, idle.stdout.as_str()), (3, "0\n"));
    assert_eq!(ctl(&d, &["pid", "ghost"]).code, 4);
}

#[test]
fn health_flips_when_a_program_dies() {
    let b = Daemon::builder();
    let die = b.dir().join("die").to_string_lossy().into_owned();
    let d = b
        .config(&program(
            "web",
            &["wait-file", &die, "exit", "3"],
            "startsecs = 0\nautorestart = false",
        ))
        .start();
    d.wait_state("web", State::Running, T);
    let healthy = ctl(&d, &["health"]);
    assert_eq!(healthy.code, 0, "{}", healthy.stdout);
    assert!(healthy.stdout.starts_with("healthy"), "{}", healthy.stdout);
    std::fs::write(&die, b"").expect("cannot create the die file");
    d.wait_state("web", State::Exited, T);
    let sick = ctl(&d, &["health", "--json"]);
    assert_eq!(sick.code, 3);
    let h: Health = json(&sick);
    assert_eq!((h.healthy, h.not_running), (false, vec!["web".to_string()]));
    let text = ctl(&d, &["health"]);
    assert!(
        text.stdout.starts_with("unhealthy") && text.stdout.contains("not running: web"),
        "{}",
        text.stdout
    );
}

#[test]
fn reload_reports_the_difference() {
    let d = Daemon::start(
        &(program("keep", &["sleep", "forever"], "startsecs = 0")
            + &program("change", &["sleep", "forever"], "startsecs = 0")
            + &program("drop", &["sleep", "forever"], "startsecs = 0")),
    );
    d.wait_state("drop", State::Running, T);
    rewrite_config(
        &d,
        &(program("keep", &["sleep", "forever"], "startsecs = 0")
            + &program("change", &["sleep", "100000"], "startsecs = 0")
            + &program("new", &["sleep", "forever"], "startsecs = 0")),
    );
    let out = ctl(&d, &["reload"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "new: added\nchange: changed\ndrop: removed\n");
    d.wait_state("new", State::Running, T);
    let again: ReloadResult = json(&ctl(&d, &["reload", "--json"]));
    assert_eq!(again, ReloadResult::default());
    assert_eq!(ctl(&d, &["reload"]).stdout, "no changes\n");

    rewrite_config(&d, "[programs.bad]\ncommand = 42\n");
    let bad = ctl(&d, &["reload"]);
    assert_eq!(bad.code, 1, "{}", bad.stdout);
    assert!(
        bad.stderr.contains("command"),
        "the config error is shown: {}",
        bad.stderr
    );
}

#[test]
fn events_follow_state_changes_until_the_daemon_stops() {
    let mut d = Daemon::start(&three_kinds());
    d.wait_state("web", State::Running, T);
    let followers = "nsvisor_api_event_followers";
    let before = d.metric(followers).expect("the followers metric");
    let mut events = Command::new(nsvisorctl_bin())
        .arg("-s")
        .arg(d.socket())
        .args(["events", "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run nsvisorctl events");
    let lines = lines_of(&mut events);
    wait_until("nsvisorctl events to subscribe", T, || {
        (d.metric(followers) == Some(before + 1.0)).then_some(())
    });
    assert_eq!(ctl(&d, &["start", "idle"]).code, 0);
    assert_eq!(ctl(&d, &["stop", "idle"]).code, 0);
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &StateEvent| e.to == State::Stopped) {
        let line = lines
            .recv_timeout(T)
            .unwrap_or_else(|e| panic!("no event ({e}); seen {seen:?}"));
        seen.push(serde_json::from_str::<StateEvent>(&line).expect("one JSON event per line"));
    }
    // startsecs = 0 may go STOPPED -> RUNNING at once, without STARTING.
    assert_eq!(
        seen.first().map(|e| e.from),
        Some(State::Stopped),
        "{seen:?}"
    );
    assert!(seen.iter().any(|e| e.to == State::Running), "{seen:?}");
    assert_eq!(
        seen.last().map(|e| e.from),
        Some(State::Stopping),
        "{seen:?}"
    );
    assert!(seen.iter().all(|e| e.name == "idle"), "{seen:?}");
    assert_eq!(d.terminate().code(), Some(0));
    let status = wait_until("nsvisorctl events to end with the daemon", T, || {
        events.try_wait().expect("wait")
    });
    assert_eq!(status.code(), Some(0));
}

#[test]
fn shutdown_then_unreachable() {
    let mut d = Daemon::start(&three_kinds());
    let out = ctl(&d, &["shutdown"]);
    assert_eq!((out.code, out.stdout.as_str()), (0, "shutting down\n"));
    assert_eq!(d.wait_exit(Duration::from_secs(30)).code(), Some(0));
    let gone = ctl(&d, &["status"]);
    assert_eq!(gone.code, 5);
    let socket = d.socket().display().to_string();
    assert!(
        gone.stderr
            .contains(&format!("cannot reach the nsvisor daemon at {socket}")),
        "{}",
        gone.stderr
    );
    let json = ctl(&d, &["status", "--json"]);
    assert_eq!(json.code, 5);
    let err: serde_json::Value = serde_json::from_str(&json.stderr).expect("a JSON error");
    assert_eq!(err["error"]["kind"], "unreachable");
}

#[test]
fn usage_errors_version_and_completions() {
    let nowhere = "/nonexistent/nsvisor.sock";
    assert_eq!(ctl_at(nowhere, &["frobnicate"]).code, 2);
    assert_eq!(ctl_at(nowhere, &["start"]).code, 2, "start needs a name");
    assert_eq!(ctl_at(nowhere, &["tail", "-n", "x", "web"]).code, 2);
    let help = ctl_at(nowhere, &["--help"]);
    assert_eq!(help.code, 0);
    assert!(
        help.stdout.contains("Exit codes:")
            && help.stdout.contains("5  the daemon cannot be reached")
    );
    // `nsvisorctl 0.1.0 (commit abc1234)`, as `--version` prints it.
    let client_line = ctl_at(nowhere, &["--version"]).stdout;
    assert!(client_line.starts_with(concat!(
        "nsvisorctl ",
        env!("CARGO_PKG_VERSION"),
        " (commit "
    )));
    let alone = ctl_at(nowhere, &["version"]);
    assert_eq!(
        (alone.code, alone.stdout.as_str()),
        (5, client_line.as_str()),
        "the client's version even without a daemon"
    );
    assert_eq!(
        alone.stderr,
        format!(
            "nsvisorctl: cannot reach the nsvisor daemon at {nowhere}: No such file or directory (os error 2)\n  \
             no socket there: is nsvisor running, and does its [supervisor] socket match \
             (-s/--socket or NSVISOR_SOCKET)?\n"
        )
    );
    let unreachable = ctl_at(nowhere, &["status"]);
    assert_eq!(unreachable.code, 5);
    assert!(
        unreachable.stderr.contains(nowhere),
        "names the socket: {}",
        unreachable.stderr
    );
    let completions = ctl_at(nowhere, &["completions", "bash"]);
    assert_eq!(completions.code, 0);
    assert!(completions.stdout.contains("nsvisorctl"));

    let d = Daemon::start(&three_kinds());
    let version = ctl(&d, &["version"]);
    assert_eq!(version.code, 0);
    // The daemon's line: its `--version` (`nsvisor 0.1.0 (commit abc1234)`)
    // with its pid inside the parentheses.
    let daemon_version = Command::new(nsvisor_bin())
        .arg("--version")
        .output()
        .expect("cannot run nsvisor");
    let daemon_version = String::from_utf8_lossy(&daemon_version.stdout);
    let daemon_line = format!(
        "{}, pid {})\n",
        daemon_version.trim_end().trim_end_matches(')'),
        d.pid()
    );
    assert_eq!(version.stdout, format!("{client_line}{daemon_line}"));
    let env = Command::new(nsvisorctl_bin())
        .env("NSVISOR_SOCKET", d.socket())
        .arg("health")
        .output()
        .expect("cannot run nsvisorctl");
    assert_eq!(env.status.code(), Some(0), "NSVISOR_SOCKET is used");
}

#[test]
fn tail_shows_output_and_follows_it_until_the_daemon_stops() {
    let b = Daemon::builder();
    let go = b.dir().join("go").to_string_lossy().into_owned();
    let mut d = b
        .config(&program(
            "talker",
            &[
                "print-lines",
                "2",
                "--stderr",
                "--prefix",
                "err-",
                "print-lines",
                "20",
                "wait-file",
                &go,
                "print-lines",
                "2",
                "--prefix",
                "new-",
                "sleep",
                "forever",
            ],
            "startsecs = 0",
        ))
        .start();
    let last = wait_until("talker's 20 lines in the tail buffer", T, || {
        let out = ctl(&d, &["tail", "-n", "3", "talker"]);
        (out.code == 0 && out.stdout.ends_with("line 20\n")).then_some(out.stdout)
    });
    assert_eq!(last, "line 18\nline 19\nline 20\n");
    assert_eq!(ctl(&d, &["tail", "-c", "8", "talker"]).stdout, "line 20\n");
    assert_eq!(
        ctl(&d, &["tail", "--stderr", "talker"]).stdout,
        "err-line 1\nerr-line 2\n"
    );
    let json = ctl(&d, &["tail", "--json", "-n", "1", "talker"]);
    let chunk: serde_json::Value = serde_json::from_str(json.stdout.trim()).expect("one JSON line");
    assert_eq!(
        (chunk["name"].as_str(), chunk["data"].as_str()),
        (Some("talker"), Some("line 20\n"))
    );
    assert_eq!(ctl(&d, &["tail", "ghost"]).code, 4);

    let mut follow = Command::new(nsvisorctl_bin())
        .arg("-s")
        .arg(d.socket())
        .args(["tail", "-f", "-n", "1", "talker"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run nsvisorctl tail -f");
    let lines = lines_of(&mut follow);
    assert_eq!(lines.recv_timeout(T).ok().as_deref(), Some("line 20"));
    std::fs::write(&go, b"").expect("cannot create the go file");
    assert_eq!(
        lines.recv_timeout(T).ok().as_deref(),
        Some("new-line 1"),
        "new output is followed"
    );
    assert_eq!(lines.recv_timeout(T).ok().as_deref(), Some("new-line 2"));
    assert_eq!(d.terminate().code(), Some(0));
    let status = wait_until("tail -f to end with the daemon", T, || {
        follow.try_wait().expect("wait")
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(
        &mut follow.stderr.take().expect("stderr is piped"),
        &mut stderr,
    )
    .expect("read tail's stderr");
    assert_eq!(
        (status.code(), stderr),
        (
            Some(5),
            format!(
                "nsvisorctl: the nsvisor daemon at {} stopped while following \"talker\"'s stdout\n",
                d.socket().display()
            )
        ),
        "the daemon going away cuts the follow short: an error"
    );
}

#[test]
fn the_default_socket_is_found_without_s() {
    // $XDG_RUNTIME_DIR/nsvisor.sock, for a user other than root (root's
    // default, /run/nsvisor.sock, belongs to the host). As root, the client
    // runs as nobody, allowed on the socket.
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let b = Daemon::builder();
    std::fs::set_permissions(b.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let runtime_dir = b.dir().to_path_buf();
    let socket = runtime_dir.join("nsvisor.sock");
    let d = b
        .config(&format!(
            "[supervisor]\nsocket = {}\nsocket_mode = \"0666\"\nallowed_uids = [65534]\n\n{}",
            nsvisor_tests::toml_quote(&socket),
            three_kinds()
        ))
        .start();
    let web = d.wait_state("web", State::Running, T);
    let mut cmd = Command::new(nsvisorctl_bin());
    cmd.args(["pid", "web"])
        .env_remove("NSVISOR_SOCKET")
        .env("XDG_RUNTIME_DIR", &runtime_dir)
        .stdin(Stdio::null());
    if nsvisor_tests::is_root() {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().expect("cannot run nsvisorctl");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
        ),
        (Some(0), format!("{}\n", web.pid.expect("a pid"))),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
