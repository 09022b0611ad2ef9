//! `numprocs` naming, `{process_num}` substitution, `depends_on`.

use std::path::PathBuf;
use std::sync::Arc;

use super::helpers::{assert_at, error, errors, ok};

#[test]
fn numprocs_names_replicas() {
    let c = ok("[programs.web]\ncommand = \"web --port=80{process_num:02}\"\nnumprocs = 3\nnumprocs_start = 1\ndirectory = \"/srv/{process_num}\"\nenvironment = { N = \"{process_num}\" }\n");
    assert_eq!(
        c.programs.keys().collect::<Vec<_>>(),
        ["web:1", "web:2", "web:3"]
    );
    let w2 = &c.programs["web:2"];
    assert_eq!(&*w2.group, "web");
    assert_eq!(w2.process_num, 2);
    assert_eq!(*w2.command, vec!["web", "--port=8002"]);
    assert_eq!(w2.directory, Some(PathBuf::from("/srv/2")));
    assert_eq!(w2.environment["N"], "2");
}

/// Replicas share what is the same for all of them (each replica of 10,000
/// would otherwise carry its own copy), and own what `{process_num}` changes.
#[test]
fn replicas_share_what_does_not_change() {
    let c = ok("[programs.a]\ncommand = \"sleep 9\"\nnumprocs = 2\n[programs.b]\ncommand = \"b --id={process_num}\"\nnumprocs = 2\n");
    let [a0, a1, b0, b1] = ["a:0", "a:1", "b:0", "b:1"].map(|n| &c.programs[n]);
    assert!(Arc::ptr_eq(&a0.command, &a1.command), "same argv, one copy");
    assert!(Arc::ptr_eq(&a0.group, &a1.group));
    assert!(Arc::ptr_eq(&a0.exitcodes, &a1.exitcodes));
    assert!(Arc::ptr_eq(&a0.source, &b1.source), "one path per file");
    assert_eq!(*b0.command, ["b", "--id=0"]);
    assert_eq!(*b1.command, ["b", "--id=1"]);
}

#[test]
fn process_name_names_each_replica() {
    let c = ok("[programs.web]\ncommand = \"web\"\nnumprocs = 2\nprocess_name = \"web_{process_num:02}\"\n[programs.solo]\ncommand = \"x\"\nprocess_name = \"one\"\n");
    assert_eq!(
        c.programs.keys().collect::<Vec<_>>(),
        ["one", "web_00", "web_01"]
    );
    assert_eq!(&*c.programs["web_01"].group, "web");
    assert_eq!(c.programs["web_01"].process_num, 1);
    assert_eq!(&*c.programs["one"].group, "solo");
}

#[test]
fn process_name_must_give_valid_distinct_names() {
    let e = error("[programs.web]\ncommand = \"web\"\nnumprocs = 2\nprocess_name = \"web\"\n");
    assert_at(&e, 4, 16, "must contain {process_num} when numprocs > 1");
    let e = error("[programs.web]\ncommand = \"web\"\nprocess_name = \"a:{process_num}\"\n");
    assert_at(
        &e,
        3,
        16,
        "process_name: invalid name \"a:0\": \":\" is reserved",
    );
    let e = error(
        "[programs.a]\ncommand = \"x\"\n[programs.b]\ncommand = \"x\"\nprocess_name = \"a\"\n",
    );
    assert_at(
        &e,
        5,
        16,
        "process name \"a\" is used twice (also by a process of group \"a\")",
    );
}

#[test]
fn a_single_process_keeps_the_plain_name() {
    let c = ok("[programs.web]\ncommand = \"web {process_num}\"\nnumprocs_start = 4\n");
    let w = &c.programs["web"];
    assert_eq!(
        (w.name.as_str(), &*w.group, w.process_num),
        ("web", "web", 4)
    );
    assert_eq!(*w.command, vec!["web", "4"]);
}

#[test]
fn depends_on_groups_and_unique_names() {
    let c = ok("[programs.db]\ncommand = \"x\"\nnumprocs = 2\n[programs.cache]\ncommand = \"x\"\n[programs.web]\ncommand = \"x\"\ndepends_on = [\"db\", \"cache\", \"db:1\"]\n[programs.one]\ncommand = \"x\"\ndepends_on = \"db:0\"\n");
    let names = |p: &str| -> Vec<String> {
        c.programs[p]
            .depends_on
            .iter()
            .map(|d| d.name.to_string())
            .collect()
    };
    assert_eq!(names("web"), ["cache", "db:0", "db:1"]);
    assert_eq!(names("one"), ["db:0"]);
    assert!(c.programs["db:0"].depends_on.is_empty());
}

