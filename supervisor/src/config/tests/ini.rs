//! supervisord configs, read from the fixture corpus in `supervisord/`:
//! every key arrives where it should (or is warned about at its line), every
//! expansion, includes, merged sections, env files, the `/dev/stdout` idiom,
//! and `convert`'s TOML loading into the same `Config` on every fixture.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::helpers::{env, Fixture};
use crate::config::convert::convert_with;
use crate::config::load::Inputs;
use crate::config::{
    validate, AutoRestart, Config, ConfigFormat, ConsoleMode, Credentials, LoadOptions, Loaded,
    LogFile, Severity,
};

/// A file of the corpus.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/config/tests/supervisord")
        .join(rel)
}

pub fn inputs(options: LoadOptions) -> Inputs<'static> {
    Inputs {
        env: &env,
        host_node_name: "testhost".into(),
        options,
    }
}

/// Loads a config that must be valid.
pub fn load(path: &Path) -> Loaded {
    match validate::load(path, &inputs(LoadOptions::default())) {
        Ok(o) => o.loaded,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// `(line, start of message)` of each warning.
fn warnings(loaded: &Loaded) -> Vec<(usize, String)> {
    loaded
        .warnings()
        .map(|w| {
            let key: String = w.message.chars().take_while(|c| *c != ':').collect();
            (w.line.unwrap_or(0), key)
        })
        .collect()
}

const FIXTURES: &[&str] = &[
    "every_key.conf",
    "container.conf",
    "expansions.conf",
    "includes/supervisord.conf",
    "envfiles/supervisord.conf",
];

#[test]
fn every_fixture_is_read_as_ini() {
    for f in FIXTURES {
        assert_eq!(load(&fixture(f)).format, ConfigFormat::Ini, "{f}");
    }
}

#[test]
fn every_supervisord_key_arrives() {
    let dir = fixture("");
    let l = load(&fixture("every_key.conf"));
    let sup = &l.config.supervisor;
    assert_eq!(sup.socket, Some(dir.join("run/supervisor.sock")));
    assert_eq!(sup.socket_mode, 0o770);
    assert_eq!(sup.socket_owner.as_deref(), Some("nobody:nogroup"));
    let user = |u: &str, p: &str| Credentials {
        username: u.into(),
        password: p.into(),
    };
    assert_eq!(sup.socket_auth, Some(user("user", "123")));
    let inet = sup.inet_http_server.as_ref().unwrap();
    assert_eq!(inet.port, "127.0.0.1:9001");
    assert_eq!(
        inet.auth,
        Some(user(
            "admin",
            "{SHA}40bd001563085fc35165329ea1ff5c5ecbdbbeef"
        ))
    );
    assert_eq!(sup.logfile, Some(dir.join("log/supervisord.log")));
    assert_eq!(sup.log_level.as_deref(), Some("debug"));
    assert_eq!(sup.pidfile, Some(PathBuf::from("/run/supervisord.pid")));
    assert_eq!(sup.minfds, 4096);
    assert_eq!(sup.log_dir, Some(dir.join("log")));
    assert_eq!(sup.environment["GLOBAL"], "g");

    let names: Vec<&str> = l.config.programs.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["app_01", "app_02", "cron"], "named by process_name");
    let app = &l.config.programs["app_02"];
    assert_eq!(
        *app.command,
        ["/usr/bin/app", "--port", "8002", "two words"]
    );
    assert_eq!(&*app.group, "services");
    assert_eq!(app.process_num, 2);
    assert_eq!(app.priority, 10, "the program's own priority wins");
    assert!(!app.autostart);
    assert_eq!(app.startsecs, Duration::from_secs(5));
    assert_eq!(app.startretries, 7);
    assert_eq!(app.autorestart, AutoRestart::Always);
    assert_eq!(*app.exitcodes, [0, 2]);
    assert_eq!(app.stopsignal, Signal::SIGQUIT);
    assert_eq!(app.stopwaitsecs, Duration::from_secs(20));
    assert!(app.stopasgroup && app.killasgroup);
    assert_eq!(app.user.as_ref().unwrap().user, "www-data");
    assert!(!app.redirect_stderr);
    assert_eq!(
        app.stdout.logfile,
        LogFile::Path(dir.join("log/app_02.out"))
    );
    assert_eq!((app.stdout.maxbytes, app.stdout.backups), (1 << 20, 4));
    assert_eq!(
        app.stderr.logfile,
        LogFile::Path(dir.join("log/app_02.err"))
    );
    assert_eq!((app.stderr.maxbytes, app.stderr.backups), (2 << 20, 5));
    assert_eq!(app.environment["SHARED"], "from-app");
    assert_eq!(app.environment["GLOBAL"], "g");
    assert_eq!(app.environment["PORT"], "8002");
    assert_eq!(app.directory, Some(PathBuf::from("/srv/app")));
    assert_eq!(app.umask, Some(0o002));

    let cron = &l.config.programs["cron"];
    assert_eq!(cron.priority, 50, "the group's priority");
    assert_eq!(&*cron.group, "services");
    assert_eq!(cron.autorestart, AutoRestart::Unexpected);
    assert_eq!(cron.stopsignal, Signal::SIGKILL);
    assert_eq!(
        cron.user.as_ref().unwrap().user,
        "nobody",
        "[supervisord] user"
    );
    assert_eq!(cron.umask, Some(0o027), "[supervisord] umask");
    assert_eq!(cron.environment["SHARED"], "from-supervisord");
}

#[test]
fn keys_nsvisor_cannot_honour_warn_once_at_their_line() {
    let l = load(&fixture("every_key.conf"));
    let expected: Vec<(usize, &str)> = vec![
        (17, "logfile_maxbytes"),
        (18, "logfile_backups"),
        (23, "silent=true"),
        (25, "minprocs"),
        (28, "user=nobody"),
        (29, "directory"),
        (30, "strip_ansi=true"),
        (32, "identifier"),
        (64, "stdout_capture_maxbytes"),
        (65, "stdout_events_enabled"),
        (66, "stdout_syslog"),
        (70, "stderr_capture_maxbytes"),
        (71, "stderr_events_enabled"),
        (72, "stderr_syslog"),
        (76, "serverurl"),
    ];
    let got = warnings(&l);
    let got: Vec<(usize, &str)> = got.iter().map(|(l, k)| (*l, k.as_str())).collect();
    assert_eq!(got, expected);
    let all: Vec<_> = l.warnings().collect();
    assert!(all.iter().all(|w| w.file == fixture("every_key.conf")));
    let events = all.iter().find(|w| w.line == Some(65)).unwrap();
    assert_eq!(events.program.as_deref(), Some("app"));
    assert!(events.message.contains("event listeners are not supported"));
}

#[test]
fn the_container_idiom_goes_to_the_console_without_warnings() {
    let l = load(&fixture("container.conf"));
    assert_eq!(warnings(&l), []);
    let nginx = &l.config.programs["nginx"];
    assert_eq!(*nginx.command, ["nginx", "-g", "daemon off;"]);
    for s in [&nginx.stdout, &nginx.stderr] {
        assert_eq!(s.logfile, LogFile::None);
        assert_eq!(s.console, ConsoleMode::Prefixed);
    }
    let php = &l.config.programs["php"];
    assert_eq!(*php.command, ["php-fpm", "-F", "--nodaemonize"]);
    assert!(php.redirect_stderr);
    assert_eq!(php.stdout.logfile, LogFile::None);
    // The second [supervisord] section is merged into the first.
    assert_eq!(l.config.supervisor.log_level.as_deref(), Some("warn"));
    assert_eq!(l.config.supervisor.logfile, None);
    assert_eq!(php.user, None, "user=root changes nothing for programs");
    let notes = l
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Note)
        .count();
    assert!(notes >= 3, "the idiom is noted for convert");
}

