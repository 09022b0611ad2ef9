//! nsvisor under the real engine: Debian's `dockerd` (private, see
//! `nsvisor_tests::engine`), images made by `docker import` of a root
//! filesystem holding only the static release binaries and busybox (for the
//! programs' shell), containers with `--network none`.
//!
//! What is proven is what `docs/containers.md` promises about `docker stop`,
//! `docker kill`, `docker exec`, `docker run` and `docker logs`. The
//! programs are small shell scripts (below) that print what happened to them,
//! so `docker logs` is the record the assertions read.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nsvisor_tests::engine::{Container, Engine, Image, LABEL};
use nsvisor_tests::image::{Dist, Rootfs};
use nsvisor_tests::{require_root, toml_quote, wait_until, KillOnDrop};

const T: Duration = Duration::from_secs(20);

/// Prints "NAME ready"; on SIGNAL prints "NAME got SIGNAL" and exits 0.
const GRACEFUL: &str = r#"#!/bin/sh
name=$1 sig=$2
trap 'echo "$name got $sig"; kill $child 2>/dev/null; exit 0' "$sig"
sleep 1000 &
child=$!
echo "$name ready"
wait
"#;

/// Ignores SIGTERM (and so does the sleep it becomes).
const STUBBORN: &str = r#"#!/bin/sh
trap '' TERM
echo "stubborn ready"
exec sleep 1000
"#;

/// Forks a child that handles SIGTERM itself; on SIGTERM, waits for it and
/// exits 0. Without the signal reaching the child too, the wait never ends.
const FORKER: &str = r#"#!/bin/sh
/bin/sh /scripts/graceful.sh child TERM &
child=$!
trap 'echo "parent got TERM"; wait $child; echo "parent saw its child exit $?"; exit 0' TERM
echo "parent ready"
wait
"#;

/// Prints "tick N" ten times a second.
const TICKER: &str = r#"#!/bin/sh
n=0
while :; do echo "tick $n"; n=$((n + 1)); sleep 0.1; done
"#;

/// The engine and the release binaries, or `None` when `test` is skipped.
fn setup(test: &str) -> Option<(Arc<Engine>, Dist)> {
    if !require_root(test) {
        return None;
    }
    let dist = Dist::find(test)?;
    let engine = Engine::get(test)?;
    Some((engine, dist))
}

/// A root with the binaries, busybox, the scripts above under `/scripts`
/// (mode 0644: run them with `/bin/sh`), and `config` (when given) at the
/// default config path.
fn rootfs(dist: &Dist, config: Option<&str>) -> Rootfs {
    let root = Rootfs::with_busybox(dist);
    for (name, text) in [
        ("graceful", GRACEFUL),
        ("stubborn", STUBBORN),
        ("forker", FORKER),
        ("ticker", TICKER),
    ] {
        root.write(&format!("scripts/{name}.sh"), text);
    }
    if let Some(config) = config {
        root.write("etc/nsvisor/nsvisor.toml", config);
    }
    root
}

