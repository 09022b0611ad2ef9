//! The only module with `unsafe`: raw syscalls behind safe functions (DESIGN rule 4).
//!
//! Owns the start of programs ([`spawn_child`], vfork-style clone + exec):
//! everything the child needs is prepared by the caller before the clone
//! ([`ChildSetup`]); between clone and exec the child makes only raw,
//! async-signal-safe syscalls, allocates nothing and takes no lock (DESIGN
//! rule 5). An exec failure is reported through a
//! close-on-exec pipe and never waited for here: the failed child is reaped by
//! the one reaper like every other child (DESIGN rule 3).
//!
//! Other areas append their wrappers at the end, each under its own heading.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

/// How the child's process group is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// `setsid()`: own session and process group, no controlling terminal.
    NewSession,
    /// `setpgid(0, 0)`, then make the group the foreground group of this
    /// terminal (single-command mode with a tty, like tini).
    ForegroundGroup {
        /// The terminal fd (usually 0).
        tty: RawFd,
    },
    /// `setpgid(0, 0)` only.
    NewGroup,
}

/// Uid, gid and supplementary groups to switch to, resolved before the fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: libc::uid_t,
    /// Primary group id.
    pub gid: libc::gid_t,
    /// Supplementary groups.
    pub groups: Vec<libc::gid_t>,
}

/// Everything the child does between fork and exec, prepared in the parent.
#[derive(Debug)]
pub struct ChildSetup {
    /// Resolved executable path.
    pub path: CString,
    /// argv (argv[0] first).
    pub argv: Vec<CString>,
    /// Complete environment, `KEY=value`.
    pub envp: Vec<CString>,
    /// Working directory.
    pub cwd: Option<CString>,
    /// umask.
    pub umask: Option<libc::mode_t>,
    /// User switch (done last).
    pub ids: Option<Ids>,
    /// Network namespace to enter (fd opened by the caller).
    pub netns: Option<RawFd>,
    /// Process group / session setup.
    pub session: Session,
    /// fds to install as 0, 1, 2 (`None`: keep the daemon's).
    pub stdio: [Option<RawFd>; 3],
}

/// The step of the child setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnStage {
    /// Creating the error pipe.
    Pipe,
    /// fork().
    Fork,
    /// setsid / setpgid / tcsetpgrp.
    Session,
    /// setns into the network namespace.
    Setns,
    /// chdir to `directory`.
    Chdir,
    /// dup2 of stdio.
    Stdio,
    /// setgroups / setgid / setuid.
    User,
    /// execve.
    Exec,
}

impl SpawnStage {
    fn from_u8(v: u8) -> SpawnStage {
        match v {
            2 => SpawnStage::Session,
            3 => SpawnStage::Setns,
            4 => SpawnStage::Chdir,
            5 => SpawnStage::Stdio,
            6 => SpawnStage::User,
            _ => SpawnStage::Exec,
        }
    }

    /// Words for messages: `cannot change directory`.
    pub fn describe(self) -> &'static str {
        match self {
            SpawnStage::Pipe => "cannot create a pipe",
            SpawnStage::Fork => "cannot fork",
            SpawnStage::Session => "cannot create a session",
            SpawnStage::Setns => "cannot enter the network namespace",
            SpawnStage::Chdir => "cannot change directory",
            SpawnStage::Stdio => "cannot set up stdin/stdout/stderr",
            SpawnStage::User => "cannot switch user",
            SpawnStage::Exec => "cannot execute",
        }
    }
}

/// A spawn that failed, with the failing step and the OS error. `pid` is the
/// child that reported the failure (already exiting; the reaper collects it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpawnFailure {
    /// Failed step.
    pub stage: SpawnStage,
    /// OS error.
    pub errno: Errno,
    /// The child that failed after the fork, if it got that far.
    pub pid: Option<Pid>,
}

/// Stack size of the child between clone and exec (it only makes syscalls).
const CHILD_STACK: usize = 64 * 1024;

/// What the child reads between clone and exec; all prepared by the parent.
struct ChildContext<'a> {
    setup: &'a ChildSetup,
    argv: &'a [*const libc::c_char],
    envp: &'a [*const libc::c_char],
    groups: &'a [libc::gid_t],
    err_fd: RawFd,
    /// The fds to install as 0, 1, 2 (slots, or the daemon's own 0-2).
    stdio: [Option<RawFd>; 3],
    /// The netns fd (a slot).
    netns: Option<RawFd>,
    /// First fd not copied into the child's own fd table (-1: copy all).
    bound: RawFd,
}

