//! The only module with `unsafe`: raw syscalls behind safe functions (DESIGN rule 4).
#![allow(unsafe_code)]

// ---- logs ----
// (Full paths instead of `use` lines, so this section merges without touching the imports above.)

/// A pipe whose two ends are close-on-exec: `(read end, write end)`.
pub fn log_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Sets or clears one file status flag (`O_NONBLOCK`, `O_APPEND`) of an open file description.
pub fn set_status_flag(
    fd: std::os::fd::BorrowedFd<'_>,
    flag: nix::fcntl::OFlag,
    on: bool,
) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(raw, FcntlArg::F_GETFL)?);
    let wanted = if on { flags | flag } else { flags - flag };
    if wanted != flags {
        fcntl(raw, FcntlArg::F_SETFL(wanted))?;
    }
    Ok(())
}

/// Asks for a pipe buffer of `bytes`; returns the size the kernel granted.
pub fn set_pipe_size(fd: std::os::fd::BorrowedFd<'_>, bytes: usize) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let size = i32::try_from(bytes).unwrap_or(i32::MAX);
    let granted = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(size))?;
    Ok(usize::try_from(granted).unwrap_or(0))
}

/// Moves up to `len` bytes from a pipe into a file at the file's offset, without
/// copying them through user space. Never waits for the pipe (`EAGAIN` comes back
/// as `WouldBlock`); `Ok(0)` means every writer closed the pipe. The file must not
/// be in append mode (the kernel refuses `O_APPEND` targets with `EINVAL`).
pub fn splice_pipe_to_file(
    pipe: impl std::os::fd::AsFd,
    file: impl std::os::fd::AsFd,
    len: usize,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
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
        return Err(std::io::Error::last_os_error());
    }
    Ok(moved as usize)
}

/// Registers an owned file with the current tokio reactor (a pipe end, a FIFO).
/// Fails, handing the file back, for files epoll cannot watch (regular files).
pub fn register_async(
    file: std::fs::File,
    interest: tokio::io::Interest,
) -> Result<
    tokio::io::unix::AsyncFd<std::fs::File>,
    tokio::io::unix::AsyncFdRegisterError<std::fs::File>,
> {
    // SAFETY: the `File` owns its descriptor and moves into the `AsyncFd`, so
    // the descriptor stays open and refers to the same file description until
    // the `AsyncFd` drops it; `File::as_raw_fd` always returns that descriptor.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(file, interest) }
}