/// An image of [`rootfs`] whose entrypoint is `nsvisor` (config mode).
fn daemon_image(engine: &Arc<Engine>, dist: &Dist, name: &str, config: Option<&str>) -> Image {
    let root = rootfs(dist, config);
    Image::import(engine, &root, name, &[r#"ENTRYPOINT ["/usr/bin/nsvisor"]"#])
}

/// `[programs.NAME]` running `/bin/sh /scripts/SCRIPT.sh ARGS...`, then `extra` lines.
fn program(name: &str, script: &str, args: &[&str], extra: &str) -> String {
    let mut command = vec![
        toml_quote("/bin/sh"),
        toml_quote(format!("/scripts/{script}.sh")),
    ];
    command.extend(args.iter().map(toml_quote));
    format!(
        "[programs.{name}]\ncommand = [{}]\nstartsecs = 0\n{extra}\n\n",
        command.join(", ")
    )
}

fn wait_logs(c: &Container, what: &[&str]) -> String {
    wait_until(&format!("{what:?} in docker logs of {}", c.name), T, || {
        let logs = c.logs();
        what.iter().all(|w| logs.contains(w)).then_some(logs)
    })
}

/// `docker stop ARGS NAME`; how long it took.
fn docker_stop(c: &Container, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = c.docker(&[&["stop"], args].concat(), &[]);
    assert!(
        out.status.success(),
        "docker stop {}: {}",
        c.name,
        String::from_utf8_lossy(&out.stderr)
    );
    let took = started.elapsed();
    eprintln!("docker stop {} {}: {took:?}", args.join(" "), c.name);
    took
}

#[test]
fn docker_stop_gives_each_program_its_stopsignal_and_docker_logs_shows_it_all() {
    let Some((engine, dist)) =
        setup("docker_stop_gives_each_program_its_stopsignal_and_docker_logs_shows_it_all")
    else {
        return;
    };
    let config = program("web", "graceful", &["web", "TERM"], "")
        + &program(
            "worker",
            "graceful",
            &["worker", "QUIT"],
            "stopsignal = \"QUIT\"",
        );
    let image = daemon_image(&engine, &dist, "stop", Some(&config));
    let c = Container::run(&engine, "stop", &[&image.tag]);
    wait_logs(&c, &["web | web ready", "worker | worker ready"]);
    let took = docker_stop(&c, &[]);
    assert!(
        took < Duration::from_secs(1),
        "docker stop took {took:?}: programs that exit promptly stop the container in well under a second"
    );
    assert_eq!(c.exit_code(), 0, "a requested shutdown exits 0");
    let logs = c.logs();
    for line in [
        "web | web got TERM",
        "worker | worker got QUIT",
        "INFO shutting down (received SIGTERM)",
        "INFO STOPPING -> STOPPED (exit status 0) program=\"web\"",
        "INFO STOPPING -> STOPPED (exit status 0) program=\"worker\"",
    ] {
        assert!(logs.contains(line), "docker logs shows {line:?}:\n{logs}");
    }
}

#[test]
fn a_program_ignoring_term_is_killed_at_its_stopwaitsecs_before_dockers_timeout() {
    let Some((engine, dist)) =
        setup("a_program_ignoring_term_is_killed_at_its_stopwaitsecs_before_dockers_timeout")
    else {
        return;
    };
    let config = program("stubborn", "stubborn", &[], "stopwaitsecs = 1");
    let image = daemon_image(&engine, &dist, "stopwait", Some(&config));
    let c = Container::run(&engine, "stopwait", &[&image.tag]);
    wait_logs(&c, &["stubborn | stubborn ready"]);
    let took = docker_stop(&c, &["--time", "10"]);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "docker stop took {took:?}: SIGKILL at stopwaitsecs (1 s), long before docker's 10 s"
    );
    assert_eq!(
        c.exit_code(),
        0,
        "nsvisor shut down itself (docker's SIGKILL would be 137)"
    );
    let logs = c.logs();
    assert!(
        logs.contains("INFO STOPPING -> STOPPED (terminated by signal 9) program=\"stubborn\""),
        "the daemon killed the program:\n{logs}"
    );
}

#[test]
fn with_stopwaitsecs_longer_than_docker_stop_time_docker_kills_everything_at_its_timeout() {
    let Some((engine, dist)) = setup(
        "with_stopwaitsecs_longer_than_docker_stop_time_docker_kills_everything_at_its_timeout",
    ) else {
        return;
    };
    let config = program("stubborn", "stubborn", &[], "stopwaitsecs = 30");
    let image = daemon_image(&engine, &dist, "stoptimeout", Some(&config));
    let c = Container::run(&engine, "stoptimeout", &[&image.tag]);
    wait_logs(&c, &["stubborn | stubborn ready"]);
    let took = docker_stop(&c, &["--time", "1"]);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "docker stop took {took:?}: docker's 1 s, not stopwaitsecs' 30 s"
    );
    assert_eq!(
        c.exit_code(),
        137,
        "docker SIGKILLed nsvisor (128+9), and the kernel every process with it"
    );
    let logs = c.logs();
    assert!(
        logs.contains("INFO shutting down (received SIGTERM)")
            && !logs.contains("STOPPING -> STOPPED"),
        "the shutdown began and never finished:\n{logs}"
    );
}

