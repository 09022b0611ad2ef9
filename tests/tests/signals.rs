//! Every signal, in both modes: sent with kill(2), none kills nsvisor. In
//! single-command mode (`nsvisor -- CMD`) each reaches the command, real-time
//! ones too, and SIGTSTP / SIGCONT are job control (the command stops, then
//! nsvisor; SIGCONT resumes both). In supervisor mode a signal without a
//! meaning is logged and ignored. Two single-command nsvisors on one host
//! each get a control socket, without a word on the command's stderr.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use nsvisor_tests::{
    nsvisor_bin, nsvisorctl_bin, proc_state, program_toml, read_lines, read_records, require_root,
    testprog, wait_until, Daemon, KillOnDrop,
};

const T: Duration = Duration::from_secs(15);

/// The signals whose default action killed nsvisor before it caught them,
/// and SIGPIPE, which it did not forward.
const FORMERLY_FATAL: [Signal; 9] = [
    Signal::SIGILL,
    Signal::SIGTRAP,
    Signal::SIGABRT,
    Signal::SIGFPE,
    Signal::SIGSYS,
    Signal::SIGSTKFLT,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGPIPE,
];

/// `SIGILL` → `ILL`, as testprog records it.
fn short(sig: Signal) -> &'static str {
    sig.as_str().trim_start_matches("SIG")
}

/// Starts `nsvisor -- testprog [trap SIG]... record REC ready-file READY sleep forever`
/// (as PID 1 of a new PID namespace when `pid1`) and waits until the
/// command is ready; returns the daemon and the command's pid.
fn start_command(traps: &[Signal], pid1: bool) -> (Daemon, u32) {
    let b = Daemon::builder().pid1(pid1);
    let rec = b.dir().join("cmd.rec");
    let ready = b.dir().join("ready");
    let mut args: Vec<String> = vec!["--".into(), testprog().display().to_string()];
    for sig in traps {
        args.extend(["trap".into(), short(*sig).into()]);
    }
    args.extend(["record".into(), rec.display().to_string()]);
    args.extend(["ready-file".into(), ready.display().to_string()]);
    args.extend(["sleep".into(), "forever".into()]);
    let d = b.args(&args).spawn();
    wait_until("the command to be ready", T, || {
        read_lines(&ready).first()?.trim().parse::<u32>().ok()
    });
    // As PID 1 the ready file holds the pid inside the namespace: the
    // test's view is the daemon's child.
    let pid = wait_until("the command's pid", T, || {
        nsvisor_tests::children_of(d.daemon_pid()).first().copied()
    });
    (d, pid)
}

fn forwarded_and_survived(pid1: bool) {
    let (mut d, _) = start_command(&FORMERLY_FATAL, pid1);
    let rec = d.dir().join("cmd.rec");
    for sig in FORMERLY_FATAL {
        d.signal(sig);
        let event = format!("signal {}", short(sig));
        wait_until(&format!("the command to get {sig}"), T, || {
            read_records(&rec)
                .iter()
                .any(|r| r.event == event)
                .then_some(())
        });
        assert!(d.is_running(), "nsvisor died of {sig}: {}", d.stderr());
    }
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(T).code(), Some(128 + 15), "{}", d.stderr());
}

#[test]
fn formerly_fatal_signals_and_sigpipe_reach_the_command_and_nsvisor_survives() {
    forwarded_and_survived(false);
}

#[test]
fn as_pid1_formerly_fatal_signals_reach_the_command_and_nsvisor_survives() {
    if !require_root("as_pid1_formerly_fatal_signals_reach_the_command_and_nsvisor_survives") {
        return;
    }
    forwarded_and_survived(true);
}

#[test]
fn realtime_signals_are_forwarded_to_the_command() {
    let rt = libc::SIGRTMIN() + 2;
    let b = Daemon::builder();
    let got = b.dir().join("got");
    let ready = b.dir().join("ready");
    // dash and bash both trap a signal by number; `wait` lets the trap run.
    let script = format!(
        "trap 'echo {rt} >> \"{}\"' {rt}; echo > \"{}\"; while :; do sleep 1000 & wait $!; done",
        got.display(),
        ready.display()
    );
    let mut d = b.args(["--", "/bin/sh", "-c", &script]).spawn();
    wait_until("the shell to be ready", T, || ready.exists().then_some(()));
    // SAFETY: kill takes plain integers.
    let sent = unsafe { libc::kill(d.daemon_pid() as i32, rt) };
    assert_eq!(sent, 0, "kill -{rt}");
    wait_until("the shell to trap the real-time signal", T, || {
        read_lines(&got)
            .iter()
            .any(|l| l.trim() == rt.to_string())
            .then_some(())
    });
    assert!(d.is_running(), "{}", d.stderr());
}

#[test]
fn supervisor_mode_survives_every_signal_and_logs_the_ignored_ones() {
    let mut d = Daemon::start(&program_toml("idle", &["sleep", "forever"], ""));
    let me = std::process::id();
    let rt = libc::SIGRTMIN() + 1;
    let mut logged: Vec<String> = Vec::new();
    for sig in FORMERLY_FATAL.into_iter().chain([
        Signal::SIGUSR1,
        Signal::SIGTSTP,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ]) {
        d.signal(sig);
        if !matches!(sig, Signal::SIGTTIN | Signal::SIGTTOU) {
            logged.push(format!("received {sig} from pid {me}: ignored"));
        }
    }
    // SAFETY: kill takes plain integers.
    assert_eq!(unsafe { libc::kill(d.daemon_pid() as i32, rt) }, 0);
    logged.push(format!("received SIGRTMIN+1 from pid {me}: ignored"));
    wait_until("every ignored signal to be logged", T, || {
        let log = d.stderr();
        logged
            .iter()
            .all(|l| log.contains(l.as_str()))
            .then_some(())
    });
    assert!(d.is_running(), "{}", d.stderr());
    assert_ne!(
        proc_state(d.daemon_pid()),
        Some('T'),
        "SIGTSTP/TTIN/TTOU stopped it"
    );
    let (status, _) = d.get("/v1/programs/idle");
    assert_eq!(status, 200, "the API still answers");
    assert_eq!(d.terminate().code(), Some(0), "{}", d.stderr());
}

