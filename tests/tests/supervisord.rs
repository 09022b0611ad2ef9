//! supervisord's INI config end to end: the daemon started on a
//! `supervisord.conf` runs its programs with their output on the console
//! under their names, logs the config's warnings, writes and removes its
//! pidfile; `nsvisor check` prints the warnings and `nsvisor convert` prints
//! TOML that checks clean.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{nsvisor_bin, testprog, wait_until, Daemon};

const T: Duration = Duration::from_secs(10);

/// Two programs, the container idiom, and one setting that warns (line 9).
fn conf(dir: &Path) -> String {
    let tp = testprog();
    format!(
        "[unix_http_server]\n\
         file={dir}/nsvisor.sock\n\
         \n\
         [supervisord]\n\
         nodaemon=true\n\
         pidfile={dir}/sv.pid\n\
         \n\
         [supervisord]\n\
         nodaemon=false   ; appended later, as happens\n\
         \n\
         [program:web]\n\
         command={tp} print-lines 3 --prefix %(program_name)s- sleep forever\n\
         stdout_logfile=/dev/stdout\n\
         stdout_logfile_maxbytes=0\n\
         \n\
         [program:worker]\n\
         command={tp} print-lines 2 --prefix w%(ENV_SLOT)s- sleep forever\n\
         environment=SLOT=\"7\"\n\
         redirect_stderr=true\n",
        dir = dir.display(),
        tp = tp.display(),
    )
}

fn run(args: &[&str], path: &Path) -> Output {
    Command::new(nsvisor_bin())
        .args(args)
        .arg(path)
        .output()
        .expect("run nsvisor")
}

#[test]
fn two_programs_from_a_supervisord_conf_run_with_their_output_on_the_console() {
    let b = Daemon::builder();
    let dir = b.dir().to_path_buf();
    let mut d = b.supervisord_conf(&conf(&dir)).start();
    d.wait_state("web", State::Running, T);
    d.wait_state("worker", State::Running, T);
    wait_until("both programs' lines on the console", T, || {
        let out = d.stdout();
        (out.contains("web | web-line 3\n") && out.contains("worker | w7-line 2\n")).then_some(())
    });
    let warning = format!(
        "{}:9:1: nodaemon=false",
        dir.join("supervisord.conf").display()
    );
    assert!(d.stderr().contains(&warning), "stderr: {}", d.stderr());
    let pid = std::fs::read_to_string(dir.join("sv.pid")).expect("pidfile written");
    assert_eq!(pid.trim(), d.daemon_pid().to_string());
    assert!(d.terminate().success());
    assert!(!dir.join("sv.pid").exists(), "pidfile removed at exit");
}

#[test]
fn check_prints_the_warnings_and_convert_prints_toml_that_checks_clean() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("supervisord.conf");
    std::fs::write(&ini, conf(dir.path())).unwrap();
    let out = run(&["check", "-c"], &ini);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("ok (2 programs, 1 warning)"), "{stdout}");
    let warning = format!(
        "warning: {}:9:1: nodaemon=false: nsvisor always stays in the foreground",
        ini.display()
    );
    assert!(stderr.contains(&warning), "{stderr}");

    let out = run(&["convert"], &ini);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let toml = String::from_utf8(out.stdout).unwrap();
    assert!(toml.contains("\n[programs.web]\n# changed: "), "{toml}");
    assert!(
        toml.contains("# dropped: ") && toml.contains("nodaemon=false"),
        "{toml}"
    );
    let converted = dir.path().join("nsvisor.toml");
    std::fs::write(&converted, &toml).unwrap();
    let out = run(&["check", "-c"], &converted);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (2 programs)"));
}

#[test]
fn an_event_listener_is_refused_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("supervisord.conf");
    std::fs::write(
        &ini,
        "[supervisord]\n[eventlistener:mon]\ncommand=/bin/mon\nevents=PROCESS_STATE\n[program:a]\ncommand=/bin/true\n",
    )
    .unwrap();
    let out = run(&["check", "-c"], &ini);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let at = format!(
        "{}:2:2: [eventlistener:mon]: event listeners are not supported",
        ini.display()
    );
    assert!(stderr.contains(&at), "{stderr}");
    let out = run(&["--skip-unsupported", "check", "-c"], &ini);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("section skipped"));
}

#[test]
fn a_reload_reads_the_ini_file_the_way_the_start_did() {
    let b = Daemon::builder();
    let dir = b.dir().to_path_buf();
    let ini = conf(&dir) + "\n[eventlistener:mon]\ncommand=/bin/true\n";
    let d = b
        .supervisord_conf(&ini)
        .args(["--skip-unsupported"])
        .start();
    d.wait_state("web", State::Running, T);
    let out = d.ctl(&["reload"]);
    assert!(out.status.success(), "{out:?}");
    // The daemon's log is written by its own thread: wait for the line.
    wait_until("the warning at start and at the reload", T, || {
        (d.stderr().matches("[eventlistener:mon]").count() == 2).then_some(())
    });
}
