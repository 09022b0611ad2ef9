//! Network sandboxes end to end (root): the real daemon builds namespaces,
//! bridges and veth pairs from a config, programs run inside them (the
//! `nettool` fixture), and everything is gone after removal, shutdown, or the
//! next start after a SIGKILL.
//!
//! Machine rules: every name carries a random tag (`nsvt<tag>` bridges,
//! `nsvt-<tag>-*` sandboxes, so namespaces `nsvisor-nsvt-<tag>-*`), every
//! subnet is a random /24 in 172.16.0.0/12 that overlaps no host route, mapped
//! ports listen on 127.0.0.1 only, and traffic only goes between namespaces
//! and bridges the test made. Without root these tests skip with a reason;
//! with `CI` set they fail instead.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[allow(dead_code)]
mod netkit;

use netkit::*;
use nsvisor_proto::State;
use nsvisor_tests::{
    log_lines, nsvisor_bin, require_root, toml_quote, wait_until, Daemon, KillOnDrop,
};

#[test]
fn a_program_joins_an_existing_named_namespace() {
    if !require_root("net: join netns") {
        return;
    }
    let n = Net::new();
    let ns = format!("nsvt-{}-join", n.tag);
    let dummy = format!("nsvd{}", n.tag);
    run_ip(&["netns", "add", &ns]);
    let _undo = Undo(vec![undo(&["netns", "del", &ns])]);
    run_ip(&["-n", &ns, "link", "add", &dummy, "type", "bridge"]);
    run_ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("{}/24", n.addr(5)),
        "dev",
        &dummy,
    ]);
    let d = Daemon::start(&format!(
        "[programs.app]\ncommand = {}\nnetns = \"{ns}\"\nstartsecs = 0\nautorestart = \"never\"\n",
        cmd(&["ifaces", "{dir}/ifaces"])
    ));
    let seen = wait_file(&d.dir().join("ifaces"));
    let names: Vec<&str> = seen
        .lines()
        .filter_map(|l| l.strip_suffix(" link"))
        .collect();
    assert_eq!(names, ["lo", dummy.as_str()], "{seen}");
    assert!(
        seen.contains(&format!("{dummy} {}/24", n.addr(5))),
        "{seen}"
    );
    let info = d.status("app").unwrap().net.expect("net info");
    assert_eq!(info.netns, ns);
}

#[test]
fn a_sandbox_has_eth0_its_address_and_a_default_route_and_keeps_them_across_restarts() {
    if !require_root("net: sandbox") {
        return;
    }
    let n = Net::new();
    let config = n.network_toml()
        + &n.program(
            "app",
            "app",
            7,
            &["ifaces", "{dir}/ifaces"],
            "autorestart = \"never\"",
        );
    let mut d = Daemon::start(&config);
    let first = wait_file(&d.dir().join("ifaces"));
    assert!(first.contains(&format!("eth0 {}/24", n.addr(7))), "{first}");
    assert!(first.contains("lo 127.0.0.1/8"), "{first}");
    let ns = n.netns("app");
    assert!(ip(&["netns", "list"]).contains(&ns));
    let routes = ip(&["-n", &ns, "route"]);
    assert!(
        routes.contains(&format!("default via {} dev eth0", n.addr(1))),
        "{routes}"
    );

    let info = d.status("app").unwrap().net.expect("net info");
    assert_eq!(info.netns, ns);
    assert_eq!(info.sandbox.as_deref(), Some(n.sandbox("app").as_str()));
    assert_eq!(info.network.as_deref(), Some(n.name().as_str()));
    assert_eq!(info.address, Some(format!("{}/24", n.addr(7))));
    let status = d.ctl(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains(&n.addr(7).to_string()),
        "status shows the address: {text}"
    );

    // A restart keeps the same namespace (same inode) and address.
    std::fs::remove_file(d.dir().join("ifaces")).unwrap();
    let out = d.ctl(&["start", "app"]);
    assert!(out.status.success(), "{out:?}");
    let second = wait_file(&d.dir().join("ifaces"));
    assert_eq!(first, second);

    d.terminate();
    n.assert_gone(&["app"]);
}

