//! Names end to end (root): every program on a network reaches the others
//! by name through the `/etc/hosts` of its sandbox's own mount namespace,
//! the names follow reloads, the host's files are never touched, and
//! nothing (files, mount namespaces) is left after a shutdown or after a
//! SIGKILLed daemon's next start. The daemon runs in a HOST namespace the
//! test made (`netkit/hosts.rs`), like the NAT tests. Lookups are made the
//! way a program makes them, from inside: `nsenter` into a program's
//! namespaces runs `getent -s files hosts NAME`. Only the files: the host's
//! nameservers are not reachable from the test's namespaces, so a lookup
//! that went on to DNS would wait for its timeout.

use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)]
mod netkit;

use netkit::hosts::Hosts;
use netkit::*;
use nsvisor_proto::State;
use nsvisor_tests::{require_root, wait_until, Daemon, KillOnDrop};

/// Where the daemon keeps the sandboxes' files.
const NAMES_DIR: &str = "/run/nsvisor/names";

fn world() -> (Net, Hosts) {
    let n = Net::new();
    let link = loop {
        let l = Net::new();
        if l.subnet != n.subnet {
            break l;
        }
    };
    let hosts = Hosts::new(&n, &link);
    (n, hosts)
}

fn start_in(hosts: &Hosts, config: &str) -> Daemon {
    Daemon::builder().config(config).netns(&hosts.host).start()
}

/// `web` (group `backend`) and `client`, both idle in their own sandboxes.
fn two_programs(n: &Net) -> String {
    n.network_toml()
        + &n.program("web", "web", 10, &["sleep"], "group = \"backend\"")
        + &n.program("client", "client", 11, &["sleep"], "")
}

/// `getent -s files hosts NAME` inside the namespaces of process `pid`: the first
/// address, `None` when the name does not resolve there.
fn getent(pid: u32, name: &str) -> Option<String> {
    let out = Command::new("nsenter")
        .args([
            "-t",
            &pid.to_string(),
            "-m",
            "-n",
            "getent",
            "-s",
            "files",
            "hosts",
            name,
        ])
        .output()
        .expect("nsenter");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    out.status.success().then(|| {
        text.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    })
}

/// The mount namespace of `pid` (`mnt:[INODE]`).
fn mount_ns(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
        .expect("the process is alive")
        .to_string_lossy()
        .into_owned()
}

/// Whether any process still is in mount namespace `ns`.
fn mount_ns_in_use(ns: &str) -> bool {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path().join("ns/mnt")).ok())
        .any(|link| link.to_string_lossy() == ns)
}

fn names_dir(n: &Net, sandbox: &str) -> PathBuf {
    Path::new(NAMES_DIR).join(n.netns(sandbox))
}

fn host_files() -> (String, String) {
    let read = |p| std::fs::read_to_string(p).unwrap_or_default();
    (read("/etc/hosts"), read("/etc/resolv.conf"))
}

#[test]
fn programs_reach_each_other_by_program_group_and_sandbox_name() {
    if !require_root("names: getent hosts") {
        return;
    }
    let (n, hosts) = world();
    let before = host_files();
    let mut d = start_in(&hosts, &two_programs(&n));
    d.wait_state("web", State::Running, T);
    let client = d.wait_state("client", State::Running, T).pid.unwrap();
    let web = n.addr(10).to_string();
    assert_eq!(getent(client, "web").as_deref(), Some(web.as_str()));
    assert_eq!(getent(client, "backend").as_deref(), Some(web.as_str()));
    assert_eq!(
        getent(client, &n.sandbox("web")).as_deref(),
        Some(web.as_str())
    );
    let own = n.addr(11).to_string();
    assert_eq!(getent(client, "client").as_deref(), Some(own.as_str()));
    assert!(getent(client, "localhost").is_some(), "localhost resolves");
    assert_eq!(getent(client, "no-such-program"), None);
    // The sandbox sees its own files; the host's are untouched.
    let seen = Command::new("nsenter")
        .args(["-t", &client.to_string(), "-m", "cat", "/etc/hosts"])
        .output()
        .expect("nsenter");
    let seen = String::from_utf8_lossy(&seen.stdout).into_owned();
    assert!(seen.contains("written by nsvisor"), "{seen}");
    assert_eq!(host_files(), before, "the host's files are not changed");
    d.terminate();
}