/// Both stopped (`T` in /proc/PID/stat), or both not.
fn wait_stopped(what: &str, pids: [u32; 2], stopped: bool) {
    wait_until(what, T, || {
        pids.iter()
            .all(|p| (proc_state(*p) == Some('T')) == stopped)
            .then_some(())
    });
}

#[test]
fn sigtstp_stops_the_command_then_nsvisor_and_sigcont_resumes_both() {
    let (mut d, cmd) = start_command(&[], false);
    let both = [cmd, d.daemon_pid()];
    d.signal(Signal::SIGTSTP);
    wait_stopped("the command and nsvisor to be stopped", both, true);
    d.signal(Signal::SIGCONT);
    wait_stopped("the command and nsvisor to run again", both, false);
    d.signal(Signal::SIGTERM);
    assert_eq!(d.wait_exit(T).code(), Some(128 + 15), "{}", d.stderr());
}

#[test]
fn ctrl_z_stopping_the_command_stops_nsvisor_too() {
    let (mut d, cmd) = start_command(&[], false);
    let both = [cmd, d.daemon_pid()];
    // What the terminal does on Ctrl-Z: SIGTSTP to its foreground group,
    // the command's, not to nsvisor.
    killpg(Pid::from_raw(cmd as i32), Signal::SIGTSTP).expect("killpg");
    wait_stopped("nsvisor to follow the command into the stop", both, true);
    d.signal(Signal::SIGCONT);
    wait_stopped("the command and nsvisor to run again", both, false);
    assert!(d.is_running(), "{}", d.stderr());
}

/// `nsvisor -- testprog ready-file DIR/NAME sleep forever` as an unprivileged
/// user whose default socket is `$XDG_RUNTIME_DIR/nsvisor.sock` in `dir`,
/// stderr to `DIR/NAME.stderr`.
fn unprivileged_single(dir: &Path, name: &str) -> std::process::Child {
    let stderr = File::create(dir.join(format!("{name}.stderr"))).expect("stderr file");
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(nsvisor_bin())
        .arg("--")
        .arg(testprog())
        .arg("ready-file")
        .arg(dir.join(name))
        .args(["sleep", "forever"])
        .env("XDG_RUNTIME_DIR", dir)
        .env_remove("NSVISOR_CONFIG")
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("cannot run setpriv nsvisor")
}

/// `nsvisorctl status` as the same unprivileged user, `-s socket` if given.
fn ctl_status(dir: &Path, socket: Option<&Path>) -> std::process::Output {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(nsvisorctl_bin());
    if let Some(s) = socket {
        cmd.arg("-s").arg(s);
    }
    cmd.arg("status")
        .env("XDG_RUNTIME_DIR", dir)
        .env_remove("NSVISOR_SOCKET")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run nsvisorctl")
}

#[test]
fn two_single_command_nsvisors_each_get_a_socket_and_say_nothing() {
    if !require_root("two_single_command_nsvisors_each_get_a_socket_and_say_nothing") {
        return;
    }
    let dir = tempfile::Builder::new()
        .prefix("nsvisor-e2e-")
        .tempdir()
        .expect("tempdir");
    let dir = dir.path();
    // The daemons' own directory (not one others can write, which the
    // daemon would rightly warn about).
    std::os::unix::fs::chown(dir, Some(65534), Some(65534)).expect("chown");
    let default = dir.join("nsvisor.sock");

    let mut first = unprivileged_single(dir, "first");
    let mut procs = KillOnDrop(vec![first.id()]);
    wait_until("the first nsvisor's socket", T, || {
        default.exists().then_some(())
    });
    let mut second = unprivileged_single(dir, "second");
    procs.0.push(second.id());
    // setpriv execs nsvisor: same pid.
    let own = dir.join(format!("nsvisor-{}.sock", second.id()));
    wait_until("both commands to be ready", T, || {
        (dir.join("first").exists() && dir.join("second").exists()).then_some(())
    });
    wait_until("the second nsvisor's own socket", T, || {
        own.exists().then_some(())
    });

    // The documented way finds the first; the second answers on its own path.
    let found = ctl_status(dir, None);
    assert_eq!(found.status.code(), Some(0), "{found:?}");
    let at_own = ctl_status(dir, Some(&own));
    assert_eq!(at_own.status.code(), Some(0), "{at_own:?}");

    for child in [&mut first, &mut second] {
        kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).expect("kill");
        let status = wait_until("nsvisor to exit", T, || child.try_wait().ok().flatten());
        assert_eq!(status.code(), Some(128 + 15));
    }
    for name in ["first", "second"] {
        let stderr = std::fs::read_to_string(dir.join(format!("{name}.stderr")));
        assert_eq!(stderr.ok().as_deref(), Some(""), "{name} nsvisor's stderr");
    }
    assert!(
        !default.exists() && !own.exists(),
        "sockets removed at exit"
    );
}
