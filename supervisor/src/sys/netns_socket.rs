//! TCP sockets made inside another network namespace, for the checks of
//! sandboxed programs: a socket belongs to the namespace it was created in,
//! so one made there and connected from the runtime reaches the sandbox's
//! own `127.0.0.1` and addresses.
//!
//! Each socket is made on a short-lived `std::thread` that enters the
//! namespace, creates the socket and exits (DESIGN §9: never `setns` a tokio
//! worker; no thread outlives its job in a foreign namespace). Only the
//! socket's creation happens there; the connect itself waits in the runtime
//! like any other.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

/// A non-blocking, close-on-exec TCP socket (IPv6 when `v6`) created in the
/// network namespace `netns`.
pub async fn tcp_socket_in(netns: Arc<OwnedFd>, v6: bool) -> io::Result<OwnedFd> {
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("nsvisor-netns-socket".into())
        .spawn(move || {
            let made = super::enter_netns_thread(netns.as_fd()).and_then(|()| {
                socket(
                    family,
                    SockType::Stream,
                    SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                    None,
                )
                .map_err(io::Error::from)
            });
            let _ = reply.send(made);
        })?;
    answer
        .await
        .map_err(|_| io::Error::other("the namespace socket thread ended without an answer"))?
}
