//! The child between clone and exec: [`child_entry`] runs in the process
//! `spawn.rs` clones, on a borrowed stack and in the daemon's memory
//! (`CLONE_VM | CLONE_VFORK`), until it execs the program or exits 127.
//!
//! Invariants (DESIGN rule 5): only raw, async-signal-safe syscalls; no
//! allocation, no lock, no write outside its own stack; every value it reads
//! was prepared by the parent in [`ChildContext`]. A failed step is reported
//! as a [`Report`] (a [`SpawnStage`] byte and the errno, a fixed-size array
//! built on the stack) on the close-on-exec error pipe.

use std::os::fd::RawFd;

use super::spawn::{ChildSetup, Session, SpawnStage};

/// What the child reads between clone and exec; all prepared by the parent.
pub(super) struct ChildContext<'a> {
    pub(super) setup: &'a ChildSetup,
    pub(super) argv: &'a [*const libc::c_char],
    pub(super) envp: &'a [*const libc::c_char],
    pub(super) groups: &'a [libc::gid_t],
    pub(super) err_fd: RawFd,
    /// The fds to install as 0, 1, 2 (slots, or the daemon's own 0-2).
    pub(super) stdio: [Option<RawFd>; 3],
    /// The netns fd (a slot).
    pub(super) netns: Option<RawFd>,
    /// The mount namespace fd (a slot).
    pub(super) mntns: Option<RawFd>,
    /// An extra fd to install: (its slot, the number the program sees).
    pub(super) extra: Option<(RawFd, RawFd)>,
    /// First fd not copied into the child's own fd table (-1: copy all).
    pub(super) bound: RawFd,
}

/// A failed step as it crosses the error pipe: the stage byte, then the
/// errno in native byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Report {
    /// [`SpawnStage::to_wire`] of the failed step.
    pub(super) stage: u8,
    /// The errno after the failed call.
    pub(super) errno: i32,
}

impl Report {
    /// Bytes of an encoded report.
    pub(super) const LEN: usize = 5;

    /// The bytes the child writes (on its stack; no allocation).
    fn encode(stage: SpawnStage, errno: i32) -> [u8; Report::LEN] {
        let e = errno.to_ne_bytes();
        [stage.to_wire(), e[0], e[1], e[2], e[3]]
    }

    /// The report the parent read.
    pub(super) fn decode(buf: [u8; Report::LEN]) -> Report {
        Report {
            stage: buf[0],
            errno: i32::from_ne_bytes([buf[1], buf[2], buf[3], buf[4]]),
        }
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

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: two [`CapData`], 64 capabilities.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// Empties the ambient, effective, permitted and inheritable capability
/// sets of the calling thread (raw syscalls, no allocation). False on failure.
///
/// # Safety
/// Raw syscalls on stack data; safe to call in the child between clone and exec.
unsafe fn drop_capabilities() -> bool {
    // EINVAL: a kernel without ambient capabilities, so none to clear.
    if libc::syscall(
        libc::SYS_prctl,
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL,
        0,
        0,
        0,
    ) < 0
        && *libc::__errno_location() != libc::EINVAL
    {
        return false;
    }
    let header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let none = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    libc::syscall(libc::SYS_capset, &header as *const CapHeader, none.as_ptr()) == 0
}

/// The function `clone` runs in the child; `arg` is the parent's [`ChildContext`].
pub(super) extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `ChildContext` handed to clone by `spawn_child`,
    // alive until this child execs or exits.
    unsafe {
        let ctx = &*(arg as *const ChildContext);
        child_after_clone(ctx)
    }
}

/// Runs in the cloned child: raw syscalls only, no allocation; never returns.
///
/// # Safety
/// Must only be called in the child created by `spawn_child`.
unsafe fn child_after_clone(ctx: &ChildContext) -> ! {
    let setup = ctx.setup;
    // A Cell: step 5b may move the error pipe out of the extra fd's way.
    let err_fd = std::cell::Cell::new(ctx.err_fd);
    let report = |stage: SpawnStage| -> ! {
        let buf = Report::encode(stage, *libc::__errno_location());
        libc::write(err_fd.get(), buf.as_ptr().cast(), buf.len());
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
        report(SpawnStage::Stdio);
    }

    // 1. session / process group
    match setup.session {
        Session::NewSession => {
            if libc::setsid() < 0 {
                report(SpawnStage::Session);
            }
        }
        Session::NewGroup => {
            if libc::setpgid(0, 0) < 0 {
                report(SpawnStage::Session);
            }
        }
        Session::ForegroundGroup { tty } => {
            if libc::setpgid(0, 0) < 0 {
                report(SpawnStage::Session);
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
            report(SpawnStage::Setns);
        }
    }
    // 2b. mount namespace (the sandbox's names); it resets the root and the
    // working directory to the namespace's, so it comes before the chdir.
    if let Some(fd) = ctx.mntns {
        if libc::setns(fd, libc::CLONE_NEWNS) < 0 {
            report(SpawnStage::SetnsMount);
        }
    }
    // 3. umask
    if let Some(m) = setup.umask {
        libc::umask(m);
    }
    // 4. directory
    if let Some(cwd) = &setup.cwd {
        if libc::chdir(cwd.as_ptr()) < 0 {
            report(SpawnStage::Chdir);
        }
    }
    // 5. stdio
    for (target, src) in ctx.stdio.iter().enumerate() {
        if let Some(src) = *src {
            let target = target as RawFd;
            if src == target {
                let flags = libc::fcntl(src, libc::F_GETFD);
                if flags < 0 || libc::fcntl(src, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    report(SpawnStage::Stdio);
                }
            } else if libc::dup2(src, target) < 0 {
                report(SpawnStage::Stdio);
            }
        }
    }
    // 5b. the extra fd (e.g. a readiness pipe) at the number the program
    // expects; the error pipe moves first if it sits there.
    if let Some((src, target)) = ctx.extra {
        if err_fd.get() == target {
            let moved = libc::fcntl(target, libc::F_DUPFD_CLOEXEC, target + 1);
            if moved < 0 {
                report(SpawnStage::Stdio);
            }
            err_fd.set(moved);
        }
        if src == target {
            let flags = libc::fcntl(src, libc::F_GETFD);
            if flags < 0 || libc::fcntl(src, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                report(SpawnStage::Stdio);
            }
        } else if libc::dup2(src, target) < 0 {
            report(SpawnStage::Stdio);
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
            report(SpawnStage::User);
        }
        // Leaving root empties the permitted, effective and ambient sets,
        // but not the inheritable one: empty every set, so nothing of the
        // daemon's privileges can come back at an exec.
        if ids.uid != 0 && !drop_capabilities() {
            report(SpawnStage::Privileges);
        }
    }
    // 7b. no_new_privs: setuid bits and file capabilities grant nothing.
    if setup.no_new_privs
        && libc::syscall(libc::SYS_prctl, libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0
    {
        report(SpawnStage::Privileges);
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
    report(SpawnStage::Exec)
}