#[test]
fn sandboxes_talk_over_the_bridge_and_mapped_ports_reach_them() {
    if !require_root("net: traffic") {
        return;
    }
    let n = Net::new();
    let (tcp, udp) = (free_port(), free_port());
    let ports = format!("ports = [\"127.0.0.1:{tcp}:8080\", \"127.0.0.1:{udp}:8080/udp\"]");
    let target = format!("{}:8080", n.addr(10));
    let config = n.network_toml()
        + &n.program("web", "web", 10, &["echo", "8080"], &ports)
        + &n.program(
            "client",
            "client",
            11,
            &["send", &target, "hello web", "{dir}/reply"],
            "autorestart = \"never\"",
        );
    let mut d = Daemon::start(&config);
    // Sandbox to sandbox across the bridge.
    assert_eq!(wait_file(&d.dir().join("reply")), "hello web");

    // Host to sandbox through the mapped TCP port: a bulk transfer.
    let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 253) as u8).collect();
    let back = tcp_exchange(tcp, &big);
    assert_eq!(back.len(), big.len());
    assert!(back == big);

    // And through the mapped UDP port; the reply comes from the mapped port
    // (the socket is connected to it, so nothing else would be received).
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.connect(("127.0.0.1", udp)).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let reply = wait_until("a UDP echo through the mapped port", T, || {
        c.send(b"ping").ok()?;
        let mut buf = [0u8; 64];
        let len = c.recv(&mut buf).ok()?;
        Some(buf[..len].to_vec())
    });
    assert_eq!(reply, b"ping");

    d.terminate();
    n.assert_gone(&["web", "client"]);
    TcpListener::bind(("127.0.0.1", tcp)).expect("the mapped port is free again");
}

#[test]
fn programs_in_one_sandbox_share_localhost() {
    if !require_root("net: shared sandbox") {
        return;
    }
    let n = Net::new();
    let config = n.network_toml()
        + &n.program(
            "server",
            "pod",
            20,
            &["echo", "7000", "--bind", "127.0.0.1"],
            "",
        )
        + &n.program(
            "client",
            "pod",
            20,
            &["send", "127.0.0.1:7000", "over lo", "{dir}/reply"],
            "autorestart = \"never\"",
        );
    let mut d = Daemon::start(&config);
    assert_eq!(wait_file(&d.dir().join("reply")), "over lo");
    let (a, b) = (
        d.status("server").unwrap().net.unwrap(),
        d.status("client").unwrap().net.unwrap(),
    );
    assert_eq!(a.netns, b.netns);
    d.terminate();
    n.assert_gone(&["pod"]);
}

#[test]
fn a_program_removed_by_reload_takes_its_sandbox_and_bridge_along() {
    if !require_root("net: reload removal") {
        return;
    }
    let n = Net::new();
    let keep = "[programs.keep]\ncommand = [\"sleep\", \"1000\"]\nstartsecs = 0\n\n";
    let d =
        Daemon::start(&(n.network_toml() + keep + &n.program("gone", "gone", 30, &["sleep"], "")));
    d.wait_state("gone", State::Running, T);
    assert!(ip(&["netns", "list"]).contains(&n.netns("gone")));
    d.write_config(&(n.network_toml() + keep));
    let (code, body) = d.post("/v1/reload", "");
    assert_eq!(code, 200, "{body}");
    wait_until("the sandbox to be removed", T, || {
        (!ip(&["netns", "list"]).contains(&n.netns("gone"))).then_some(())
    });
    wait_until("the bridge to be removed", T, || {
        (!ip(&["-o", "link"]).contains(&n.bridge())).then_some(())
    });
    n.assert_gone(&["gone"]);
}

#[test]
fn leftovers_of_a_killed_daemon_are_removed_at_the_next_start() {
    if !require_root("net: leftovers") {
        return;
    }
    let n = Net::new();
    let config = n.network_toml() + &n.program("app", "app", 40, &["sleep"], "");
    let mut first = Daemon::start(&config);
    let pid = first.wait_state("app", State::Running, T).pid.unwrap();
    let _orphan = KillOnDrop(vec![pid]);
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(T);
    assert!(
        ip(&["netns", "list"]).contains(&n.netns("app")),
        "left behind"
    );

    // The new daemon (or another one starting meanwhile: any daemon cleans
    // up after dead ones) removes the leftovers, or creating the sandbox
    // again would fail because its namespace exists.
    let mut second = Daemon::start(&config);
    second.wait_state("app", State::Running, T);
    second.terminate();
    n.assert_gone(&["app"]);
}

