//! Socket options and calls nix or std lack in the shape needed: the peer's
//! supplementary groups (`api/peer.rs`), UDP with `IP_PKTINFO` so a reply
//! leaves from the address the client wrote to (`net/udp.rs`), a
//! shutdown that treats a gone peer as done (`net/tcp.rs`), and whether the
//! peer of a unix socket hung up (`api/stream.rs`).
//!
//! All of them borrow the socket for the call only and return `io::Error`,
//! so callers can put it into their own error variants.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, shutdown, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    Shutdown, SockaddrIn,
};

/// `SO_PEERGROUPS` (Linux 4.13+); not exported by libc for every target.
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 0x3d;
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups of the process at the other end of a unix
/// socket, as they were when it connected (`SO_PEERGROUPS`).
pub fn peer_groups(socket: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let gid_size = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = (groups.len() * gid_size) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of exactly `len` bytes, `len` points
        // to a valid socklen_t, and the fd is borrowed for the whole call.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let needed = len as usize / gid_size;
        if rc == 0 {
            groups.truncate(needed);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() {
            groups.resize(needed, 0);
            continue;
        }
        return Err(err);
    }
}

/// Asks for `IP_PKTINFO` on a UDP socket, so [`recv_from_to`] can tell which
/// local address a datagram was sent to.
pub fn set_pktinfo(socket: BorrowedFd<'_>) -> io::Result<()> {
    setsockopt(&socket, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)
}

/// Receives one datagram: `(length, sender, local address it was sent to)`.
/// The local address is known only with [`set_pktinfo`].
pub fn recv_from_to(
    socket: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddrV4, Option<Ipv4Addr>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    let msg = recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let mut local = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                local = Some(Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr)));
            }
        }
    }
    let from = msg
        .address
        .map(SocketAddrV4::from)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))?;
    Ok((msg.bytes, from, local))
}

/// Sends one datagram to `to`, from local address `from` when given (so a
/// reply leaves from the address the client wrote to).
pub fn send_to_from(
    socket: BorrowedFd<'_>,
    buf: &[u8],
    to: SocketAddrV4,
    from: Option<Ipv4Addr>,
) -> io::Result<usize> {
    let iov = [io::IoSlice::new(buf)];
    let dest = SockaddrIn::from(to);
    let info = from.map(|addr| libc::in_pktinfo {
        ipi_ifindex: 0,
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    });
    let cmsgs: Vec<ControlMessage<'_>> = info.iter().map(ControlMessage::Ipv4PacketInfo).collect();
    sendmsg(
        socket.as_raw_fd(),
        &iov,
        &cmsgs,
        MsgFlags::MSG_DONTWAIT,
        Some(&dest),
    )
    .map_err(io::Error::from)
}

/// Whether the other end of the connected socket `fd` is gone: `POLLHUP`,
/// which a unix stream socket reports once its peer closed it (not after a
/// mere `shutdown(SHUT_WR)`), asked without waiting. False on any error.
/// The caller must pass an fd it keeps open for the call; a stale one only
/// gives a wrong answer (or `POLLNVAL`), nothing worse.
pub fn peer_hung_up(fd: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: poll reads and writes only `pfd`, which lives for the whole
    // call, and is given a count of 1; a timeout of 0 returns at once.
    let ready = unsafe { libc::poll(&mut pfd, 1, 0) };
    ready == 1 && pfd.revents & libc::POLLHUP != 0
}

/// `shutdown(fd, SHUT_WR)` (or `SHUT_RDWR` with `both`): tells the peer no
/// more data follows. A socket that is not connected any more is fine.
pub fn shutdown_socket(fd: BorrowedFd<'_>, both: bool) -> io::Result<()> {
    let how = if both {
        Shutdown::Both
    } else {
        Shutdown::Write
    };
    match shutdown(fd.as_raw_fd(), how) {
        Err(Errno::ENOTCONN) => Ok(()),
        other => other.map_err(io::Error::from),
    }
}

/// Starts a TCP connect on a non-blocking socket and looks once, without
/// waiting, whether it is already done (a connect to this host usually
/// completes within the call): `Ok(true)` connected, `Ok(false)` still in
/// progress (wait for writability, then read `SO_ERROR`), or the error (a
/// refused connection fails here, at once). Saves the event-loop round trip
/// (register, wait, deregister) for the common case.
pub fn connect_now(socket: BorrowedFd<'_>, addr: std::net::SocketAddr) -> io::Result<bool> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::socket::{connect, getsockopt, SockaddrStorage};
    let to = SockaddrStorage::from(addr);
    match connect(socket.as_raw_fd(), &to) {
        Ok(()) => return Ok(true),
        Err(Errno::EINPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    let mut fds = [PollFd::new(socket, PollFlags::POLLOUT)];
    if poll(&mut fds, PollTimeout::ZERO)? == 0 {
        return Ok(false);
    }
    match getsockopt(&socket, sockopt::SocketError)? {
        0 => Ok(true),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

/// A non-blocking, close-on-exec TCP socket (IPv6 when `v6`), not connected.
pub fn tcp_socket(v6: bool) -> io::Result<std::os::fd::OwnedFd> {
    use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    socket(family, SockType::Stream, flags, None).map_err(io::Error::from)
}