#[test]
fn stopasgroup_stops_a_forked_child_gracefully_too() {
    let Some((engine, dist)) = setup("stopasgroup_stops_a_forked_child_gracefully_too") else {
        return;
    };
    let config = program(
        "forker",
        "forker",
        &[],
        "stopasgroup = true\nstopwaitsecs = 10",
    );
    let image = daemon_image(&engine, &dist, "group", Some(&config));
    let c = Container::run(&engine, "group", &[&image.tag]);
    wait_logs(&c, &["forker | parent ready", "forker | child ready"]);
    let took = docker_stop(&c, &["--time", "20"]);
    assert!(
        took < Duration::from_secs(5),
        "docker stop took {took:?}: both exited on TERM, no one waited for a SIGKILL"
    );
    assert_eq!(c.exit_code(), 0);
    let logs = c.logs();
    for line in [
        "forker | child got TERM",
        "forker | parent got TERM",
        "forker | parent saw its child exit 0",
        "INFO STOPPING -> STOPPED (exit status 0) program=\"forker\"",
    ] {
        assert!(logs.contains(line), "docker logs shows {line:?}:\n{logs}");
    }
}

#[test]
fn single_command_entrypoint_passes_exit_codes_through_docker_run() {
    let Some((engine, dist)) =
        setup("single_command_entrypoint_passes_exit_codes_through_docker_run")
    else {
        return;
    };
    let root = rootfs(&dist, None);
    let image = Image::import(
        &engine,
        &root,
        "single",
        &[r#"ENTRYPOINT ["/usr/bin/nsvisor", "--"]"#],
    );
    for (args, code, stderr) in [
        (&["true"][..], 0, ""),
        (&["sh", "-c", "exit 3"][..], 3, ""),
        (&["sh", "-c", "kill -USR1 $$"][..], 128 + 10, ""),
        (&["/scripts/graceful.sh"][..], 126, "not executable"),
        (&["no-such-command"][..], 127, "not found"),
    ] {
        let mut run = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "--label",
            LABEL,
            &image.tag,
        ];
        run.extend_from_slice(args);
        let out = engine.docker(&run);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "docker run {args:?} exits {code}: {err}"
        );
        assert!(
            err.contains(stderr),
            "{args:?}: stderr says {stderr:?}: {err}"
        );
    }
}

