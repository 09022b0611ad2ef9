//! Every program key: parsed value and default.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::helpers::{error, ok};
use crate::config::{AutoRestart, ConsoleMode, LogFile, ProgramConfig, UserSpec};

fn program(body: &str) -> ProgramConfig {
    let c = ok(&format!("[programs.p]\n{body}\n"));
    c.programs["p"].clone()
}

#[test]
fn defaults_match_the_documentation() {
    let c = ok("[programs.web]\ncommand = \"/bin/web\"\n");
    let p = &c.programs["web"];
    let mut expected = ProgramConfig::with_defaults("web", vec!["/bin/web".into()]);
    expected.source = c.path.clone().into();
    assert_eq!(*p, expected);
    assert_eq!(&*p.group, "web");
    assert_eq!(p.process_num, 0);
    assert!(p.autostart);
    assert_eq!(p.autorestart, AutoRestart::Unexpected);
    assert_eq!(*p.exitcodes, vec![0]);
    assert_eq!(p.startsecs, Duration::from_secs(1));
    assert_eq!(p.startretries, 3);
    assert_eq!(p.stopsignal, Signal::SIGTERM);
    assert_eq!(p.stopwaitsecs, Duration::from_secs(10));
    assert!(!p.stopasgroup && !p.killasgroup && !p.critical && !p.redirect_stderr);
    assert_eq!(p.priority, 999);
    assert_eq!(p.stdout.logfile, LogFile::None);
    assert_eq!(p.stdout.maxbytes, 50 << 20);
    assert_eq!(p.stdout.backups, 10);
    assert_eq!(p.stdout.console, ConsoleMode::Prefixed);
    assert_eq!(p.stdout.tail_bytes, 64 << 10);
    assert_eq!(p.net, None);
    assert!(c.path.is_absolute());
}

