//! Reload (SIGHUP, or `POST /v1/reload`): added programs start, removed ones
//! stop, changed ones restart with a new pid, unchanged ones keep running
//! untouched; an invalid new config is rejected and nothing changes; changes
//! to `[supervisor]` wait for the next start of the daemon (and it says so).

use std::collections::BTreeMap;
use std::time::Duration;

use nix::sys::signal::Signal;
use nsvisor_proto::{ReloadResult, State};
use nsvisor_tests::{log_lines, program_toml, wait_until, Daemon};

const T: Duration = Duration::from_secs(10);

fn config(names: &[&str], changed_env: &str) -> String {
    names
        .iter()
        .map(|n| {
            let extra = if *n == "change" {
                format!("startsecs = 0\nenvironment = {{ VERSION = \"{changed_env}\" }}")
            } else {
                "startsecs = 0".to_string()
            };
            program_toml(n, &["term-exit", "0", "sleep", "forever"], &extra)
        })
        .collect()
}

const BEFORE: &[&str] = &["keep", "change", "remove"];
const AFTER: &[&str] = &["keep", "change", "add"];

fn running_pids(d: &Daemon, names: &[&str]) -> BTreeMap<String, u32> {
    names
        .iter()
        .map(|n| {
            let pid = d.wait_state(n, State::Running, T).pid.expect("a pid");
            (n.to_string(), pid)
        })
        .collect()
}

/// Waits for the reloaded set, then checks which pids changed.
fn assert_reloaded(d: &Daemon, before: &BTreeMap<String, u32>) {
    wait_until("remove to be gone", T, || {
        d.status("remove").is_none().then_some(())
    });
    let after = running_pids(d, &["keep", "add"]);
    let change = wait_until("change to run again with a new pid", T, || {
        d.status("change")
            .filter(|i| i.state == State::Running && i.pid != Some(before["change"]))
    });
    assert!(change.pid.is_some());
    assert_eq!(
        after["keep"], before["keep"],
        "an unchanged program keeps its process"
    );
}

#[test]
fn sighup_applies_added_removed_and_changed_programs() {
    let d = Daemon::start(&config(BEFORE, "1"));
    let before = running_pids(&d, BEFORE);
    d.write_config(&config(AFTER, "2"));
    d.signal(Signal::SIGHUP);
    assert_reloaded(&d, &before);
}

#[test]
fn reload_endpoint_reports_the_diff() {
    let d = Daemon::start(&config(BEFORE, "1"));
    let before = running_pids(&d, BEFORE);
    d.write_config(&config(AFTER, "2"));
    let (status, body) = d.post("/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    let diff: ReloadResult = serde_json::from_value(body.clone()).expect("a ReloadResult");
    assert_eq!(diff.added, ["add"], "{body}");
    assert_eq!(diff.changed, ["change"], "{body}");
    assert_eq!(diff.removed, ["remove"], "{body}");
    assert_reloaded(&d, &before);
}

#[test]
fn invalid_config_is_rejected_and_nothing_changes() {
    let d = Daemon::start(&config(BEFORE, "1"));
    let before = running_pids(&d, BEFORE);
    // Line 3 of the new file holds the mistake.
    d.write_config(&format!(
        "[programs.broken]\ncommand = [\"/bin/true\"]\nautorestrat = \"never\"\n\n{}",
        config(AFTER, "2")
    ));
    let (status, body) = d.post("/v1/reload", "");
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["kind"], "invalid_config", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("nsvisor.toml:3:"),
        "names file:line: {message}"
    );

    let reported = || d.stderr().matches("nsvisor.toml:3:").count();
    let before_hup = reported();
    d.signal(Signal::SIGHUP);
    wait_until("the daemon to log the rejected reload", T, || {
        (reported() > before_hup).then_some(())
    });
    assert_eq!(
        running_pids(&d, BEFORE),
        before,
        "the running set is untouched"
    );
    assert!(d.status("add").is_none() && d.status("broken").is_none());
    let (status, _) = d.get("/v1/health");
    assert_eq!(status, 200, "the daemon still serves");
}

#[test]
fn supervisor_changes_are_ignored_and_the_daemon_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let programs = config(&["keep"], "1");
    let d = Daemon::start(&format!(
        "[supervisor]\nsocket_mode = \"0600\"\nlog_level = \"info\"\n\n{programs}"
    ));
    let before = running_pids(&d, &["keep"]);
    let warning = "WARN changes to [supervisor] take effect at the next start of the daemon";
    assert!(!log_lines(&d.stderr()).iter().any(|l| l == warning));

    d.write_config(&format!(
        "[supervisor]\nsocket_mode = \"0666\"\nlog_level = \"error\"\n\n{programs}"
    ));
    let (status, body) = d.post("/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    let diff: ReloadResult = serde_json::from_value(body.clone()).expect("a ReloadResult");
    assert_eq!(diff, ReloadResult::default(), "no program changed: {body}");
    wait_until("the warning in the daemon's log", T, || {
        log_lines(&d.stderr())
            .iter()
            .any(|l| l == warning)
            .then_some(())
    });
    let mode = std::fs::metadata(d.socket())
        .expect("the socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "socket_mode is unchanged");
    assert_eq!(running_pids(&d, &["keep"]), before, "keep kept its process");
    // log_level is unchanged: an INFO line still gets logged.
    let (status, body) = d.post("/v1/programs/keep/stop", "");
    assert_eq!(status, 200, "{body}");
    wait_until("an INFO line after the reload", T, || {
        log_lines(&d.stderr())
            .iter()
            .any(|l| l == "INFO RUNNING -> STOPPING program=\"keep\"")
            .then_some(())
    });
}
