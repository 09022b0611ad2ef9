//! Pipes and zero-copy moves: program output pipes, their buffer size, and
//! `splice(2)` from a pipe to a file (`logs/`) or between sockets through a
//! pipe (`net/tcp.rs`).
//!
//! Every pipe end is close-on-exec; the splice calls never wait (`EAGAIN`
//! comes back as `WouldBlock`, for the caller's readiness loop).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};

use super::fd::dup_cloexec;

/// A pipe whose two ends are close-on-exec: `(read end, write end)`. Both are
/// above 2 even when the daemon's own stdin/stdout/stderr are closed, so a
/// child's stdio set-up never overwrites one end with another.
pub fn log_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let above_stdio = |fd: OwnedFd| -> io::Result<OwnedFd> {
        if fd.as_raw_fd() > 2 {
            return Ok(fd);
        }
        Ok(dup_cloexec(fd.as_raw_fd())?)
    };
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// Whether every writer has closed `pipe` and nothing is left to read in it
/// (a zero-timeout `poll(2)` reports the hang-up and no data). Never waits;
/// `false` when in doubt.
pub fn pipe_ended_empty(pipe: BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(pipe, PollFlags::POLLIN)];
    if poll(&mut fds, PollTimeout::ZERO).is_err() {
        return false;
    }
    fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLHUP) && !r.contains(PollFlags::POLLIN))
}

/// Asks for a pipe buffer of `bytes`; returns the size the kernel granted.
pub fn set_pipe_size(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let size = i32::try_from(bytes).unwrap_or(i32::MAX);
    let granted = fcntl(fd.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(size))?;
    Ok(usize::try_from(granted).unwrap_or(0))
}

/// Moves up to `len` bytes from a pipe into a file at the file's offset, without
/// copying them through user space. Never waits for the pipe (`EAGAIN` comes back
/// as `WouldBlock`); `Ok(0)` means every writer closed the pipe. The file must not
/// be in append mode (the kernel refuses `O_APPEND` targets with `EINVAL`).
pub fn splice_pipe_to_file(pipe: impl AsFd, file: impl AsFd, len: usize) -> io::Result<usize> {
    let flags = libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK;
    let (pipe, file) = (pipe.as_fd(), file.as_fd());
    // SAFETY: both descriptors are borrowed, hence open for the whole call; null
    // offsets make the kernel use (and advance) the descriptors' own positions,
    // so no pointer is handed over.
    let moved = unsafe {
        libc::splice(
            pipe.as_raw_fd(),
            std::ptr::null_mut(),
            file.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(moved as usize)
}

/// A non-blocking, close-on-exec pipe `(read end, write end)`, grown to
/// `size` bytes when the kernel allows (the default 64 KiB otherwise).
pub fn splice_pipe(size: usize) -> io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) =
        nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let size = i32::try_from(size).unwrap_or(i32::MAX);
    // EPERM above /proc/sys/fs/pipe-max-size for unprivileged users: keep the default.
    let _ = fcntl(read.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(size));
    Ok((read, write))
}

/// Moves up to `len` bytes from `from` to `to` without copying them to user
/// space (`splice(2)`, non-blocking); one side must be a pipe. `Ok(0)` is end
/// of file; `WouldBlock` means "wait for readiness".
pub fn splice_move(from: BorrowedFd<'_>, to: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    splice(
        from,
        None,
        to,
        None,
        len,
        SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
    )
    .map_err(io::Error::from)
}