#[test]
fn every_expansion() {
    let l = load(&fixture("expansions.conf"));
    let names: Vec<&str> = l.config.programs.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["solo", "w_08", "w_09", "w_10"]);
    let w = &l.config.programs["w_09"];
    assert_eq!(
        *w.command,
        [
            "/bin/worker",
            "--id",
            "9",
            "--of",
            "3",
            "--name",
            "w-pool",
            "--host",
            "testhost",
            "--home",
            "/home/u",
            "--base",
            "/opt/testhost",
            "--pct",
            "100%"
        ]
    );
    assert_eq!(&*w.group, "pool");
    assert_eq!(w.directory, Some(fixture("w09")));
    assert_eq!(w.environment["SLOT"], "009");
    assert_eq!(w.environment["APP_HOME"], "/home/u/app");
    assert_eq!(w.environment["BASE"], "/opt/testhost");
    assert_eq!(w.stdout.logfile, LogFile::Path(fixture("w-009.log")));
    assert_eq!(l.config.programs["w_10"].environment["SLOT"], "010");
    let solo = &l.config.programs["solo"];
    assert_eq!(*solo.command, ["/bin/solo", "4"]);
    assert_eq!(&*solo.group, "solo");
}

#[test]
fn includes_are_relative_to_the_including_file_and_sections_merge() {
    let l = load(&fixture("includes/supervisord.conf"));
    let names: Vec<&str> = l.config.programs.keys().map(|n| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "main"]);
    let conf_d = fixture("includes/conf.d");
    let a = &l.config.programs["a"];
    assert_eq!(*a.command, ["/bin/a", conf_d.to_str().unwrap()]);
    assert_eq!(a.directory, Some(conf_d.clone()));
    assert!(a.source.ends_with("conf.d/a.conf"));
    assert_eq!(
        l.config.programs["b"].stdout.logfile,
        LogFile::Path(conf_d.join("logs/b.log"))
    );
    assert_eq!(l.config.programs["main"].priority, 2, "last value wins");
    assert_eq!(l.config.supervisor.log_level.as_deref(), Some("error"));
}

