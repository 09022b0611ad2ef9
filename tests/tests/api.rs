//! The control API end to end over the daemon's unix socket: answers and
//! error answers, misbehaving clients, concurrency, `/metrics`, and the socket
//! itself (stale file, live daemon, mode, owner, who may connect).

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nsvisor_proto::{ProgramInfo, State};
use nsvisor_tests::{nsvisorctl_bin, require_root, testprog_cmd, toml_quote, Daemon};

const T: Duration = Duration::from_secs(10);
const NOBODY: u32 = 65534;

fn program(name: &str, args: &[&str], extra: &str) -> String {
    format!(
        "[programs.{name}]\ncommand = {}\n{extra}\n\n",
        testprog_cmd(args)
    )
}

fn two_programs() -> String {
    program("web", &["sleep", "forever"], "startsecs = 0")
        + &program(
            "idle",
            &["sleep", "forever"],
            "startsecs = 0\nautostart = false",
        )
}

fn kind(v: &serde_json::Value) -> &str {
    v["error"]["kind"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {v}"))
}

#[test]
fn endpoints_answer_with_json_and_fitting_statuses() {
    let d = Daemon::start(&two_programs());
    d.wait_state("web", State::Running, T);

    let (status, list) = d.get("/v1/programs");
    assert_eq!(status, 200);
    let list: Vec<ProgramInfo> = serde_json::from_value(list).expect("[ProgramInfo]");
    assert_eq!(
        list.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["idle", "web"]
    );
    let (status, web) = d.get("/v1/programs/web");
    assert_eq!(status, 200);
    assert!(
        web["description"]
            .as_str()
            .is_some_and(|s| s.starts_with("pid ")),
        "{web}"
    );

    let (status, err) = d.get("/v1/programs/ghost");
    assert_eq!((status, kind(&err)), (404, "not_found"));
    let (status, err) = d.get("/v1/nothing");
    assert_eq!((status, kind(&err)), (404, "not_found"));
    let r = d.request("DELETE", "/v1/programs/web", "");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let (status, err) = d.get("/v1/programs?colour=blue");
    assert_eq!((status, kind(&err)), (400, "bad_request"));
    let (status, err) = d.post("/v1/programs/idle/signal", r#"{"signal":"HUP"}"#);
    assert_eq!((status, kind(&err)), (409, "wrong_state"));

    let (status, res) = d.post("/v1/programs/idle/start?wait=false", "");
    assert_eq!((status, res[0]["name"].as_str()), (200, Some("idle")));
    d.wait_state("idle", State::Running, T);
    let (status, res) = d.post("/v1/programs/all/stop", "");
    assert_eq!(status, 200);
    assert!(
        res.as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|r| r["ok"] == true)),
        "{res}"
    );
    let (status, health) = d.get("/v1/health");
    assert_eq!((status, health["healthy"].as_bool()), (503, Some(false)));
    let (status, res) = d.post("/v1/programs/web/start", "");
    assert_eq!(
        (status, res[0]["program"]["state"].as_str()),
        (200, Some("RUNNING"))
    );
    let (status, health) = d.get("/v1/health");
    assert_eq!((status, health["healthy"].as_bool()), (200, Some(true)));

    let socket = toml_quote(d.socket());
    std::fs::write(
        d.dir().join("nsvisor.toml"),
        format!("[supervisor]\nsocket = {socket}\n[programs.a]\ncommand = 1\n[programs.b]\nautostart = 2\n"),
    )
    .expect("cannot write the config");
    let (status, err) = d.post("/v1/reload", "");
    assert_eq!((status, kind(&err)), (422, "invalid_config"));
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("program \"a\"") && message.contains("program \"b\""),
        "every error: {message}"
    );
}