/// What `script` relays from the terminal, collected as it comes.
struct Terminal {
    output: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn follow(mut from: impl Read + Send + 'static) -> Terminal {
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Terminal { output }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    fn wait_for(&self, what: &str) {
        wait_until(&format!("{what:?} on the terminal"), T, || {
            self.text().contains(what).then_some(())
        });
    }
}

#[test]
fn docker_run_it_sh_gets_ctrl_c_through_the_terminal_and_exits_with_the_shells_status() {
    let test = "docker_run_it_sh_gets_ctrl_c_through_the_terminal_and_exits_with_the_shells_status";
    let Some((engine, dist)) = setup(test) else {
        return;
    };
    let root = rootfs(&dist, None);
    let image = Image::import(
        &engine,
        &root,
        "tty",
        &[r#"ENTRYPOINT ["/usr/bin/nsvisor", "--"]"#],
    );
    // `script` gives `docker run -it` a terminal; what the test writes is typed on it.
    let docker = format!(
        "{} --host unix://{} run -it --rm --network none --label {LABEL} {} sh",
        engine.client().display(),
        engine.socket().display(),
        image.tag
    );
    let mut script = std::process::Command::new("script")
        .args([
            "--quiet",
            "--flush",
            "--return",
            "--command",
            &docker,
            "/dev/null",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run script (util-linux)");
    let _guard = KillOnDrop(vec![script.id()]);
    let term = Terminal::follow(script.stdout.take().expect("script's stdout"));
    let mut keys = script.stdin.take().expect("script's stdin");
    let mut type_keys = |text: &str| {
        keys.write_all(text.as_bytes())
            .and_then(|()| keys.flush())
            .expect("cannot type on the terminal");
    };
    term.wait_for("# ");
    // The terminal echoes what is typed: "st''arted" there, "started" from echo.
    type_keys("echo st''arted; sleep 1000\n");
    term.wait_for("started\r\n");
    type_keys("\x03");
    type_keys("echo rc=$?\n");
    term.wait_for("rc=130");
    type_keys("exit 7\n");
    let status = wait_until("docker run -it to end", T, || {
        script.try_wait().ok().flatten()
    });
    assert_eq!(
        status.code(),
        Some(7),
        "docker run exits with the shell's status:\n{}",
        term.text()
    );
}

/// A directory on the host mounted into a container.
fn host_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temp dir")
}

#[test]
fn docker_kill_hup_reloads_a_changed_mounted_config() {
    let Some((engine, dist)) = setup("docker_kill_hup_reloads_a_changed_mounted_config") else {
        return;
    };
    let etc = host_dir("nsvisor-etc-");
    let config = etc.path().join("nsvisor.toml");
    let first = program("a", "graceful", &["a", "TERM"], "");
    std::fs::write(&config, &first).expect("cannot write the config");
    let image = daemon_image(&engine, &dist, "hup", None);
    let mount = format!("{}:/etc/nsvisor", etc.path().display());
    let c = Container::run(&engine, "hup", &["--volume", &mount, &image.tag]);
    wait_logs(&c, &["a | a ready"]);
    let second = first + &program("b", "graceful", &["b", "TERM"], "");
    std::fs::write(&config, second).expect("cannot change the config");
    let out = c.docker(&["kill", "--signal", "HUP"], &[]);
    assert!(out.status.success(), "docker kill -s HUP");
    wait_logs(&c, &["b | b ready"]);
    assert!(c.is_running(), "a reload does not stop the container");
    let status = c.docker(&["exec"], &["nsvisorctl", "status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.lines().filter(|l| l.contains("RUNNING")).count() == 2,
        "a and b are RUNNING:\n{text}"
    );
}

#[test]
fn docker_kill_usr2_reopens_log_files() {
    let Some((engine, dist)) = setup("docker_kill_usr2_reopens_log_files") else {
        return;
    };
    let logs = host_dir("nsvisor-logs-");
    let config = program(
        "ticker",
        "ticker",
        &[],
        "stdout_logfile = \"/logs/ticker.log\"",
    );
    let image = daemon_image(&engine, &dist, "usr2", Some(&config));
    let mount = format!("{}:/logs", logs.path().display());
    let c = Container::run(&engine, "usr2", &["--volume", &mount, &image.tag]);
    let log = logs.path().join("ticker.log");
    let has_ticks =
        |path: &std::path::Path| std::fs::read_to_string(path).is_ok_and(|t| t.contains("tick "));
    wait_until("ticks in ticker.log", T, || has_ticks(&log).then_some(()));
    // What logrotate does: move the file away, then ask for a reopen.
    let rotated = logs.path().join("ticker.log.1");
    std::fs::rename(&log, &rotated).expect("cannot rotate the log");
    let out = c.docker(&["kill", "--signal", "USR2"], &[]);
    assert!(out.status.success(), "docker kill -s USR2");
    wait_until("ticks in a new ticker.log", T, || {
        has_ticks(&log).then_some(())
    });
    assert!(c.is_running(), "USR2 does not stop the container");
    assert!(has_ticks(&rotated), "the old file keeps what it had");
}

#[test]
fn a_critical_program_ending_stops_the_container_with_its_status() {
    let Some((engine, dist)) =
        setup("a_critical_program_ending_stops_the_container_with_its_status")
    else {
        return;
    };
    let mut config = program("side", "graceful", &["side", "TERM"], "");
    config.push_str(
        "[programs.main]\ncommand = [\"/bin/sh\", \"-c\", \"echo main done; exit 3\"]\n\
         startsecs = 0\nautorestart = \"never\"\ncritical = true\n",
    );
    let image = daemon_image(&engine, &dist, "critical", Some(&config));
    let c = Container::run(&engine, "critical", &[&image.tag]);
    let out = c.docker(&["wait"], &[]);
    let code = String::from_utf8_lossy(&out.stdout);
    assert_eq!(code.trim(), "3", "docker wait gives main's status");
    assert_eq!(c.exit_code(), 3);
    let logs = c.logs();
    assert!(logs.contains("main | main done"), "{logs}");
}

#[test]
fn docker_exec_nsvisorctl_status_finds_the_daemon_at_the_default_socket() {
    let Some((engine, dist)) =
        setup("docker_exec_nsvisorctl_status_finds_the_daemon_at_the_default_socket")
    else {
        return;
    };
    let config = program("web", "graceful", &["web", "TERM"], "")
        + &program(
            "worker",
            "graceful",
            &["worker", "QUIT"],
            "stopsignal = \"QUIT\"",
        );
    let image = daemon_image(&engine, &dist, "exec", Some(&config));
    let c = Container::run(&engine, "exec", &[&image.tag]);
    wait_logs(&c, &["web | web ready", "worker | worker ready"]);
    let out = c.docker(&["exec"], &["nsvisorctl", "status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?, f.next()?))
        })
        .collect();
    assert_eq!(rows, [("web", "RUNNING"), ("worker", "RUNNING")], "{text}");
}

/// The Dockerfile of docs/containers.md's "A complete image", as written there.
fn documented_dockerfile() -> &'static str {
    let doc = include_str!("../../docs/containers.md");
    let marker = "<!-- tests/tests/docker.rs builds this Dockerfile";
    doc.split_once(marker)
        .and_then(|(_, after)| after.split_once("```dockerfile\n"))
        .and_then(|(_, block)| block.split_once("\n```"))
        .map(|(dockerfile, _)| dockerfile)
        .expect("docs/containers.md has the marked Dockerfile")
}

#[test]
fn the_documented_dockerfile_builds_an_image_that_runs_its_programs() {
    let Some((engine, dist)) =
        setup("the_documented_dockerfile_builds_an_image_that_runs_its_programs")
    else {
        return;
    };
    // The application's base image: a shell and the scripts, no nsvisor.
    let base_root = Rootfs::empty();
    base_root.add_busybox();
    base_root.write("scripts/graceful.sh", GRACEFUL);
    let base = Image::import(&engine, &base_root, "base", &[]);
    let context = host_dir("nsvisor-context-");
    let dockerfile = documented_dockerfile();
    std::fs::write(context.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
    std::fs::write(
        context.path().join("nsvisor.toml"),
        program("web", "graceful", &["web", "TERM"], ""),
    )
    .expect("nsvisor.toml");
    let name = dist
        .dir
        .file_name()
        .expect("the tree's name")
        .to_string_lossy();
    let tarball = format!("{name}.tar.gz");
    assert!(
        dockerfile.contains(&format!("ADD {tarball} /")),
        "the documented Dockerfile names this version's tarball {tarball}:\n{dockerfile}"
    );
    let parent = dist.dir.parent().expect("the tree's directory");
    std::fs::copy(parent.join(&tarball), context.path().join(&tarball)).expect("the tarball");
    let tag = format!("nsvisor-test/documented:{}", std::process::id());
    let image = Image::adopt(&engine, &tag);
    let build_arg = format!("BASE={}", base.tag);
    let context_arg = context.path().display().to_string();
    let out = engine
        .docker_cmd(&[
            "build",
            "--build-arg",
            &build_arg,
            "--label",
            LABEL,
            "--tag",
            &tag,
            &context_arg,
        ])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("cannot run docker build");
    // The first stage is left as an untagged image: remove it with the rest.
    engine.docker(&["image", "prune", "--force"]);
    assert!(
        out.status.success(),
        "docker build of the documented Dockerfile: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Container::run(&engine, "documented", &[&image.tag]);
    wait_logs(&c, &["web | web ready"]);
    let status = c.docker(&["exec"], &["nsvisorctl", "status", "web"]);
    assert!(
        status.status.success() && String::from_utf8_lossy(&status.stdout).contains("RUNNING"),
        "docker exec nsvisorctl status: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    docker_stop(&c, &[]);
    assert_eq!(c.exit_code(), 0);
}
