//! A small world for tests that need firewall rules and sysctls: a HOST
//! namespace the daemon runs in (see `DaemonBuilder::netns`) and an OUTSIDE
//! namespace joined to it by a veth pair with addresses from a test /24.
//! OUTSIDE has no route to any sandbox subnet, so a sandbox reaches it only
//! through masquerade. Every rule and sysctl the daemon sets lives in HOST
//! and goes away with it; the real host's network is never touched.

use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};

use super::{ip, run_ip, undo, Net, Undo};

/// HOST and OUTSIDE, removed on drop.
pub struct Hosts {
    /// Namespace the daemon runs in.
    pub host: String,
    /// Namespace of the outside world.
    pub outside: String,
    /// HOST's end of the link.
    pub host_addr: Ipv4Addr,
    /// OUTSIDE's end of the link.
    pub outside_addr: Ipv4Addr,
    _undo: Undo,
}

impl Hosts {
    /// Makes both namespaces for test `net`, the link between them on a /24
    /// of its own (`link`, another free test /24).
    pub fn new(net: &Net, link: &Net) -> Hosts {
        let host = format!("nsvt-{}-HOST", net.tag);
        let outside = format!("nsvt-{}-OUT", net.tag);
        run_ip(&["netns", "add", &host]);
        let mut undo_list = vec![undo(&["netns", "del", &host])];
        run_ip(&["netns", "add", &outside]);
        undo_list.push(undo(&["netns", "del", &outside]));
        let guard = Undo(undo_list);
        let (h, o) = (format!("nsvh{}", net.tag), format!("nsvo{}", net.tag));
        run_ip(&[
            "-n", &host, "link", "add", &h, "type", "veth", "peer", "name", &o, "netns", &outside,
        ]);
        let (host_addr, outside_addr) = (link.addr(1), link.addr(2));
        for (ns, dev, addr) in [(&host, &h, host_addr), (&outside, &o, outside_addr)] {
            run_ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            run_ip(&["-n", ns, "link", "set", dev, "up"]);
            run_ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        Hosts {
            host,
            outside,
            host_addr,
            outside_addr,
            _undo: guard,
        }
    }

    /// `nft list tables` in HOST.
    pub fn tables(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.host, "nft", "list", "tables"])
            .output()
            .expect("nft (package nftables)");
        assert!(out.status.success(), "nft list tables: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sysctl -w KEY=VALUE` in HOST.
    pub fn sysctl(&self, key: &str, value: &str) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.host, "sysctl", "-qw"])
            .arg(format!("{key}={value}"))
            .status()
            .expect("sysctl");
        assert!(status.success(), "sysctl {key}={value} in {}", self.host);
    }

    /// Runs `nettool ARGS` in OUTSIDE; killed on drop.
    pub fn outside_nettool(&self, args: &[&str]) -> ChildGuard {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.outside])
            .arg(env!("CARGO_BIN_EXE_nettool"))
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .expect("nettool in OUTSIDE");
        ChildGuard(child)
    }

    /// Routes in OUTSIDE (to show there is none back to the sandboxes).
    pub fn outside_routes(&self) -> String {
        ip(&["-n", &self.outside, "-4", "route"])
    }
}

/// A child process killed (and waited for) on drop.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Connects to `to` from namespace `netns` (the socket is made on a thread
/// that entered it, and stays there), half-closes and reads everything the
/// server sends.
pub fn read_from(netns: &str, to: (Ipv4Addr, u16)) -> Option<String> {
    let file = std::fs::File::open(format!("/run/netns/{netns}")).ok()?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
            let mut stream =
                TcpStream::connect_timeout(&to.into(), std::time::Duration::from_secs(2)).ok()?;
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .ok()?;
            stream.shutdown(std::net::Shutdown::Write).ok()?;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stream, &mut text).ok()?;
            Some(text)
        })
        .join()
        .ok()?
    })
}
