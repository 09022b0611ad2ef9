//! TCP port forwarding: each accepted connection gets its own connection to
//! the sandbox address, and bytes move in both directions with `splice(2)`
//! through a pipe, so they never enter user space.
//!
//! Half-close is forwarded: when one side finishes sending, the other side's
//! write half is shut down and the opposite direction goes on until it ends
//! too. An error in either direction (reset, unreachable sandbox) closes both
//! connections. Connections are tasks owned by the listener task, so stopping
//! the listener stops them all.
//!
//! Hops that never leave this host (to the sandbox over its veth, and from a
//! client on this host) use Reno congestion control instead of the system
//! default. A paced algorithm such as BBR, a common default, spaces packets by
//! timer to match a network path's bandwidth; on a veth or loopback the only
//! limit is the CPU, and two paced connections in series left the cores idle
//! 10-20% of the time (port-mapped throughput went from 0.75x a direct
//! connection to 1.05x with Reno; see docs/networking.md). A client on
//! another host keeps the system's choice, as its path is a real network.

use std::io;
use std::net::{IpAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::hold::PortCounters;
use crate::sys;

/// Bytes one `splice` moves at most (and the pipe size asked for).
const CHUNK: usize = 1024 * 1024;

/// Congestion control for hops within this host: not paced, built into
/// every kernel and allowed to every user.
const LOCAL_HOP_CONGESTION: &str = "reno";

/// When a connection may be forwarded (see `hold.rs`), and its counts.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Whether the program can take connections now.
    pub available: watch::Receiver<bool>,
    /// How long a connection waits for it (zero: not at all).
    pub hold: Duration,
    /// This mapping's connection counts.
    pub counters: Arc<PortCounters>,
}

/// How often a refused connect is tried again within the hold.
const RETRY: Duration = Duration::from_millis(20);

