//! Helpers of the network e2e tests (`net.rs`): unique names and free
//! subnets, the `nettool` fixture, `ip` commands, and TCP probes of mapped
//! ports. See `net.rs` for the rules every test follows.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

pub mod hosts;

use nsvisor_tests::{toml_quote, wait_until};

pub const T: Duration = Duration::from_secs(15);

pub fn nettool() -> String {
    toml_quote(env!("CARGO_BIN_EXE_nettool"))
}

/// `command = [nettool, args...]`.
pub fn cmd(args: &[&str]) -> String {
    let mut items = vec![nettool()];
    items.extend(args.iter().map(toml_quote));
    format!("[{}]", items.join(", "))
}

pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    u32::from_ne_bytes(b)
}

/// Unique names and a free /24 for one test.
pub struct Net {
    pub tag: String,
    pub subnet: [u8; 3],
}

impl Net {
    pub fn new() -> Net {
        let routes = host_routes();
        for _ in 0..10_000 {
            let r = random_u32();
            let subnet = [172, 16 + (r % 16) as u8, (r >> 8) as u8];
            let candidate = (
                u32::from(Ipv4Addr::new(subnet[0], subnet[1], subnet[2], 0)),
                24,
            );
            if !routes.iter().any(|&route| overlaps(route, candidate)) {
                return Net {
                    tag: format!("{:06x}", r >> 8 & 0xff_ffff),
                    subnet,
                };
            }
        }
        panic!("no /24 in 172.16.0.0/12 is free of the host's routes: {routes:?}");
    }

    pub fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], host)
    }
    pub fn name(&self) -> String {
        format!("n{}", self.tag)
    }
    pub fn bridge(&self) -> String {
        format!("nsvt{}", self.tag)
    }
    pub fn sandbox(&self, s: &str) -> String {
        format!("nsvt-{}-{s}", self.tag)
    }
    pub fn netns(&self, s: &str) -> String {
        format!("nsvisor-{}", self.sandbox(s))
    }

    /// The `[networks.NAME]` table, without masquerade: tests that run the
    /// daemon in the host's own namespace must not add firewall rules there.
    pub fn network_toml(&self) -> String {
        format!(
            "[networks.{}]\nbridge = \"{}\"\nsubnet = \"{}/24\"\ngateway = \"{}\"\nmasquerade = false\n\n",
            self.name(),
            self.bridge(),
            self.addr(0),
            self.addr(1)
        )
    }

    /// A program in sandbox `sandbox` at `.host`, with `extra` lines.
    pub fn program(
        &self,
        name: &str,
        sandbox: &str,
        host: u8,
        args: &[&str],
        extra: &str,
    ) -> String {
        format!(
            "[programs.{name}]\ncommand = {}\nnetwork = \"{}\"\nsandbox = \"{}\"\naddress = \"{}\"\nstartsecs = 0\n{extra}\n\n",
            cmd(args),
            self.name(),
            self.sandbox(sandbox),
            self.addr(host)
        )
    }

    /// Nothing of this test's network is left on the host.
    pub fn assert_gone(&self, sandboxes: &[&str]) {
        let netns = ip(&["netns", "list"]);
        for s in sandboxes {
            assert!(
                !netns.contains(&self.netns(s)),
                "netns {} left: {netns}",
                self.netns(s)
            );
        }
        let links = ip(&["-o", "-d", "link"]);
        assert!(!links.contains(&self.bridge()), "bridge left: {links}");
        for s in sandboxes {
            let alias = format!("sandbox={}", self.sandbox(s));
            assert!(!links.contains(&alias), "veth of {s} left: {links}");
        }
    }
}

/// Destinations of the host's IPv4 routes in every table, as (network,
/// prefix length); `default` is left out (it covers everything without
/// making a subnet used).
fn host_routes() -> Vec<(u32, u32)> {
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "nat",
    ];
    ip(&["-4", "route", "show", "table", "all"])
        .lines()
        .filter_map(|line| {
            let dst = line.split_whitespace().find(|w| !TYPES.contains(w))?;
            let (addr, len) = dst.split_once('/').unwrap_or((dst, "32"));
            let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
            Some((u32::from(addr.parse::<Ipv4Addr>().ok()?), len))
        })
        .collect()
}

/// Whether two prefixes share an address: either contains the other, so a
/// wider route such as 172.17.0.0/16 clashes with 172.17.5.0/24.
pub fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let len = a.1.min(b.1);
    let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
    a.0 & mask == b.0 & mask
}

pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("ip");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn run_ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip");
    assert!(status.success(), "ip {args:?} failed");
}

/// `ip` commands run on drop, to remove what a test made even when it fails.
pub struct Undo(pub Vec<Vec<String>>);

impl Drop for Undo {
    fn drop(&mut self) {
        for args in self.0.iter().rev() {
            let _ = Command::new("ip").args(args).status();
        }
    }
}

pub fn undo(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

pub fn wait_file(path: &Path) -> String {
    wait_until(&format!("{} to be written", path.display()), T, || {
        read(path)
    })
}

/// A TCP exchange through `port` on 127.0.0.1: send, half-close, read all.
pub fn tcp_exchange(port: u16, data: &[u8]) -> Vec<u8> {
    let mut s = wait_until("the mapped TCP port to answer", T, || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // The proxy accepts even before the server listens: probe with a byte.
        s.write_all(b"?").ok()?;
        let mut b = [0u8; 1];
        (s.read(&mut b).ok()? == 1).then_some(s)
    });
    s.write_all(data).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    back
}

/// `curl 127.0.0.1:PORT`, by hand.
pub fn tcp_get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    s.read_to_string(&mut page).unwrap();
    page
}
