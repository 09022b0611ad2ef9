//! The only module with `unsafe`: raw syscalls behind safe functions (DESIGN rule 4).
#![allow(unsafe_code)]

// ---- net ----
// Namespace, mount and zero-copy wrappers for `net/`. nix already wraps these
// calls safely; they are gathered here so every raw syscall of the daemon
// stays in this file, and they return `io::Error` so callers can put them
// into their own error variants.

/// Gives the calling *thread* a new, empty network namespace
/// (`unshare(CLONE_NEWNET)`). Only ever call on a dedicated `std::thread`
/// that exits afterwards: never on a tokio worker or blocking-pool thread.
pub fn unshare_netns() -> std::io::Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
}

/// Moves the calling *thread* into the network namespace `fd` refers to.
/// Same rule as [`unshare_netns`]: dedicated short-lived threads only.
pub fn enter_netns_thread(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
}

/// `mount --bind SOURCE TARGET`.
pub fn bind_mount(source: &std::path::Path, target: &std::path::Path) -> std::io::Result<()> {
    use nix::mount::{mount, MsFlags};
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(std::io::Error::from)
}

/// Makes the mount at `dir` shared, recursively (`mount --make-rshared DIR`).
/// Fails with `EINVAL` when `dir` is not a mount point.
pub fn make_rshared(dir: &std::path::Path) -> std::io::Result<()> {
    use nix::mount::{mount, MsFlags};
    mount(
        Some("none"),
        dir,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(std::io::Error::from)
}

/// `mount --rbind DIR DIR`: makes `dir` a mount point of its own.
pub fn rbind_onto_itself(dir: &std::path::Path) -> std::io::Result<()> {
    use nix::mount::{mount, MsFlags};
    mount(
        Some(dir),
        dir,
        Some("none"),
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(std::io::Error::from)
}

/// `umount --lazy TARGET` (`umount2(MNT_DETACH)`).
pub fn umount_detach(target: &std::path::Path) -> std::io::Result<()> {
    nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH).map_err(std::io::Error::from)
}

/// A non-blocking, close-on-exec pipe `(read end, write end)`, grown to
/// `size` bytes when the kernel allows (the default 64 KiB otherwise).
pub fn splice_pipe(size: usize) -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsRawFd;
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    let size = i32::try_from(size).unwrap_or(i32::MAX);
    // EPERM above /proc/sys/fs/pipe-max-size for unprivileged users: keep the default.
    let _ = fcntl(read.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(size));
    Ok((read, write))
}

/// Moves up to `len` bytes from `from` to `to` without copying them to user
/// space (`splice(2)`, non-blocking); one side must be a pipe. `Ok(0)` is end
/// of file; `WouldBlock` means "wait for readiness".
pub fn splice_move(
    from: std::os::fd::BorrowedFd<'_>,
    to: std::os::fd::BorrowedFd<'_>,
    len: usize,
) -> std::io::Result<usize> {
    use nix::fcntl::{splice, SpliceFFlags};
    splice(
        from,
        None,
        to,
        None,
        len,
        SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
    )
    .map_err(std::io::Error::from)
}

/// Asks for `IP_PKTINFO` on a UDP socket, so [`recv_from_to`] can tell which
/// local address a datagram was sent to.
pub fn set_pktinfo(socket: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
        .map_err(std::io::Error::from)
}

/// Receives one datagram: `(length, sender, local address it was sent to)`.
/// The local address is known only with [`set_pktinfo`].
pub fn recv_from_to(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddrV4, Option<std::net::Ipv4Addr>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn};
    use std::os::fd::AsRawFd;
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    let msg = recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(std::io::Error::from)?;
    let mut local = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                local = Some(std::net::Ipv4Addr::from(u32::from_be(
                    info.ipi_spec_dst.s_addr,
                )));
            }
        }
    }
    let from = msg
        .address
        .map(std::net::SocketAddrV4::from)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
    Ok((msg.bytes, from, local))
}

/// Sends one datagram to `to`, from local address `from` when given (so a
/// reply leaves from the address the client wrote to).
pub fn send_to_from(
    socket: std::os::fd::BorrowedFd<'_>,
    buf: &[u8],
    to: std::net::SocketAddrV4,
    from: Option<std::net::Ipv4Addr>,
) -> std::io::Result<usize> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};
    use std::os::fd::AsRawFd;
    let iov = [std::io::IoSlice::new(buf)];
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
    .map_err(std::io::Error::from)
}

/// Effective capabilities of this process (`CapEff` of `/proc/self/status`).
pub fn effective_caps() -> std::io::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no CapEff line"))
}

/// `shutdown(fd, SHUT_WR)` (or `SHUT_RDWR` with `both`): tells the peer no
/// more data follows. A socket that is not connected any more is fine.
pub fn shutdown_socket(fd: std::os::fd::BorrowedFd<'_>, both: bool) -> std::io::Result<()> {
    use nix::sys::socket::{shutdown, Shutdown};
    use std::os::fd::AsRawFd;
    let how = if both {
        Shutdown::Both
    } else {
        Shutdown::Write
    };
    match shutdown(fd.as_raw_fd(), how) {
        Err(nix::errno::Errno::ENOTCONN) => Ok(()),
        other => other.map_err(std::io::Error::from),
    }
}
