//! `nsvisorctl exec` end to end: the command's exit code (0, N, 128+N,
//! 127, and 125 when the exec itself fails), output streamed while the
//! command runs, Ctrl-C in the client reaching the command, the timeout,
//! the program's user, environment and directory unless overridden, and
//! (root, daemon in a HOST namespace the test made) the sandbox's network
//! namespace and names, or the daemon's namespace for a program without one.

use std::io::Read;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

#[allow(dead_code)]
mod netkit;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use nsvisor_proto::State;
use nsvisor_tests::{
    lines_of, nsvisorctl_bin, program_toml, require_root, testprog, wait_until, Daemon,
};
use serde_json::Value;

const T: Duration = Duration::from_secs(15);

/// `app`: idle, with an environment variable and a directory of its own.
fn app(dir: &str) -> String {
    program_toml(
        "app",
        &["sleep", "forever"],
        &format!(
            "startsecs = 0\ndirectory = {}\nenvironment = {{ FROM_PROGRAM = \"yes\" }}",
            nsvisor_tests::toml_quote(dir)
        ),
    )
}

fn started() -> (tempfile::TempDir, Daemon) {
    let home = tempfile::tempdir().unwrap();
    let d = Daemon::start(&app(&home.path().display().to_string()));
    d.wait_state("app", State::Running, T);
    (home, d)
}

/// `nsvisorctl exec ARGS` to completion.
fn exec(d: &Daemon, args: &[&str]) -> Output {
    let mut all = vec!["exec"];
    all.extend_from_slice(args);
    d.ctl(&all)
}

/// `nsvisorctl exec ARGS` running, its stdout piped.
fn exec_child(d: &Daemon, args: &[&str]) -> Child {
    Command::new(nsvisorctl_bin())
        .arg("-s")
        .arg(d.socket())
        .arg("exec")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("nsvisorctl")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("an exit code")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn tp() -> String {
    testprog().display().to_string()
}

#[test]
fn the_exit_code_is_the_commands() {
    let (_home, d) = started();
    let tp = tp();
    assert_eq!(code(&exec(&d, &["app", "--", &tp, "exit", "0"])), 0);
    assert_eq!(code(&exec(&d, &["app", "--", &tp, "exit", "3"])), 3);
    let killed = exec(&d, &["app", "--", &tp, "kill-self", "TERM"]);
    assert_eq!(code(&killed), 128 + 15, "128+N for signal N");
    let missing = exec(&d, &["app", "--", "no-such-command-xyz"]);
    assert_eq!(code(&missing), 127);
    assert!(text(&missing.stderr).contains("no-such-command-xyz"));
    let unknown = exec(&d, &["nope", "--", "true"]);
    assert_eq!(code(&unknown), 125, "the exec itself failed");
    assert!(
        text(&unknown.stderr).contains("no such program"),
        "{}",
        text(&unknown.stderr)
    );
}

#[test]
fn stdout_and_stderr_come_back_apart() {
    let (_home, d) = started();
    let tp = tp();
    let out = exec(
        &d,
        &["app", "--", &tp, "print-lines", "2", "stderr-lines", "1"],
    );
    assert_eq!(code(&out), 0);
    assert_eq!(text(&out.stdout), "line 1\nline 2\n");
    assert_eq!(text(&out.stderr), "line 1\n");
}

#[test]
fn output_is_streamed_while_the_command_runs() {
    let (_home, d) = started();
    let go = d.dir().join("go");
    let go_arg = go.display().to_string();
    let mut child = exec_child(
        &d,
        &["app", "--", &tp(), "print-lines", "1", "wait-file", &go_arg],
    );
    let lines = lines_of(&mut child);
    let first = lines
        .recv_timeout(T)
        .expect("a line before the command ends");
    assert_eq!(first, "line 1");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the command still runs (it waits for {go_arg})"
    );
    std::fs::write(&go, "").unwrap();
    let status = wait_until("exec to end", T, || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(0));
}

#[test]
fn ctrl_c_in_the_client_reaches_the_command() {
    let (_home, d) = started();
    let mut child = exec_child(
        &d,
        &[
            "app",
            "--",
            &tp(),
            "exit-on",
            "INT",
            "42",
            "print-lines",
            "1",
            "sleep",
            "forever",
        ],
    );
    let lines = lines_of(&mut child);
    assert_eq!(lines.recv_timeout(T).expect("the command runs"), "line 1");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let status = wait_until("exec to end", T, || child.try_wait().unwrap());
    assert_eq!(
        status.code(),
        Some(42),
        "the command got SIGINT and chose 42"
    );
}

