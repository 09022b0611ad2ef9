//! `[networks.*]` and program network keys: validation and address allocation.

use std::net::Ipv4Addr;

use super::helpers::{assert_at, error, errors, ok};
use crate::config::{Config, ProgramNet, Protocol, SandboxSpec};

const NET: &str = "[networks.front]\nbridge = \"nsvtest0\"\nsubnet = \"172.30.5.0/24\"\n";

fn sandbox(c: &Config, program: &str) -> SandboxSpec {
    match c.programs[program].net.as_deref().cloned() {
        Some(ProgramNet::Sandbox(s)) => s,
        other => panic!("{program}: {other:?}"),
    }
}

fn prog(name: &str, extra: &str) -> String {
    format!("[programs.{name}]\ncommand = \"x\"\n{extra}\n")
}

#[test]
fn network_table_and_defaults() {
    let c = ok(&format!(
        "{NET}[networks.back]\nsubnet = \"10.99.0.0/16\"\ngateway = \"10.99.0.1\"\n"
    ));
    let front = &c.networks["front"];
    assert_eq!(front.bridge, "nsvtest0");
    assert_eq!(
        (front.subnet.network(), front.subnet.prefix()),
        (Ipv4Addr::new(172, 30, 5, 0), 24)
    );
    assert_eq!(front.gateway, Ipv4Addr::new(172, 30, 5, 254));
    let back = &c.networks["back"];
    assert_eq!(back.bridge, "nsv-back");
    assert_eq!(back.gateway, Ipv4Addr::new(10, 99, 0, 1));
}

#[test]
fn programs_get_sandboxes_with_stable_addresses() {
    let text = format!(
        "{NET}{}{}{}",
        prog(
            "b",
            "network = \"front\"\nports = [\"8080\", \"127.0.0.1:5353:53/udp\"]"
        ),
        prog("a", "network = \"front\"\naddress = \"172.30.5.2\""),
        prog("c", "network = \"front\"\nnumprocs = 2"),
    );
    let first = ok(&text);
    assert_eq!(sandbox(&first, "a").address, Ipv4Addr::new(172, 30, 5, 2));
    assert_eq!(sandbox(&first, "b").address, Ipv4Addr::new(172, 30, 5, 1));
    assert_eq!(sandbox(&first, "c:0").address, Ipv4Addr::new(172, 30, 5, 3));
    assert_eq!(sandbox(&first, "c:1").address, Ipv4Addr::new(172, 30, 5, 4));
    assert_eq!(sandbox(&first, "c:1").sandbox, "c-1");
    let b = sandbox(&first, "b");
    assert_eq!((b.sandbox.as_str(), b.network.as_str()), ("b", "front"));
    assert_eq!(b.ports.len(), 2);
    assert_eq!(b.ports[1].protocol, Protocol::Udp);
    // Same config, same addresses; a program added later in name order does
    // not move the earlier ones.
    let again = ok(&text);
    for p in ["a", "b", "c:0", "c:1"] {
        assert_eq!(sandbox(&again, p), sandbox(&first, p));
    }
    let more = ok(&format!("{text}{}", prog("d", "network = \"front\"")));
    for p in ["a", "b", "c:0", "c:1"] {
        assert_eq!(sandbox(&more, p).address, sandbox(&first, p).address);
    }
    assert_eq!(sandbox(&more, "d").address, Ipv4Addr::new(172, 30, 5, 5));
}

#[test]
fn allocation_skips_the_gateway() {
    let c = ok(&format!(
        "[networks.n]\nsubnet = \"172.30.6.0/30\"\ngateway = \"172.30.6.1\"\n{}",
        prog("a", "network = \"n\"")
    ));
    assert_eq!(sandbox(&c, "a").address, Ipv4Addr::new(172, 30, 6, 2));
    let e = error(&format!(
        "[networks.n]\nsubnet = \"172.30.6.0/30\"\n{}{}",
        prog("a", "network = \"n\""),
        prog("b", "network = \"n\"")
    ));
    assert!(e.message.contains("no free address left"), "{e}");
}

#[test]
fn shared_sandboxes_share_address_and_ports() {
    let c = ok(&format!(
        "{NET}{}{}",
        prog(
            "app",
            "network = \"front\"\nsandbox = \"pod\"\nports = [\"80:8080\"]"
        ),
        prog(
            "side",
            "network = \"front\"\nsandbox = \"pod\"\naddress = \"172.30.5.9\"\nports = [\"9090\"]"
        ),
    ));
    let app = sandbox(&c, "app");
    assert_eq!(app, sandbox(&c, "side"));
    assert_eq!(app.sandbox, "pod");
    assert_eq!(app.address, Ipv4Addr::new(172, 30, 5, 9));
    assert_eq!(
        app.ports.iter().map(|p| p.host_port).collect::<Vec<_>>(),
        [80, 9090]
    );
}

