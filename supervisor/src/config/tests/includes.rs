//! `include`: globs relative to the main file, literal paths, duplicates.

use super::helpers::{assert_at, Fixture};

const MAIN: &str =
    "[supervisor]\ninclude = [\"conf.d/*.toml\"]\n[programs.main]\ncommand = \"x\"\n";

#[test]
fn globs_pull_in_programs_and_networks() {
    let f = Fixture::new(MAIN);
    f.write("conf.d/b.toml", "[programs.b]\ncommand = \"b\"\n");
    f.write("conf.d/a.toml", "[programs.a]\ncommand = \"a\"\nnetwork = \"n\"\n[networks.n]\nsubnet = \"172.31.7.0/24\"\n");
    f.write("conf.d/ignored.txt", "not toml");
    let c = f.load().unwrap();
    assert_eq!(c.programs.keys().collect::<Vec<_>>(), ["a", "b", "main"]);
    assert!(c.programs["a"].source.ends_with("conf.d/a.toml"));
    assert!(c.programs["main"].source.ends_with("nsvisor.toml"));
    assert!(c.networks.contains_key("n"));
}

#[test]
fn a_glob_matching_nothing_is_fine() {
    assert!(Fixture::new(MAIN).load().is_ok());
}

#[test]
fn a_missing_literal_path_is_an_error() {
    let f = Fixture::new("[supervisor]\ninclude = [\"extra.toml\", \"conf.d/*.toml\"]\n");
    let e = f.load().unwrap_err().0;
    assert_eq!(e.len(), 1);
    assert_at(&e[0], 2, 12, "include: file");
    assert!(
        e[0].message.contains("extra.toml does not exist"),
        "{}",
        e[0]
    );
    f.write("extra.toml", "[programs.x]\ncommand = \"x\"\n");
    assert!(f.load().unwrap().programs.contains_key("x"));
}

#[test]
fn a_program_defined_twice_names_both_files() {
    let f = Fixture::new(MAIN);
    f.write("conf.d/a.toml", "\n[programs.main]\ncommand = \"y\"\n");
    let e = f.load().unwrap_err().0;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_at(&e[0], 2, 11, "program \"main\" is defined twice");
    let main = f.path().display().to_string();
    let other = f.root().join("conf.d/a.toml").display().to_string();
    assert!(
        e[0].message.contains(&main) && e[0].message.contains(&other),
        "{}",
        e[0]
    );
    assert_eq!(e[0].file, f.root().join("conf.d/a.toml"));
}

#[test]
fn supervisor_table_is_refused_in_included_files() {
    let f = Fixture::new(MAIN);
    f.write("conf.d/a.toml", "[supervisor]\nminfds = 5\n");
    let e = f.load().unwrap_err().0;
    assert_at(&e[0], 1, 2, "only allowed in the main config file");
}

#[test]
fn errors_in_several_files_are_all_reported_with_their_file() {
    let f = Fixture::new("[supervisor]\ninclude = \"conf.d/*.toml\"\nbogus = 1\n");
    f.write(
        "conf.d/a.toml",
        "[programs.a]\ncommand = \"a\"\nstartsecs = -1\n",
    );
    f.write("conf.d/b.toml", "[programs.b\n");
    let e = f.load().unwrap_err().0;
    let files: Vec<_> = e
        .iter()
        .map(|e| {
            (
                e.file.file_name().unwrap().to_str().unwrap().to_string(),
                e.line,
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("nsvisor.toml".to_string(), Some(3)),
            ("a.toml".to_string(), Some(3)),
            ("b.toml".to_string(), Some(1))
        ]
    );
}

#[test]
fn including_the_main_file_or_one_file_twice_reads_it_once() {
    let f = Fixture::new("[supervisor]\ninclude = [\"*.toml\", \"conf.d/a.toml\", \"conf.d/*.toml\"]\n[programs.m]\ncommand = \"x\"\n");
    f.write("conf.d/a.toml", "[programs.a]\ncommand = \"a\"\n");
    let c = f.load().unwrap();
    assert_eq!(c.programs.len(), 2);
}

#[test]
fn the_documented_complete_example_is_valid() {
    let doc = include_str!("../../../../docs/configuration.md");
    let section = doc
        .split("## A complete example")
        .nth(1)
        .expect("docs/configuration.md has a complete example");
    let body = section
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    let f = Fixture::new(body);
    let env = |name: &str| (name == "WEB_SECRET").then(|| "s3cret".to_string());
    let c = match crate::config::Config::load_with_env(&f.path(), &env) {
        Ok(c) => c,
        Err(e) => panic!("the example in docs/configuration.md is invalid:\n{e}"),
    };
    let names: Vec<_> = c.programs.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "app",
            "db",
            "exporter",
            "migrate",
            "vpn-client",
            "web:1",
            "web:2",
            "web:3"
        ]
    );
    assert_eq!(c.programs["web:2"].environment["SECRET"], "s3cret");
    assert_eq!(c.programs["exporter"].net, c.programs["web:1"].net);
}