#[test]
fn env_files_come_before_environment_at_both_levels() {
    let l = load(&fixture("envfiles/supervisord.conf"));
    let env = &l.config.programs["app"].environment;
    assert_eq!(env["GLOBAL_ONLY"], "g");
    assert_eq!(env["FROM_TABLE"], "sup");
    assert_eq!(env["APP_ONLY"], "single $quoted");
    assert_eq!(env["QUOTED"], "line1\nline2");
    assert_eq!(env["OVERRIDE"], "app-table");
    assert_eq!(l.config.supervisor.environment["OVERRIDE"], "sup-table");
}

/// `config` with the fields that name the file it was read from cleared.
fn placeless(mut config: Config) -> Config {
    config.path = PathBuf::new();
    for p in config.programs.values_mut() {
        p.source = PathBuf::new().into();
    }
    config
}

#[test]
fn converted_toml_loads_into_the_same_config_on_every_fixture() {
    for f in FIXTURES {
        let path = fixture(f);
        let ini = load(&path).config;
        let toml = convert_with(&path, &inputs(LoadOptions::default()))
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        let out = Fixture::new(&toml);
        let loaded = load(&out.path());
        assert_eq!(loaded.format, ConfigFormat::Toml, "{f}");
        assert_eq!(
            placeless(loaded.config),
            placeless(ini),
            "{f} converted to:\n{toml}"
        );
    }
}

#[test]
fn convert_comments_each_dropped_or_changed_setting() {
    let path = fixture("container.conf");
    let toml = convert_with(&path, &inputs(LoadOptions::default())).unwrap();
    let at = format!("{}:10:1: stdout_logfile=/dev/stdout", path.display());
    assert!(
        toml.contains(&format!("[programs.nginx]\n# changed: {at}")),
        "{toml}"
    );
    let path = fixture("every_key.conf");
    let toml = convert_with(&path, &inputs(LoadOptions::default())).unwrap();
    let dropped = toml
        .lines()
        .filter(|l| l.starts_with("# dropped: "))
        .count();
    assert_eq!(dropped, 15, "{toml}");
    assert!(
        toml.contains("# dropped: ") && toml.contains("stdout_events_enabled: event listeners")
    );
}

#[test]
fn convert_refuses_a_toml_file() {
    let f = Fixture::new("[programs.a]\ncommand = \"x\"\n");
    let e = convert_with(&f.path(), &inputs(LoadOptions::default())).unwrap_err();
    assert!(
        e.to_string().contains("already an nsvisor TOML config"),
        "{e}"
    );
}

#[test]
fn convert_comments_carry_no_control_character() {
    // The warning quotes what follows the value, here a control character,
    // which TOML does not allow in a comment: the TOML did not load.
    let f = Fixture::new("[program:app]\ncommand=/bin/app\nenvironment=A=x\u{6}\n");
    let toml = convert_with(&f.path(), &inputs(LoadOptions::default())).unwrap();
    assert!(toml.contains("# dropped: "), "{toml}");
    let out = Fixture::new(&toml);
    assert_eq!(
        placeless(load(&out.path()).config),
        placeless(load(&f.path()).config)
    );
}

#[test]
fn the_format_can_be_forced() {
    let f = Fixture::new("[program:a]\ncommand=x\n");
    let forced = |format| {
        let options = LoadOptions {
            format: Some(format),
            skip_unsupported: false,
        };
        validate::load(&f.path(), &inputs(options)).map(|o| o.loaded.format)
    };
    assert_eq!(forced(ConfigFormat::Ini).unwrap(), ConfigFormat::Ini);
    let e = forced(ConfigFormat::Toml).unwrap_err();
    assert!(e.to_string().contains("invalid TOML"), "{e}");
    // A TOML file is never mistaken for INI.
    let toml = Fixture::new("# [program:x] in a comment\n[programs.a]\ncommand = \"x\"\n");
    assert_eq!(load(&toml.path()).format, ConfigFormat::Toml);
}
