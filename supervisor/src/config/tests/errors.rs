//! Every error kind, with its file, line, column and program.

use super::helpers::{assert_at, error, errors, Fixture};
use crate::config::Config;

const P: &str = "[programs.web]\ncommand = \"x\"\n";

fn key_error(line: &str) -> crate::config::ConfigError {
    error(&format!("{P}{line}\n"))
}

#[test]
fn toml_syntax_error_is_one_error_with_position() {
    let e = error("[programs.p]\ncommand = \n");
    assert_eq!(e.line, Some(2));
    assert!(e.message.starts_with("invalid TOML"), "{}", e.message);
    let e = error("[programs.p]\ncommand = \"x\"\ncommand = \"y\"\n");
    assert_eq!(e.line, Some(3), "{e}");
}

#[test]
fn unknown_keys_suggest_the_closest() {
    let e = key_error("autorestrt = true");
    assert_at(
        &e,
        3,
        1,
        "unknown key \"autorestrt\" in [programs.web] (did you mean \"autorestart\"?)",
    );
    assert_eq!(e.program.as_deref(), Some("web"));
    let e = error("[supervisr]\n");
    assert_at(&e, 1, 2, "unknown top-level key \"supervisr\"");
    assert!(e.message.contains("did you mean \"supervisor\""));
    let e = error("[supervisor]\nloglevel = \"info\"\n");
    assert_at(&e, 2, 1, "use log_level");
    let e = error("[supervisor]\nnodaemon = true\n");
    assert_at(&e, 2, 1, "always runs in the foreground");
    let e = key_error("frobnicate = 1");
    assert!(!e.message.contains("did you mean"), "{}", e.message);
}

#[test]
fn wrong_types_say_what_was_expected() {
    assert_at(
        &key_error("autostart = \"yes\""),
        3,
        13,
        "autostart: expected true or false, found a string \"yes\"",
    );
    assert_at(
        &key_error("startsecs = \"1s\""),
        3,
        13,
        "expected a number of seconds",
    );
    assert_at(
        &key_error("startretries = 1.5"),
        3,
        16,
        "expected an integer ≥ 0, found a float 1.5",
    );
    assert_at(
        &key_error("environment = [\"A=1\"]"),
        3,
        15,
        "environment: expected a table",
    );
    assert_at(
        &key_error("environment = { A = [1] }"),
        3,
        21,
        "environment: A: expected a string",
    );
    assert_at(&key_error("command2 = 1"), 3, 1, "did you mean \"command\"");
    let e = error("[programs.web]\ncommand = 5\n");
    assert_at(
        &e,
        2,
        11,
        "command: expected a string or an array of strings, found an integer 5",
    );
    let e = error("[programs.web]\ncommand = [\"a\", 1]\n");
    assert_at(&e, 2, 17, "command: expected a string, found an integer 1");
    assert_at(
        &error("programs = 3\n"),
        1,
        12,
        "programs: expected a table, found an integer 3",
    );
    assert_at(
        &error("[[programs]]\ncommand = \"x\"\n"),
        1,
        1,
        "programs: expected a table, found an array",
    );
    assert_at(
        &error("[programs]\nweb = \"x\"\n"),
        2,
        7,
        "expected a table [programs.web]",
    );
}

#[test]
fn numeric_limits() {
    assert_at(&key_error("startsecs = -1"), 3, 13, "must be ≥ 0");
    assert_at(&key_error("stopwaitsecs = -0.5"), 3, 16, "must be ≥ 0");
    assert_at(&key_error("startretries = -1"), 3, 16, "-1 is out of range");
    assert_at(&key_error("priority = 3000000000"), 3, 12, "out of range");
    assert_at(
        &key_error("exitcodes = [0, 256]"),
        3,
        17,
        "exitcodes: 256 is out of range (an integer from 0 to 255)",
    );
    assert_at(
        &key_error("numprocs = 0"),
        3,
        12,
        "numprocs: 0 is out of range",
    );
    assert_at(&key_error("numprocs_start = -3"), 3, 18, "out of range");
    assert_at(
        &key_error("stdout_logfile_maxbytes = \"5XB\""),
        3,
        27,
        "invalid size \"5XB\"",
    );
    assert_at(
        &key_error("stdout_logfile_backups = -1"),
        3,
        26,
        "out of range",
    );
    assert_at(&key_error("tail_buffer = -1"), 3, 15, "not a valid size");
}

