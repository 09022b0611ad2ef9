//! Exhaustion: the daemon driven out of open files, out of processes, and
//! under output floods, checking what docs/reliability.md ("Exhaustion")
//! promises for each: a failed spawn is a BACKOFF naming the OS error, the
//! API keeps answering (connections opened before) or refuses new ones with
//! the cause, and everything recovers once the resource is back. The open-files
//! budget warning (`nsvisor check` and the start) is here too. Output floods
//! and a full disk are in `exhaustion_output.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::resource::Resource;
use nsvisor_proto::State;
use nsvisor_tests::{
    fd_count, http, log_lines, program_toml, require_root, toml_quote, wait_until, Daemon,
    KeepAlive, StreamBody,
};
use serde_json::Value;

const T: Duration = Duration::from_secs(15);
/// Generous: a program in BACKOFF retries after 1 s, 2 s, 3 s ...
const RECOVERY: Duration = Duration::from_secs(40);

/// Open-files limit for the daemon in these tests: room for its own
/// descriptors and a few dozen more.
const NOFILE: u64 = 128;

/// The capability to raise a hard limit (linux/capability.h), which a
/// container's root does not have by default.
const CAP_SYS_RESOURCE: i32 = 24;

/// `GET /v1/programs/NAME` on a kept connection.
fn status_on(conn: &mut KeepAlive, name: &str) -> Value {
    let r = conn
        .request("GET", &format!("/v1/programs/{name}"), b"")
        .expect("the kept connection answers");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// True when a new connection is refused with `503 unavailable` naming the
/// cause (the daemon is out of descriptors); panics on any other refusal.
fn refused(socket: &Path) -> Option<String> {
    let r = http::request(socket, "GET", "/v1/programs", b"").ok()?;
    if r.status == 200 {
        return None;
    }
    let body = r.json();
    assert_eq!(r.status, 503, "{body}");
    assert_eq!(body["error"]["kind"], "unavailable", "{body}");
    Some(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Holds event streams until the daemon's descriptor table is full, which
/// shows as a new connection being answered `503 unavailable`. Returns the
/// streams (the table frees when they are dropped) and that answer.
fn fill_with_connections(d: &Daemon) -> (Vec<StreamBody>, String) {
    let mut held = Vec::new();
    loop {
        if let Some(message) = refused(d.socket()) {
            return (held, message);
        }
        assert!(
            (held.len() as u64) < NOFILE,
            "{} connections held and the daemon still accepts more",
            held.len()
        );
        let s = d.stream("/v1/events");
        if s.status == 200 {
            held.push(s);
        }
    }
}

#[test]
fn out_of_open_files_a_spawn_is_backoff_the_api_refuses_cleanly_and_all_recovers() {
    let mut d = Daemon::builder()
        .rlimit(Resource::RLIMIT_NOFILE, NOFILE, NOFILE)
        .config(&format!(
            "[supervisor]\nminfds = 1\n\n{}",
            program_toml(
                "p",
                &["record", "{dir}/rec", "sleep", "forever"],
                "autostart = false\nstartsecs = 0\nstartretries = 100"
            )
        ))
        .start();
    // Opened before the table fills: it must go on working.
    let mut conn = KeepAlive::open(d.socket()).expect("connect");
    assert_eq!(status_on(&mut conn, "p")["state"], "STOPPED");

    let before = fd_count(d.pid()).unwrap_or(0);
    let (held, refusal) = fill_with_connections(&d);
    assert!(refusal.contains("Too many open files"), "{refusal}");
    // The refused client's descriptor goes back to the spare.
    wait_until("the table to be full", T, || {
        (fd_count(d.pid()).unwrap_or(0) as u64 == NOFILE).then_some(())
    });

    let r = conn
        .request("POST", "/v1/programs/p/start?wait=false", b"")
        .expect("start on the kept connection");
    assert_eq!(r.status, 200, "{}", r.text());
    let info = wait_until("p to be BACKOFF", T, || {
        let info = status_on(&mut conn, "p");
        (info["state"] == "BACKOFF").then_some(info)
    });
    let why = info["description"].as_str().unwrap_or_default();
    assert!(
        why.contains("cannot create its output pipe: Too many open files")
            && why.contains(&format!("open-files limit is {NOFILE}")),
        "{why}"
    );
    assert!(
        log_lines(&d.stderr())
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("Too many open files")),
        "the daemon's log names the cause:\n{}",
        d.stderr()
    );
    assert!(d.is_running(), "the daemon is up");

    drop(held);
    // The daemon closes each connection as it notices the client left; the
    // program's retries take a few descriptors meanwhile.
    wait_until("the held connections to be closed", T, || {
        (fd_count(d.pid()).unwrap_or(0) <= before + 8).then_some(())
    });
    assert_eq!(
        refused(d.socket()),
        None,
        "new connections are served again"
    );
    let running = d.wait_state("p", State::Running, RECOVERY);
    assert!(running.pid.is_some());
}

#[test]
fn more_programs_than_open_files_are_warned_at_start_and_fail_as_backoff() {
    // 60 programs need about 64 + 2 * 60 = 184 descriptors; the hard limit
    // is 128 and the daemon, like a container's root, cannot raise it.
    let n = 60;
    let d = Daemon::builder()
        .rlimit(Resource::RLIMIT_NOFILE, NOFILE, NOFILE)
        .drop_capability(CAP_SYS_RESOURCE)
        .config(&program_toml(
            "p",
            &["sleep", "forever"],
            &format!("numprocs = {n}\nstartsecs = 0\nstartretries = 100"),
        ))
        .start();
    let warning = format!(
        "WARN {n} programs need about 184 open files; the open-files hard limit is {NOFILE}"
    );
    assert!(
        log_lines(&d.stderr())
            .iter()
            .any(|l| l.starts_with(&warning)),
        "expected {warning:?} in:\n{}",
        d.stderr()
    );
    let names: Vec<String> = (0..n).map(|k| format!("p:{k}")).collect();
    // The API answers, or refuses cleanly while the table is full.
    let states = || -> Option<Vec<(String, String)>> {
        let r = http::request(d.socket(), "GET", "/v1/programs", b"").ok()?;
        if r.status == 503 {
            assert_eq!(r.json()["error"]["kind"], "unavailable", "{}", r.text());
            return None;
        }
        let list = r.json();
        let list = list.as_array()?;
        Some(
            list.iter()
                .map(|p| {
                    let state = p["state"].as_str().unwrap_or_default().to_string();
                    let why = p["description"].as_str().unwrap_or_default().to_string();
                    (state, why)
                })
                .collect(),
        )
    };
    let seen = wait_until("some programs RUNNING and some BACKOFF", T, || {
        let s = states()?;
        let running = s.iter().filter(|(st, _)| st == "RUNNING").count();
        let backoff = s.iter().filter(|(st, _)| st == "BACKOFF").count();
        (running > 0 && backoff > 0).then_some(s)
    });
    for (state, why) in &seen {
        if state == "BACKOFF" {
            assert!(why.contains("Too many open files"), "{why}");
        }
    }
    // Free descriptors by stopping half of them: the rest come up.
    let half = &names[..n / 2];
    for name in half {
        wait_until(&format!("{name} to stop"), T, || {
            let r = http::request(
                d.socket(),
                "POST",
                &format!("/v1/programs/{name}/stop"),
                b"",
            )
            .ok()?;
            (r.status == 200).then_some(())
        });
    }
    for name in &names[n / 2..] {
        d.wait_state(name, State::Running, RECOVERY);
    }
}

/// `nsvisor -c FILE check` with a hard open-files limit of `hard`.
fn check_with_limit(config: &str, hard: u64) -> (bool, String, String) {
    let mut d = Daemon::builder()
        .rlimit(Resource::RLIMIT_NOFILE, hard, hard)
        .config(config)
        .args(["check"])
        .spawn();
    let status = d.wait_exit(T);
    (status.success(), d.stdout(), d.stderr())
}

#[test]
fn check_warns_when_the_programs_need_more_open_files_than_the_hard_limit() {
    let config = program_toml(
        "p",
        &["sleep", "forever"],
        "numprocs = 600\nstdout_logfile = \"{dir}/p-{process_num}.log\"",
    );
    // Each: two pipes and a log file.
    let need = 64 + 600 * 3;
    let (ok, out, err) = check_with_limit(&config, 1024);
    assert!(ok, "a warning, not an error: {err}");
    let expected = format!(
        "warning: 600 programs need about {need} open files; the open-files hard limit is 1024"
    );
    assert!(
        err.starts_with(&expected),
        "expected {expected:?} in:\n{err}"
    );
    assert!(
        err.contains(&format!("--ulimit nofile={need}:{need}")),
        "{err}"
    );
    assert!(out.contains("ok (600 programs, 1 warning)"), "{out}");

    let (ok, out, err) = check_with_limit(&config, 4096);
    assert!(
        ok && err.is_empty(),
        "no warning under a high enough limit: {err}"
    );
    assert!(out.contains("ok (600 programs)"), "{out}");
}

#[test]
fn start_raises_the_soft_open_files_limit_to_what_the_programs_need() {
    let d = Daemon::builder()
        .rlimit(Resource::RLIMIT_NOFILE, 256, 4096)
        .drop_capability(CAP_SYS_RESOURCE)
        .config(&format!(
            "[supervisor]\nminfds = 1\n\n{}",
            program_toml(
                "p",
                &["sleep", "forever"],
                "numprocs = 300\nautostart = false"
            )
        ))
        .start();
    let need = 64 + 300 * 2;
    assert_eq!(open_files_limit(d.pid()), (need, 4096));
    assert!(
        !d.stderr().contains("open files"),
        "no warning when the hard limit is enough:\n{}",
        d.stderr()
    );
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

/// A uid no one else runs processes as (RLIMIT_NPROC counts per user; each
/// test passes its own `salt`), with a copy of testprog in a directory it
/// can reach: (uid, binary).
fn lonely_user(d: &nsvisor_tests::DaemonBuilder, salt: u32) -> (u32, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let uid = 40_000 + (std::process::id() % 10_000) * 2 + salt;
    let open = d.dir().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(d.dir(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = open.join("testprog");
    std::fs::copy(nsvisor_tests::testprog(), &bin).expect("copy testprog");
    (uid, bin)
}

/// Programs running as `uid`: `a` (numprocs = 2, started) and `b` (started by the test).
fn as_user_config(uid: u32, bin: &Path) -> String {
    let cmd = format!("[{}, \"sleep\", \"forever\"]", toml_quote(bin));
    format!(
        "[programs.a]\ncommand = {cmd}\nuser = \"{uid}\"\nnumprocs = 2\nstartsecs = 0\n\n\
         [programs.b]\ncommand = {cmd}\nuser = \"{uid}\"\nautostart = false\nstartsecs = 0\n\
         startretries = 100\n"
    )
}

/// Starts `b` (not waiting), expects BACKOFF with `cause`, frees a process
/// by stopping `a:0`, and expects `b` RUNNING.
fn backoff_then_recovery(d: &Daemon, cause: &str) {
    d.wait_state("a:0", State::Running, T);
    d.wait_state("a:1", State::Running, T);
    let (status, body) = d.post("/v1/programs/b/start?wait=false", "");
    assert_eq!(status, 200, "{body}");
    let info = d.wait_state("b", State::Backoff, T);
    assert!(info.description.contains(cause), "{}", info.description);
    let (status, body) = d.post("/v1/programs/a:0/stop", "");
    assert_eq!(status, 200, "{body}");
    d.wait_state("b", State::Running, RECOVERY);
}

#[test]
fn process_limit_of_the_programs_user_makes_a_spawn_backoff_with_the_os_error() {
    if !require_root("process_limit_of_the_programs_user_makes_a_spawn_backoff_with_the_os_error") {
        return;
    }
    // RLIMIT_NPROC does not bind root (the daemon), only processes of the
    // user it switches to: when that user already has more processes than
    // the limit, the switched child's execve fails with EAGAIN. With a limit
    // of 1, `a:0` and `a:1` start (0, then 1 process before each), `b` not.
    let b = Daemon::builder();
    let (uid, bin) = lonely_user(&b, 0);
    let d = b
        .rlimit(Resource::RLIMIT_NPROC, 1, 1)
        .config(&as_user_config(uid, &bin))
        .start();
    backoff_then_recovery(&d, "Resource temporarily unavailable");
}

/// A pids cgroup made for one test, removed (after its processes are gone) on drop.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    /// A new cgroup under the pids controller (v1 or v2), or `None` with the reason.
    fn create() -> Result<PidsCgroup, String> {
        let v1 = Path::new("/sys/fs/cgroup/pids");
        let v2 = Path::new("/sys/fs/cgroup");
        let parent = if v1.join("pids.max").exists() || v1.join("cgroup.procs").exists() {
            v1
        } else if std::fs::read_to_string(v2.join("cgroup.subtree_control"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "pids"))
        {
            v2
        } else {
            return Err("no pids cgroup controller available".into());
        };
        let dir = parent.join(format!("nsvisor-test-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        Ok(PidsCgroup(dir))
    }

    fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.0.join(file))
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    fn set_max(&self, max: &str) {
        std::fs::write(self.0.join("pids.max"), max).expect("write pids.max");
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = wait_until_quiet(&self.0);
        if let Err(e) = std::fs::remove_dir(&self.0) {
            eprintln!("cannot remove cgroup {}: {e}", self.0.display());
        }
    }
}

/// Waits (bounded) until the cgroup at `dir` holds no process.
fn wait_until_quiet(dir: &Path) -> Option<()> {
    nsvisor_tests::poll(T, || {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        procs.trim().is_empty().then_some(())
    })
}

#[test]
fn pids_cgroup_limit_makes_a_spawn_backoff_not_a_crash() {
    if !require_root("pids_cgroup_limit_makes_a_spawn_backoff_not_a_crash") {
        return;
    }
    let cg = match PidsCgroup::create() {
        Ok(cg) => cg,
        Err(why) => {
            eprintln!("skipping pids_cgroup_limit_makes_a_spawn_backoff_not_a_crash: {why}");
            return;
        }
    };
    let b = Daemon::builder();
    let (uid, bin) = lonely_user(&b, 1);
    let mut d = b
        .cgroup(&cg.0)
        .config(
            &as_user_config(uid, &bin)
                .replace("numprocs = 2\n", "numprocs = 2\nautostart = false\n"),
        )
        .start();
    for name in ["a:0", "a:1"] {
        let (status, body) = d.post(&format!("/v1/programs/{name}/start"), "");
        assert_eq!(status, 200, "{body}");
    }
    // The daemon's threads count too: not one task more than now.
    let current: u64 = cg.read("pids.current").parse().expect("pids.current");
    cg.set_max(&current.to_string());
    backoff_then_recovery(&d, "cannot fork: Resource temporarily unavailable");
    assert!(d.is_running(), "the daemon survives");
    cg.set_max("max");
    d.terminate();
}
