//! [`Daemon`]: one `nsvisor` process in its own temp dir, and its [`DaemonBuilder`].
//!
//! The builder writes the config (placeholders replaced, socket put in the
//! temp dir), spawns `nsvisor -c` (optionally as PID 1 of a new PID namespace
//! via `unshare`) with stdout/stderr captured to files, and waits for the API.
//! `Drop` SIGTERMs the daemon, SIGKILLs it after a bound, and dumps its output
//! when the test is failing.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, Resource};
use nsvisor_proto::{ProgramInfo, State};
use serde_json::Value;

use crate::config_files::{write_config, write_ini_config};
use crate::http::{self, EventStream, Response, StreamBody};
use crate::launch::Launch;
use crate::{children_of, nsvisor_bin, nsvisorctl_bin, poll, wait_until};

/// How long the harness waits for the daemon to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `Drop` waits after SIGTERM before SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(10);

/// Builds a [`Daemon`]; see [`Daemon::builder`].
pub struct DaemonBuilder {
    dir: tempfile::TempDir,
    config: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    env_removed: Vec<OsString>,
    pid1: bool,
    launch: Launch,
    stderr: Option<std::os::fd::OwnedFd>,
    ini: bool,
    netns: Option<String>,
}

impl DaemonBuilder {
    /// The temp dir the daemon will run in (exists already, so tests can put files there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file body (placeholders `{dir}` and `{testprog}` are replaced).
    pub fn config(mut self, toml: &str) -> Self {
        self.config = toml.to_string();
        self
    }

    /// A supervisord INI config instead of TOML: written as
    /// `supervisord.conf` (same placeholders), with a `[unix_http_server]`
    /// putting the socket in the temp dir unless the config has one.
    pub fn supervisord_conf(mut self, ini: &str) -> Self {
        self.config = ini.to_string();
        self.ini = true;
        self
    }

    /// Extra command-line arguments, after `-c <dir>/nsvisor.toml`.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// An environment variable for the daemon.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_os_string(), value.as_ref().to_os_string()));
        self
    }

    /// An environment variable the daemon must not inherit from the test.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env_removed.push(key.as_ref().to_os_string());
        self
    }

    /// Run the daemon as PID 1 of a new PID namespace (`unshare --pid --fork
    /// --mount-proc`; root only).
    pub fn pid1(mut self, pid1: bool) -> Self {
        self.pid1 = pid1;
        self
    }

    /// Start the daemon with these signals ignored and blocked, as a careless
    /// parent might (the daemon must not pass that on to its programs).
    pub fn inherit_ignored_and_blocked(mut self, signals: &[nix::sys::signal::Signal]) -> Self {
        self.launch.inherited.extend_from_slice(signals);
        self
    }

    /// Start the daemon with its soft open-files limit (`RLIMIT_NOFILE`) lowered
    /// to `soft` (the hard limit stays), to see what `minfds` does.
    pub fn open_files_limit(mut self, soft: u64) -> Self {
        let (_, hard) =
            getrlimit(Resource::RLIMIT_NOFILE).expect("cannot read the open-files limit");
        self.launch
            .rlimits
            .push((Resource::RLIMIT_NOFILE, soft.min(hard), hard));
        self
    }

    /// Start the daemon with these soft and hard limits of `resource`
    /// (`RLIMIT_NOFILE`, `RLIMIT_NPROC`, ...).
    pub fn rlimit(mut self, resource: Resource, soft: u64, hard: u64) -> Self {
        self.launch.rlimits.push((resource, soft, hard));
        self
    }

    /// Start the daemon inside the cgroup at `dir` (it joins before exec).
    pub fn cgroup(mut self, dir: &Path) -> Self {
        self.launch.set_cgroup(dir);
        self
    }

    /// Start the daemon without capability number `cap` (linux/capability.h), even as
    /// root: it is dropped from the bounding set before exec (as in a
    /// container, which has no CAP_SYS_RESOURCE by default).
    pub fn drop_capability(mut self, cap: i32) -> Self {
        self.launch.dropped_caps.push(cap);
        self
    }

    /// The daemon's stdout (program lines on the console) goes to `fd` (a
    /// pipe the test reads, or does not) instead of `daemon.stdout`;
    /// [`Daemon::stdout`] is then empty.
    pub fn stdout_to(mut self, fd: std::os::fd::OwnedFd) -> Self {
        self.launch.stdout = Some(fd);
        self
    }

    /// The daemon's stderr goes to `fd` (a pipe the test reads, or does not)
    /// instead of `daemon.stderr`; [`Daemon::stderr`] is then empty.
    pub fn stderr_to(mut self, fd: std::os::fd::OwnedFd) -> Self {
        self.stderr = Some(fd);
        self
    }

    /// Run the daemon in the named network namespace `/run/netns/NAME` (via
    /// `nsenter --net`, which keeps the mount namespace, so `/run/netns`
    /// stays the test's). For tests that need firewall rules or sysctls:
    /// they then live in a namespace the test made.
    pub fn netns(mut self, name: &str) -> Self {
        self.netns = Some(name.to_string());
        self
    }

    /// Starts the daemon (as root) with capability number `cap` in its
    /// inheritable and ambient sets, to check what programs inherit.
    pub fn ambient_capability(mut self, cap: u32) -> Self {
        self.launch.ambient_cap = Some(cap);
        self
    }

    /// Runs the daemon as `uid`/`gid` (no supplementary groups) instead of
    /// the test's user; its temp dir is opened to everyone (mode 0777).
    pub fn run_as(mut self, uid: u32, gid: u32) -> Self {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("cannot open the daemon's dir");
        self.launch.run_as = Some((uid, gid));
        self
    }

    /// Starts the daemon and waits until its API answers.
    pub fn start(self) -> Daemon {
        let mut daemon = self.spawn();
        daemon.wait_api();
        daemon
    }

    /// Starts the daemon without waiting for its API (for runs that are expected to
    /// exit by themselves, like single-command mode or bad configs).
    pub fn spawn(self) -> Daemon {
        remember_panics();
        let dir = self.dir.path().to_path_buf();
        let (socket, config) = if self.ini {
            write_ini_config(&dir, &self.config)
        } else {
            (write_config(&dir, &self.config), dir.join("nsvisor.toml"))
        };

        let mut cmd = if self.pid1 {
            let mut c = Command::new("unshare");
            c.args(["--pid", "--fork", "--mount-proc", "--kill-child"]);
            c.arg(nsvisor_bin());
            c
        } else if let Some(netns) = &self.netns {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{netns}")).arg("--");
            c.arg(nsvisor_bin());
            c
        } else {
            Command::new(nsvisor_bin())
        };
        cmd.arg("-c").arg(&config).args(&self.args);
        for key in &self.env_removed {
            cmd.env_remove(key);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.current_dir(&dir).stdin(Stdio::null());
        cmd.stdout(File::create(dir.join("daemon.stdout")).expect("cannot create daemon.stdout"));
        self.launch.apply(&mut cmd);
        match self.stderr {
            Some(fd) => cmd.stderr(fd),
            None => cmd.stderr(
                File::create(dir.join("daemon.stderr")).expect("cannot create daemon.stderr"),
            ),
        };
        let child = cmd.spawn().expect("cannot spawn nsvisor");
        Daemon {
            dir: self.dir,
            socket,
            child,
            pid1: self.pid1,
            exit: None,
        }
    }
}

