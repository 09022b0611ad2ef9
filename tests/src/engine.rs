//! A private Docker engine for `tests/tests/docker.rs`: Debian's `dockerd`
//! started with `--iptables=false --bridge=none --ip-forward=false` (no
//! firewall rule, no bridge, no sysctl), its data root, exec root, pidfile and socket in a temp dir, so it
//! shares nothing with any other engine on the machine.
//!
//! Tests share one engine while any of them holds it ([`Engine::get`]); the
//! last one to let go stops it and removes its directory. Images come from
//! `docker import` of a root filesystem the test made (never a registry);
//! every image and container a test makes is labelled and removed by the
//! guard that made it ([`Image`], [`Container`]), also when the test fails.
//!
//! Without `dockerd` or without a working engine the tests are skipped with
//! the reason, except under `CI`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::image::Rootfs;
use crate::{poll, KillOnDrop};

/// How long the engine may take to answer after starting.
const ENGINE_START: Duration = Duration::from_secs(60);

/// A running private `dockerd`.
#[derive(Debug)]
pub struct Engine {
    dir: tempfile::TempDir,
    socket: PathBuf,
    docker: PathBuf,
    dockerd: Mutex<Child>,
}

static SHARED: Mutex<Weak<Engine>> = Mutex::new(Weak::new());

impl Engine {
    /// The shared engine, started if no test holds it; `None` after printing
    /// why `test` is skipped (a panic under `CI`).
    pub fn get(test: &str) -> Option<Arc<Engine>> {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = shared.upgrade() {
            return Some(engine);
        }
        match Engine::start() {
            Ok(engine) => {
                let engine = Arc::new(engine);
                *shared = Arc::downgrade(&engine);
                Some(engine)
            }
            Err(why) => {
                if std::env::var_os("CI").is_some() {
                    panic!("{test} needs a Docker engine, and CI is set: {why}");
                }
                eprintln!("skipping {test}: {why}");
                None
            }
        }
    }

    fn start() -> Result<Engine, String> {
        if !crate::is_root() {
            return Err("the Docker engine needs root".into());
        }
        let dockerd = which("dockerd")
            .ok_or("no dockerd: install Debian's docker.io (scripts/test.sh does, as root)")?;
        // Debian's client, of the engine's version, before any other on PATH.
        let docker = ["/usr/bin/docker"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| which("docker"))
            .ok_or("no docker client: install Debian's docker.io")?;
        let dir = tempfile::Builder::new()
            .prefix("nsvisor-dockerd-")
            .tempdir()
            .map_err(|e| format!("cannot create the engine's temp dir: {e}"))?;
        let socket = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log"))
            .map_err(|e| format!("cannot create the engine's log: {e}"))?;
        let err = log.try_clone().map_err(|e| format!("dockerd.log: {e}"))?;
        let child = Command::new(&dockerd)
            .arg("--iptables=false")
            .arg("--ip6tables=false")
            .arg("--bridge=none")
            // Left at its default, dockerd turns on the host's ip_forward.
            .arg("--ip-forward=false")
            .arg(format!("--data-root={}", dir.path().join("data").display()))
            .arg(format!("--exec-root={}", dir.path().join("exec").display()))
            .arg(format!(
                "--pidfile={}",
                dir.path().join("docker.pid").display()
            ))
            .arg(format!("--host=unix://{}", socket.display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", dockerd.display()))?;
        let engine = Engine {
            dir,
            socket,
            docker,
            dockerd: Mutex::new(child),
        };
        let answered = poll(ENGINE_START, || {
            let exited = engine.with_dockerd(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                return Some(Err(format!("dockerd exited with {status}")));
            }
            let out = engine.docker(&["version", "--format", "{{.Server.Version}}"]);
            out.status.success().then_some(Ok(()))
        });
        let failure = match answered {
            Some(Ok(())) => return Ok(engine),
            Some(Err(e)) => e,
            None => format!("dockerd did not answer within {ENGINE_START:?}"),
        };
        Err(format!(
            "the Docker engine cannot start: {failure}; its log:\n{}",
            engine.log()
        ))
    }

    fn with_dockerd<T>(&self, f: impl FnOnce(&mut Child) -> T) -> T {
        f(&mut self.dockerd.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `docker ARGS` against this engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.docker.display()))
    }

    /// `docker ARGS` against this engine, not yet started.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.docker);
        cmd.arg("--host")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args);
        cmd
    }

    /// `docker ARGS`, which must succeed: its trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The docker client the tests use.
    pub fn client(&self) -> &Path {
        &self.docker
    }

    /// The engine's socket (for `docker --host`).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// What dockerd wrote.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let pid = self.with_dockerd(|c| c.id());
        let _kill = KillOnDrop(vec![pid]);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let stopped = poll(Duration::from_secs(30), || {
            self.with_dockerd(|c| c.try_wait().ok().flatten())
        });
        if stopped.is_none() {
            eprintln!("dockerd did not stop within 30 s after SIGTERM; killing it");
        }
        // Anything the engine left mounted under its directory.
        let _ = Command::new("umount")
            .args(["--recursive", "--lazy"])
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The label on everything the tests make, so leftovers can be told apart.
pub const LABEL: &str = "nsvisor-test=1";