#[test]
fn bad_words() {
    assert_at(
        &key_error("stopsignal = \"TREM\""),
        3,
        14,
        "unknown signal \"TREM\" (did you mean \"TERM\"?)",
    );
    assert_at(&key_error("stopsignal = \"STOP\""), 3, 14, "SIGSTOP");
    assert_at(
        &key_error("autorestart = \"alway\""),
        3,
        15,
        "did you mean \"always\"",
    );
    assert_at(
        &key_error("stdout_console = \"pretty\""),
        3,
        18,
        "invalid console mode",
    );
    assert_at(&key_error("umask = \"999\""), 3, 9, "not an octal number");
    assert_at(&key_error("user = \"a:b:c\""), 3, 8, "invalid user");
    assert_at(
        &key_error("environment = { \"A=B\" = \"1\" }"),
        3,
        17,
        "invalid variable name",
    );
}

#[test]
fn empty_or_unsplittable_commands() {
    assert_at(
        &error("[programs.p]\ncommand = \"\"\n"),
        2,
        11,
        "command: is empty",
    );
    assert_at(
        &error("[programs.p]\ncommand = []\n"),
        2,
        11,
        "command: is empty",
    );
    assert_at(
        &error("[programs.p]\ncommand = \"  \"\n"),
        2,
        11,
        "command: is empty",
    );
    assert_at(
        &error("[programs.p]\ncommand = [\"\", \"a\"]\n"),
        2,
        11,
        "program path is empty",
    );
    assert_at(
        &error("[programs.p]\ncommand = \"echo 'a\"\n"),
        2,
        11,
        "cannot split",
    );
}

#[test]
fn unsafe_program_names() {
    let e = error("[programs.\"a b\"]\ncommand = \"x\"\n");
    assert_at(&e, 1, 11, "program name: invalid name \"a b\"");
    let e = error("[programs.\"web:1\"]\ncommand = \"x\"\n");
    assert_at(&e, 1, 11, "reserved for replica names");
    let e = error("[programs.\"\"]\ncommand = \"x\"\n");
    assert!(e.message.contains("name is empty"), "{e}");
}

#[test]
fn env_errors_point_into_the_string() {
    let e = key_error("directory = \"/srv/${NOPE}\"");
    assert_at(&e, 3, 19, "environment variable \"NOPE\" is not set");
    assert_eq!(e.program.as_deref(), Some("web"));
    let e = error("[supervisor]\nsocket = \"${NOPE}\"\n");
    assert_at(&e, 2, 11, "\"NOPE\" is not set");
    assert_eq!(e.program, None);
    let e = key_error("environment = { A = \"${X\" }");
    assert_at(&e, 3, 22, "unterminated");
    let e = error("[programs.web]\ncommand = [\"a\", \"${BAD-NAME}\"]\n");
    assert_at(&e, 2, 18, "invalid variable reference");
}

#[test]
fn auto_log_needs_log_dir() {
    let e = key_error("stdout_logfile = \"auto\"");
    assert_at(
        &e,
        3,
        18,
        "stdout_logfile: \"auto\" needs [supervisor] log_dir",
    );
}

#[test]
fn two_programs_writing_one_log_file() {
    let e = error("[programs.a]\ncommand = \"x\"\nstdout_logfile = \"/tmp/x.log\"\n[programs.b]\ncommand = \"x\"\nstderr_logfile = \"/tmp/x.log\"\n");
    assert_at(&e, 6, 18, "is also the stdout log of program \"a\"");
    assert_eq!(e.program.as_deref(), Some("b"));
    let e = error("[programs.a]\ncommand = \"x\"\nnumprocs = 2\nstdout_logfile = \"/tmp/x.log\"\n");
    assert!(e.message.contains("{process_num}"), "{e}");
}

#[test]
fn every_error_of_a_file_is_collected_in_order() {
    let errs = errors(
        "[programs.a]\nautostart = 1\nstartsecs = -1\n\n[programs.b]\ncommand = \"x\"\nbogus = 1\n[other]\n",
    );
    let lines: Vec<_> = errs.iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(lines, vec![1, 2, 3, 7, 8], "{errs:#?}");
}

#[test]
fn rendering_shows_position_program_and_snippet() {
    let f = Fixture::new("[programs.web]\ncommand = \"x\"\nstartsecs = -1\n");
    let err = f.load().unwrap_err();
    let text = err.to_string();
    let path = f.path().display().to_string();
    assert_eq!(
        text,
        format!("{path}:3:13: program \"web\": startsecs: -1 is not a valid number of seconds (must be ≥ 0)\n 3 | startsecs = -1\n   |             ^")
    );
}

#[test]
fn unreadable_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = Config::load(&dir.path().join("missing.toml")).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].line, None);
    assert!(
        err.0[0].message.contains("cannot read config file"),
        "{err}"
    );
}