/// A running `nsvisor` in its own temp dir.
pub struct Daemon {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
    pid1: bool,
    exit: Option<ExitStatus>,
}

impl Daemon {
    /// The value of a metric without labels in `GET /metrics`.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.request("GET", "/metrics", "").text();
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))?;
        value.trim().parse().ok()
    }

    /// Starts a daemon on this config; see [`DaemonBuilder`].
    pub fn start(toml_body: &str) -> Daemon {
        Daemon::builder().config(toml_body).start()
    }

    /// A builder with a fresh temp dir and an empty config.
    pub fn builder() -> DaemonBuilder {
        DaemonBuilder {
            dir: tempfile::Builder::new()
                .prefix("nsvisor-e2e-")
                .tempdir()
                .expect("cannot create a temp dir"),
            config: String::new(),
            args: Vec::new(),
            env: Vec::new(),
            env_removed: Vec::new(),
            pid1: false,
            launch: Launch::default(),
            stderr: None,
            ini: false,
            netns: None,
        }
    }

    /// The daemon's temp dir.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The config file the daemon was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir().join("nsvisor.toml")
    }

    /// Replaces the config file (same placeholders and socket rule as at start),
    /// for reload tests. The daemon does not notice until told (SIGHUP, reload).
    pub fn write_config(&self, body: &str) {
        let socket = write_config(self.dir(), body);
        assert_eq!(socket, self.socket, "a new config must keep the socket");
    }

    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The pid of the spawned process (`unshare` when running as PID 1).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The pid of `nsvisor` itself, as seen from the test: the same as [`Daemon::pid`],
    /// or the child of `unshare` when running as PID 1 of a new namespace.
    pub fn daemon_pid(&self) -> u32 {
        if !self.pid1 {
            return self.pid();
        }
        let outer = self.pid();
        wait_until("unshare to fork nsvisor", Duration::from_secs(5), || {
            children_of(outer).first().copied()
        })
    }

    /// Sends `sig` to nsvisor itself (not to `unshare`).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.daemon_pid() as i32);
        nix::sys::signal::kill(pid, sig).expect("cannot signal nsvisor");
    }

    /// Performs a request and returns the whole response.
    pub fn request(&self, method: &str, path: &str, body: &str) -> Response {
        http::request(&self.socket, method, path, body.as_bytes())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// `GET path` → status and JSON body (`Value::String` when the body is not JSON).
    pub fn get(&self, path: &str) -> (u16, Value) {
        let r = self.request("GET", path, "");
        (r.status, r.json())
    }

    /// `POST path` with a JSON body → status and JSON body.
    pub fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let r = self.request("POST", path, body);
        (r.status, r.json())
    }

    /// Writes raw bytes on a new connection and returns everything the daemon
    /// sends until it closes the connection.
    pub fn request_raw(&self, raw: &[u8]) -> Vec<u8> {
        http::raw(&self.socket, raw).unwrap_or_else(|e| panic!("raw request: {e}"))
    }

    /// Opens a streamed GET (events, `logs?follow=true`) and returns the body reader.
    pub fn stream(&self, path: &str) -> StreamBody {
        http::stream(&self.socket, path).unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Subscribes to `GET /v1/events`.
    pub fn events(&self) -> EventStream {
        EventStream::new(self.stream("/v1/events"))
    }

    /// `GET /v1/programs/{name}`: `None` on 404, panics on anything else unexpected.
    pub fn status(&self, name: &str) -> Option<ProgramInfo> {
        let r = self.request("GET", &format!("/v1/programs/{name}"), "");
        match r.status {
            200 => Some(serde_json::from_slice(&r.body).unwrap_or_else(|e| {
                panic!(
                    "GET /v1/programs/{name}: bad ProgramInfo ({e}): {}",
                    r.text()
                )
            })),
            404 => None,
            s => panic!("GET /v1/programs/{name}: status {s}: {}", r.text()),
        }
    }

    /// Waits until program `name` is in `state`, and returns its info then.
    pub fn wait_state(&self, name: &str, state: State, timeout: Duration) -> ProgramInfo {
        let mut last = None;
        let found = poll(timeout, || {
            let info = self.status(name);
            last = info.clone();
            info.filter(|i| i.state == state)
        });
        found.unwrap_or_else(|| {
            panic!(
                "timed out after {timeout:?} waiting for {name} to be {state}; last seen: {last:?}"
            )
        })
    }

    /// Runs `nsvisorctl -s <socket> args...` to completion.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(nsvisorctl_bin())
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("cannot run nsvisorctl")
    }

    /// Sends SIGTERM to nsvisor and waits for it to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        if self.exit.is_none() {
            self.signal(nix::sys::signal::Signal::SIGTERM);
        }
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits until the daemon has exited and returns its status.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(status) = self.exit {
            return status;
        }
        let child = &mut self.child;
        let status = wait_until("nsvisor to exit", timeout, || {
            child.try_wait().expect("cannot wait for nsvisor")
        });
        self.exit = Some(status);
        status
    }

    /// True while the daemon has not exited.
    pub fn is_running(&mut self) -> bool {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("cannot wait for nsvisor");
        }
        self.exit.is_none()
    }

    /// What the daemon wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir().join("daemon.stdout")).unwrap_or_default()
    }

    /// What the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir().join("daemon.stderr")).unwrap_or_default()
    }

    /// Waits until the API answers `GET /v1/health` (any status); panics early
    /// with the daemon's output if it exits instead.
    fn wait_api(&mut self) {
        let socket = self.socket.clone();
        let mut exited = None;
        let child = &mut self.child;
        wait_until("the nsvisor API to answer", START_TIMEOUT, || {
            if let Ok(Some(status)) = child.try_wait() {
                exited = Some(status);
                return Some(());
            }
            http::request(&socket, "GET", "/v1/health", b"")
                .ok()
                .map(|_| ())
        });
        if let Some(status) = exited {
            self.exit = Some(status);
            panic!(
                "nsvisor exited at start-up ({status})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout(),
                self.stderr()
            );
        }
    }

    /// Prints the daemon's config and output, then the failure again (a
    /// long log would otherwise push it out of a CI excerpt's tail).
    fn dump(&self) {
        eprintln!(
            "--- nsvisor in {} ---\n--- config ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.dir().display(),
            std::fs::read_to_string(self.dir().join("nsvisor.toml")).unwrap_or_default(),
            self.stdout(),
            self.stderr()
        );
        if let Some(failure) = LAST_PANIC.with(|p| p.borrow_mut().take()) {
            eprintln!("--- the failure, again ---\n{failure}");
        }
    }
}

thread_local! {
    /// What the last panic on this thread said, for [`Daemon::dump`].
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Installs (once per test binary) a panic hook that keeps each panic's
/// message for the thread's [`Daemon`] dump, then reports it as usual.
fn remember_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
            report(info);
        }));
    });
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.is_running() {
            let inner = if self.pid1 {
                children_of(self.pid()).first().copied()
            } else {
                Some(self.pid())
            };
            if let Some(pid) = inner {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            let deadline = Instant::now() + DROP_GRACE;
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if self.is_running() {
                eprintln!("nsvisor did not exit within {DROP_GRACE:?} of SIGTERM: SIGKILL");
                for pid in inner.into_iter().chain([self.pid()]) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            self.dump();
        }
    }
}