/// An image imported from a root filesystem; removed on drop.
#[derive(Debug)]
pub struct Image {
    engine: Arc<Engine>,
    /// `nsvisor-test/NAME:PID`.
    pub tag: String,
}

impl Image {
    /// `docker import` of `root` as `nsvisor-test/NAME`, with `changes`
    /// (Dockerfile lines: `ENTRYPOINT [...]`, `STOPSIGNAL ...`).
    pub fn import(engine: &Arc<Engine>, root: &Rootfs, name: &str, changes: &[&str]) -> Image {
        let tag = format!("nsvisor-test/{name}:{}", std::process::id());
        let mut tar = Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(root.path())
            .args(["-cf", "-", "."])
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot run tar");
        let mut args = vec!["import".to_string()];
        for change in changes.iter().copied().chain([&*format!("LABEL {LABEL}")]) {
            args.extend(["--change".to_string(), change.to_string()]);
        }
        args.extend(["-".to_string(), tag.clone()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = engine
            .docker_cmd(&args)
            .stdin(tar.stdout.take().expect("tar's stdout"))
            .output()
            .expect("cannot run docker import");
        let tarred = tar.wait().expect("tar");
        assert!(
            out.status.success() && tarred.success(),
            "docker import of {} failed: {}",
            root.path().display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Image {
            engine: engine.clone(),
            tag,
        }
    }
}

impl Image {
    /// An image the test made otherwise (`docker build -t TAG`), removed on drop.
    pub fn adopt(engine: &Arc<Engine>, tag: &str) -> Image {
        Image {
            engine: engine.clone(),
            tag: tag.to_string(),
        }
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        let out = self.engine.docker(&["image", "rm", "--force", &self.tag]);
        if !out.status.success() {
            eprintln!(
                "cannot remove image {}: {}",
                self.tag,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// A container the test made (`docker run -d` / `docker create`); removed on drop.
#[derive(Debug)]
pub struct Container {
    engine: Arc<Engine>,
    /// Its name.
    pub name: String,
}

impl Container {
    /// `docker run --detach --network none --label ... --name NAME ARGS...`
    /// (ARGS: options, the image, then its command).
    pub fn run(engine: &Arc<Engine>, name: &str, args: &[&str]) -> Container {
        let container = Container {
            engine: engine.clone(),
            name: format!("nsvisor-test-{name}-{}", std::process::id()),
        };
        let mut all = vec![
            "run",
            "--detach",
            "--network",
            "none",
            "--label",
            LABEL,
            "--name",
            &container.name,
        ];
        all.extend_from_slice(args);
        engine.docker_ok(&all);
        container
    }

    /// `docker logs` of the container: stdout and stderr, in that order.
    pub fn logs(&self) -> String {
        let out = self.engine.docker(&["logs", &self.name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `docker inspect --format FORMAT` of the container.
    pub fn inspect(&self, format: &str) -> String {
        self.engine
            .docker_ok(&["inspect", "--format", format, &self.name])
    }

    /// Its exit code once it stopped (`State.ExitCode`).
    pub fn exit_code(&self) -> i32 {
        let code = self.inspect("{{.State.ExitCode}}");
        code.parse()
            .unwrap_or_else(|_| panic!("exit code of {}: {code:?}", self.name))
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// `docker ARGS... NAME REST...` (e.g. `docker exec NAME nsvisorctl status`).
    pub fn docker(&self, args: &[&str], rest: &[&str]) -> Output {
        let mut all = args.to_vec();
        all.push(&self.name);
        all.extend_from_slice(rest);
        self.engine.docker(&all)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let out = self
            .engine
            .docker(&["rm", "--force", "--volumes", &self.name]);
        if !out.status.success() {
            eprintln!(
                "cannot remove container {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
