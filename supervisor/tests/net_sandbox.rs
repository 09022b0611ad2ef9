//! Root-only tests of `nsvisor::net` against the real kernel: sandboxes made
//! by the network manager, traffic between them, port proxies, teardown and
//! leftover cleanup. Each test uses its own random names (`nsvt…` bridges,
//! `nsvt-…` sandboxes) and a random free /24 in 172.16.0.0/12, only sends
//! traffic between namespaces it made, and removes what it made.
//! Without root they skip with a reason, unless `CI` is set: then they fail.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use nsvisor::config::{
    Config, NetworkConfig, PortMapping, PortMode, ProgramConfig, ProgramNet, Protocol, SandboxSpec,
    Subnet,
};
use nsvisor::net::{self, netlink::Netlink, Manager};

fn require_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test}: needs root, and CI is set: network tests must run in CI"
    );
    eprintln!("skipping {test}: needs root (network namespaces and netlink)");
    false
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    u64::from_ne_bytes(bytes)
}

/// Unique names and a free subnet for one test.
struct Names {
    tag: String,
    network: NetworkConfig,
}

impl Names {
    fn new() -> Names {
        let tag = format!("{:06x}", random_u64() & 0xff_ffff);
        let mut host = Netlink::open().unwrap();
        let routes = host.routes_v4().unwrap();
        let subnet = loop {
            let r = random_u64();
            let candidate = Ipv4Addr::new(172, 16 + (r % 16) as u8, (r >> 8) as u8, 0);
            let candidate = Subnet::containing(candidate, 24);
            let taken = routes.iter().any(|route| {
                route.destination.prefix() > 0 && route.destination.overlaps(&candidate)
            });
            if !taken {
                break candidate;
            }
        };
        let network = NetworkConfig {
            name: format!("net{tag}"),
            bridge: format!("nsvt{tag}"),
            subnet,
            gateway: subnet.nth_host(1).unwrap(),
            // These tests run in the host's own namespace: no firewall rules.
            masquerade: false,
        };
        Names { tag, network }
    }

    fn sandbox(&self, name: &str) -> String {
        format!("nsvt-{}-{name}", self.tag)
    }

    fn address(&self, host: u8) -> Ipv4Addr {
        let o = self.network.subnet.network().octets();
        Ipv4Addr::new(o[0], o[1], o[2], host)
    }