/// Low fd numbers reserved at start-up for what a child needs (stdio, the
/// netns fd, the error pipe). The child shares the daemon's fd table
/// (CLONE_FILES) only until its first syscall, `close_range(bound, ~0,
/// CLOSE_RANGE_UNSHARE)`, which gives it a private table holding just the
/// fds below `bound`. Without this, every spawn would copy the daemon's whole
/// fd table (two pipe ends per program) and close it again at exec: O(n) per
/// spawn, O(n²) to start n programs.
struct FdSlots {
    /// `/dev/null`, what a slot holds between spawns.
    null: OwnedFd,
    /// The reserved fds: 0-2 for stdio, 3 netns, 4 error pipe.
    slots: [OwnedFd; 5],
    bound: RawFd,
}

static FD_SLOTS: std::sync::OnceLock<Option<FdSlots>> = std::sync::OnceLock::new();

/// Reserves the low fd slots used by [`spawn_child`]; call early, before
/// many fds are open, so that few fds lie below the slots. Later calls do
/// nothing. Without slots (e.g. no /dev/null), spawns still work, only
/// slower with many programs.
pub fn reserve_spawn_slots() {
    FD_SLOTS.get_or_init(|| {
        let open = || open_dev_null().ok();
        let null = open()?;
        let slots = [open()?, open()?, open()?, open()?, open()?];
        let bound = slots.iter().map(|f| f.as_raw_fd()).max()? + 1;
        Some(FdSlots { null, slots, bound })
    });
}

