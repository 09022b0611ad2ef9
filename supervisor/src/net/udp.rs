//! UDP port forwarding with one flow per client: the first datagram from a
//! client address opens a socket connected to the sandbox address; replies on
//! it go back to that client, from the host address and port the client
//! wrote to (with a wildcard listener, `IP_PKTINFO` tells which local address
//! that was). A flow idle for [`IDLE`] is closed; at most [`MAX_FLOWS`] exist,
//! the least recently used one makes room for a new client.
//!
//! The listener task owns the flow table; each flow's reply reader sends its
//! datagrams back to it over a channel, so one task writes to the listener
//! and keeps the table.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::sys;

/// A flow with no datagram either way for this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);
/// Most flows open at once per mapping.
pub const MAX_FLOWS: usize = 1024;
/// Largest datagram forwarded.
const MAX_DATAGRAM: usize = 65_536;

/// A client's flow: what the table keeps.
#[derive(Debug)]
struct Flow {
    upstream: Arc<UdpSocket>,
    /// Local address the client wrote to (wildcard listeners only).
    local: Option<Ipv4Addr>,
    reader: JoinHandle<()>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Client flows by client address (pure bookkeeping, no I/O).
#[derive(Debug)]
struct Flows<F> {
    by_client: HashMap<SocketAddr, (Instant, F)>,
}

impl<F> Default for Flows<F> {
    fn default() -> Self {
        Flows {
            by_client: HashMap::new(),
        }
    }
}

impl<F> Flows<F> {
    fn get_mut(&mut self, client: &SocketAddr, now: Instant) -> Option<&mut F> {
        self.by_client.get_mut(client).map(|(last, f)| {
            *last = now;
            f
        })
    }

    /// Adds a flow, evicting the least recently used one when full.
    fn insert(&mut self, client: SocketAddr, flow: F, now: Instant, max: usize) {
        if self.by_client.len() >= max {
            if let Some(oldest) = self
                .by_client
                .iter()
                .min_by_key(|(_, (last, _))| *last)
                .map(|(c, _)| *c)
            {
                self.by_client.remove(&oldest);
            }
        }
        self.by_client.insert(client, (now, flow));
    }

    /// Removes flows idle for `idle` or longer.
    fn expire(&mut self, now: Instant, idle: Duration) -> usize {
        let before = self.by_client.len();
        self.by_client
            .retain(|_, (last, _)| now.saturating_duration_since(*last) < idle);
        before - self.by_client.len()
    }
}

/// Forwards datagrams between clients of `listener` and `target` until the
/// task is aborted.
pub async fn serve(listener: UdpSocket, target: SocketAddrV4, what: String) {
    let wildcard_v4 =
        matches!(listener.local_addr(), Ok(SocketAddr::V4(a)) if a.ip().is_unspecified());
    if wildcard_v4 {
        if let Err(e) = sys::set_pktinfo(listener.as_fd()) {
            tracing::warn!("port {what}: cannot ask for IP_PKTINFO, replies may leave from another address: {e}");
        }
    }
    let (replies_tx, mut replies) = mpsc::channel::<(SocketAddr, Vec<u8>)>(256);
    let mut flows: Flows<Flow> = Flows::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sweep = tokio::time::interval(IDLE / 4);
    loop {
        tokio::select! {
            received = recv(&listener, &mut buf, wildcard_v4) => match received {
                Ok((len, client, local)) => {
                    let now = Instant::now();
                    let upstream = match flows.get_mut(&client, now) {
                        Some(flow) => flow.upstream.clone(),
                        None => match open_flow(target, client, local, replies_tx.clone()).await {
                            Ok(flow) => {
                                let upstream = flow.upstream.clone();
                                flows.insert(client, flow, now, MAX_FLOWS);
                                upstream
                            }
                            Err(e) => {
                                tracing::debug!("port {what}: cannot open a flow to {target}: {e}");
                                continue;
                            }
                        },
                    };
                    if let Err(e) = upstream.send(&buf[..len]).await {
                        tracing::debug!("port {what}: datagram from {client} to {target} dropped: {e}");
                    }
                }
                Err(e) => tracing::debug!("port {what}: receive: {e}"),
            },
            Some((client, data)) = replies.recv() => {
                let now = Instant::now();
                let local = flows.get_mut(&client, now).and_then(|f| f.local);
                if let Err(e) = send(&listener, &data, client, local).await {
                    tracing::debug!("port {what}: reply to {client} dropped: {e}");
                }
            }
            _ = sweep.tick() => {
                flows.expire(Instant::now(), IDLE);
            }
        }
    }
}

async fn open_flow(
    target: SocketAddrV4,
    client: SocketAddr,
    local: Option<Ipv4Addr>,
    replies: mpsc::Sender<(SocketAddr, Vec<u8>)>,
) -> io::Result<Flow> {
    let upstream = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await?;
    upstream.connect(target).await?;
    let upstream = Arc::new(upstream);
    let reader_socket = upstream.clone();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match reader_socket.recv(&mut buf).await {
                Ok(len) => {
                    if replies.send((client, buf[..len].to_vec())).await.is_err() {
                        return;
                    }
                }
                // An ICMP "port unreachable" (nothing listens in the sandbox yet).
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(_) => return,
            }
        }
    });
    Ok(Flow {
        upstream,
        local,
        reader,
    })
}

