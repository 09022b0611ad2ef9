//! The start of programs, parent side: [`spawn_child`] (vfork-style clone +
//! exec), the fd slots it copies the child's fds into, and the one-spawn-at-a-
//! time guard those slots need.
//!
//! Everything the child needs is prepared here before the clone ([`ChildSetup`],
//! C pointer arrays, fds placed in the slots); what the child then does is in
//! `child.rs`. An exec failure comes back through a close-on-exec pipe as a
//! [`SpawnStage`] byte and an errno, and is never waited for here: the failed
//! child is reaped by the one reaper like every other child (DESIGN rule 3).
//!
//! Invariant: the slots reserved by [`reserve_spawn_slots`] are process-wide
//! and hold one child's fds between placing them and the clone, so at most one
//! [`spawn_child`] runs at a time. [`SpawnGuard`] enforces this: a spawn that
//! starts while another is running fails with [`SpawnStage::Busy`] instead of
//! handing the other child the wrong fds. The caller is `process::spawn`, run
//! by the supervisor task one program at a time.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::unistd::Pid;

use super::child::{child_entry, ChildContext, Report};
use super::fd::open_dev_null;

/// How the child's process group is set up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // `NewSession` names `setsid()`, used across the supervisor
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
    /// User switch (done last). Switching to a uid other than 0 also
    /// empties the inheritable and ambient capability sets.
    pub ids: Option<Ids>,
    /// `PR_SET_NO_NEW_PRIVS` before exec.
    pub no_new_privs: bool,
    /// Network namespace to enter (fd opened by the caller).
    pub netns: Option<RawFd>,
    /// Mount namespace to enter after the network one (a sandbox's names:
    /// its own `/etc/hosts` and `/etc/resolv.conf`).
    pub mntns: Option<RawFd>,
    /// Process group / session setup.
    pub session: Session,
    /// fds to install as 0, 1, 2 (`None`: keep the daemon's).
    pub stdio: [Option<RawFd>; 3],
    /// One more fd to install: (the daemon's fd, the number the program
    /// sees, 3 or more), e.g. the write end of a readiness pipe.
    pub extra: Option<(RawFd, RawFd)>,
}

/// The step of the child setup that failed. The child reports its steps as
/// one byte ([`SpawnStage::to_wire`]); the parent reads it back with
/// [`SpawnStage::from_wire`], the only conversion from a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum SpawnStage {
    /// Creating the error pipe.
    Pipe,
    /// fork().
    Fork,
    /// setsid / setpgid / tcsetpgrp.
    Session,
    /// setns into the network namespace.
    Setns,
    /// setns into the mount namespace.
    SetnsMount,
    /// chdir to `directory`.
    Chdir,
    /// A private fd table, dup2 of stdio.
    Stdio,
    /// setgroups / setgid / setuid.
    User,
    /// Emptying the capability sets, `PR_SET_NO_NEW_PRIVS`.
    Privileges,
    /// execve.
    Exec,
    /// Another spawn was running (see the module doc); nothing was started.
    Busy,
}

impl SpawnStage {
    /// Every stage, for [`SpawnStage::from_wire`].
    pub(super) const ALL: [SpawnStage; 11] = [
        SpawnStage::Pipe,
        SpawnStage::Fork,
        SpawnStage::Session,
        SpawnStage::Setns,
        SpawnStage::SetnsMount,
        SpawnStage::Chdir,
        SpawnStage::Stdio,
        SpawnStage::User,
        SpawnStage::Privileges,
        SpawnStage::Exec,
        SpawnStage::Busy,
    ];

    /// The byte the child writes for this stage (no allocation, async-signal-safe).
    pub(super) const fn to_wire(self) -> u8 {
        self as u8
    }

    /// The stage a byte from the child stands for; `None` for a byte no stage has.
    pub(super) fn from_wire(byte: u8) -> Option<SpawnStage> {
        SpawnStage::ALL.into_iter().find(|s| s.to_wire() == byte)
    }

