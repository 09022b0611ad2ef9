//! Port mapping: the daemon listens on the host side of each `ports` entry and
//! forwards into the sandbox address, like Docker's userland proxy.
//!
//! Listeners are bound first, before the sandbox is built, so a port that
//! cannot be bound fails the program's start with an error naming the port and
//! nothing is half made. A running [`Proxy`] is a task on the daemon's
//! runtime; dropping it stops the listener and every connection or flow it
//! forwards. Traffic goes from the host namespace to the sandbox address
//! through the bridge, so the proxy never enters a namespace. TCP forwarding
//! is in `tcp.rs`, UDP in `udp.rs`.
//!
//! A mapping in `nat` mode is forwarded by the kernel (`nat.rs`); here its
//! host port is only *reserved*: bound, never listened on or read, so no
//! other process can take the port and the conflict is reported the same way.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use tokio::task::JoinHandle;

use super::hold::Forwarding;
use super::{protocol_name, tcp, udp, Error};
use crate::config::{PortMapping, PortMode, Protocol};

/// A host listener, bound and not serving yet.
#[derive(Debug)]
pub struct Bound {
    mapping: PortMapping,
    listener: Listener,
}

#[derive(Debug)]
enum Listener {
    Tcp(tokio::net::TcpListener),
    Udp(tokio::net::UdpSocket),
    /// A `nat` mapping's port: bound only.
    Reserved(Reservation),
}

/// A bound socket that holds a host port for a `nat` mapping; only held
/// (dropping it frees the port), never read.
#[derive(Debug)]
#[allow(dead_code)]
enum Reservation {
    Tcp(tokio::net::TcpSocket),
    Udp(std::net::UdpSocket),
}

/// A running forwarder (or a held reservation); stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    task: Option<JoinHandle<()>>,
    _reserved: Option<Reservation>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// `IP:PORT/PROTO` of a mapping's host side, for messages.
pub fn describe(mapping: &PortMapping) -> String {
    let host = SocketAddr::new(mapping.host_ip, mapping.host_port);
    format!("{host}/{}", protocol_name(mapping.protocol))
}

/// Binds the host side of every mapping of `program`. Must run inside the
/// tokio runtime. All or nothing: on error the ones bound are closed.
pub fn bind(program: &str, ports: &[PortMapping]) -> Result<Vec<Bound>, Error> {
    ports
        .iter()
        .map(|mapping| {
            let addr = SocketAddr::new(mapping.host_ip, mapping.host_port);
            let listener = match (mapping.mode, mapping.protocol) {
                (PortMode::Nat, Protocol::Tcp) => tokio::net::TcpSocket::new_v4()
                    .and_then(|s| s.bind(addr).map(|()| s))
                    .map(|s| Listener::Reserved(Reservation::Tcp(s))),
                (PortMode::Nat, Protocol::Udp) => {
                    std::net::UdpSocket::bind(addr).map(|s| Listener::Reserved(Reservation::Udp(s)))
                }
                (PortMode::Proxy, Protocol::Tcp) => std::net::TcpListener::bind(addr)
                    .and_then(|l| {
                        l.set_nonblocking(true)?;
                        tokio::net::TcpListener::from_std(l)
                    })
                    .map(Listener::Tcp),
                (PortMode::Proxy, Protocol::Udp) => std::net::UdpSocket::bind(addr)
                    .and_then(|s| {
                        s.set_nonblocking(true)?;
                        tokio::net::UdpSocket::from_std(s)
                    })
                    .map(Listener::Udp),
            };
            listener
                .map(|listener| Bound {
                    mapping: mapping.clone(),
                    listener,
                })
                .map_err(|source| Error::BindPort {
                    program: program.to_string(),
                    port: describe(mapping),
                    source,
                })
        })
        .collect()
}

/// Starts forwarding `bound` to `address` (the sandbox address) on the
/// mapping's sandbox port, for `program` (whose availability and counters
/// are in `forwarding`).
pub fn start(bound: Bound, address: Ipv4Addr, program: &str, forwarding: &Forwarding) -> Proxy {
    let target = SocketAddrV4::new(address, bound.mapping.port);
    let what = describe(&bound.mapping);
    let task = match bound.listener {
        Listener::Tcp(listener) => {
            let gate = tcp::Gate {
                available: forwarding.watch(program),
                hold: bound.mapping.hold,
                counters: forwarding.counters(program, &what),
            };
            tokio::spawn(tcp::serve(listener, target, what, gate))
        }
        Listener::Udp(socket) => tokio::spawn(udp::serve(socket, target, what)),
        Listener::Reserved(reserved) => {
            return Proxy {
                task: None,
                _reserved: Some(reserved),
            }
        }
    };
    Proxy {
        task: Some(task),
        _reserved: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(protocol: Protocol, host_port: u16) -> PortMapping {
        PortMapping {
            host_ip: "127.0.0.1".parse().unwrap(),
            host_port,
            port: 80,
            protocol,
            mode: PortMode::Proxy,
            hold: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn describes_the_host_side() {
        assert_eq!(
            describe(&mapping(Protocol::Udp, 5353)),
            "127.0.0.1:5353/udp"
        );
        let mut v6 = mapping(Protocol::Tcp, 80);
        v6.host_ip = "::1".parse().unwrap();
        assert_eq!(describe(&v6), "[::1]:80/tcp");
    }

    #[tokio::test]
    async fn a_taken_port_fails_with_its_name_and_releases_the_others() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let free_port = free.local_addr().unwrap().port();
        drop(free);
        let ports = [
            mapping(Protocol::Tcp, free_port),
            mapping(Protocol::Tcp, port),
        ];
        let err = bind("web", &ports).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "program \"web\": cannot listen on port 127.0.0.1:{port}/tcp: \
                 Address already in use (os error 98)"
            )
        );
        // The first listener was closed again.
        std::net::TcpListener::bind(("127.0.0.1", free_port)).unwrap();
    }

    #[tokio::test]
    async fn a_nat_port_is_reserved_without_listening() {
        let mut m = mapping(Protocol::Tcp, 0);
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        m.host_port = free.local_addr().unwrap().port();
        drop(free);
        m.mode = PortMode::Nat;
        let bound = bind("web", &[m.clone()]).unwrap();
        let forwarding = Forwarding::default();
        let bound = bound.into_iter().next().unwrap();
        let _held = start(bound, Ipv4Addr::LOCALHOST, "web", &forwarding);
        let taken = std::net::TcpListener::bind(("127.0.0.1", m.host_port)).unwrap_err();
        assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
        let refused = std::net::TcpStream::connect(("127.0.0.1", m.host_port)).unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
