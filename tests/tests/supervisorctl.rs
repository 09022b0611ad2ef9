//! The real supervisorctl (the `supervisor` package from PyPI, 4.3.0) against
//! nsvisor and against a real supervisord, both started on the same
//! `supervisord.conf` (each in its own directory, paths relative to
//! `%(here)s`): every command prints the same text and exits with the same
//! code, once pids, uptimes and times are masked. `nsvisorctl` invoked as
//! `supervisorctl` (a symlink so named) against a third nsvisor prints the
//! same again.
//!
//! `scripts/test.sh` installs the package into a venv and points
//! `NSVISOR_TEST_SUPERVISOR_BIN` at its `bin/`; without it the test is skipped
//! with a printed reason (with `CI` set it must run, so it fails).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nsvisor_tests::{nsvisor_bin, nsvisorctl_bin, testprog, wait_until};

const T: Duration = Duration::from_secs(20);

/// The venv's `bin/` with `supervisord` and `supervisorctl`, or why not.
fn supervisor_bin() -> Option<PathBuf> {
    let dir = std::env::var_os("NSVISOR_TEST_SUPERVISOR_BIN").map(PathBuf::from);
    match dir {
        Some(dir) if dir.join("supervisorctl").exists() => Some(dir),
        _ if std::env::var_os("CI").is_some() => {
            panic!("NSVISOR_TEST_SUPERVISOR_BIN is not a venv bin/ with supervisorctl, and CI is set: scripts/test.sh installs it")
        }
        _ => {
            eprintln!("skipping: set NSVISOR_TEST_SUPERVISOR_BIN to a bin/ with supervisor 4.3.0's supervisorctl (scripts/test.sh does)");
            None
        }
    }
}

fn conf(extra: &str, idle_arg: &str) -> String {
    let tp = testprog();
    format!(
        "[unix_http_server]\n\
         file=%(here)s/ctl.sock\n\
         \n\
         [supervisord]\n\
         nodaemon=true\n\
         logfile=%(here)s/main.log\n\
         pidfile=%(here)s/main.pid\n\
         \n\
         [rpcinterface:supervisor]\n\
         supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
         \n\
         [supervisorctl]\n\
         serverurl=unix://%(here)s/ctl.sock\n\
         \n\
         [program:web]\n\
         command={tp} trap HUP print-lines 3 --prefix web- stderr-lines 1 sleep forever\n\
         startsecs=0\n\
         priority=10\n\
         \n\
         [program:idle]\n\
         command={tp} sleep {idle_arg}\n\
         startsecs=0\n\
         autostart=false\n\
         \n\
         [group:grp]\n\
         programs=a,b\n\
         \n\
         [program:a]\n\
         command={tp} sleep forever\n\
         startsecs=0\n\
         autostart=false\n\
         \n\
         [program:b]\n\
         command={tp} sleep forever\n\
         startsecs=0\n\
         autostart=false\n\
         {extra}",
        tp = tp.display()
    )
}

const API: &str = "\n[program:api]\ncommand=TP sleep forever\nstartsecs=0\npriority=20\n";
const EXTRA: &str = "\n[program:extra]\ncommand=TP sleep forever\nstartsecs=0\n";

/// A server process: SIGTERMed on drop (so it stops its programs), SIGKILLed
/// if it has not exited within a bound, and reaped.
struct Stopper(Child);

impl Drop for Stopper {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let exited = nsvisor_tests::poll(T, || self.0.try_wait().ok().flatten());
        if exited.is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One server under test, in its own directory.
struct Server {
    dir: tempfile::TempDir,
    _child: Stopper,
    ctl: Vec<String>,
}

impl Server {
    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("supervisord.conf")
    }

    fn write(&self, body: &str) {
        let body = body.replace("TP", &testprog().to_string_lossy());
        std::fs::write(self.conf_path(), body).expect("write the config");
    }

    /// supervisorctl's output (stdout and stderr) and exit code.
    fn ctl(&self, args: &str) -> (String, i32) {
        let out = Command::new(&self.ctl[0])
            .args(&self.ctl[1..])
            .arg("-c")
            .arg(self.conf_path())
            .args(args.split_whitespace())
            .output()
            .expect("run supervisorctl");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (text, out.status.code().unwrap_or(-1))
    }

