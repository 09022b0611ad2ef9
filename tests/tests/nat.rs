//! Masquerade and kernel port mapping end to end (root): the daemon runs in a
//! HOST namespace the test made, next to an OUTSIDE namespace with no route
//! back to the sandboxes (`netkit/hosts.rs`), so every nftables rule and
//! sysctl lives and dies with namespaces the test made. Names and subnets
//! follow the rules in `net.rs`; traffic only goes between the test's own
//! namespaces. Needs `nft` (package nftables) to look at the tables.

use std::net::Ipv4Addr;

#[allow(dead_code)]
mod netkit;

use netkit::hosts::{read_from, Hosts};
use netkit::*;
use nsvisor_proto::State;
use nsvisor_tests::{require_root, wait_until, Daemon};

/// A sandbox network and the HOST/OUTSIDE world around it.
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

fn network(n: &Net, masquerade: bool) -> String {
    n.network_toml()
        .replace("masquerade = false", &format!("masquerade = {masquerade}"))
}

fn start_in(hosts: &Hosts, config: &str) -> Daemon {
    Daemon::builder().config(config).netns(&hosts.host).start()
}

/// The IP part of `IP:PORT`.
fn ip_of(peer: &str) -> Ipv4Addr {
    let (ip, _) = peer.rsplit_once(':').expect("IP:PORT");
    ip.parse().expect("an IPv4 address")
}

#[test]
fn a_sandbox_reaches_the_outside_through_masquerade_and_the_table_goes_at_shutdown() {
    if !require_root("nat: masquerade") {
        return;
    }
    let (n, hosts) = world();
    assert!(
        !hosts.outside_routes().contains(&n.addr(0).to_string()),
        "OUTSIDE must have no route back to the sandboxes"
    );
    let _server = hosts.outside_nettool(&["peer", "7100"]);
    let to = format!("{}:7100", hosts.outside_addr);
    let config = network(&n, true)
        + &n.program(
            "client",
            "client",
            10,
            &["send", &to, "hi", "{dir}/reply"],
            "autorestart = \"never\"",
        );
    let mut d = start_in(&hosts, &config);
    let seen = wait_file(&d.dir().join("reply"));
    assert_eq!(ip_of(&seen), hosts.host_addr, "the source OUTSIDE sees");
    let tables = hosts.tables();
    assert!(tables.contains("table ip nsvisor_"), "{tables}");
    d.terminate();
    assert_eq!(hosts.tables(), "", "no table left after shutdown");
    n.assert_gone(&["client"]);
}

#[test]
fn without_masquerade_a_sandbox_cannot_reach_the_outside_and_no_table_is_made() {
    if !require_root("nat: masquerade = false") {
        return;
    }
    let (n, hosts) = world();
    // Forwarding on: only the missing source NAT keeps the answer away.
    hosts.sysctl("net.ipv4.ip_forward", "1");
    let _server = hosts.outside_nettool(&["peer", "7100"]);
    let to = format!("{}:7100", hosts.outside_addr);
    let config = network(&n, false)
        + &n.program(
            "client",
            "client",
            10,
            &["send", &to, "hi", "{dir}/reply", "--within", "3"],
            "autorestart = \"never\"",
        );
    let mut d = start_in(&hosts, &config);
    d.wait_state("client", State::Exited, T);
    assert!(!d.dir().join("reply").exists(), "no answer came back");
    assert_eq!(hosts.tables(), "", "masquerade = false makes no table");
    d.terminate();
}

#[test]
fn a_nat_port_is_reached_from_outside_the_host_and_another_sandbox() {
    if !require_root("nat: port_mode = nat") {
        return;
    }
    let (n, hosts) = world();
    let hairpin = format!("{}:8080", n.addr(1));
    let config = network(&n, false)
        + &n.program(
            "web",
            "web",
            10,
            &["peer", "80"],
            "ports = [\"8080:80\"]\nport_mode = \"nat\"\n\
             [[programs.web.checks]]\ntcp = 80\nperiod = 0.2",
        )
        + &n.program(
            "client",
            "client",
            11,
            &["send", &hairpin, "hi", "{dir}/hairpin"],
            "autorestart = \"never\"\ndepends_on = [\"web\"]",
        );
    let mut d = start_in(&hosts, &config);
    d.wait_state("web", State::Running, T);
    let from = |netns: &str, addr: Ipv4Addr| {
        let what = format!("{addr}:8080 to answer from {netns}");
        ip_of(&wait_until(&what, T, || read_from(netns, (addr, 8080))))
    };
    // From outside: the program sees the client's own address.
    assert_eq!(from(&hosts.outside, hosts.host_addr), hosts.outside_addr);
    // From the host to one of its addresses: the host's address, unchanged.
    assert_eq!(from(&hosts.host, hosts.host_addr), hosts.host_addr);
    // From the host's loopback: masqueraded to the bridge address.
    assert_eq!(from(&hosts.host, Ipv4Addr::LOCALHOST), n.addr(1));
    // From another sandbox through the mapped port (hairpin): the bridge
    // address too, or the answer would bypass the host.
    assert_eq!(ip_of(&wait_file(&d.dir().join("hairpin"))), n.addr(1));
    // The host port is reserved: nothing else in HOST can listen on it.
    let taken = std::thread::scope(|s| {
        s.spawn(|| {
            let f = std::fs::File::open(format!("/run/netns/{}", hosts.host)).unwrap();
            nix::sched::setns(
                std::os::fd::AsFd::as_fd(&f),
                nix::sched::CloneFlags::CLONE_NEWNET,
            )
            .unwrap();
            std::net::TcpListener::bind("0.0.0.0:8080").is_err()
        })
        .join()
        .unwrap()
    });
    assert!(taken, "the nat port is held by the daemon");
    d.terminate();
    assert_eq!(hosts.tables(), "");
    n.assert_gone(&["web", "client"]);
}

#[test]
fn the_table_of_a_killed_daemon_is_removed_at_the_next_start() {
    if !require_root("nat: leftover table") {
        return;
    }
    let (n, hosts) = world();
    let config = network(&n, true) + &n.program("app", "app", 10, &["sleep"], "");
    let mut first = start_in(&hosts, &config);
    let pid = first.wait_state("app", State::Running, T).pid.unwrap();
    let _orphan = nsvisor_tests::KillOnDrop(vec![pid]);
    let table = format!("table ip nsvisor_{}_", first.pid());
    assert!(hosts.tables().contains(&table), "{}", hosts.tables());
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(T);
    assert!(hosts.tables().contains(&table), "left behind");

    let mut second = start_in(&hosts, &network(&n, false));
    assert!(
        !hosts.tables().contains(&table),
        "the dead daemon's table is gone: {}",
        hosts.tables()
    );
    second.terminate();
    assert_eq!(hosts.tables(), "");
}