#[test]
fn a_subnet_overlapping_a_host_route_is_refused_at_start() {
    if !require_root("net: subnet overlap") {
        return;
    }
    let n = Net::new();
    let squatter = format!("nsvq{}", n.tag);
    run_ip(&["link", "add", &squatter, "type", "bridge"]);
    let _undo = Undo(vec![undo(&["link", "del", &squatter])]);
    run_ip(&[
        "addr",
        "add",
        &format!("{}/24", n.addr(254)),
        "dev",
        &squatter,
    ]);
    run_ip(&["link", "set", &squatter, "up"]);
    let config = n.network_toml() + &n.program("app", "app", 2, &["sleep"], "");
    let mut d = Daemon::builder().config(&config).spawn();
    let status = d.wait_exit(T);
    let check = Command::new(nsvisor_bin())
        .args(["check", "-c"])
        .arg(d.dir().join("nsvisor.toml"))
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2), "{check:?}");
    let subnet = format!("{}/24", n.addr(0));
    let problem = format!(
        "network \"{}\": subnet {subnet} overlaps the host route {subnet} (dev {squatter}); \
         choose another subnet",
        n.name()
    );
    assert_eq!(
        String::from_utf8_lossy(&check.stderr),
        format!(
            "{}: {problem}\nnsvisor: the host cannot give this configuration its networks\n",
            d.dir().join("nsvisor.toml").display()
        ),
        "nsvisor check"
    );
    assert_eq!(status.code(), Some(1));
    assert_eq!(
        log_lines(&d.stderr()),
        [format!("ERROR {problem}")],
        "the daemon's whole log"
    );
    n.assert_gone(&["app"]);
}

#[test]
fn a_mapped_port_in_use_fails_the_start_naming_the_port() {
    if !require_root("net: port in use") {
        return;
    }
    let n = Net::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let ports = format!("ports = [\"127.0.0.1:{port}:80\"]");
    let config = n.network_toml()
        + &n.program(
            "web",
            "web",
            2,
            &["sleep"],
            &format!("autostart = false\n{ports}"),
        );
    let mut d = Daemon::start(&config);
    let out = d.ctl(&["start", "web"]);
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned()
        ),
        (
            Some(1),
            format!(
                "web: ERROR (program \"web\": cannot listen on port 127.0.0.1:{port}/tcp: \
                 Address already in use (os error 98))\n"
            ),
            String::new()
        )
    );
    assert_eq!(d.status("web").unwrap().state, State::Stopped);
    d.terminate();
    n.assert_gone(&["web"]);
}

#[test]
fn conflicting_ports_and_overlapping_networks_are_config_errors() {
    let n = Net::new();
    let other = format!(
        "[networks.o{}]\nbridge = \"nsvo{}\"\nsubnet = \"{}/25\"\n\n",
        n.tag,
        n.tag,
        n.addr(0)
    );
    let config = n.network_toml()
        + &other
        + &n.program("a", "a", 2, &["sleep"], "ports = [\"127.0.0.1:9999:80\"]")
        + &n.program("b", "b", 3, &["sleep"], "ports = [\"9999:81\"]");
    let mut d = Daemon::builder().config(&config).spawn();
    assert_eq!(d.wait_exit(T).code(), Some(2));
    let path = d.dir().join("nsvisor.toml");
    let text = std::fs::read_to_string(&path).expect("the config");
    // Each error: `file:line:col: message`, the line, a caret under the column.
    let error = |source: &str, message: &str| {
        let line = 1 + text
            .lines()
            .position(|l| l == source)
            .unwrap_or_else(|| panic!("{source:?} not in the config"));
        let gutter = " ".repeat(line.to_string().len());
        format!(
            "{}:{line}:10: {message}\n {line} | {source}\n {gutter} |          ^\n",
            path.display()
        )
    };
    let subnet = n.addr(0);
    let want = error(
        &format!("subnet = \"{subnet}/25\""),
        &format!(
            "subnet: {subnet}/25 overlaps network \"{}\" ({subnet}/24)",
            n.name()
        ),
    ) + &error(
        "ports = [\"9999:81\"]",
        "program \"b\": ports: host port 0.0.0.0:9999/tcp is already mapped by program \"a\" \
         (127.0.0.1:9999)",
    ) + "nsvisor: 2 errors in the configuration\n";
    assert_eq!(d.stderr(), want);
}

#[test]
fn a_network_config_without_privileges_fails_with_what_is_needed() {
    if !require_root("net: no privileges (runs the daemon as nobody)") {
        return;
    }
    let n = Net::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let config_path: PathBuf = dir.path().join("nsvisor.toml");
    let socket = dir.path().join("nsvisor.sock");
    let config = n.network_toml()
        + &n.program("web", "web", 2, &["sleep"], "")
        + &format!("[supervisor]\nsocket = {}\n", toml_quote(&socket));
    std::fs::write(&config_path, config).unwrap();
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new(nsvisor_bin())
            .arg("-c")
            .arg(&config_path)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    };
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        log_lines(&String::from_utf8_lossy(&out.stderr)),
        [
            "ERROR the network settings of program \"web\" need CAP_NET_ADMIN and CAP_SYS_ADMIN, \
             which this process does not have: run nsvisor as root \
             (in a container: --cap-add NET_ADMIN --cap-add SYS_ADMIN)"
        ]
    );
    n.assert_gone(&["web"]);
}

