//! How programs are started: clean signal mask and dispositions, `directory`,
//! `umask`, `environment` (plus `NSVISOR_PROGRAM`), and `user`.
//!
//! Each program runs `testprog report FILE`, which writes what it sees
//! (`/proc/self/status` fields, cwd, ids, environment) as one JSON object.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::Signal;
use nsvisor_tests::{program_toml, require_root, testprog, toml_quote, wait_until, Daemon};
use serde_json::Value;

const T: Duration = Duration::from_secs(10);

fn read_report(path: &Path) -> Value {
    let text = wait_until("the program's report", T, || {
        std::fs::read_to_string(path).ok()
    });
    serde_json::from_str(&text).expect("the report is JSON")
}

/// The signal numbers set in a `/proc/PID/status` mask like `0000000000001000`.
fn signals_in(mask: &Value) -> Vec<u32> {
    let text = mask
        .as_str()
        .unwrap_or_else(|| panic!("not a mask: {mask}"));
    let bits = u64::from_str_radix(text, 16).unwrap_or_else(|_| panic!("not a mask: {text}"));
    (0..64)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| b + 1)
        .collect()
}

#[test]
fn signal_mask_and_ignored_signals_are_reset() {
    // Whatever the daemon inherited or set up for itself stays with the daemon.
    let d = Daemon::builder()
        .inherit_ignored_and_blocked(&[Signal::SIGUSR1, Signal::SIGTTOU, Signal::SIGXFSZ])
        .config(&program_toml(
            "probe",
            &["report", "{dir}/report.json", "sleep", "forever"],
            "startsecs = 0",
        ))
        .start();
    let report = read_report(&d.dir().join("report.json"));
    let none: [u32; 0] = [];
    assert_eq!(signals_in(&report["sigblk"]), none, "blocked signals");
    assert_eq!(signals_in(&report["sigign"]), none, "ignored signals");
}

#[test]
fn directory_umask_and_environment_take_effect() {
    let b = Daemon::builder();
    std::fs::create_dir(b.dir().join("work")).expect("mkdir work");
    let d = b
        .env("FROM_DAEMON", "inherited")
        .config(&program_toml(
            "envprobe",
            &["report", "{dir}/report.json", "sleep", "forever"],
            "startsecs = 0\ndirectory = \"{dir}/work\"\numask = \"027\"\n\
             environment = { GREETING = \"hello world\", EMPTY = \"\" }",
        ))
        .start();
    let report = read_report(&d.dir().join("report.json"));
    let work = d.dir().join("work");
    assert_eq!(report["cwd"], work.to_string_lossy().as_ref());
    assert_eq!(report["umask"], "0027");
    let env = &report["env"];
    assert_eq!(env["GREETING"], "hello world");
    assert_eq!(env["EMPTY"], "");
    assert_eq!(env["NSVISOR_PROGRAM"], "envprobe");
    assert_eq!(
        env["FROM_DAEMON"], "inherited",
        "the daemon's environment is passed on"
    );
}

#[test]
fn user_switches_uid_gid_and_groups() {
    if !require_root("user_switches_uid_gid_and_groups") {
        return;
    }
    // `nobody` must reach the binary and the report dir: copy testprog into an
    // open directory.
    let b = Daemon::builder();
    let open = b.dir().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(b.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let bin = open.join("testprog");
    std::fs::copy(testprog(), &bin).expect("copy testprog");
    let report = open.join("report.json");
    let command = format!(
        "[{}, \"report\", {}, \"sleep\", \"forever\"]",
        toml_quote(&bin),
        toml_quote(&report)
    );
    let _daemon = b
        .config(&format!(
            "[programs.nobody]\ncommand = {command}\nstartsecs = 0\nuser = \"nobody\"\n"
        ))
        .start();
    let report = read_report(&report);
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("the user database")
        .expect("a user nobody");
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    assert_eq!(report["uid"], uid, "{report}");
    assert_eq!(report["euid"], uid);
    assert_eq!(report["gid"], gid);
    assert_eq!(report["egid"], gid);
    assert_eq!(
        report["groups"],
        serde_json::json!([gid]),
        "only nobody's groups"
    );
}