#[test]
fn the_timeout_kills_the_command() {
    let (_home, d) = started();
    let out = exec(
        &d,
        &["--timeout", "0.3", "app", "--", &tp(), "sleep", "forever"],
    );
    assert_eq!(code(&out), 128 + 9);
    assert!(
        text(&out.stderr).contains("timed out"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_client_that_leaves_takes_its_command_along() {
    let (_home, d) = started();
    let pidfile = d.dir().join("pid");
    let pid_arg = pidfile.display().to_string();
    let mut child = exec_child(
        &d,
        &["app", "--", &tp(), "report", &pid_arg, "sleep", "forever"],
    );
    let report = wait_until("the command's report", T, || {
        std::fs::read_to_string(&pidfile).ok()
    });
    let pid = serde_json::from_str::<Value>(&report).unwrap()["pid"]
        .as_u64()
        .unwrap() as u32;
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until("the command to be killed", T, || {
        (!nsvisor_tests::is_alive(pid)).then_some(())
    });
}

#[test]
fn the_command_runs_as_the_program_unless_told_otherwise() {
    let (home, d) = started();
    let out = exec(&d, &["app", "--", &tp(), "report", "-"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["cwd"], home.path().display().to_string());
    assert_eq!(seen["env"]["FROM_PROGRAM"], "yes");
    assert_eq!(seen["env"]["NSVISOR_PROGRAM"], "app");
    assert_eq!(seen["uid"], nix::unistd::getuid().as_raw());

    let out = exec(
        &d,
        &[
            "-e",
            "FROM_PROGRAM=no",
            "--env",
            "EXTRA=1",
            "--workdir",
            "/",
            "app",
            "--",
            &tp(),
            "report",
            "-",
        ],
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["cwd"], "/");
    assert_eq!(seen["env"]["FROM_PROGRAM"], "no");
    assert_eq!(seen["env"]["EXTRA"], "1");

    if !require_root("exec --user") {
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    // `id`, not testprog: nobody may not reach the build directory.
    let out = exec(
        &d,
        &[
            "--user",
            "nobody",
            "--workdir",
            "/",
            "app",
            "--",
            "id",
            "-u",
        ],
    );
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), nobody.uid.to_string());
}

/// The network namespace inode of the process running `nettool ifaces`,
/// as the command itself reports it.
fn netns_seen_by_exec(d: &Daemon, program: &str) -> String {
    let out_file = d.dir().join(format!("ifaces-{program}"));
    let out_arg = out_file.display().to_string();
    let nettool = env!("CARGO_BIN_EXE_nettool");
    let out = exec(d, &[program, "--", nettool, "ifaces", &out_arg]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let mut report = String::new();
    std::fs::File::open(&out_file)
        .unwrap()
        .read_to_string(&mut report)
        .unwrap();
    report.lines().next().unwrap_or_default().to_string()
}

fn netns_of(pid: u32) -> String {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino();
    format!("netns {ino}")
}

#[test]
fn exec_enters_the_sandbox_and_its_names_or_the_daemons_namespace() {
    if !require_root("exec: sandboxes") {
        return;
    }
    let n = netkit::Net::new();
    let link = loop {
        let l = netkit::Net::new();
        if l.subnet != n.subnet {
            break l;
        }
    };
    let hosts = netkit::hosts::Hosts::new(&n, &link);
    let config = n.network_toml()
        + &n.program("web", "web", 10, &["sleep"], "")
        + &n.program("db", "db", 11, &["sleep"], "autostart = false")
        + &program_toml("plain", &["sleep", "forever"], "startsecs = 0");
    let mut d = Daemon::builder().config(&config).netns(&hosts.host).start();
    let web = d.wait_state("web", State::Running, T).pid.unwrap();
    let plain = d.wait_state("plain", State::Running, T).pid.unwrap();

    assert_eq!(netns_seen_by_exec(&d, "web"), netns_of(web));
    let out = exec(&d, &["web", "--", "getent", "-s", "files", "hosts", "web"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&n.addr(10).to_string()),
        "{}",
        text(&out.stdout)
    );
    // No sandbox: the daemon's own namespace (HOST).
    assert_eq!(netns_seen_by_exec(&d, "plain"), netns_of(plain));
    assert_eq!(netns_of(plain), netns_of(d.daemon_pid()));
    // A sandbox that does not exist yet cannot be entered.
    let out = exec(&d, &["db", "--", "true"]);
    assert_eq!(code(&out), 125);
    assert!(
        text(&out.stderr).contains("does not exist yet"),
        "{}",
        text(&out.stderr)
    );
    d.terminate();
    n.assert_gone(&["web"]);
}
