//! `nsvisor` invoked as `supervisord` (a symlink named so): supervisord's
//! command line is accepted (`-n`, `-c`, `-j`, `-e`, options nsvisor has no
//! use for with a note), the config is found where supervisord looks for it,
//! and bad command lines are usage errors (exit 2).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nsvisor_tests::{nsvisor_bin, testprog, wait_until};

const T: Duration = Duration::from_secs(10);

fn supervisord_link(dir: &Path) -> std::path::PathBuf {
    let link = dir.join("bin").join("supervisord");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(nsvisor_bin(), &link).unwrap();
    link
}

fn conf(dir: &Path) -> String {
    format!(
        "[unix_http_server]\nfile={dir}/s.sock\n\n[supervisord]\nnodaemon=true\n\n[program:web]\ncommand={tp} record {dir}/web.rec sleep forever\nstartsecs=0\n",
        dir = dir.display(),
        tp = testprog().display()
    )
}

/// Runs until the program has started, then SIGTERMs; returns stderr and the status.
fn run_until_started(cmd: &mut Command, dir: &Path) -> (String, std::process::ExitStatus) {
    let stderr = dir.join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("start supervisord");
    wait_until("web to start", T, || {
        dir.join("web.rec").exists().then_some(())
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = wait_until("supervisord to exit", T, || child.try_wait().ok().flatten());
    (std::fs::read_to_string(&stderr).unwrap_or_default(), status)
}

#[test]
fn supervisords_options_are_accepted_and_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("supervisord.conf"), conf(d)).unwrap();
    let link = supervisord_link(d);
    let pidfile = d.join("sv.pid");
    let mut cmd = Command::new(&link);
    cmd.args(["-n", "-c"])
        .arg(d.join("supervisord.conf"))
        .arg("-j")
        .arg(&pidfile)
        .args(["-e", "warning", "-u", "nobody", "--minprocs=10"]);
    let stderr_file = d.join("stderr");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("start supervisord");
    wait_until("web to start", T, || {
        d.join("web.rec").exists().then_some(())
    });
    let pid = wait_until("the pidfile from -j", T, || {
        std::fs::read_to_string(&pidfile)
            .ok()
            .filter(|p| !p.is_empty())
    });
    assert_eq!(pid.trim(), child.id().to_string());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = wait_until("supervisord to exit", T, || child.try_wait().ok().flatten());
    assert!(status.success());
    let stderr = std::fs::read_to_string(&stderr_file).unwrap_or_default();
    assert!(stderr.contains("--user: ignored"), "{stderr}");
    // -e warning: the daemon's INFO lines are not logged.
    assert!(!stderr.contains(" INFO "), "{stderr}");
}

#[test]
fn the_config_is_found_where_supervisord_looks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // <prefix>/bin/supervisord finds <prefix>/etc/supervisord.conf.
    std::fs::create_dir_all(d.join("etc")).unwrap();
    std::fs::write(d.join("etc/supervisord.conf"), conf(d)).unwrap();
    let link = supervisord_link(d);
    let (stderr, status) = run_until_started(Command::new(&link).current_dir("/"), d);
    assert!(status.success(), "{stderr}");
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let link = supervisord_link(dir.path());
    let out = Command::new(&link).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error: option --bogus not recognized"));
    let out = Command::new(&link)
        .current_dir(dir.path())
        .output()
        .unwrap();
    // No config anywhere supervisord looks (unless the host has one).
    if !Path::new("/etc/supervisord.conf").exists()
        && !Path::new("/etc/supervisor/supervisord.conf").exists()
    {
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("No config file found"));
    }
    let out = Command::new(&link).arg("-v").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        env!("CARGO_PKG_VERSION")
    );
}