#[test]
fn malformed_requests_get_answers_and_idle_clients_block_no_one() {
    let d = Daemon::start(&two_programs());
    let mut idle = UnixStream::connect(d.socket()).expect("connect");
    let mut half = UnixStream::connect(d.socket()).expect("connect");
    half.write_all(b"GET /v1/programs HTTP/1.1\r\nHo")
        .expect("write");

    let answer = |raw: &[u8]| String::from_utf8_lossy(&d.request_raw(raw)).into_owned();
    let garbage = answer(b"\x00\x01 not http at all\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    let bad_len = answer(b"POST /v1/reload HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n");
    assert!(bad_len.starts_with("HTTP/1.1 400"), "{bad_len}");
    let huge_head = format!(
        "GET /v1/programs HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    );
    let huge_head = answer_even_if_cut(&d, huge_head.as_bytes());
    assert!(huge_head.starts_with("HTTP/1.1 4"), "{huge_head}");
    let big_body = answer(b"POST /v1/programs/web/signal HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10000000\r\n\r\n{");
    assert!(big_body.starts_with("HTTP/1.1 413"), "{big_body}");
    assert!(big_body.contains("payload_too_large"), "{big_body}");
    let (status, err) = d.post("/v1/programs/web/signal", "{\"signal\":");
    assert_eq!((status, kind(&err)), (400, "bad_request"));
    let (status, err) = d.post("/v1/programs/web/signal", r#"{"signal":"NOPE"}"#);
    assert_eq!((status, kind(&err)), (400, "bad_request"));

    let (status, _) = d.get("/v1/health");
    assert_eq!(status, 200, "still answering while two clients sit idle");
    // The idle ones are dropped after the header timeout (10 s).
    idle.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut rest = Vec::new();
    assert!(
        idle.read_to_end(&mut rest).is_ok(),
        "the daemon closes an idle connection"
    );
    let mut rest = Vec::new();
    half.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    assert!(
        half.read_to_end(&mut rest).is_ok(),
        "the daemon closes a half-sent request"
    );
}

/// Like `request_raw`, for requests the daemon may stop reading half-way:
/// a failed write is fine, the answer is what counts.
fn answer_even_if_cut(d: &Daemon, raw: &[u8]) -> String {
    let mut conn = UnixStream::connect(d.socket()).expect("connect");
    conn.set_read_timeout(Some(T)).expect("timeout");
    let _ = conn.write_all(raw);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = conn.read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_hundred_concurrent_clients() {
    let d = Daemon::start(&two_programs());
    let socket = d.socket().to_path_buf();
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let path = if i % 2 == 0 {
                    "/v1/programs"
                } else {
                    "/v1/health"
                };
                nsvisor_tests::http::request(&socket, "GET", path, b"").map(|r| r.status)
            })
        })
        .collect();
    let statuses: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("thread").expect("request"))
        .collect();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), 100);
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let d = Daemon::start(&two_programs());
    d.wait_state("web", State::Running, T);
    let r = d.request("GET", "/metrics", "");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/openmetrics-text")));
    let text = r.text();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let word = comment.split(' ').next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&word),
                "bad comment {line:?}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample {line:?}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line:?}");
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line:?}"
            );
        }
        samples.push((series.to_string(), value.to_string()));
    }
    assert_eq!(text.lines().last(), Some("# EOF"));
    let has = |series: &str, value: &str| samples.iter().any(|(s, v)| s == series && v == value);
    assert!(
        has(
            r#"nsvisor_program_state{name="web",group="web",state="RUNNING"}"#,
            "1"
        ),
        "{text}"
    );
    assert!(
        has(
            r#"nsvisor_program_state{name="idle",group="idle",state="STOPPED"}"#,
            "1"
        ),
        "{text}"
    );
    assert!(
        has(
            r#"nsvisor_program_restarts_total{name="web",group="web"}"#,
            "0"
        ),
        "{text}"
    );
    for name in [
        "nsvisor_program_start_time_seconds",
        "nsvisor_orphans_reaped_total",
        "nsvisor_uptime_seconds",
    ] {
        assert!(
            samples.iter().any(|(s, _)| s.starts_with(name)),
            "no {name} in {text}"
        );
    }
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let b = Daemon::builder();
    let socket = b.dir().join("nsvisor.sock");
    drop(UnixListener::bind(&socket).expect("bind a socket nobody will answer on"));
    let d = b.config(&two_programs()).start();
    assert_eq!(d.get("/v1/health").0, 200, "started over the stale socket");

    let mut second = Daemon::builder()
        .config(&format!(
            "[supervisor]\nsocket = {}\n\n{}",
            toml_quote(d.socket()),
            two_programs()
        ))
        .spawn();
    let status = second.wait_exit(T);
    assert!(
        !status.success(),
        "a second daemon on a live socket must not start"
    );
    let err = second.stderr();
    assert!(err.contains("another nsvisor is already running"), "{err}");
    assert!(
        err.contains(&d.socket().display().to_string()),
        "names the socket: {err}"
    );
    assert_eq!(d.get("/v1/health").0, 200, "the first daemon is untouched");
}