    /// Words for messages: `cannot change directory`.
    pub fn describe(self) -> &'static str {
        match self {
            SpawnStage::Pipe => "cannot create a pipe",
            SpawnStage::Fork => "cannot fork",
            SpawnStage::Session => "cannot create a session",
            SpawnStage::Setns => "cannot enter the network namespace",
            SpawnStage::SetnsMount => "cannot enter the sandbox's mount namespace",
            SpawnStage::Chdir => "cannot change directory",
            SpawnStage::Stdio => "cannot set up stdin/stdout/stderr",
            SpawnStage::User => "cannot switch user",
            SpawnStage::Privileges => "cannot drop privileges",
            SpawnStage::Exec => "cannot execute",
            SpawnStage::Busy => "another program is being started at the same time",
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

/// Low fd numbers reserved at start-up for what a child needs (stdio, the
/// netns and mount namespace fds, the error pipe). The child shares the daemon's fd table
/// (CLONE_FILES) only until its first syscall, `close_range(bound, ~0,
/// CLOSE_RANGE_UNSHARE)`, which gives it a private table holding just the
/// fds below `bound`. Without this, every spawn would copy the daemon's whole
/// fd table (two pipe ends per program) and close it again at exec: O(n) per
/// spawn, O(n²) to start n programs.
struct FdSlots {
    /// `/dev/null`, what a slot holds between spawns.
    null: OwnedFd,
    /// The reserved fds: 0-2 for stdio, 3 netns, 4 error pipe, 5 extra,
    /// 6 mount namespace.
    slots: [OwnedFd; 7],
    bound: RawFd,
}

static FD_SLOTS: OnceLock<Option<FdSlots>> = OnceLock::new();

/// Reserves the low fd slots used by [`spawn_child`]; call early, before
/// many fds are open, so that few fds lie below the slots. Later calls do
/// nothing. Without slots (e.g. no /dev/null), spawns still work, only
/// slower with many programs.
pub fn reserve_spawn_slots() {
    FD_SLOTS.get_or_init(|| {
        let open = || open_dev_null().ok();
        let null = open()?;
        let slots = [
            open()?,
            open()?,
            open()?,
            open()?,
            open()?,
            open()?,
            open()?,
        ];
        let bound = slots.iter().map(|f| f.as_raw_fd()).max()? + 1;
        Some(FdSlots { null, slots, bound })
    });
}

/// Set while a [`spawn_child`] runs (it owns the fd slots meanwhile).
static SPAWNING: AtomicBool = AtomicBool::new(false);

/// Proof that this thread runs the only spawn; releases [`SPAWNING`] on drop.
pub(super) struct SpawnGuard(());

impl SpawnGuard {
    /// Takes the spawn; `None` while another spawn holds it.
    pub(super) fn take() -> Option<SpawnGuard> {
        // Build the guard only on success: dropping one releases the spawn.
        match SPAWNING.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => Some(SpawnGuard(())),
            Err(_) => None,
        }
    }
}

impl Drop for SpawnGuard {
    fn drop(&mut self) {
        SPAWNING.store(false, Ordering::Release);
    }
}

/// Starts a program as described by `setup`. Returns once the child has
/// exec'd (or reported why it could not): the error pipe is close-on-exec,
/// so EOF means success. Fails at once with [`SpawnStage::Busy`] if another
/// spawn is running.
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
    let _only_spawn = SpawnGuard::take().ok_or(fail(SpawnStage::Busy, Errno::EBUSY))?;
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
        mntns: place(setup.mntns, 6)?,
        err_fd: place(Some(err_write.as_raw_fd()), 4)?.unwrap_or(-1),
        extra: match setup.extra {
            Some((fd, target)) => place(Some(fd), 5)?.map(|slot| (slot, target)),
            None => None,
        },
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
    match read_report(&err_read) {
        Some(report) => Err(SpawnFailure {
            // The child is this binary: it only writes stages that exist. A
            // byte that is none still means it failed, at the last step.
            stage: SpawnStage::from_wire(report.stage).unwrap_or(SpawnStage::Exec),
            errno: Errno::from_raw(report.errno),
            pid: Some(child),
        }),
        None => Ok(child),
    }
}

/// Reads the child's failure report from the error pipe: `None` at EOF
/// before a whole report (the child exec'd, closing its end).
fn read_report(err_read: &OwnedFd) -> Option<Report> {
    let mut buf = [0u8; Report::LEN];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(err_read.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    (got == buf.len()).then(|| Report::decode(buf))
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
