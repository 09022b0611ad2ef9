//! How programs are started: clean signal mask and dispositions, `directory`,
//! `umask`, `environment` (plus `NSVISOR_PROGRAM` and `NSVISOR_PROCESS_NUM`),
//! `user` (with its `HOME`, `USER`, `LOGNAME`, its own groups and no
//! capability of the daemon), `no_new_privs`, and the open-files limit
//! `minfds` gives them.
//!
//! Each program runs `testprog report FILE`, which writes what it sees
//! (`/proc/self/status` fields, cwd, ids, environment) as one JSON object.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nsvisor_proto::State;
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
fn numprocs_replicas_get_their_process_num() {
    let d = Daemon::start(&program_toml(
        "pool",
        &[
            "report",
            "{dir}/report{process_num}.json",
            "sleep",
            "forever",
        ],
        "startsecs = 0\nnumprocs = 3\nnumprocs_start = 4",
    ));
    for k in 4..7 {
        let report = read_report(&d.dir().join(format!("report{k}.json")));
        assert_eq!(
            report["env"]["NSVISOR_PROCESS_NUM"],
            k.to_string(),
            "pool:{k}"
        );
        assert_eq!(report["env"]["NSVISOR_PROGRAM"], format!("pool:{k}"));
    }
}

/// The soft and hard "Max open files" of a process, from `/proc/PID/limits`.
fn open_files_limit(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-files line in {text}"));
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

#[test]
fn minfds_raises_the_open_files_limit_programs_get() {
    // The daemon starts with a low soft limit; minfds stays within the hard
    // limit, so raising it needs no privilege.
    let (_, hard) = open_files_limit(std::process::id());
    let want = hard.min(1000);
    let d = Daemon::builder()
        .open_files_limit(want / 4)
        .config(&format!(
            "[supervisor]\nminfds = {want}\n\n{}",
            program_toml("p", &["sleep", "forever"], "startsecs = 0")
        ))
        .start();
    let pid = d.wait_state("p", State::Running, T).pid.expect("a pid");
    assert_eq!(
        open_files_limit(pid),
        (want, hard),
        "the program's soft limit is minfds"
    );
    assert_eq!(open_files_limit(d.pid()), (want, hard), "the daemon's own");
}

/// A directory `nobody` can reach holding a copy of testprog: (dir, binary).
fn open_dir_with_testprog(b: &nsvisor_tests::DaemonBuilder) -> (PathBuf, PathBuf) {
    let open = b.dir().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(b.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let bin = open.join("testprog");
    std::fs::copy(testprog(), &bin).expect("copy testprog");
    (open, bin)
}

/// `[programs.NAME]` running `bin report REPORT sleep forever` as `nobody`.
fn reporter_as_nobody(name: &str, bin: &Path, report: &Path, extra: &str) -> String {
    format!(
        "[programs.{name}]\ncommand = [{}, \"report\", {}, \"sleep\", \"forever\"]\n\
         startsecs = 0\nuser = \"nobody\"\n{extra}\n\n",
        toml_quote(bin),
        toml_quote(report)
    )
}

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .expect("the user database")
        .expect("a user nobody")
}

#[test]
fn user_sets_home_user_and_logname_unless_environment_does() {
    if !require_root("user_sets_home_user_and_logname_unless_environment_does") {
        return;
    }
    let b = Daemon::builder();
    let (open, bin) = open_dir_with_testprog(&b);
    let (plain, custom) = (open.join("plain.json"), open.join("custom.json"));
    let _daemon = b
        .env("HOME", "/root")
        .env("USER", "root")
        .env("LOGNAME", "root")
        .config(
            &(reporter_as_nobody("plain", &bin, &plain, "")
                + &reporter_as_nobody(
                    "custom",
                    &bin,
                    &custom,
                    "environment = { HOME = \"/srv/custom\" }",
                )),
        )
        .start();
    let home = nobody().dir.to_string_lossy().into_owned();
    let env = &read_report(&plain)["env"];
    assert_eq!(
        (&env["HOME"], &env["USER"], &env["LOGNAME"]),
        (
            &Value::from(home.as_str()),
            &Value::from("nobody"),
            &Value::from("nobody")
        ),
        "nobody's, not the daemon's"
    );
    let env = &read_report(&custom)["env"];
    assert_eq!(
        (&env["HOME"], &env["USER"]),
        (&Value::from("/srv/custom"), &Value::from("nobody")),
        "environment wins"
    );
}

#[test]
fn user_switches_uid_gid_and_groups() {
    if !require_root("user_switches_uid_gid_and_groups") {
        return;
    }
    // `nobody` must reach the binary and the report dir.
    let b = Daemon::builder();
    let (open, bin) = open_dir_with_testprog(&b);
    let report = open.join("report.json");
    let _daemon = b
        .config(&reporter_as_nobody("nobody", &bin, &report, ""))
        .start();
    let report = read_report(&report);
    let nobody = nobody();
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

/// `CapEff` & co. as numbers.
fn caps(report: &Value) -> [u64; 4] {
    ["cap_inh", "cap_prm", "cap_eff", "cap_amb"].map(|k| {
        let text = report[k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k}: {report}"));
        u64::from_str_radix(text, 16).unwrap_or_else(|_| panic!("{k}: {text}"))
    })
}

#[test]
fn user_leaves_no_capability_and_no_group_of_the_daemon() {
    if !require_root("user_leaves_no_capability_and_no_group_of_the_daemon") {
        return;
    }
    // The daemon holds CAP_NET_BIND_SERVICE (10) in its inheritable and
    // ambient sets, and root's groups; `nobody` must get none of it.
    let b = Daemon::builder().ambient_capability(10);
    let (open, bin) = open_dir_with_testprog(&b);
    let (as_nobody, as_root) = (open.join("nobody.json"), open.join("root.json"));
    let root_program = format!(
        "[programs.root]\ncommand = [{}, \"report\", {}, \"sleep\", \"forever\"]\nstartsecs = 0\n\n",
        toml_quote(&bin),
        toml_quote(&as_root)
    );
    let _daemon = b
        .config(&(reporter_as_nobody("nobody", &bin, &as_nobody, "") + &root_program))
        .start();
    let root = read_report(&as_root);
    assert_ne!(
        caps(&root)[0] & (1 << 10),
        0,
        "the daemon's inheritable set: {root}"
    );
    let report = read_report(&as_nobody);
    assert_eq!(
        caps(&report),
        [0; 4],
        "CapInh, CapPrm, CapEff, CapAmb: {report}"
    );
    let gid = nobody().gid.as_raw();
    assert_eq!(
        report["groups"],
        serde_json::json!([gid]),
        "only nobody's groups"
    );
    assert_eq!(report["no_new_privs"], "0", "off unless asked for");
}

#[test]
fn no_new_privs_sets_the_flag_for_that_program_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (with, without) = (
        dir.path().join("with.json"),
        dir.path().join("without.json"),
    );
    let report = |name: &str, path: &Path, extra: &str| {
        program_toml(
            name,
            &["report", &path.to_string_lossy(), "sleep", "forever"],
            &format!("startsecs = 0\n{extra}"),
        )
    };
    let _daemon = Daemon::start(
        &(report("with", &with, "no_new_privs = true") + &report("without", &without, "")),
    );
    assert_eq!(read_report(&with)["no_new_privs"], "1");
    assert_eq!(read_report(&without)["no_new_privs"], "0");
}

#[test]
fn a_daemon_that_is_not_root_runs_a_program_as_itself() {
    if !require_root("a_daemon_that_is_not_root_runs_a_program_as_itself") {
        return;
    }
    let nobody = nobody();
    let (uid, gid) = (nobody.uid.as_raw(), nobody.gid.as_raw());
    let b = Daemon::builder().run_as(uid, gid);
    let report = b.dir().join("report.json");
    let d = b
        .config(&program_toml(
            "me",
            &["report", &report.to_string_lossy(), "sleep", "forever"],
            "startsecs = 0\nuser = \"nobody\"",
        ))
        .start();
    d.wait_state("me", State::Running, T);
    let report = read_report(&report);
    assert_eq!(
        (&report["uid"], &report["gid"]),
        (&Value::from(uid), &Value::from(gid))
    );
}