    fn wait_up(&self) {
        wait_until("the server to answer supervisorctl", T, || {
            let (out, _) = self.ctl("status web");
            out.contains("RUNNING").then_some(())
        });
    }
}

fn start(daemon: &mut Command, body: &str, ctl: Vec<String>) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("supervisord.conf");
    std::fs::write(&conf, body.replace("TP", &testprog().to_string_lossy())).expect("write");
    let child: Child = daemon
        .arg("-c")
        .arg(&conf)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("daemon.stderr")).expect("stderr file"))
        .spawn()
        .expect("start the server");
    let s = Server {
        dir,
        _child: Stopper(child),
        ctl,
    };
    s.wait_up();
    s
}

/// Pids, uptimes, dates and the version masked.
fn mask(text: &str) -> String {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut l = line.to_string();
        if let Some(at) = l.find("pid ") {
            if let Some(end) = l[at..].find(", uptime ") {
                l.replace_range(at.., &format!("pid N{}", &l[at + end..at + end + 9]));
                l.push('T');
            }
        }
        if !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()) {
            l = "N".into();
        }
        // "Dec 01 10:50 AM"
        for m in [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ] {
            if let Some(at) = l.find(&format!("{m} ")) {
                if l[at..].ends_with(" AM") || l[at..].ends_with(" PM") {
                    l.replace_range(at.., "DATE");
                }
            }
        }
        out.push(l);
    }
    out.join("\n")
}