    fn spec(&self, sandbox: &str, host: u8, ports: Vec<PortMapping>) -> SandboxSpec {
        SandboxSpec {
            sandbox: self.sandbox(sandbox),
            network: self.network.name.clone(),
            address: self.address(host),
            ports,
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mapping(protocol: Protocol, host_port: u16, port: u16) -> PortMapping {
    PortMapping {
        host_ip: "127.0.0.1".parse().unwrap(),
        host_port,
        port,
        protocol,
        mode: PortMode::Proxy,
        hold: std::time::Duration::ZERO,
    }
}

/// Runs `f` on a thread that entered the named namespace; sockets made there
/// stay in that namespace.
fn in_netns<T: Send>(netns: &str, f: impl FnOnce() -> T + Send) -> T {
    let fd = net::open_netns(netns).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link_exists(name: &str) -> bool {
    Netlink::open()
        .unwrap()
        .link_by_name(name)
        .unwrap()
        .is_some()
}

fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_has_eth0_with_its_address_and_a_default_route_and_goes_away() {
    if !require_root("sandbox setup") {
        return;
    }
    let n = Names::new();
    let manager = Manager::start();
    let spec = n.spec("a", 2, vec![]);
    let handle = manager.ensure("a", "a", &spec, &n.network).await.unwrap();
    assert_eq!(handle.netns, format!("nsvisor-{}", spec.sandbox));
    assert!(ip(&["netns", "list"]).contains(&handle.netns));

    let addr = ip(&[
        "-n",
        &handle.netns,
        "-4",
        "-o",
        "addr",
        "show",
        "dev",
        "eth0",
    ]);
    assert!(
        addr.contains(&format!("inet {}/24", n.address(2))),
        "{addr}"
    );
    let routes = ip(&["-n", &handle.netns, "route"]);
    assert!(
        routes.contains(&format!("default via {} dev eth0", n.network.gateway)),
        "{routes}"
    );
    let lo = ip(&["-n", &handle.netns, "link", "show", "lo"]);
    assert!(lo.contains("UP"), "{lo}");
    let bridge = ip(&["-4", "-o", "addr", "show", "dev", &n.network.bridge]);
    assert!(
        bridge.contains(&format!("inet {}/24", n.network.gateway)),
        "{bridge}"
    );
    let veth = ip(&["-d", "link", "show", "master", &n.network.bridge]);
    assert!(veth.contains("alias nsvisor owner="), "{veth}");

    // Idempotent: asking again gives the same sandbox.
    let again = manager.ensure("a", "a", &spec, &n.network).await.unwrap();
    assert_eq!(again.netns, handle.netns);

    assert!(manager.release("a").await.is_empty());
    assert!(!netns_exists(&handle.netns));
    assert!(!link_exists(&n.network.bridge));
    assert!(!link_exists(&net_veth(&spec.sandbox)));
    assert!(!std::path::Path::new("/run/nsvisor/net")
        .join(format!("{}.owner", handle.netns))
        .exists());
}

fn net_veth(sandbox: &str) -> String {
    // Same rule as the daemon: the alias names the sandbox; find it by alias.
    let out = ip(&["-o", "-d", "link"]);
    out.lines()
        .find(|l| l.contains(&format!("sandbox={sandbox}")))
        .and_then(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .unwrap_or_else(|| "nsv-none".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandboxes_talk_over_the_bridge_and_the_host_reaches_mapped_ports() {
    if !require_root("sandbox traffic") {
        return;
    }
    let n = Names::new();
    let manager = Manager::start();
    let (tcp_port, udp_port) = (free_port(), free_port());
    let web = n.spec(
        "web",
        10,
        vec![
            mapping(Protocol::Tcp, tcp_port, 8080),
            mapping(Protocol::Udp, udp_port, 53),
        ],
    );
    let client = n.spec("client", 11, vec![]);
    let web_ns = manager
        .ensure("web", "web", &web, &n.network)
        .await
        .unwrap()
        .netns;
    let client_ns = manager
        .ensure("client", "client", &client, &n.network)
        .await
        .unwrap()
        .netns;

    // Servers inside "web": TCP echo on 8080, UDP echo on 53.
    let listener = in_netns(&web_ns, || TcpListener::bind("0.0.0.0:8080").unwrap());
    let udp = in_netns(&web_ns, || UdpSocket::bind("0.0.0.0:53").unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            std::thread::spawn(move || {
                let mut all = Vec::new();
                s.read_to_end(&mut all).unwrap();
                s.write_all(&all).unwrap();
            });
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        loop {
            let (len, from) = udp.recv_from(&mut buf).unwrap();
            udp.send_to(&buf[..len], from).unwrap();
        }
    });

    let exchange = |to: SocketAddr, msg: &[u8]| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        s.write_all(msg).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        back
    };
    // Sandbox to sandbox, across the bridge.
    let web_addr = SocketAddr::from((n.address(10), 8080));
    let back = in_netns(&client_ns, || exchange(web_addr, b"from client"));
    assert_eq!(back, b"from client");
    // Host to sandbox through the mapped TCP port.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let back = exchange(SocketAddr::from(([127, 0, 0, 1], tcp_port)), &big);
    assert_eq!(back.len(), big.len());
    assert!(back == big);
    // Host to sandbox through the mapped UDP port; the reply comes from it.
    let c = UdpSocket::bind("127.0.0.1:0").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.connect(("127.0.0.1", udp_port)).unwrap();
    c.send(b"ping").unwrap();
    let mut buf = [0u8; 16];
    let len = c.recv(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"ping");

    assert!(manager.shutdown().await.is_empty());
    for ns in [&web_ns, &client_ns] {
        assert!(!netns_exists(ns));
    }
    assert!(!link_exists(&n.network.bridge));
    // The ports are free again.
    TcpListener::bind(("127.0.0.1", tcp_port)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_naming_one_sandbox_share_it_until_the_last_is_released() {
    if !require_root("shared sandbox") {
        return;
    }
    let n = Names::new();
    let manager = Manager::start();
    let spec = n.spec("pod", 20, vec![]);
    let a = manager.ensure("a", "a", &spec, &n.network).await.unwrap();
    let b = manager.ensure("b", "b", &spec, &n.network).await.unwrap();
    assert_eq!(a.netns, b.netns);
    // 127.0.0.1 is shared inside the pod.
    let l = in_netns(&a.netns, || TcpListener::bind("127.0.0.1:7000").unwrap());
    in_netns(&b.netns, || TcpStream::connect("127.0.0.1:7000").unwrap());
    l.accept().unwrap();

    let mut other = spec.clone();
    other.address = n.address(21);
    let err = manager
        .ensure("c", "c", &other, &n.network)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("already exists as network"),
        "{err}"
    );

    assert!(manager.release("a").await.is_empty());
    assert!(netns_exists(&a.netns), "still used by b");
    assert!(manager.release("b").await.is_empty());
    assert!(!netns_exists(&a.netns));
    assert!(!link_exists(&n.network.bridge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_cannot_be_bound_fails_before_anything_is_built() {
    if !require_root("port conflict") {
        return;
    }
    let n = Names::new();
    let manager = Manager::start();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let spec = n.spec("p", 2, vec![mapping(Protocol::Tcp, port, 80)]);
    let err = manager
        .ensure("p", "p", &spec, &n.network)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("program \"p\": cannot listen on port 127.0.0.1:{port}/tcp: Address already in use (os error 98)")
    );
    assert!(!netns_exists(&format!("nsvisor-{}", spec.sandbox)));
    assert!(!link_exists(&n.network.bridge));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subnet_overlapping_a_host_route_is_refused() {
    if !require_root("subnet overlap") {
        return;
    }
    let n = Names::new();
    // Another interface owns the subnet: a dummy bridge with an address in it.
    let squatter = format!("nsvq{}", n.tag);
    let cidr = format!("{}/24", n.address(254));
    assert!(Command::new("ip")
        .args(["link", "add", &squatter, "type", "bridge"])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ip")
        .args(["addr", "add", &cidr, "dev", &squatter])
        .status()
        .unwrap()
        .success());
    assert!(Command::new("ip")
        .args(["link", "set", &squatter, "up"])
        .status()
        .unwrap()
        .success());

    let mut config = Config::empty();
    config
        .networks
        .insert(n.network.name.clone(), n.network.clone());
    let errors = net::check_host(&config).await.unwrap_err();
    let subnet = n.network.subnet.to_string();
    assert_eq!(
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        [format!(
            "network \"{}\": subnet {subnet} overlaps the host route {subnet} (dev {squatter}); choose another subnet",
            n.network.name
        )]
    );
    // The manager refuses too, before creating the bridge.
    let manager = Manager::start();
    let err = manager
        .ensure("x", "x", &n.spec("x", 2, vec![]), &n.network)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("overlaps the host route"), "{err}");
    assert!(!link_exists(&n.network.bridge));

    Command::new("ip")
        .args(["link", "del", &squatter])
        .status()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_dead_daemon_are_removed_and_nothing_else() {
    if !require_root("leftovers") {
        return;
    }
    let n = Names::new();
    let dead = "nsvisor owner=2147483646.1";
    let dead_ns = format!("nsvisor-nsvt-{}-dead", n.tag);
    let foreign_ns = format!("nsvisor-nsvt-{}-foreign", n.tag);
    let dead_bridge = n.network.bridge.clone();
    let foreign_bridge = format!("nsvf{}", n.tag);
    let dead_veth = format!("nsvd{}", n.tag);
    let run = |args: &[&str]| {
        assert!(
            Command::new("ip").args(args).status().unwrap().success(),
            "ip {args:?}"
        )
    };
    run(&["netns", "add", &dead_ns]);
    run(&["netns", "add", &foreign_ns]);
    std::fs::create_dir_all("/run/nsvisor/net").unwrap();
    std::fs::write(
        format!("/run/nsvisor/net/{dead_ns}.owner"),
        "2147483646.1\n",
    )
    .unwrap();
    run(&["link", "add", &dead_bridge, "type", "bridge"]);
    run(&[
        "link",
        "set",
        &dead_bridge,
        "alias",
        &format!("{dead} network=x"),
    ]);
    run(&["link", "add", &foreign_bridge, "type", "bridge"]);
    run(&[
        "link", "add", &dead_veth, "type", "veth", "peer", "name", "eth0", "netns", &dead_ns,
    ]);
    run(&[
        "link",
        "set",
        &dead_veth,
        "alias",
        &format!("{dead} sandbox=dead"),
        "master",
        &dead_bridge,
    ]);

    let errors = Manager::start().cleanup_leftovers().await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(!netns_exists(&dead_ns));
    assert!(!link_exists(&dead_veth));
    assert!(!link_exists(&dead_bridge));
    assert!(!std::path::Path::new(&format!("/run/nsvisor/net/{dead_ns}.owner")).exists());
    // Not nsvisor's (no mark): kept.
    assert!(netns_exists(&foreign_ns));
    assert!(link_exists(&foreign_bridge));
    run(&["netns", "del", &foreign_ns]);
    run(&["link", "del", &foreign_bridge]);
}

#[test]
fn check_host_accepts_a_config_without_networks() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = Config::empty();
    config.programs.insert(
        "p".into(),
        ProgramConfig::with_defaults("p", vec!["true".into()]),
    );
    rt.block_on(net::check_host(&config)).unwrap();
    let mut joined = ProgramConfig::with_defaults("q", vec!["true".into()]);
    joined.net = Some(Box::new(ProgramNet::Join { netns: "x".into() }));
    config.programs.insert("q".into(), joined);
    let result = rt.block_on(net::check_host(&config));
    assert_eq!(result.is_ok(), nix::unistd::geteuid().is_root());
}