#[test]
fn unknown_dependency_suggests() {
    let e = error(
        "[programs.db]\ncommand = \"x\"\n[programs.web]\ncommand = \"x\"\ndepends_on = [\"bd\"]\n",
    );
    assert_at(
        &e,
        5,
        15,
        "depends_on: unknown program \"bd\" (did you mean \"db\"?)",
    );
    assert_eq!(e.program.as_deref(), Some("web"));
}

#[test]
fn a_broken_dependency_is_not_reported_twice() {
    let e = errors(
        "[programs.db]\nstartsecs = 1\n[programs.web]\ncommand = \"x\"\ndepends_on = [\"db\"]\n",
    );
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].message.contains("command: missing"));
}

#[test]
fn cycles_are_reported_once_with_their_path() {
    let e = error("[programs.a]\ncommand = \"x\"\ndepends_on = [\"b\"]\n[programs.b]\ncommand = \"x\"\ndepends_on = [\"c\"]\n[programs.c]\ncommand = \"x\"\ndepends_on = [\"a\"]\n");
    assert_at(&e, 3, 15, "dependency cycle: a -> b -> c -> a");
    assert_eq!(e.program.as_deref(), Some("a"));

    let e = error("[programs.a]\ncommand = \"x\"\ndepends_on = [\"a\"]\n");
    assert_at(&e, 3, 15, "dependency cycle: a -> a");

    let e = error("[programs.w]\ncommand = \"x\"\nnumprocs = 3\ndepends_on = [\"db\"]\n[programs.db]\ncommand = \"x\"\ndepends_on = [\"w\"]\n");
    assert!(
        e.message.contains("dependency cycle: db -> w:0 -> db"),
        "{e}"
    );
}

#[test]
fn replica_addresses_and_ports_use_process_num() {
    let c = ok("[networks.n]\nsubnet = \"172.31.9.0/24\"\n[programs.w]\ncommand = \"x\"\nnumprocs = 2\nnetwork = \"n\"\naddress = \"172.31.9.1{process_num}\"\nports = [\"80{process_num:02}:80\"]\n");
    let crate::config::ProgramNet::Sandbox(s) = *c.programs["w:1"].net.clone().unwrap() else {
        panic!()
    };
    assert_eq!(s.sandbox, "w-1");
    assert_eq!(s.address.to_string(), "172.31.9.11");
    assert_eq!(s.ports[0].host_port, 8001);
}

#[test]
fn depends_on_table_gives_each_dependency_its_condition() {
    use crate::config::{Condition, Dependency};
    let c = ok("[programs.migrate]\ncommand = \"x\"\nstartsecs = 0\n[programs.db]\ncommand = \"x\"\nnumprocs = 2\n[programs.web]\ncommand = \"x\"\ndepends_on = { migrate = \"completed_successfully\", db = \"running\" }\n[programs.list]\ncommand = \"x\"\ndepends_on = [\"migrate\"]\n");
    assert_eq!(
        c.programs["web"].depends_on,
        [
            Dependency::on("db:0", Condition::Running),
            Dependency::on("db:1", Condition::Running),
            Dependency::on("migrate", Condition::CompletedSuccessfully),
        ]
    );
    assert_eq!(
        c.programs["list"].depends_on,
        [Dependency::on("migrate", Condition::Ready)],
        "the list form means ready"
    );
}

#[test]
fn a_misspelt_condition_is_an_error_with_a_suggestion() {
    let e = error("[programs.db]\ncommand = \"x\"\n[programs.web]\ncommand = \"x\"\ndepends_on = { db = \"compleated\" }\n");
    assert_at(
        &e,
        5,
        21,
        "depends_on: unknown condition \"compleated\", expected one of \"started\", \"running\", \"ready\", \"completed\", \"completed_successfully\" (did you mean \"completed\"?)",
    );
    let e = error("[programs.db]\ncommand = \"x\"\n[programs.web]\ncommand = \"x\"\ndepends_on = { db = true }\n");
    assert_at(&e, 5, 21, "depends_on: expected a condition");
    let e = error("[programs.web]\ncommand = \"x\"\ndepends_on = { bd = \"ready\" }\n");
    assert_at(&e, 3, 16, "depends_on: unknown program \"bd\"");
}