#[test]
fn the_bridge_demo_config_works() {
    if !require_root("net: configs/bridge-demo.toml") {
        return;
    }
    let n = Net::new();
    let port = free_port();
    let demo = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/bridge-demo.toml"),
    )
    .expect("configs/bridge-demo.toml");
    // The same config with this test's names, subnet and port.
    let prefix = format!("{}.{}.{}.", n.subnet[0], n.subnet[1], n.subnet[2]);
    // This daemon runs in the host's own namespace: no masquerade table.
    let config = demo
        .replace("[networks.demo]\n", "[networks.demo]\nmasquerade = false\n")
        .replace(
            "address = \"172.30.0.2\"",
            &format!(
                "address = \"172.30.0.2\"\nsandbox = \"{}\"",
                n.sandbox("web")
            ),
        )
        .replace(
            "address = \"172.30.0.3\"",
            &format!(
                "address = \"172.30.0.3\"\nsandbox = \"{}\"",
                n.sandbox("client")
            ),
        )
        .replace("172.30.0.", &prefix)
        .replace("nsvbr-demo", &n.bridge())
        .replace("9090", &port.to_string());
    let mut d = Daemon::start(&config);
    let success = "client | success: http://web:8080/ answered 'hello from the web sandbox'";
    wait_until("the client to report success", T, || {
        d.stdout().contains(success).then_some(())
    });
    let page = tcp_get(port);
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(page.ends_with("hello from the web sandbox\n"), "{page}");
    d.terminate();
    n.assert_gone(&["web", "client"]);
}

#[test]
fn a_reload_that_changes_the_address_rebuilds_the_sandbox() {
    if !require_root("net: reload changes the address") {
        return;
    }
    let n = Net::new();
    let program = |host: u8| {
        n.program(
            "app",
            "app",
            host,
            &["ifaces", "{dir}/ifaces"],
            "autorestart = \"never\"",
        )
    };
    let mut d = Daemon::start(&(n.network_toml() + &program(50)));
    let first = wait_file(&d.dir().join("ifaces"));
    assert!(
        first.contains(&format!("eth0 {}/24", n.addr(50))),
        "{first}"
    );
    std::fs::remove_file(d.dir().join("ifaces")).unwrap();
    d.write_config(&(n.network_toml() + &program(51)));
    let (code, body) = d.post("/v1/reload", "");
    assert_eq!(code, 200, "{body}");
    let second = wait_file(&d.dir().join("ifaces"));
    assert!(
        second.contains(&format!("eth0 {}/24", n.addr(51))),
        "{second}"
    );
    let info = d.status("app").unwrap().net.unwrap();
    assert_eq!(info.address, Some(format!("{}/24", n.addr(51))));
    let ports = ip(&["-o", "link", "show", "master", &n.bridge()]);
    assert_eq!(ports.lines().count(), 1, "one veth on the bridge: {ports}");
    d.terminate();
    n.assert_gone(&["app"]);
}

#[test]
fn a_tcp_check_of_a_sandboxed_program_connects_inside_its_sandbox() {
    if !require_root("net: check inside a sandbox") {
        return;
    }
    let n = Net::new();
    // A port free on the host: the sandbox listens on it on its own loopback.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
        .to_string();
    let config = n.network_toml()
        + &n.program(
            "server",
            "srv",
            20,
            &["echo", &port, "--bind", "127.0.0.1"],
            &format!("[[programs.server.checks]]\ntcp = {port}\nperiod = 0.3\ntimeout = 0.5"),
        )
        + &format!(
            "[programs.web]\ncommand = {}\nstartsecs = 0\ndepends_on = [\"server\"]\n",
            cmd(&["sleep"])
        );
    let mut d = Daemon::start(&config);
    d.wait_state("web", State::Running, Duration::from_secs(15));
    let server = d.status("server").expect("server");
    assert!(server.ready, "{server:?}");
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "the host's loopback must not have the sandbox's listener"
    );
    d.terminate();
    n.assert_gone(&["srv"]);
}

#[test]
fn a_test_subnet_overlaps_a_wider_host_route() {
    let ip = |a, b, c| u32::from(std::net::Ipv4Addr::new(172, a, b, c));
    // docker0's 172.17.0.0/16 covers 172.17.5.0/24, either way round.
    assert!(netkit::overlaps((ip(17, 0, 0), 16), (ip(17, 5, 0), 24)));
    assert!(netkit::overlaps((ip(17, 5, 0), 24), (ip(17, 0, 0), 16)));
    // A host address inside the /24, and a /24 elsewhere.
    assert!(netkit::overlaps((ip(17, 5, 9), 32), (ip(17, 5, 0), 24)));
    assert!(!netkit::overlaps((ip(17, 0, 0), 16), (ip(18, 5, 0), 24)));
}