/// Starts a program as described by `setup`. Returns once the child has
/// exec'd (or reported why it could not): the error pipe is close-on-exec,
/// so EOF means success.
///
/// Like `posix_spawn`, the child is created with `clone(CLONE_VM |
/// CLONE_VFORK)`: it borrows the daemon's memory until exec instead of
/// copying its page tables, and the calling thread sleeps until then. The
/// child therefore writes nothing but its own stack, makes raw syscalls
/// only, and never runs a handler of the daemon (every signal is blocked
/// across the clone and the child resets all dispositions before unblocking).
pub fn spawn_child(setup: &ChildSetup) -> Result<Pid, SpawnFailure> {
    let fail = |stage, errno| SpawnFailure {
        stage,
        errno,
        pid: None,
    };
    // Pointer arrays built before the clone: the child must not allocate.
    let mut argv: Vec<*const libc::c_char> = setup.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = setup.envp.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let groups: &[libc::gid_t] = setup.ids.as_ref().map_or(&[], |i| &i.groups);

    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(SpawnStage::Pipe, e))?;
    reserve_spawn_slots();
    let slots = FD_SLOTS.get().and_then(Option::as_ref);
    // Copy what the child needs into the slots (close-on-exec copies).
    let place = |fd: Option<RawFd>, i: usize| -> Result<Option<RawFd>, SpawnFailure> {
        match (fd, slots) {
            (Some(fd), Some(sl)) => {
                let slot = sl.slots[i].as_raw_fd();
                // SAFETY: dup3 onto a slot we own; it replaces the slot's file.
                if unsafe { libc::dup3(fd, slot, libc::O_CLOEXEC) } < 0 {
                    return Err(fail(SpawnStage::Stdio, Errno::last()));
                }
                Ok(Some(slot))
            }
            (fd, _) => Ok(fd),
        }
    };
    // The daemon's own 0-2 (inherited stdio) are below the bound anyway.
    let stdio = |i: usize| -> Result<Option<RawFd>, SpawnFailure> {
        match setup.stdio[i] {
            Some(fd) if fd > 2 => place(Some(fd), i),
            other => Ok(other),
        }
    };
    let ctx = ChildContext {
        setup,
        argv: &argv,
        envp: &envp,
        groups,
        stdio: [stdio(0)?, stdio(1)?, stdio(2)?],
        netns: place(setup.netns, 3)?,
        err_fd: place(Some(err_write.as_raw_fd()), 4)?.unwrap_or(-1),
        bound: slots.map_or(-1, |sl| sl.bound),
    };
    let flags = libc::CLONE_VM
        | libc::CLONE_VFORK
        | if slots.is_some() {
            libc::CLONE_FILES
        } else {
            0
        }
        | libc::SIGCHLD;
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // The stack grows down: hand clone the 16-byte aligned top of the buffer.
    let top = (stack.as_mut_ptr() as usize + CHILD_STACK) & !15;

    let all = sigset_full();
    let mut old = sigset_empty();
    // SAFETY: both sets are initialised; pthread_sigmask only reads/writes them.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old) };
    // SAFETY: `child_entry` only reads `ctx` (alive until clone returns, since
    // CLONE_VFORK suspends this thread until the child execs or exits), writes
    // only its own stack (inside `stack`, alive as well), and makes raw
    // syscalls before exec or _exit.
    let pid = unsafe {
        libc::clone(
            child_entry,
            top as *mut libc::c_void,
            flags,
            &ctx as *const ChildContext as *mut libc::c_void,
        )
    };
    let clone_errno = Errno::last();
    // SAFETY: restoring the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    drop(stack);
    // Release the slots: the pipe ends they hold must not stay open here.
    if let Some(sl) = slots {
        for slot in &sl.slots {
            // SAFETY: dup3 of our /dev/null onto a slot we own.
            unsafe { libc::dup3(sl.null.as_raw_fd(), slot.as_raw_fd(), libc::O_CLOEXEC) };
        }
    }
    if pid < 0 {
        return Err(fail(SpawnStage::Fork, clone_errno));
    }
    drop(err_write);
    let child = Pid::from_raw(pid);

    let mut report = [0u8; 5];
    let mut got = 0;
    while got < report.len() {
        match nix::unistd::read(err_read.as_raw_fd(), &mut report[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    if got == report.len() {
        let errno = i32::from_ne_bytes([report[1], report[2], report[3], report[4]]);
        return Err(SpawnFailure {
            stage: SpawnStage::from_u8(report[0]),
            errno: Errno::from_raw(errno),
            pid: Some(child),
        });
    }
    Ok(child)
}

extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildContext` handed to clone by `spawn_child`,
    // alive until this child execs or exits.
    unsafe {
        let ctx = &*(arg as *const ChildContext);
        child_after_clone(ctx)
    }
}

fn sigset_full() -> libc::sigset_t {
    // SAFETY: sigfillset initialises the zeroed set.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut s);
        s
    }
}

fn sigset_empty() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set.
    unsafe {
        let mut s: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut s);
        s
    }
}

/// The kernel's `struct sigaction` (x86_64 / aarch64 layout), for the raw syscall.
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Runs in the cloned child: raw syscalls only, no allocation; never returns.
///
/// # Safety
/// Must only be called in the child created by `spawn_child`.
unsafe fn child_after_clone(ctx: &ChildContext) -> ! {
    let setup = ctx.setup;
    let err_fd = ctx.err_fd;
    let report = |stage: u8| -> ! {
        let errno = *libc::__errno_location();
        let e = errno.to_ne_bytes();
        let buf = [stage, e[0], e[1], e[2], e[3]];
        libc::write(err_fd, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    };

    // 0. a private fd table holding only the fds below the slots' bound
    if ctx.bound > 0
        && libc::syscall(
            libc::SYS_close_range,
            ctx.bound as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        ) < 0
        && libc::syscall(libc::SYS_unshare, libc::CLONE_FILES) < 0
    {
        report(5);
    }

    // 1. session / process group
    match setup.session {
        Session::NewSession => {
            if libc::setsid() < 0 {
                report(2);
            }
        }
        Session::NewGroup => {
            if libc::setpgid(0, 0) < 0 {
                report(2);
            }
        }
        Session::ForegroundGroup { tty } => {
            if libc::setpgid(0, 0) < 0 {
                report(2);
            }
            // We are now in a background group: tcsetpgrp would raise
            // SIGTTOU, which is blocked here (the whole mask is).
            let pgrp: libc::pid_t = libc::getpid();
            libc::ioctl(tty, libc::TIOCSPGRP, &pgrp as *const libc::pid_t);
        }
    }
    // 2. network namespace
    if let Some(fd) = ctx.netns {
        if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
            report(3);
        }
    }
    // 3. umask
    if let Some(m) = setup.umask {
        libc::umask(m);
    }
    // 4. directory
    if let Some(cwd) = &setup.cwd {
        if libc::chdir(cwd.as_ptr()) < 0 {
            report(4);
        }
    }
    // 5. stdio
    for (target, src) in ctx.stdio.iter().enumerate() {
        if let Some(src) = *src {
            let target = target as RawFd;
            if src == target {
                let flags = libc::fcntl(src, libc::F_GETFD);
                if flags < 0 || libc::fcntl(src, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    report(5);
                }
            } else if libc::dup2(src, target) < 0 {
                report(5);
            }
        }
    }
    // 6. signal dispositions to default, then (at exec) an empty mask.
    // The raw syscall, not libc's sigaction: glibc refuses the signals it
    // reserves for itself (32, 33), which may still be inherited as ignored.
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    // 7. user and groups, last. Raw syscalls: glibc's wrappers would try to
    // change the ids of every thread of the daemon, whose memory we share.
    if let Some(ids) = &setup.ids {
        let groups = ctx.groups;
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0
            || libc::syscall(libc::SYS_setgid, ids.gid) < 0
            || libc::syscall(libc::SYS_setuid, ids.uid) < 0
        {
            report(6);
        }
    }
    let empty: u64 = 0;
    libc::syscall(
        libc::SYS_rt_sigprocmask,
        libc::SIG_SETMASK,
        &empty as *const u64,
        std::ptr::null_mut::<u64>(),
        8usize,
    );
    libc::execve(setup.path.as_ptr(), ctx.argv.as_ptr(), ctx.envp.as_ptr());
    report(7)
}

/// Sends `sig` to a process, or to its process group when `group`.
/// A process that is already gone (ESRCH) is not an error.
pub fn send_signal(pid: Pid, sig: nix::sys::signal::Signal, group: bool) -> Result<(), Errno> {
    let res = if group {
        nix::sys::signal::killpg(pid, sig)
    } else {
        nix::sys::signal::kill(pid, sig)
    };
    match res {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(e),
    }
}

/// True while the process group `pgid` has at least one member.
pub fn group_alive(pgid: Pid) -> bool {
    !matches!(nix::sys::signal::killpg(pgid, None), Err(Errno::ESRCH))
}

/// Makes this process a child subreaper, so orphans of its programs are
/// re-parented to it (not needed as PID 1, which adopts them anyway).
pub fn set_subreaper() -> Result<(), Errno> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes plain integers.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

/// Opens `/dev/null` read-write, close-on-exec (the programs' stdin).
pub fn open_dev_null() -> std::io::Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    Ok(OwnedFd::from(f))
}

/// True when fd 0 is a terminal.
pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(0).unwrap_or(false)
}

/// Duplicates an fd, close-on-exec.
pub fn dup_cloexec(fd: RawFd) -> Result<OwnedFd, Errno> {
    let new = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: `new` is a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

// ---- api ----

/// `SO_PEERGROUPS` (Linux 4.13+); not exported by libc for every target.
#[cfg(any(target_arch = "sparc", target_arch = "sparc64"))]
const SO_PEERGROUPS: libc::c_int = 0x3d;
#[cfg(not(any(target_arch = "sparc", target_arch = "sparc64")))]
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups of the process at the other end of a unix
/// socket, as they were when it connected (`SO_PEERGROUPS`).
pub fn peer_groups(socket: std::os::fd::BorrowedFd<'_>) -> std::io::Result<Vec<u32>> {
    let gid_size = std::mem::size_of::<libc::gid_t>();
    let mut groups: Vec<libc::gid_t> = vec![0; 32];
    loop {
        let mut len = (groups.len() * gid_size) as libc::socklen_t;
        // SAFETY: `groups` is a live buffer of exactly `len` bytes, `len` points
        // to a valid socklen_t, and the fd is borrowed for the whole call.
        let rc = unsafe {
            libc::getsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
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
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::ERANGE) && needed > groups.len() {
            groups.resize(needed, 0);
            continue;
        }
        return Err(err);
    }
}

// ---- logs ----
// (Full paths instead of `use` lines, so this section merges without touching the imports above.)

/// A pipe whose two ends are close-on-exec: `(read end, write end)`. Both are
/// above 2 even when the daemon's own stdin/stdout/stderr are closed, so a
/// child's stdio set-up never overwrites one end with another.
pub fn log_pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::{AsRawFd, OwnedFd};
    let above_stdio = |fd: OwnedFd| -> std::io::Result<OwnedFd> {
        if fd.as_raw_fd() > 2 {
            return Ok(fd);
        }
        Ok(dup_cloexec(fd.as_raw_fd())?)
    };
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((above_stdio(read)?, above_stdio(write)?))
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

// ---- logs: idle pipes ----

/// An epoll instance owned by the daemon, to be registered with tokio.
#[derive(Debug)]
pub struct OwnedEpoll(nix::sys::epoll::Epoll);

impl OwnedEpoll {
    /// A new epoll instance (close-on-exec).
    pub fn new() -> std::io::Result<OwnedEpoll> {
        let flags = nix::sys::epoll::EpollCreateFlags::EPOLL_CLOEXEC;
        Ok(OwnedEpoll(nix::sys::epoll::Epoll::new(flags)?))
    }

    /// The instance, for adding, removing and waiting.
    pub fn epoll(&self) -> &nix::sys::epoll::Epoll {
        &self.0
    }
}

impl AsRawFd for OwnedEpoll {
    fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

/// Registers an epoll instance with the current tokio reactor: readable when
/// any of its entries is ready.
pub fn register_epoll(
    epoll: OwnedEpoll,
) -> Result<tokio::io::unix::AsyncFd<OwnedEpoll>, tokio::io::unix::AsyncFdRegisterError<OwnedEpoll>>
{
    // SAFETY: `OwnedEpoll` owns its descriptor (a private `OwnedFd`, never
    // replaced) and moves into the `AsyncFd`, so the descriptor stays open
    // and refers to the same epoll instance until the `AsyncFd` drops it;
    // `as_raw_fd` always returns that descriptor.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE)
    }
}