#[test]
fn command_string_is_split_like_a_shell() {
    let p = program(r#"command = "/bin/sh -c 'echo \"hi there\"' x\\ y""#);
    assert_eq!(
        *p.command,
        vec!["/bin/sh", "-c", "echo \"hi there\"", "x y"]
    );
    let p = program(r#"command = ["/bin/echo", "a b", ""]"#);
    assert_eq!(*p.command, vec!["/bin/echo", "a b", ""]);
}

#[test]
fn directory_environment_user_umask() {
    let p = program(
        "command = \"x\"\ndirectory = \"/srv\"\nenvironment = { A = \"1\", B = 2, C = true }\nuser = \"www:adm\"\numask = \"022\"",
    );
    assert_eq!(p.directory, Some(PathBuf::from("/srv")));
    let env: BTreeMap<String, String> = [("A", "1"), ("B", "2"), ("C", "true")]
        .map(|(k, v)| (k.into(), v.into()))
        .into();
    assert_eq!(p.environment, env);
    assert_eq!(
        p.user,
        Some(Box::new(UserSpec {
            user: "www".into(),
            group: Some("adm".into())
        }))
    );
    assert_eq!(p.umask, Some(0o022));
    assert_eq!(program("command = \"x\"\numask = 0o027").umask, Some(0o027));
    assert_eq!(program("command = \"x\"\numask = 22").umask, Some(0o022));
    assert!(!program("command = \"x\"").no_new_privs, "off by default");
    assert!(program("command = \"x\"\nno_new_privs = true").no_new_privs);
    assert_eq!(
        program("command = \"x\"\nuser = \"1000\"")
            .user
            .unwrap()
            .user,
        "1000"
    );
    let p = program("command = \"x\"\n[programs.p.environment]\nX = \"y\"");
    assert_eq!(p.environment["X"], "y");
}

#[test]
fn relative_directory_is_relative_to_the_config_file() {
    let c = ok("[programs.p]\ncommand = \"x\"\ndirectory = \"data\"\n");
    let p = &c.programs["p"];
    assert_eq!(p.directory, Some(c.path.parent().unwrap().join("data")));
}

#[test]
fn restart_keys() {
    let p = program("command = \"x\"\nautostart = false\nautorestart = \"always\"\nexitcodes = [0, 2, 255]\nstartsecs = 0.5\nstartretries = 0");
    assert!(!p.autostart);
    assert_eq!(p.autorestart, AutoRestart::Always);
    assert_eq!(*p.exitcodes, vec![0, 2, 255]);
    assert_eq!(p.startsecs, Duration::from_millis(500));
    assert_eq!(p.startretries, 0);
    assert_eq!(
        program("command = \"x\"\nautorestart = true").autorestart,
        AutoRestart::Always
    );
    assert_eq!(
        program("command = \"x\"\nautorestart = false").autorestart,
        AutoRestart::Never
    );
    assert_eq!(
        program("command = \"x\"\nautorestart = \"Never\"").autorestart,
        AutoRestart::Never
    );
    assert_eq!(
        program("command = \"x\"\nautorestart = \"unexpected\"").autorestart,
        AutoRestart::Unexpected
    );
    assert_eq!(
        *program("command = \"x\"\nexitcodes = 3").exitcodes,
        vec![3]
    );
    assert_eq!(
        *program("command = \"x\"\nexitcodes = []").exitcodes,
        Vec::<i32>::new()
    );
    assert_eq!(
        program("command = \"x\"\nstartsecs = 0").startsecs,
        Duration::ZERO
    );
}

#[test]
fn stop_keys() {
    let p = program("command = \"x\"\nstopsignal = \"sigquit\"\nstopwaitsecs = 30\nstopasgroup = true\npriority = -5");
    assert_eq!(p.stopsignal, Signal::SIGQUIT);
    assert_eq!(p.stopwaitsecs, Duration::from_secs(30));
    assert!(p.stopasgroup);
    assert!(p.killasgroup, "stopasgroup implies killasgroup");
    assert_eq!(p.priority, -5);
    let p = program("command = \"x\"\nkillasgroup = true\nstopsignal = \"KILL\"");
    assert!(p.killasgroup && !p.stopasgroup);
    assert_eq!(p.stopsignal, Signal::SIGKILL);
    assert_eq!(
        program("command = \"x\"\nstopsignal = \"int\"").stopsignal,
        Signal::SIGINT
    );
}

#[test]
fn critical_and_log_keys() {
    let p = program(
        "command = \"x\"\ncritical = true\nredirect_stderr = true\nstdout_logfile = \"out.log\"\nstdout_logfile_maxbytes = \"1KB\"\nstdout_logfile_backups = 2\nstdout_console = \"raw\"\nstderr_console = false\ntail_buffer = \"1 MiB\"\nstderr_logfile_maxbytes = 0\nstderr_logfile_backups = 0",
    );
    assert!(p.critical && p.redirect_stderr);
    assert!(
        matches!(&p.stdout.logfile, LogFile::Path(path) if path.ends_with("out.log") && path.is_absolute())
    );
    assert_eq!(p.stderr.logfile, LogFile::None, "stderr goes to stdout");
    assert_eq!((p.stdout.maxbytes, p.stdout.backups), (1024, 2));
    assert_eq!((p.stderr.maxbytes, p.stderr.backups), (0, 0));
    assert_eq!(p.stdout.console, ConsoleMode::Raw);
    assert_eq!(p.stderr.console, ConsoleMode::Off);
    assert_eq!(
        (p.stdout.tail_bytes, p.stderr.tail_bytes),
        (1 << 20, 1 << 20)
    );
    assert_eq!(
        program("command = \"x\"\nstdout_logfile = \"NONE\"")
            .stdout
            .logfile,
        LogFile::None
    );
    assert_eq!(
        program("command = \"x\"\nstdout_console = true")
            .stdout
            .console,
        ConsoleMode::Prefixed
    );
}

#[test]
fn auto_log_files_use_log_dir() {
    let c = ok("[supervisor]\nlog_dir = \"/var/log/nsv\"\nconsole = \"off\"\ntail_buffer = 100\n[programs.w]\ncommand = \"x\"\nnumprocs = 2\n[programs.q]\ncommand = \"x\"\nstdout_logfile = \"auto\"\nstderr_logfile = \"none\"\n");
    let w0 = &c.programs["w:0"];
    assert_eq!(
        w0.stdout.logfile,
        LogFile::Path("/var/log/nsv/w_0.stdout.log".into())
    );
    assert_eq!(
        w0.stderr.logfile,
        LogFile::Path("/var/log/nsv/w_0.stderr.log".into())
    );
    assert_eq!(w0.stdout.console, ConsoleMode::Off);
    assert_eq!(w0.stdout.tail_bytes, 100);
    let q = &c.programs["q"];
    assert_eq!(
        q.stdout.logfile,
        LogFile::Path("/var/log/nsv/q.stdout.log".into())
    );
    assert_eq!(q.stderr.logfile, LogFile::None);
}

#[test]
fn env_interpolation_reaches_every_string() {
    let c = ok("[programs.p]\ncommand = [\"${HOME}/bin/app\", \"--port=${PORT}\", \"$$HOME\", \"$1\"]\ndirectory = \"${NOPE:-/tmp}\"\nenvironment = { X = \"${EMPTY:-dflt}\" }\n");
    let p = &c.programs["p"];
    assert_eq!(
        *p.command,
        vec!["/home/u/bin/app", "--port=8080", "$HOME", "$1"]
    );
    assert_eq!(p.directory, Some(PathBuf::from("/tmp")));
    assert_eq!(p.environment["X"], "dflt");
}

#[test]
fn missing_command_is_reported_at_the_table() {
    let e = error("[programs.p]\nautostart = true\n");
    super::helpers::assert_at(&e, 1, 1, "command: missing");
    assert_eq!(e.program.as_deref(), Some("p"));
}
