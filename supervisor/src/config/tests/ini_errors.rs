//! supervisord configs that must be refused (or warned about): every error
//! names the file, line and column, and unknown keys get a suggestion.
//! Also `environment_file` in TOML configs.

use super::helpers::{assert_at, error, errors, ok, Fixture};
use super::ini::inputs;
use crate::config::{validate, ConfigError, LoadOptions};

#[test]
fn a_broken_line_is_an_error_at_its_line() {
    let e = error("[supervisord]\nnodaemon=true\njust words\n");
    assert_at(&e, 3, 1, "expected \"key = value\"");
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let e = error("[program:web]\ncommand=x\nautorestrt=true\n");
    assert_at(
        &e,
        3,
        1,
        "unknown key \"autorestrt\" in [program:web] (did you mean \"autorestart\"?)",
    );
    assert_eq!(e.program.as_deref(), Some("web"));
    let e = error("[supervisord]\nnodeamon=true\n");
    assert_at(&e, 2, 1, "(did you mean \"nodaemon\"?)");
    let e = error("[unix_http_server]\nfile=/s\nchmode=0700\n");
    assert_at(&e, 3, 1, "(did you mean \"chmod\"?)");
}

#[test]
fn unknown_sections_suggest_the_closest() {
    let e = error("[supervisord]\n[programm:web]\ncommand=x\n");
    assert_at(
        &e,
        2,
        2,
        "unknown section [programm:web] (did you mean \"program\"?)",
    );
}

#[test]
fn bad_values_point_at_the_value() {
    let e = error("[program:web]\ncommand=x\nautostart = maybe\n");
    assert_at(&e, 3, 13, "autostart: \"maybe\" is not a boolean");
    let e = error("[program:web]\ncommand=x\nexitcodes=0,300\n");
    assert_at(&e, 3, 11, "exit code 300 is out of range");
    let e = error("[program:web]\ncommand=x\nstdout_logfile_maxbytes=5TB\n");
    assert_at(&e, 3, 25, "is not a size");
    let e = error("[program:web]\ncommand=x\nstopsignal=TREM\n");
    assert_at(&e, 3, 12, "did you mean \"TERM\"");
}

#[test]
fn expansion_errors_point_at_the_character() {
    let e = error("[program:web]\ncommand=/bin/x %(nope)s\n");
    assert_at(
        &e,
        2,
        16,
        "%(nope) cannot be expanded here; available: here",
    );
    let e = error("[program:web]\ncommand=/bin/x %(ENV_NOPE)s\n");
    assert_at(&e, 2, 16, "environment variable \"NOPE\" is not set");
    let e = error("[program:web]\ncommand=/bin/x 50%\n");
    assert_at(&e, 2, 18, "\"%%\"");
    let e = error("[program:web]\ncommand=x\npriority=%(process_num)d\n");
    assert_at(&e, 3, 10, "%(process_num) cannot be expanded here");
}

#[test]
fn event_listeners_and_fastcgi_are_refused_unless_skipped() {
    let text = "[supervisord]\n[eventlistener:mon]\ncommand=x\nevents=PROCESS_STATE\n[fcgi-program:php]\ncommand=php\nsocket=tcp://localhost:9000\n[program:web]\ncommand=x\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert_at(
        &errs[0],
        2,
        2,
        "event listeners are not supported (start with --skip-unsupported",
    );
    assert_at(&errs[1], 5, 2, "FastCGI programs are not supported");
    let f = Fixture::new(text);
    let options = LoadOptions {
        format: None,
        skip_unsupported: true,
    };
    let loaded = validate::load(&f.path(), &inputs(options)).unwrap().loaded;
    assert_eq!(loaded.config.programs.len(), 1);
    let warned: Vec<_> = loaded
        .warnings()
        .map(|w| (w.line, w.message.clone()))
        .collect();
    assert_eq!(warned.len(), 2);
    assert!(warned[0]
        .1
        .contains("[eventlistener:mon]: event listeners are not supported; section skipped"));
}

#[test]
fn groups_name_existing_programs() {
    let e = error(
        "[program:web]\ncommand=x\n[group:g]\nprograms=web,wbe2,cron\n[program:cron]\ncommand=y\n",
    );
    assert_at(&e, 4, 10, "[group:g] names unknown program \"wbe2\"");
}

#[test]
fn supervisord_rules_on_groups_of_processes() {
    let e = error("[program:web]\ncommand=x\nstopasgroup=true\nkillasgroup=false\n");
    assert_at(
        &e,
        4,
        1,
        "killasgroup: cannot be false when stopasgroup is true",
    );
    let e = error("[program:web]\ncommand=x\nnumprocs=2\nprocess_name=web\n");
    assert_at(&e, 4, 14, "must contain %(process_num)");
}

