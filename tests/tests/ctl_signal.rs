//! `nsvisorctl signal` end to end: a signal given by number, a signal to a
//! whole group (`GROUP:*`), and a signal to a program that is not running
//! (an error on stderr, exit code 1, as `docs/ctl.md` says).

use std::path::Path;
use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{program_toml, read_records, wait_record, Daemon};

const T: Duration = Duration::from_secs(10);

struct Out {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn ctl(d: &Daemon, args: &[&str]) -> Out {
    let out = d.ctl(args);
    Out {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The signals `file` recorded (`"USR1"`, ...), in order.
fn signals(file: &Path) -> Vec<String> {
    read_records(file)
        .into_iter()
        .filter_map(|r| r.event.strip_prefix("signal ").map(str::to_string))
        .collect()
}

/// `web` and `pool:0`/`pool:1` trap USR1 and USR2 and record them in
/// `{dir}/<name>.rec`; `idle` is not started.
fn config() -> String {
    let trapping = |rec: &'static str| {
        [
            "trap", "USR1", "trap", "USR2", "record", rec, "sleep", "forever",
        ]
    };
    program_toml("web", &trapping("{dir}/web.rec"), "startsecs = 0")
        + &program_toml(
            "pool",
            &trapping("{dir}/pool{process_num}.rec"),
            "startsecs = 0\nnumprocs = 2",
        )
        + &program_toml(
            "idle",
            &["sleep", "forever"],
            "startsecs = 0\nautostart = false",
        )
}

fn started(d: &Daemon) {
    for (name, rec) in [("web", "web"), ("pool:0", "pool0"), ("pool:1", "pool1")] {
        d.wait_state(name, State::Running, T);
        wait_record(&d.dir().join(format!("{rec}.rec")), "start", T);
    }
}

#[test]
fn a_signal_given_by_number() {
    let d = Daemon::start(&config());
    started(&d);
    let out = ctl(&d, &["signal", "10", "web"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "web: sent SIGUSR1\n", "")
    );
    let rec = d.dir().join("web.rec");
    wait_record(&rec, "signal USR1", T);
    assert_eq!(signals(&rec), ["USR1"], "10 is USR1, and only web got it");
    assert_eq!(signals(&d.dir().join("pool0.rec")), Vec::<String>::new());
}

#[test]
fn a_signal_to_a_group_reaches_every_replica() {
    let d = Daemon::start(&config());
    started(&d);
    let out = ctl(&d, &["signal", "USR2", "pool:*"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (Some(0), "pool:0: sent SIGUSR2\npool:1: sent SIGUSR2\n", "")
    );
    for rec in ["pool0", "pool1"] {
        let rec = d.dir().join(format!("{rec}.rec"));
        wait_record(&rec, "signal USR2", T);
        assert_eq!(signals(&rec), ["USR2"]);
    }
    assert_eq!(
        signals(&d.dir().join("web.rec")),
        Vec::<String>::new(),
        "web is not in the group"
    );
}

#[test]
fn a_signal_to_a_stopped_program_is_an_error() {
    let d = Daemon::start(&config());
    started(&d);
    let out = ctl(&d, &["signal", "HUP", "idle"]);
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (
            Some(1),
            "",
            "nsvisorctl: program \"idle\": not running (STOPPED)\n"
        )
    );
    let json = ctl(&d, &["signal", "--json", "HUP", "idle"]);
    assert_eq!(json.code, Some(1));
    let err: serde_json::Value = serde_json::from_str(&json.stderr)
        .unwrap_or_else(|e| panic!("not a JSON error ({e}): {}", json.stderr));
    assert_eq!(err["error"]["kind"], "wrong_state", "{err}");
    assert_eq!(d.status("idle").map(|p| p.state), Some(State::Stopped));
}
