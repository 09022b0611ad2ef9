//! The real supervisord and supervisorctl (the `supervisor` package from
//! PyPI, 4.3.0) beside nsvisor, for the tests that compare them
//! (`tests/supervisorctl.rs`, `tests/supervisorctl_shell.rs`): a server
//! (supervisord or nsvisor) started on a `supervisord.conf` in its own
//! directory (paths relative to `%(here)s`), supervisorctl (the real one, or
//! `nsvisorctl` under that name) run against it, and outputs masked of what
//! differs from run to run (pids, uptimes, dates).
//!
//! `scripts/test.sh` installs the package into a venv and points
//! `NSVISOR_TEST_SUPERVISOR_BIN` at its `bin/`; without it the tests skip
//! with a printed reason (with `CI` set they must run, so they fail).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{nsvisor_bin, nsvisorctl_bin, testprog, wait_until};

/// How long a server gets to answer, start or stop.
pub const T: Duration = Duration::from_secs(20);

/// The venv's `bin/` with `supervisord` and `supervisorctl`, or why not.
pub fn supervisor_bin() -> Option<PathBuf> {
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

/// The config the comparisons share: a socket, a log file, `web` (prints
/// three lines and one on stderr, runs), `idle` (manual start), group `grp`
/// of `a` and `b` (manual), `x` (two processes named by `process_name`,
/// manual), then `extra` (more sections). `TP` is the `testprog` fixture.
pub fn conf(extra: &str, idle_arg: &str) -> String {
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
         command=TP trap HUP print-lines 3 --prefix web- stderr-lines 1 sleep forever\n\
         startsecs=0\n\
         priority=10\n\
         \n\
         [program:idle]\n\
         command=TP sleep {idle_arg}\n\
         startsecs=0\n\
         autostart=false\n\
         \n\
         [group:grp]\n\
         programs=a,b\n\
         \n\
         [program:a]\n\
         command=TP sleep forever\n\
         startsecs=0\n\
         autostart=false\n\
         \n\
         [program:b]\n\
         command=TP sleep forever\n\
         startsecs=0\n\
         autostart=false\n\
         \n\
         [program:x]\n\
         command=TP sleep forever\n\
         numprocs=2\n\
         process_name=%(program_name)s_%(process_num)02d\n\
         startsecs=0\n\
         autostart=false\n\
         {extra}"
    )
}

/// A `[program:api]` that starts with the server.
pub const API: &str = "\n[program:api]\ncommand=TP sleep forever\nstartsecs=0\npriority=20\n";
/// A `[program:extra]` that starts with the server.
pub const EXTRA: &str = "\n[program:extra]\ncommand=TP sleep forever\nstartsecs=0\n";

/// A server process: SIGTERMed on drop (so it stops its programs), SIGKILLed
/// if it has not exited within a bound, and reaped.
struct Stopper(Child);

impl Drop for Stopper {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let exited = crate::poll(T, || self.0.try_wait().ok().flatten());
        if exited.is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// One server under test, in its own directory, with the supervisorctl
/// that drives it.
pub struct Server {
    dir: tempfile::TempDir,
    _child: Stopper,
    ctl: Vec<String>,
}

/// Which server, and which supervisorctl.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pair {
    /// supervisord and the real supervisorctl.
    Real,
    /// nsvisor and the real supervisorctl.
    Ours,
    /// nsvisor and `nsvisorctl` invoked as `supervisorctl`.
    OursCtl,
}

impl Pair {
    /// All three, supervisord's first (the reference).
    pub const ALL: [Pair; 3] = [Pair::Real, Pair::Ours, Pair::OursCtl];

    /// How a difference names it.
    pub fn who(self) -> &'static str {
        match self {
            Pair::Real => "supervisord",
            Pair::Ours => "nsvisor",
            Pair::OursCtl => "nsvisor with nsvisorctl as supervisorctl",
        }
    }
}

impl Server {
    /// Starts `pair`'s server on `body` (`TP`: the fixture) and waits until
    /// supervisorctl sees `web` RUNNING.
    pub fn start(bin: &std::path::Path, pair: Pair, body: &str) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let (daemon, ctl) = match pair {
            Pair::Real => (bin.join("supervisord"), bin.join("supervisorctl")),
            Pair::Ours => (nsvisor_bin(), bin.join("supervisorctl")),
            Pair::OursCtl => {
                let link = dir.path().join("supervisorctl");
                std::os::unix::fs::symlink(nsvisorctl_bin(), &link).expect("symlink");
                (nsvisor_bin(), link)
            }
        };
        let conf = dir.path().join("supervisord.conf");
        std::fs::write(&conf, with_testprog(body)).expect("write the config");
        let child = Command::new(daemon)
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
            ctl: vec![ctl.to_string_lossy().into_owned()],
        };
        s.wait_up();
        s
    }

    /// The server's directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Its `supervisord.conf`.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("supervisord.conf")
    }

    /// Replaces the config file (`TP`: the fixture).
    pub fn write(&self, body: &str) {
        std::fs::write(self.conf_path(), with_testprog(body)).expect("write the config");
    }

    /// What the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.stderr")).unwrap_or_default()
    }

    /// `supervisorctl -c CONF ARGS...`, not started.
    pub fn command(&self, args: &str) -> Command {
        let mut c = Command::new(&self.ctl[0]);
        c.args(&self.ctl[1..])
            .arg("-c")
            .arg(self.conf_path())
            .args(args.split_whitespace());
        c
    }

    /// supervisorctl's output (stdout and stderr) and exit code.
    pub fn ctl(&self, args: &str) -> (String, i32) {
        self.ctl_with_input(args, "")
    }

    /// supervisorctl's output and exit code, with `input` as its stdin.
    pub fn ctl_with_input(&self, args: &str, input: &str) -> (String, i32) {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run supervisorctl");
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(input.as_bytes()).expect("write stdin");
        drop(stdin);
        let out = child.wait_with_output().expect("wait for supervisorctl");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (text, out.status.code().unwrap_or(-1))
    }

    /// Waits until supervisorctl sees `web` RUNNING.
    pub fn wait_up(&self) {
        wait_until("the server to answer supervisorctl", T, || {
            let (out, _) = self.ctl("status web");
            out.contains("RUNNING").then_some(())
        });
    }
}

fn with_testprog(body: &str) -> String {
    body.replace("TP", &testprog().to_string_lossy())
}

/// Pids, uptimes, dates and lines of digits (pids) masked.
pub fn mask(text: &str) -> String {
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

/// The pid of each RUNNING process in supervisorctl's `status` output.
pub fn running_pids(status: &str) -> Vec<(String, u32)> {
    status
        .lines()
        .filter_map(|l| {
            let name = l.split_whitespace().next()?;
            let pid = l.split("pid ").nth(1)?.split(',').next()?.parse().ok()?;
            Some((name.to_string(), pid))
        })
        .collect()
}