#[test]
fn environment_errors_point_into_the_value() {
    let e = error("[program:web]\ncommand=x\nenvironment=A=1,B\n");
    assert_at(&e, 3, 17, "expected KEY=value pairs");
    let e = error("[program:web]\ncommand=x\nenvironment=A=\"open\n");
    assert_at(&e, 3, 15, "unterminated");
}

#[test]
fn errors_in_included_files_name_that_file() {
    let f = Fixture::new("[supervisord]\n[include]\nfiles=conf.d/*.conf\n");
    let inc = f.write(
        "conf.d/web.conf",
        "[program:web]\ncommand=x\nstartsecs=soon\n",
    );
    let e = f.load().unwrap_err().0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].file, inc);
    assert_at(&e[0], 3, 11, "startsecs: \"soon\" is not an integer");
}

#[test]
fn an_include_matching_nothing_warns() {
    let f = Fixture::new("[supervisord]\n[include]\nfiles=none/*.conf\n");
    let loaded = validate::load(&f.path(), &inputs(LoadOptions::default()))
        .unwrap()
        .loaded;
    let w: Vec<&ConfigError> = loaded.warnings().collect();
    assert_eq!(w.len(), 1);
    assert_at(w[0], 3, 7, "include: no file matches");
}

#[test]
fn a_bad_env_file_line_is_an_error_at_that_file_and_line() {
    let f = Fixture::new("[program:web]\ncommand=x\nenvironment_file=app.env\n");
    let env = f.write("app.env", "A=1\n# fine\nB C\n");
    let e = f.load().unwrap_err().0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].file, env);
    assert_at(&e[0], 3, 1, "environment_file: expected KEY=value");
    let f = Fixture::new("[program:web]\ncommand=x\nenvironment_file=missing.env\n");
    assert_at(
        &f.load().unwrap_err().0[0],
        3,
        18,
        "environment_file: cannot read",
    );
}

#[test]
fn toml_env_files_at_both_levels() {
    let f = Fixture::new(
        "[supervisor]\nenvironment_file = \"g.env\"\nenvironment = { B = \"sup\" }\n[programs.a]\ncommand = \"x\"\nenvironment_file = [\"a.env\"]\nenvironment = { D = \"table\" }\n",
    );
    f.write("g.env", "A=g\nB=g\nC=g\n");
    f.write("a.env", "export C=a\nD=a\n");
    let c = f.load().unwrap();
    let env = &c.programs["a"].environment;
    let got: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(got, [("A", "g"), ("B", "sup"), ("C", "a"), ("D", "table")]);
    let f = Fixture::new("[programs.a]\ncommand = \"x\"\nenvironment_file = \"a.env\"\n");
    let bad = f.write("a.env", "\nA='open\n");
    let e = &f.load().unwrap_err().0[0];
    assert_eq!(e.file, bad);
    assert_at(e, 2, 1, "unterminated 'quote'");
}

#[test]
fn toml_keys_for_what_supervisord_configs_carry() {
    let c = ok("[supervisor]\npidfile = \"run/n.pid\"\nsocket_username = \"u\"\nsocket_password = \"p\"\ninet_http_server = { port = \"127.0.0.1:9001\" }\n[programs.a]\ncommand = \"x\"\ngroup = \"g\"\n");
    assert!(c.supervisor.pidfile.unwrap().ends_with("run/n.pid"));
    assert_eq!(c.supervisor.socket_auth.unwrap().username, "u");
    assert_eq!(
        c.supervisor.inet_http_server.unwrap().port,
        "127.0.0.1:9001"
    );
    // Reachable from other hosts without credentials: refused.
    let e = error("[supervisor]\ninet_http_server = { port = \"9001\" }\n");
    assert!(e.message.contains("set username and password"), "{e}");
    let e = error("[supervisor]\ninet_http_server = { port = \"0.0.0.0:9001\" }\n");
    assert!(e.message.contains("reachable from other hosts"), "{e}");
    let local = ok("[supervisor]\ninet_http_server = { port = \"[::1]:9001\" }\n[programs.a]\ncommand = \"x\"\n");
    assert!(local.supervisor.inet_http_server.is_some());
    assert_eq!(&*c.programs["a"].group, "g");
    let e = error("[supervisor]\nsocket_username = \"u\"\n");
    assert_at(&e, 2, 1, "socket_username: needs socket_password too");
    let e = error("[supervisor]\ninet_http_server = { port = \"x:99999\" }\n");
    assert!(e.message.contains("invalid address"), "{e}");
    let e = error("[programs.a]\ncommand = \"x\"\ngroup = \"b\"\n[programs.b]\ncommand = \"y\"\n");
    assert!(
        e.message
            .contains("group \"b\" has the name of program \"b\""),
        "{e}"
    );
}