/// One datagram from a client: `(len, client, local address it was sent to)`.
async fn recv(
    socket: &UdpSocket,
    buf: &mut [u8],
    pktinfo: bool,
) -> io::Result<(usize, SocketAddr, Option<Ipv4Addr>)> {
    if !pktinfo {
        let (len, from) = socket.recv_from(buf).await?;
        return Ok((len, from, None));
    }
    loop {
        socket.readable().await?;
        match socket.try_io(Interest::READABLE, || {
            sys::recv_from_to(socket.as_fd(), buf)
        }) {
            Ok((len, from, local)) => return Ok((len, SocketAddr::V4(from), local)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Sends a reply to `client`, from `local` when known.
async fn send(
    socket: &UdpSocket,
    data: &[u8],
    client: SocketAddr,
    local: Option<Ipv4Addr>,
) -> io::Result<usize> {
    let (SocketAddr::V4(to), Some(from)) = (client, local) else {
        return socket.send_to(data, client).await;
    };
    loop {
        socket.writable().await?;
        match socket.try_io(Interest::WRITABLE, || {
            sys::send_to_from(socket.as_fd(), data, to, Some(from))
        }) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn flows_expire_when_idle_and_use_keeps_them() {
        let t0 = Instant::now();
        let mut flows = Flows::default();
        flows.insert(client(1), "a", t0, 10);
        flows.insert(client(2), "b", t0, 10);
        let later = t0 + IDLE - Duration::from_secs(1);
        assert_eq!(flows.get_mut(&client(1), later), Some(&mut "a"));
        assert_eq!(flows.expire(t0 + IDLE, IDLE), 1);
        assert!(flows.get_mut(&client(2), t0 + IDLE).is_none());
        assert!(flows.get_mut(&client(1), t0 + IDLE).is_some());
    }

    #[test]
    fn a_full_table_evicts_the_least_recently_used() {
        let t0 = Instant::now();
        let mut flows = Flows::default();
        for port in 1..=3 {
            flows.insert(
                client(port),
                port,
                t0 + Duration::from_secs(u64::from(port)),
                3,
            );
        }
        flows.get_mut(&client(1), t0 + Duration::from_secs(10));
        flows.insert(client(4), 4, t0 + Duration::from_secs(11), 3);
        assert!(flows.get_mut(&client(2), t0).is_none());
        for port in [1, 3, 4] {
            assert!(flows.get_mut(&client(port), t0).is_some());
        }
    }

    #[tokio::test]
    async fn replies_come_back_to_each_client_from_the_mapped_port() {
        // Upstream: answers "PORT:payload" to every datagram.
        let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let SocketAddr::V4(target) = up.local_addr().unwrap() else {
            unreachable!()
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let (n, from) = up.recv_from(&mut buf).await.unwrap();
                let mut answer = format!("{}:", from.port()).into_bytes();
                answer.extend_from_slice(&buf[..n]);
                up.send_to(&answer, from).await.unwrap();
            }
        });
        // Wildcard listener exercises IP_PKTINFO.
        let listener = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = tokio::spawn(serve(listener, target, "test".into()));
        let mapped = SocketAddr::from(([127, 0, 0, 1], port));
        let mut flow_ports = Vec::new();
        for i in 0..3 {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.connect(mapped).await.unwrap(); // only accepts replies from `mapped`
            for round in 0..2 {
                let msg = format!("hello {i} {round}");
                c.send(msg.as_bytes()).await.unwrap();
                let mut buf = [0u8; 1500];
                let n = c.recv(&mut buf).await.unwrap();
                let answer = String::from_utf8_lossy(&buf[..n]).to_string();
                let (flow_port, echoed) = answer.split_once(':').unwrap();
                assert_eq!(echoed, msg);
                flow_ports.push((i, flow_port.to_string()));
            }
        }
        // Same client, same flow; different clients, different flows.
        assert_eq!(flow_ports[0].1, flow_ports[1].1);
        assert_ne!(flow_ports[0].1, flow_ports[2].1);
        proxy.abort();
    }
}