#[test]
fn netns_joins() {
    let c = ok(&prog("p", "netns = \"blue\""));
    assert_eq!(
        c.programs["p"].net.as_deref(),
        Some(&ProgramNet::Join {
            netns: "blue".into()
        })
    );
    assert_at(
        &error(&prog("p", "netns = \"a/b\"")),
        3,
        9,
        "invalid namespace name",
    );
}

#[test]
fn network_key_errors() {
    let e = error(&format!("{NET}{}", prog("p", "network = \"frnt\"")));
    assert_at(
        &e,
        6,
        11,
        "unknown network \"frnt\" (did you mean \"front\"?)",
    );
    assert_eq!(e.program.as_deref(), Some("p"));
    let e = error(&format!(
        "{NET}{}",
        prog("p", "netns = \"x\"\nnetwork = \"front\"")
    ));
    assert_at(&e, 6, 9, "cannot be combined with network");
    let errs = errors(&prog(
        "p",
        "address = \"1.2.3.4\"\nports = [\"80\"]\nsandbox = \"s\"",
    ));
    let got: Vec<_> = errs
        .iter()
        .map(|e| (e.line.unwrap(), e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (3, "address: needs network to be set"),
            (4, "ports: needs network to be set"),
            (5, "sandbox: needs network to be set")
        ]
    );
}

#[test]
fn address_errors() {
    let with = |addr: &str| {
        error(&format!(
            "{NET}{}",
            prog("p", &format!("network = \"front\"\naddress = \"{addr}\""))
        ))
    };
    assert_at(
        &with("10.0.0.1"),
        7,
        11,
        "10.0.0.1 is outside network \"front\" (172.30.5.0/24)",
    );
    assert_at(&with("172.30.5.254"), 7, 11, "is the gateway");
    assert_at(&with("172.30.5.0"), 7, 11, "network address");
    assert_at(&with("172.30.5.255"), 7, 11, "broadcast address");
    assert_at(&with("banana"), 7, 11, "not an IPv4 address");
    let e = error(&format!(
        "{NET}{}{}",
        prog("a", "network = \"front\"\naddress = \"172.30.5.7\""),
        prog("b", "network = \"front\"\naddress = \"172.30.5.7\"")
    ));
    assert_at(
        &e,
        11,
        11,
        "172.30.5.7 is also the address of sandbox \"a\"",
    );
    let e = error(&format!(
        "{NET}{}{}",
        prog(
            "a",
            "network = \"front\"\nsandbox = \"s\"\naddress = \"172.30.5.7\""
        ),
        prog(
            "b",
            "network = \"front\"\nsandbox = \"s\"\naddress = \"172.30.5.8\""
        )
    ));
    assert!(e.message.contains("already has address 172.30.5.7"), "{e}");
}

#[test]
fn sandbox_membership_errors() {
    let e = error(&format!(
        "{NET}[networks.other]\nsubnet = \"172.30.8.0/24\"\n{}{}",
        prog("a", "network = \"front\"\nsandbox = \"s\""),
        prog("b", "network = \"other\"\nsandbox = \"s\"")
    ));
    assert!(
        e.message
            .contains("programs sharing a sandbox must use the same network"),
        "{e}"
    );
    assert_eq!(e.program.as_deref(), Some("b"));
    let e = error(&format!(
        "{NET}{}",
        prog("a", "network = \"front\"\nsandbox = \"a b\"")
    ));
    assert!(e.message.contains("sandbox: invalid name"), "{e}");
}

#[test]
fn default_sandbox_names_must_not_collide() {
    let e = error(&format!(
        "{NET}{}{}",
        prog("w-1", "network = \"front\""),
        prog("w", "network = \"front\"\nnumprocs = 2")
    ));
    assert!(
        e.message
            .contains("all get the sandbox name \"w-1\" by default"),
        "{e}"
    );
}