#[test]
fn supervisorctl_prints_the_same_against_nsvisor_and_supervisord() {
    let Some(bin) = supervisor_bin() else {
        return;
    };
    let ctl = vec![bin.join("supervisorctl").to_string_lossy().into_owned()];
    let links = tempfile::tempdir().expect("tempdir");
    let our_ctl = links.path().join("supervisorctl");
    std::os::unix::fs::symlink(nsvisorctl_bin(), &our_ctl).expect("symlink");
    let first = conf(API, "forever");
    let real = start(
        &mut Command::new(bin.join("supervisord")),
        &first,
        ctl.clone(),
    );
    let ours = start(&mut Command::new(nsvisor_bin()), &first, ctl);
    let ours_ctl = start(
        &mut Command::new(nsvisor_bin()),
        &first,
        vec![our_ctl.to_string_lossy().into_owned()],
    );
    let servers = [&real, &ours, &ours_ctl];
    let who = [
        "supervisord",
        "nsvisor",
        "nsvisor with nsvisorctl as supervisorctl",
    ];
    // (command, compare the lines sorted: results whose order is completion order)
    let steps: &[(&str, bool)] = &[
        ("status", false),
        ("status web", false),
        ("status nosuch", false),
        ("start web", false),
        ("stop web", false),
        ("status web", false),
        ("start web", false),
        ("restart api", false),
        ("stop nosuch", false),
        ("start nosuch", false),
        ("start grp:*", true),
        ("status grp:*", false),
        ("stop grp:*", true),
        ("start idle", false),
        ("stop idle", false),
        ("stop idle", false),
        ("signal HUP web", false),
        ("signal HUP idle", false),
        ("signal HUP nosuch", false),
        ("pid web", false),
        ("pid idle", false),
        ("pid", false),
        ("pid nosuch", false),
        ("tail web", false),
        ("tail -7 web", false),
        ("tail web stderr", false),
        ("tail nosuch", false),
        ("avail", false),
        ("reread", false),
        ("update", false),
        ("version", false),
        ("RECONFIGURE", false),
        ("reread", true),
        ("avail", false),
        ("update", false),
        ("status", false),
        ("stop all", true),
        ("status", false),
        ("start all", true),
        ("status", false),
        ("shutdown", false),
    ];
    let mut differences = Vec::new();
    for (step, sorted) in steps {
        if *step == "RECONFIGURE" {
            // api removed, extra added, idle changed.
            for s in servers {
                s.write(&conf(EXTRA, "3600"));
            }
            continue;
        }
        let outputs = servers.map(|s| {
            let (text, code) = s.ctl(step);
            let mut text = mask(&text);
            if *step == "version" {
                text.clear();
            }
            if *sorted {
                let mut l: Vec<&str> = text.lines().collect();
                l.sort_unstable();
                text = l.join("\n");
            }
            (text, code)
        });
        for (i, (text, code)) in outputs.iter().enumerate().skip(1) {
            let (want, want_code) = &outputs[0];
            if (text, code) != (want, want_code) {
                differences.push(format!(
                    "supervisorctl {step}\n  supervisord (exit {want_code}):\n{want}\n  {} (exit {code}):\n{text}",
                    who[i]
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "supervisorctl printed differently:\n{}\n\nnsvisor's stderr:\n{}",
        differences.join("\n\n"),
        std::fs::read_to_string(ours.dir.path().join("daemon.stderr")).unwrap_or_default()
    );
}

#[test]
fn maintail_and_reload_answer_like_supervisord() {
    let Some(bin) = supervisor_bin() else {
        return;
    };
    let ctl = vec![bin.join("supervisorctl").to_string_lossy().into_owned()];
    let ours = start(&mut Command::new(nsvisor_bin()), &conf(API, "forever"), ctl);
    let (out, code) = ours.ctl("maintail");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("control API listening"), "{out}");
    let (out, code) = ours.ctl("reload");
    assert_eq!((out.trim(), code), ("Restarted supervisord", 0));
    ours.wait_up();
    let (out, code) = ours.ctl("shutdown");
    assert_eq!((out.trim(), code), ("Shut down", 0));
}

/// A container's life: nsvisor as PID 1 (a new PID namespace) on a
/// `supervisord.conf`, driven with supervisorctl (nsvisorctl under that
/// name); `stop` and `start` one program, then SIGTERM: each program gets its
/// own `stopsignal`, and the daemon exits 0.
#[test]
fn container_shaped_pid1_from_a_supervisord_conf() {
    if !nsvisor_tests::require_root("container_shaped_pid1_from_a_supervisord_conf") {
        return;
    }
    let b = nsvisor_tests::Daemon::builder();
    let dir = b.dir().to_path_buf();
    let tp = testprog();
    let ini = format!(
        "[supervisord]\nnodaemon=true\n\n\
         [program:web]\ncommand={tp} exit-on INT 0 record {d}/web.rec sleep forever\nstopsignal=INT\nstartsecs=0\n\n\
         [program:worker]\ncommand={tp} exit-on QUIT 0 record {d}/worker.rec sleep forever\nstopsignal=QUIT\nstartsecs=0\n",
        tp = tp.display(),
        d = dir.display()
    );
    let mut d = b.supervisord_conf(&ini).pid1(true).start();
    let link = dir.join("supervisorctl");
    std::os::unix::fs::symlink(nsvisorctl_bin(), &link).expect("symlink");
    let ctl = |args: &[&str]| {
        let out = Command::new(&link)
            .arg("-c")
            .arg(dir.join("supervisord.conf"))
            .args(args)
            .output()
            .expect("run supervisorctl");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    };
    let web = dir.join("web.rec");
    let worker = dir.join("worker.rec");
    nsvisor_tests::wait_record(&web, "start", T);
    nsvisor_tests::wait_record(&worker, "start", T);
    assert_eq!(ctl(&["stop", "web"]), ("web: stopped\n".into(), Some(0)));
    nsvisor_tests::wait_record(&web, "signal INT", T);
    assert_eq!(ctl(&["start", "web"]), ("web: started\n".into(), Some(0)));
    let (status, code) = ctl(&["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert_eq!(
        status.lines().filter(|l| l.contains("RUNNING")).count(),
        2,
        "{status}"
    );
    let exit = d.terminate();
    assert_eq!(exit.code(), Some(0));
    let signals = |f: &std::path::Path| -> Vec<String> {
        nsvisor_tests::read_records(f)
            .into_iter()
            .filter(|r| r.event.starts_with("signal"))
            .map(|r| r.event)
            .collect()
    };
    assert_eq!(signals(&web), ["signal INT", "signal INT"]);
    assert_eq!(signals(&worker), ["signal QUIT"]);
}