/// Accepts connections on `listener` and forwards each to `target`, until
/// the task is aborted.
pub async fn serve(listener: TcpListener, target: SocketAddrV4, what: String, gate: Gate) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let what = what.clone();
                    let gate = gate.clone();
                    connections.spawn(async move {
                        let held = !*gate.available.borrow();
                        gate.counters.opened(held);
                        if let Err(e) = forward(client, target, gate.clone()).await {
                            tracing::debug!("port {what}: connection from {peer} to {target}: {e}");
                        }
                        gate.counters.closed();
                    });
                }
                Err(e) => {
                    // Out of fds or memory: back off instead of spinning.
                    tracing::warn!("port {what}: cannot accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Forwards one connection until both directions have ended.
async fn forward(client: TcpStream, target: SocketAddrV4, gate: Gate) -> io::Result<()> {
    let server = connect_when_available(target, gate).await?;
    tune_client(&client);
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let up = pump(&client, &server);
    let down = pump(&server, &client);
    tokio::pin!(up, down);
    let rest = tokio::select! {
        r = &mut up => { r?; down.await }
        r = &mut down => { r?; up.await }
    };
    if rest.is_err() {
        // Dropping both sockets after an error resets them; say so to neither
        // side's surprise by shutting them down first.
        let _ = sys::shutdown_socket(client.as_fd(), true);
        let _ = sys::shutdown_socket(server.as_fd(), true);
    }
    rest.map(drop)
}

/// Connects to the sandbox address once the program can take the
/// connection: waits while it is unavailable and retries a refused connect,
/// both until `gate.hold` has passed (then one last plain attempt).
async fn connect_when_available(target: SocketAddrV4, mut gate: Gate) -> io::Result<TcpStream> {
    if gate.hold.is_zero() {
        return connect_upstream(target).await;
    }
    let deadline = tokio::time::Instant::now() + gate.hold;
    // Err: the deadline passed (or the program is gone): go on regardless.
    let _ = tokio::time::timeout_at(deadline, gate.available.wait_for(|a| *a)).await;
    loop {
        match connect_upstream(target).await {
            Err(e)
                if e.kind() == io::ErrorKind::ConnectionRefused
                    && tokio::time::Instant::now() + RETRY < deadline =>
            {
                tokio::time::sleep(RETRY).await;
                let _ = tokio::time::timeout_at(deadline, gate.available.wait_for(|a| *a)).await;
            }
            other => return other,
        }
    }
}

/// Connects to the sandbox address, with the congestion control of a hop
/// that stays on this host.
async fn connect_upstream(target: SocketAddrV4) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    set_local_hop_congestion(&socket);
    socket.connect(target.into()).await
}

/// Gives a client on this host the congestion control of a local hop.
fn tune_client(client: &TcpStream) {
    if let (Ok(local), Ok(peer)) = (client.local_addr(), client.peer_addr()) {
        if same_host(local.ip(), peer.ip()) {
            set_local_hop_congestion(client);
        }
    }
}

/// Whether a connection between these two addresses stays on this host: a
/// loopback peer, or a peer that connected from the very address it reached.
fn same_host(local: IpAddr, peer: IpAddr) -> bool {
    peer.is_loopback() || peer == local
}

/// Switches a socket to [`LOCAL_HOP_CONGESTION`]. A kernel that refuses
/// (built without it, or a sysctl that forbids it) leaves the system default,
/// which still works, only slower.
fn set_local_hop_congestion(socket: &impl AsFd) {
    use nix::sys::socket::{setsockopt, sockopt::TcpCongestion};
    let name = std::ffi::OsString::from(LOCAL_HOP_CONGESTION);
    if let Err(e) = setsockopt(&socket.as_fd(), TcpCongestion, &name) {
        tracing::debug!("cannot use {LOCAL_HOP_CONGESTION} congestion control: {e}");
    }
}

/// Moves bytes from `src` to `dst` until `src` ends, then shuts down the
/// write half of `dst`. Returns the bytes moved. Reading and writing overlap:
/// while the pipe holds data for `dst`, more is read from `src` as long as
/// the pipe has room.
async fn pump(src: &TcpStream, dst: &TcpStream) -> io::Result<u64> {
    let (pipe_out, pipe_in) = sys::splice_pipe(CHUNK)?;
    let (mut queued, mut total, mut eof) = (0usize, 0u64, false);
    loop {
        if eof && queued == 0 {
            sys::shutdown_socket(dst.as_fd(), false)?;
            return Ok(total);
        }
        tokio::select! {
            biased;
            ready = dst.writable(), if queued > 0 => {
                ready?;
                match dst.try_io(Interest::WRITABLE, || {
                    sys::splice_move(pipe_out.as_fd(), dst.as_fd(), queued)
                }) {
                    Ok(moved) => {
                        queued -= moved;
                        total += moved as u64;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            ready = src.readable(), if !eof && queued < CHUNK => {
                ready?;
                match src.try_io(Interest::READABLE, || {
                    sys::splice_move(src.as_fd(), pipe_in.as_fd(), CHUNK - queued)
                }) {
                    Ok(0) => eof = true,
                    Ok(n) => queued += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo-like upstream that reads everything, then answers with the
    /// byte count and closes: only works if half-close is forwarded.
    async fn upstream() -> (SocketAddrV4, tokio::task::JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let std::net::SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            unreachable!()
        };
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut all = Vec::new();
                    s.read_to_end(&mut all).await.unwrap();
                    let sum: u64 = all.iter().map(|b| u64::from(*b)).sum();
                    s.write_all(format!("{} {sum}", all.len()).as_bytes())
                        .await
                        .unwrap();
                });
            }
        });
        (addr, task)
    }

    /// Forwarding at once (no hold), counted.
    fn gate() -> Gate {
        Gate {
            available: watch::channel(true).1,
            hold: Duration::ZERO,
            counters: Arc::default(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwards_many_connections_with_half_close() {
        let (target, _up) = upstream().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let proxy = tokio::spawn(serve(listener, target, "test".into(), gate()));
        let mut clients = JoinSet::new();
        for i in 0..32u64 {
            clients.spawn(async move {
                let len = 1000 + i as usize * 37_001;
                let data: Vec<u8> = (0..len).map(|j| (j * 7 + i as usize) as u8).collect();
                let sum: u64 = data.iter().map(|b| u64::from(*b)).sum();
                let mut s = TcpStream::connect(proxy_addr).await.unwrap();
                s.write_all(&data).await.unwrap();
                s.shutdown().await.unwrap();
                let mut answer = String::new();
                s.read_to_string(&mut answer).await.unwrap();
                assert_eq!(answer, format!("{len} {sum}"));
            });
        }
        while let Some(r) = clients.join_next().await {
            r.unwrap();
        }
        proxy.abort();
    }

    fn congestion(socket: &impl AsFd) -> String {
        use nix::sys::socket::{getsockopt, sockopt::TcpCongestion};
        let name = getsockopt(&socket.as_fd(), TcpCongestion).unwrap();
        name.to_string_lossy().trim_end_matches('\0').to_string()
    }

    #[tokio::test]
    async fn hops_within_the_host_use_unpaced_congestion_control() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let std::net::SocketAddr::V4(addr) = listener.local_addr().unwrap() else {
            unreachable!()
        };
        let upstream = connect_upstream(addr).await.unwrap();
        assert_eq!(congestion(&upstream), LOCAL_HOP_CONGESTION);
        // A client on this host (loopback) gets it too once tuned.
        let (accepted, _) = listener.accept().await.unwrap();
        tune_client(&accepted);
        assert_eq!(congestion(&accepted), LOCAL_HOP_CONGESTION);
    }

    #[test]
    fn same_host_is_loopback_or_the_reached_address_itself() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_host(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(same_host(ip("10.1.2.3"), ip("127.0.0.5")));
        assert!(same_host(ip("10.1.2.3"), ip("10.1.2.3")));
        assert!(same_host(ip("::1"), ip("::1")));
        assert!(!same_host(ip("10.1.2.3"), ip("10.1.2.4")));
        assert!(!same_host(ip("0.0.0.0"), ip("192.168.0.7")));
    }

    #[tokio::test]
    async fn an_unreachable_target_closes_the_client() {
        // A port nothing listens on: connect is refused, the client sees EOF.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let std::net::SocketAddr::V4(target) = closed.local_addr().unwrap() else {
            unreachable!()
        };
        drop(closed);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_addr = listener.local_addr().unwrap();
        let proxy = tokio::spawn(serve(listener, target, "test".into(), gate()));
        let mut s = TcpStream::connect(proxy_addr).await.unwrap();
        let mut buf = Vec::new();
        let n = s.read_to_end(&mut buf).await.unwrap_or(0);
        assert_eq!(n, 0);
        proxy.abort();
    }
}