#[test]
fn port_conflicts() {
    let two = |a: &str, b: &str| {
        errors(&format!(
            "{NET}{}{}",
            prog("a", &format!("network = \"front\"\nports = [{a}]")),
            prog("b", &format!("network = \"front\"\nports = [{b}]"))
        ))
    };
    let e = two("\"8080:80\"", "\"8080:81\"");
    assert_eq!(e.len(), 1);
    assert_at(
        &e[0],
        11,
        10,
        "host port 0.0.0.0:8080/tcp is already mapped by program \"a\" (0.0.0.0:8080)",
    );
    assert_eq!(two("\"127.0.0.1:8080:80\"", "\"8080:80\"").len(), 1);
    assert_eq!(two("\"8080:80\"", "\"127.0.0.1:8080:80\"").len(), 1);
    assert_eq!(two("\"[::]:8080:80\"", "\"127.0.0.1:8080:80\"").len(), 1);
    assert!(
        ok(&format!(
            "{NET}{}{}",
            prog("a", "network = \"front\"\nports = [\"8080\"]"),
            prog("b", "network = \"front\"\nports = [\"8080/udp\"]")
        ))
        .programs
        .len()
            == 2
    );
    assert!(
        ok(&format!(
            "{NET}{}{}",
            prog("a", "network = \"front\"\nports = [\"127.0.0.1:8080:80\"]"),
            prog("b", "network = \"front\"\nports = [\"127.0.0.2:8080:80\"]")
        ))
        .programs
        .len()
            == 2
    );
    let e = error(&format!(
        "{NET}{}",
        prog("a", "network = \"front\"\nports = [\"80\", \"80:81\"]")
    ));
    assert!(e.message.contains("already mapped by program \"a\""), "{e}");
    let e = error(&format!(
        "{NET}{}",
        prog("a", "network = \"front\"\nports = [\"80\", \"x:1\"]")
    ));
    assert_at(&e, 7, 16, "invalid port mapping \"x:1\"");
}

#[test]
fn network_table_errors() {
    let e = errors("[networks.a]\nbridge = \"br0\"\nsubnet = \"172.30.0.0/16\"\n[networks.b]\nbridge = \"br0\"\nsubnet = \"172.30.4.0/24\"\n");
    let got: Vec<_> = e
        .iter()
        .map(|e| (e.line.unwrap(), e.column.unwrap()))
        .collect();
    assert_eq!(got, [(5, 10), (6, 10)], "{e:?}");
    assert!(e[0]
        .message
        .contains("\"br0\" is also the bridge of network \"a\""));
    assert!(e[1]
        .message
        .contains("overlaps network \"a\" (172.30.0.0/16)"));

    assert_at(
        &error("[networks.a]\nbridge = \"much-too-long-name\"\nsubnet = \"10.1.0.0/24\"\n"),
        2,
        10,
        "1 to 15 bytes",
    );
    assert_at(
        &error("[networks.a]\nbridge = \"br 0\"\nsubnet = \"10.1.0.0/24\"\n"),
        2,
        10,
        "not a valid interface name",
    );
    assert_at(
        &error("[networks.a]\nsubnet = \"10.1.0.1/24\"\n"),
        2,
        10,
        "has host bits set (did you mean \"10.1.0.0/24\"?)",
    );
    assert_at(
        &error("[networks.a]\nsubnet = \"10.1.0.0/24\"\ngateway = \"10.1.1.1\"\n"),
        3,
        11,
        "outside network",
    );
    assert_at(
        &error("[networks.a]\nsubnet = \"10.1.0.0/24\"\ngateway = \"10.1.0.255\"\n"),
        3,
        11,
        "broadcast",
    );
    assert_at(
        &error("[networks.a]\nbridge = \"x\"\n"),
        1,
        1,
        "subnet: missing",
    );
    assert_at(
        &error("[networks.a-long-network-name]\nsubnet = \"10.1.0.0/24\"\n"),
        1,
        1,
        "bridge: missing",
    );
    assert_at(
        &error("[networks.a]\nsubnet = \"10.1.0.0/24\"\nbrigde = \"x\"\n"),
        3,
        1,
        "did you mean \"bridge\"",
    );
    assert_at(
        &error("[networks.\"a:b\"]\nsubnet = \"10.1.0.0/24\"\n"),
        1,
        11,
        "network name",
    );
}

#[test]
fn a_broken_network_does_not_cascade() {
    let e = errors(&format!(
        "[networks.n]\nsubnet = \"bad\"\n{}",
        prog("p", "network = \"n\"")
    ));
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn port_hold_defaults_to_five_seconds_and_needs_a_network() {
    let c = ok(&format!(
        "{NET}{}{}",
        prog("web", "network = \"front\"\nports = [\"8080:80\"]"),
        prog(
            "api",
            "network = \"front\"\nports = [\"8081:80\"]\nport_hold = 0"
        )
    ));
    assert_eq!(
        sandbox(&c, "web").ports[0].hold,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(sandbox(&c, "api").ports[0].hold, std::time::Duration::ZERO);
    let e = error(&prog("web", "port_hold = 2"));
    assert_at(&e, 3, 13, "port_hold: needs network to be set");
}
