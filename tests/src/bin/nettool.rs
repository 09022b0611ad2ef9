//! `nettool`: the network fixture the sandbox tests run under nsvisor, so
//! they depend on no outside tool inside a sandbox.
//!
//! ```text
//! echo PORT [--bind ADDR] [--graceful]
//!                                serve TCP and UDP echo on PORT (default address 0.0.0.0);
//!                                 TCP echoes until the client half-closes, then closes.
//!                                 With --graceful, SIGTERM ends it only once no connection
//!                                 is open and none came for 100 ms (a server draining)
//! send ADDR:PORT MSG OUT [--within SECS]
//!                                connect over TCP (retrying up to SECS, default 10 s), send MSG,
//!                                 half-close, read the reply and write it to OUT (atomically)
//! peer PORT                      serve TCP on 0.0.0.0:PORT: read each connection until the client
//!                                 half-closes, answer with the client's address as this side
//!                                 sees it ("IP:PORT"), then close
//! ifaces OUT                     write "netns INODE", one "NAME link" line per interface and
//!                                 one "NAME ADDR/PREFIX" line per IPv4 address of the
//!                                 current network namespace to OUT
//! sleep                          sleep forever
//! ```
//! Errors go to stderr with exit code 1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["echo", port] => echo("0.0.0.0", port, false),
        ["echo", port, "--graceful"] => echo("0.0.0.0", port, true),
        ["echo", port, "--bind", addr] => echo(addr, port, false),
        ["send", to, msg, out] => send(to, msg, Path::new(out), "10"),
        ["send", to, msg, out, "--within", secs] => send(to, msg, Path::new(out), secs),
        ["peer", port] => peer(port),
        ["ifaces", out] => ifaces(Path::new(out)),
        ["sleep"] => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        _ => Err(
            "usage: nettool echo PORT [--bind ADDR] | send ADDR:PORT MSG OUT [--within SECS] \
             | peer PORT | ifaces OUT | sleep"
                .into(),
        ),
    };
    if let Err(e) = result {
        eprintln!("nettool: {e}");
        std::process::exit(1);
    }
}

type Result<T> = std::result::Result<T, String>;

fn echo(addr: &str, port: &str, graceful: bool) -> Result<()> {
    let at = format!("{addr}:{port}");
    // (open connections, accepts so far) for --graceful.
    let open = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    if graceful {
        drain_on_term(open.clone(), accepted.clone());
    }
    let tcp = TcpListener::bind(&at).map_err(|e| format!("tcp {at}: {e}"))?;
    let udp = UdpSocket::bind(&at).map_err(|e| format!("udp {at}: {e}"))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok((n, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], from);
        }
    });
    println!("echo on {at} (tcp, udp)");
    for stream in tcp.incoming() {
        let Ok(mut s) = stream else { continue };
        use std::sync::atomic::Ordering::SeqCst;
        open.fetch_add(1, SeqCst);
        accepted.fetch_add(1, SeqCst);
        let open = open.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = s.shutdown(std::net::Shutdown::Write);
            open.fetch_sub(1, SeqCst);
        });
    }
    Ok(())
}

/// SIGTERM (blocked here, so every thread spawned later has it blocked
/// too) is waited for by a thread that exits 0 once no connection is open
/// and none was accepted for 100 ms.
fn drain_on_term(
    open: std::sync::Arc<std::sync::atomic::AtomicU64>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use nix::sys::signal::{SigSet, Signal};
    use std::sync::atomic::Ordering::SeqCst;
    let mut term = SigSet::empty();
    term.add(Signal::SIGTERM);
    let _ = term.thread_block();
    std::thread::spawn(move || {
        let _ = term.wait();
        loop {
            let before = accepted.load(SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            if open.load(SeqCst) == 0 && accepted.load(SeqCst) == before {
                std::process::exit(0);
            }
        }
    });
}

fn peer(port: &str) -> Result<()> {
    let at = format!("0.0.0.0:{port}");
    let tcp = TcpListener::bind(&at).map_err(|e| format!("tcp {at}: {e}"))?;
    println!("peer on {at}");
    for stream in tcp.incoming() {
        let Ok(mut s) = stream else { continue };
        // Read what the client sends until it half-closes (closing with
        // unread data would reset the connection), then answer.
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = std::io::copy(&mut s, &mut std::io::sink());
        if let Ok(from) = s.peer_addr() {
            let _ = s.write_all(from.to_string().as_bytes());
        }
    }
    Ok(())
}

fn send(to: &str, msg: &str, out: &Path, within: &str) -> Result<()> {
    let addr: SocketAddr = to.parse().map_err(|e| format!("{to}: {e}"))?;
    let secs: u64 = within.parse().map_err(|e| format!("{within}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut stream = loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => return Err(format!("connect {addr}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(msg.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .map_err(|e| format!("receive: {e}"))?;
    println!("reply from {addr}: {reply}");
    write_atomic(out, &reply)
}

fn ifaces(out: &Path) -> Result<()> {
    let ino = std::fs::metadata("/proc/self/ns/net")
        .map_err(|e| format!("/proc/self/ns/net: {e}"))?
        .ino();
    let mut text = format!("netns {ino}\n");
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| format!("getifaddrs: {e}"))?;
    for ifa in addrs {
        if ifa
            .address
            .as_ref()
            .and_then(|a| a.as_link_addr())
            .is_some()
        {
            text.push_str(&format!("{} link\n", ifa.interface_name));
            continue;
        }
        let (Some(addr), Some(mask)) = (ifa.address, ifa.netmask) else {
            continue;
        };
        let (Some(addr), Some(mask)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) else {
            continue;
        };
        let prefix = u32::from(mask.ip()).count_ones();
        text.push_str(&format!("{} {}/{prefix}\n", ifa.interface_name, addr.ip()));
    }
    print!("{text}");
    write_atomic(out, &text)
}

fn write_atomic(out: &Path, text: &str) -> Result<()> {
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {e}", out.display()))
}
