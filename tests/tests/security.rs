//! Who may do what on the control socket, and paths another user could
//! plant: a client of another uid is refused on every endpoint of the route
//! table and on the XML-RPC paths; a read-only client (`read_only_uids` /
//! `read_only_gids`) sees state, events, health and metrics but can neither
//! act nor read output (JSON API, `/logtail`, XML-RPC methods); a symbolic
//! link planted at a log path in a directory others can write is not
//! followed. Clients of another uid are `testprog request` processes started
//! as that uid (root-only tests).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use nsvisor_proto::xmlrpc::{self as codec, Value as Xml};
use nsvisor_proto::{Level, Route, State};
use nsvisor_tests::http::request_as;
use nsvisor_tests::{nsvisorctl_bin, program_toml, require_root, wait_until, Daemon, Response};

const T: Duration = Duration::from_secs(10);
const NOBODY: u32 = 65534;
/// An environment value and an output line no read-only answer may show.
const SECRET: &str = "s3cr3t-value";

/// A daemon whose socket anyone may open (the peer check is what decides),
/// running `web`, which prints a line and has a secret in its environment.
fn open_daemon(supervisor_extra: &str) -> Daemon {
    let b = Daemon::builder();
    std::fs::set_permissions(b.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let web = program_toml(
        "web",
        &["print-lines", "1", "--prefix", SECRET, "sleep", "forever"],
        &format!("startsecs = 0\nenvironment = {{ TOKEN = \"{SECRET}\" }}"),
    );
    let d = b
        .config(&format!(
            "[supervisor]\nsocket_mode = \"0666\"\n{supervisor_extra}\n\n{web}"
        ))
        .start();
    d.wait_state("web", State::Running, T);
    d
}

fn as_client(d: &Daemon, ids: (u32, u32), method: &str, path: &str, body: &str) -> Response {
    request_as(d.socket(), ids, method, path, body, false)
}

#[track_caller]
fn assert_refused(r: &Response, what: &str, says: &str) {
    let body = r.json();
    assert_eq!(r.status, 403, "{what}: {}", r.text());
    assert_eq!(body["error"]["kind"], "permission_denied", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{what}: {message:?} lacks {says:?}");
}

fn rpc_body(method: &str, params: &[Xml]) -> String {
    codec::call(method, params)
}

/// An XML-RPC answer: the value or (code, text) of the fault.
fn rpc_answer(r: &Response) -> Result<Xml, (i64, String)> {
    assert_eq!(r.status, 200, "XML-RPC answers 200: {}", r.text());
    codec::parse_response(&r.body)
        .unwrap_or_else(|e| panic!("not an XML-RPC answer ({e}): {}", r.text()))
        .map_err(|f| (f.code, f.text))
}

#[test]
fn another_uid_is_refused_on_every_endpoint_and_on_xmlrpc() {
    if !require_root("another_uid_is_refused_on_every_endpoint_and_on_xmlrpc") {
        return;
    }
    let d = open_daemon("");
    let nobody = (NOBODY, NOBODY);
    for route in Route::every("web", 1) {
        let (method, path) = (route.method().as_str(), route.path());
        let r = as_client(&d, nobody, method, &path, "");
        assert_refused(&r, &format!("{method} {path}"), "uid 65534 is not allowed");
    }
    let state = rpc_body("supervisor.getState", &[]);
    for (method, path, body) in [
        ("POST", "/RPC2", state.as_str()),
        ("GET", "/logtail/web", ""),
        ("GET", "/mainlogtail", ""),
        ("GET", "/v1/no-such-endpoint", ""),
    ] {
        let r = as_client(&d, nobody, method, path, body);
        assert_refused(&r, &format!("{method} {path}"), "uid 65534 is not allowed");
    }
    // Nothing was done: web still runs, the daemon still answers.
    assert_eq!(d.status("web").map(|p| p.state), Some(State::Running));
}

#[test]
fn a_read_only_client_sees_state_but_cannot_act_or_read_output() {
    if !require_root("a_read_only_client_sees_state_but_cannot_act_or_read_output") {
        return;
    }
    let d = open_daemon("read_only_uids = [65534]");
    let nobody = (NOBODY, NOBODY);
    wait_until("web's line in its tail", T, || {
        let r = d.request("GET", "/v1/programs/web/logs/stdout", "");
        r.text().contains(SECRET).then_some(())
    });
    let mut allowed = Vec::new();
    for route in Route::every("web", 1) {
        let (method, path) = (route.method().as_str(), route.path());
        let what = format!("{method} {path}");
        // A stream that does not end (events) is judged by its status line.
        let stream = route == Route::Events;
        let r = request_as(d.socket(), nobody, method, &path, "", stream);
        match route.level() {
            Level::Read => {
                assert_eq!(r.status, 200, "{what}: {}", r.text());
                assert!(
                    !r.text().contains(SECRET),
                    "{what} shows output or environment"
                );
                allowed.push(path);
            }
            Level::Control => assert_refused(&r, &what, "read-only"),
        }
    }
    assert_eq!(
        allowed,
        [
            "/v1/programs",
            "/v1/programs/web",
            "/v1/events",
            "/v1/health",
            "/metrics"
        ]
    );
    assert_eq!(
        d.status("web").map(|p| (p.state, p.restarts)),
        Some((State::Running, 0)),
        "no action was taken"
    );

    // XML-RPC: state yes; actions, output and logs are FAILED faults.
    let call = |method: &str, params: &[Xml]| {
        rpc_answer(&as_client(
            &d,
            nobody,
            "POST",
            "/RPC2",
            &rpc_body(method, params),
        ))
    };
    let state = call("supervisor.getState", &[]).expect("getState is allowed");
    assert_eq!(state.member("statename"), Some(&Xml::str("RUNNING")));
    let info = call("supervisor.getProcessInfo", &[Xml::str("web")]).expect("allowed");
    assert_eq!(info.member("statename"), Some(&Xml::str("RUNNING")));
    assert!(call("supervisor.getAllProcessInfo", &[]).is_ok());
    assert!(call("system.listMethods", &[]).is_ok());
    let web = Xml::str("web");
    let (zero, many) = (Xml::Int(0), Xml::Int(1000));
    for (method, params) in [
        ("supervisor.stopProcess", vec![web.clone()]),
        (
            "supervisor.signalProcess",
            vec![web.clone(), Xml::str("HUP")],
        ),
        ("supervisor.shutdown", vec![]),
        ("supervisor.reloadConfig", vec![]),
        (
            "supervisor.readProcessStdoutLog",
            vec![web.clone(), zero.clone(), many.clone()],
        ),
        (
            "supervisor.tailProcessStdoutLog",
            vec![web.clone(), zero.clone(), many.clone()],
        ),
        ("supervisor.readLog", vec![zero.clone(), many.clone()]),
        ("supervisor.clearProcessLogs", vec![web.clone()]),
    ] {
        let (code, text) = call(method, &params).expect_err(method);
        assert_eq!(
            code, 30,
            "{method}: FAILED, as supervisord answers refusals"
        );
        assert!(text.contains("read-only"), "{method}: {text}");
    }
    // multicall checks each call.
    let multi = call(
        "system.multicall",
        &[Xml::Array(vec![
            Xml::strukt([("methodName", Xml::str("supervisor.getState"))]),
            Xml::strukt([
                ("methodName", Xml::str("supervisor.stopProcess")),
                ("params", Xml::Array(vec![web.clone()])),
            ]),
        ])],
    )
    .expect("multicall is allowed");
    let Xml::Array(results) = multi else {
        panic!("multicall answers an array: {multi:?}")
    };
    assert!(matches!(&results[0], Xml::Array(_)), "{results:?}");
    assert_eq!(results[1].member("faultCode"), Some(&Xml::Int(30)));
    let r = as_client(&d, nobody, "GET", "/logtail/web", "");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(d.status("web").map(|p| p.state), Some(State::Running));

    // nsvisorctl as that user: status works, stop is refused (exit 5).
    let ctl = |args: &[&str]| {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(nsvisorctl_bin())
            .arg("-s")
            .arg(d.socket())
            .args(args)
            .uid(NOBODY)
            .gid(NOBODY)
            .output()
            .expect("run nsvisorctl")
    };
    assert!(ctl(&["status"]).status.success());
    let stop = ctl(&["stop", "web"]);
    assert_eq!(stop.status.code(), Some(5), "{stop:?}");
    assert!(
        String::from_utf8_lossy(&stop.stderr).contains("read-only"),
        "{stop:?}"
    );
}

#[test]
fn read_only_by_group_and_full_control_wins() {
    if !require_root("read_only_by_group_and_full_control_wins") {
        return;
    }
    let d = open_daemon("read_only_gids = [65534]\nallowed_uids = [65532]");
    let stop = Route::Act("web".into(), nsvisor_proto::Verb::Stop).path();
    let list = Route::Programs.path();
    // Primary group 65534: read-only.
    let by_group = (65533, NOBODY);
    assert_eq!(as_client(&d, by_group, "GET", &list, "").status, 200);
    assert_refused(
        &as_client(&d, by_group, "POST", &stop, ""),
        "stop",
        "read-only",
    );
    // Not in either list: refused.
    assert_refused(
        &as_client(&d, (65533, 65533), "GET", &list, ""),
        "list",
        "not allowed",
    );
    // In allowed_uids and in a read-only group: full control.
    let r = as_client(&d, (65532, NOBODY), "POST", &stop, "");
    assert_eq!(r.status, 200, "{}", r.text());
    d.wait_state("web", State::Stopped, T);
}

/// `dir/shared` (mode 0777) holding `app.log`, a symbolic link to
/// `dir/target` (which holds `untouched`); returns (link, target).
fn planted_link(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let shared = dir.join("shared");
    std::fs::create_dir_all(&shared).expect("mkdir");
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let target = dir.join(format!("{name}.target"));
    std::fs::write(&target, "untouched\n").expect("write");
    let link = shared.join(name);
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    (link, target)
}

#[test]
fn a_symlink_planted_at_a_log_path_is_not_followed() {
    let b = Daemon::builder();
    let (link, target) = planted_link(b.dir(), "app.log");
    let toml_path = nsvisor_tests::toml_quote(&link);
    let d = b
        .config(&program_toml(
            "web",
            &["print-lines", "3", "sleep", "forever"],
            &format!("startsecs = 0\nstdout_logfile = {toml_path}"),
        ))
        .start();
    d.wait_state("web", State::Running, T);
    let expected = format!("cannot open log file {}", link.display());
    let line = wait_until("the log file error in the daemon's log", T, || {
        d.stderr()
            .lines()
            .find(|l| l.contains(&expected))
            .map(str::to_string)
    });
    assert!(
        line.contains("symbolic link") && line.contains("not followed"),
        "{line}"
    );
    // The program's output still reaches the tail buffer; the target is untouched.
    wait_until("web's output in its tail", T, || {
        let r = d.request("GET", "/v1/programs/web/logs/stdout", "");
        r.text().contains("line 3").then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(&target).ok().as_deref(),
        Some("untouched\n")
    );
    assert!(std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()));
}

#[test]
fn a_symlink_planted_at_the_daemon_log_is_not_followed() {
    let b = Daemon::builder();
    let (link, target) = planted_link(b.dir(), "nsvisor.log");
    let d = b
        .config(&format!(
            "[supervisor]\nlogfile = {}\n\n{}",
            nsvisor_tests::toml_quote(&link),
            program_toml("web", &["sleep", "forever"], "startsecs = 0")
        ))
        .start();
    d.wait_state("web", State::Running, T);
    let err = d.stderr();
    let expected = format!("cannot open the daemon log file {}", link.display());
    let line = err.lines().find(|l| l.contains(&expected));
    assert!(
        line.is_some_and(|l| l.contains("symbolic link") && l.contains("stderr only")),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&target).ok().as_deref(),
        Some("untouched\n")
    );
}