#[test]
fn the_socket_of_a_killed_daemon_is_taken_over() {
    // No programs: a SIGKILLed daemon would leave them behind.
    let mut crashed = Daemon::start("");
    crashed.signal(nix::sys::signal::Signal::SIGKILL);
    crashed.wait_exit(T);
    assert!(
        crashed.socket().exists(),
        "a killed daemon cannot remove its socket"
    );
    let config = format!("[supervisor]\nsocket = {}\n", toml_quote(crashed.socket()));
    let mut next = Daemon::start(&config);
    assert_eq!(next.get("/v1/health").0, 200);
    assert_eq!(next.terminate().code(), Some(0));
    assert!(!crashed.socket().exists(), "removed at a clean exit");
}

#[test]
fn the_socket_gets_its_mode_and_owner() {
    let owner = if nsvisor_tests::is_root() {
        "socket_owner = \"nobody:nogroup\""
    } else {
        ""
    };
    let d = Daemon::start(&format!(
        "[supervisor]\nsocket_mode = \"0640\"\n{owner}\n\n{}",
        two_programs()
    ));
    let meta = std::fs::metadata(d.socket()).expect("the socket exists");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    if require_root("the_socket_gets_its_mode_and_owner (owner part)") {
        assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY));
    }
    let default = Daemon::start(&two_programs());
    let mode = std::fs::metadata(default.socket())
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "0600 by default");
}

/// Runs `nsvisorctl --json status` against `d` as uid/gid, returns (code, stderr).
fn ctl_as(d: &Daemon, uid: u32, gid: u32) -> (i32, String) {
    let out = Command::new(nsvisorctl_bin())
        .arg("-s")
        .arg(d.socket())
        .args(["--json", "status"])
        .uid(uid)
        .gid(gid)
        .output()
        .expect("cannot run nsvisorctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A daemon whose socket anyone may open (so the peer check is what decides).
fn open_daemon(supervisor_extra: &str) -> Daemon {
    let b = Daemon::builder();
    std::fs::set_permissions(b.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    b.config(&format!(
        "[supervisor]\nsocket_mode = \"0666\"\n{supervisor_extra}\n\n{}",
        two_programs()
    ))
    .start()
}

#[test]
fn other_users_are_refused_unless_allowed() {
    if !require_root("other_users_are_refused_unless_allowed") {
        return;
    }
    let d = open_daemon("");
    let (code, err) = ctl_as(&d, NOBODY, NOBODY);
    assert_eq!(code, 5, "{err}");
    let err: serde_json::Value =
        serde_json::from_str(&err).unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(err["error"]["kind"], "permission_denied");
    assert!(
        err["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("uid 65534")),
        "{err}"
    );
    assert_eq!(ctl_as(&d, 0, 0).0, 0, "root is always allowed");

    let by_uid = open_daemon("allowed_uids = [65534]");
    assert_eq!(ctl_as(&by_uid, NOBODY, NOBODY).0, 0);
    let by_gid = open_daemon("allowed_gids = [65534]");
    assert_eq!(ctl_as(&by_gid, 65533, NOBODY).0, 0);
    assert_eq!(ctl_as(&by_gid, 65533, 65533).0, 5);
}