#[test]
fn an_exec_check_runs_in_the_sandbox_names() {
    if !require_root("names: exec check") {
        return;
    }
    let (n, hosts) = world();
    let config = two_programs(&n).replace(
        "group = \"backend\"",
        "group = \"backend\"\n[[programs.web.checks]]\nexec = [\"getent\", \"-s\", \"files\", \"hosts\", \"client\"]\nperiod = 0.2",
    );
    let mut d = start_in(&hosts, &config);
    wait_until("web's exec check to pass", T, || {
        d.status("web").filter(|p| p.ready)
    });
    d.terminate();
}

#[test]
fn names_follow_a_reload_that_adds_and_removes_programs() {
    if !require_root("names: reload") {
        return;
    }
    let (n, hosts) = world();
    let base = two_programs(&n);
    let d = start_in(&hosts, &base);
    let client = d.wait_state("client", State::Running, T).pid.unwrap();
    assert_eq!(getent(client, "added"), None);

    d.write_config(&(base.clone() + &n.program("added", "added", 12, &["sleep"], "")));
    assert!(d.ctl(&["reload"]).status.success());
    d.wait_state("added", State::Running, T);
    let added = n.addr(12).to_string();
    // The sandbox's files are written before its program starts.
    assert_eq!(getent(client, "added").as_deref(), Some(added.as_str()));
    // A program that was running all along sees the new name too.
    let web = d.wait_state("web", State::Running, T).pid.unwrap();
    assert_eq!(getent(web, "added").as_deref(), Some(added.as_str()));

    d.write_config(&base);
    assert!(d.ctl(&["reload"]).status.success());
    wait_until("\"added\" to stop resolving", T, || {
        getent(client, "added").is_none().then_some(())
    });
    assert_eq!(getent(client, "web"), Some(n.addr(10).to_string()));
    assert!(
        !names_dir(&n, "added").exists(),
        "the removed sandbox's files are gone"
    );
}

#[test]
fn nothing_is_left_after_shutdown() {
    if !require_root("names: shutdown") {
        return;
    }
    let (n, hosts) = world();
    let mut d = start_in(&hosts, &two_programs(&n));
    let client = d.wait_state("client", State::Running, T).pid.unwrap();
    let ns = mount_ns(client);
    assert_ne!(
        ns,
        mount_ns(std::process::id()),
        "a mount namespace of its own"
    );
    assert!(names_dir(&n, "client").join("hosts").exists());
    d.terminate();
    for s in ["web", "client"] {
        assert!(!names_dir(&n, s).exists(), "files of {s} left");
    }
    assert!(!mount_ns_in_use(&ns), "mount namespace {ns} left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(NAMES_DIR), "{mounts}");
    n.assert_gone(&["web", "client"]);
}

#[test]
fn the_files_of_a_killed_daemon_are_removed_at_the_next_start() {
    if !require_root("names: leftovers") {
        return;
    }
    let (n, hosts) = world();
    let mut first = start_in(&hosts, &two_programs(&n));
    let web = first.wait_state("web", State::Running, T).pid.unwrap();
    let client = first.wait_state("client", State::Running, T).pid.unwrap();
    let ns = mount_ns(client);
    let orphans = KillOnDrop(vec![web, client]);
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(T);
    assert!(names_dir(&n, "client").exists(), "left behind");
    drop(orphans);
    wait_until("the orphans to be gone", T, || {
        (!mount_ns_in_use(&ns)).then_some(())
    });

    let mut second = start_in(&hosts, &n.network_toml());
    for s in ["web", "client"] {
        assert!(!names_dir(&n, s).exists(), "files of {s} left");
    }
    second.terminate();
    n.assert_gone(&["web", "client"]);
}
