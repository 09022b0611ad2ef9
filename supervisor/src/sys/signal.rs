//! The daemon's own signal dispositions: the handler of the signals
//! signal-hook cannot take, ignored signals, and the inherited signal mask.
//!
//! SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP and SIGSYS ([`SYNCHRONOUS`]) have
//! two origins. Sent with kill(2) by another process (`si_code` ≤ 0), they
//! are ordinary requests and must be caught: as PID 1 an uncaught signal is
//! dropped, otherwise it would kill the daemon, and a `--` command must get
//! them forwarded. Raised by the kernel for a fault of the running thread
//! (`si_code` > 0: a bad address, an illegal instruction, a seccomp trap), they
//! mean the daemon itself is broken, and a handler that just returned would
//! run the faulting instruction again, forever. signal-hook refuses SIGSEGV,
//! SIGILL and SIGFPE for that reason (its `FORBIDDEN` list) and would let a
//! real SIGBUS loop, so these six have the handler here instead:
//! - sent by a process: it sends an 8-byte record (signal, sender pid) on a
//!   datagram socket whose other end the signal stream reads (`signals.rs`);
//! - raised by the kernel: it calls the handler that was there before (Rust's
//!   runtime reports a stack overflow that way), restores the default action
//!   and raises the signal again, so the daemon dies of it with a core dump,
//!   exactly as without a handler. It runs on the alternate signal stack
//!   (`SA_ONSTACK`), which the Rust runtime gives every thread, so a stack
//!   overflow is still reported.
//!
//! SIGPIPE has this handler too ([`HANDLED`]): signal-hook wakes its reader
//! with send(2) without `MSG_NOSIGNAL`, so once that reader is gone (at exit)
//! every signal makes a SIGPIPE, and a SIGPIPE caught through signal-hook
//! would make another, forever. Records here go out with `MSG_NOSIGNAL`.
//!
//! Called by `signals.rs` at start-up; children get default dispositions
//! and an empty mask back before exec (`child.rs`).

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use libc::{c_int, c_void, siginfo_t};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// The signals the kernel raises for a fault of the running thread.
const SYNCHRONOUS: [c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
];

/// The signals [`install_handler`] catches: the synchronous ones and SIGPIPE.
pub const HANDLED: [c_int; 7] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGTRAP,
    libc::SIGSYS,
    libc::SIGPIPE,
];

/// Length of one record: signal number and sender pid, native endian.
pub const RECORD_LEN: usize = 8;

/// The handler's end of the record socket pair (-1 before [`install_handler`]).
static RECORDS: AtomicI32 = AtomicI32::new(-1);
/// Per signal number: the handler installed before ours, and whether it
/// takes a `siginfo_t` (`SA_SIGINFO`).
static PREVIOUS: [AtomicUsize; 32] = [const { AtomicUsize::new(0) }; 32];
static PREVIOUS_SIGINFO: [AtomicBool; 32] = [const { AtomicBool::new(false) }; 32];

/// Installs the handler for the [`HANDLED`] signals; returns the datagram
/// socket its records arrive on (non-blocking, close-on-exec).
///
/// The handler's end stays open for the life of the process, since a signal
/// may come at any time; calling this again (tests) replaces it and leaks the
/// first one rather than close an fd a handler might be sending on.
pub fn install_handler() -> io::Result<OwnedFd> {
    let flags = SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK;
    let (read, write) = socketpair(AddressFamily::Unix, SockType::Datagram, None, flags)?;
    RECORDS.store(write.into_raw_fd(), Ordering::SeqCst);
    let ours = on_signal as *const () as usize;
    for sig in HANDLED {
        // SAFETY: a zeroed sigaction is a valid value to fill in.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = ours;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
        // SAFETY: zeroed as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // Every other signal waits while the handler runs: handlers nested on
        // the small alternate stack would overflow it (a burst of kills).
        // SAFETY: `new.sa_mask` is a valid sigset to fill; `new` and `old`
        // are valid for the call, and the handler is async-signal-safe.
        let r = unsafe {
            libc::sigfillset(&mut new.sa_mask);
            libc::sigaction(sig, &new, &mut old)
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        if old.sa_sigaction != ours {
            let slot = sig as usize;
            PREVIOUS[slot].store(old.sa_sigaction, Ordering::SeqCst);
            let siginfo = old.sa_flags & libc::SA_SIGINFO != 0;
            PREVIOUS_SIGINFO[slot].store(siginfo, Ordering::SeqCst);
        }
    }
    Ok(read)
}

/// Decodes one record: (signal, sender pid; 0 when unknown).
pub fn decode_record(record: &[u8; RECORD_LEN]) -> (c_int, libc::pid_t) {
    let sig = c_int::from_ne_bytes([record[0], record[1], record[2], record[3]]);
    let pid = libc::pid_t::from_ne_bytes([record[4], record[5], record[6], record[7]]);
    (sig, pid)
}

/// The handler of the [`HANDLED`] signals (see the module comment).
/// Async-signal-safe: atomics, `send`, `sigaction`, `raise` only.
extern "C" fn on_signal(sig: c_int, info: *mut siginfo_t, context: *mut c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo (or null).
    let Some(details) = (unsafe { info.as_ref() }) else {
        return;
    };
    if details.si_code > 0 && SYNCHRONOUS.contains(&sig) {
        fault(sig, info, context);
        return;
    }
    // SAFETY: errno is thread-local; saved and restored around our send.
    let errno = unsafe { *libc::__errno_location() };
    let pid = sender(details).unwrap_or(0);
    let mut record = [0u8; RECORD_LEN];
    record[..4].copy_from_slice(&sig.to_ne_bytes());
    record[4..].copy_from_slice(&pid.to_ne_bytes());
    let fd = RECORDS.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: `record` is valid for RECORD_LEN bytes. A full socket
        // drops the record (EAGAIN); a gone reader raises no SIGPIPE.
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        unsafe { libc::send(fd, record.as_ptr().cast(), RECORD_LEN, flags) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// The pid of the process that sent a signal with kill(2), sigqueue(3) or
/// tgkill(2); `None` for one the kernel raised (a fault, a timer, a child's
/// change, the terminal). 0 is a sender outside the daemon's PID namespace.
pub fn sender(info: &siginfo_t) -> Option<libc::pid_t> {
    matches!(
        info.si_code,
        libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL
    )
    // SAFETY: for these codes the kernel fills in si_pid.
    .then(|| unsafe { info.si_pid() })
}

/// A real fault: let the previous handler see it, then die of it.
fn fault(sig: c_int, info: *mut siginfo_t, context: *mut c_void) {
    let slot = sig as usize;
    let previous = PREVIOUS.get(slot).map_or(0, |p| p.load(Ordering::SeqCst));
    if previous != libc::SIG_DFL && previous != libc::SIG_IGN {
        let siginfo = PREVIOUS_SIGINFO[slot].load(Ordering::SeqCst);
        // SAFETY: `previous` is the address of the handler sigaction reported
        // as installed before ours, with the signature its flags say.
        unsafe {
            if siginfo {
                type Handler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);
                let handler = std::mem::transmute::<usize, Handler>(previous);
                handler(sig, info, context);
            } else {
                let handler = std::mem::transmute::<usize, extern "C" fn(c_int)>(previous);
                handler(sig);
            }
        }
    }
    // SAFETY: a zeroed sigaction with SIG_DFL is the default action; raise
    // marks the signal pending (it is blocked while this handler runs), so
    // it is delivered with the default action as soon as the handler returns.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigaction(sig, &default, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Sets `sig` to ignored (SIGTTIN and SIGTTOU in supervisor mode).
pub fn ignore(sig: nix::sys::signal::Signal) -> nix::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet};
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no code of ours.
    unsafe { sigaction(sig, &ignore) }.map(drop)
}

/// Unblocks every signal in the calling thread: a parent may have started
/// the daemon with signals blocked, and a blocked signal never reaches a
/// handler. Threads inherit the mask, so `main` calls this before it starts any.
pub fn unblock_all() -> nix::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow};
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use nix::sys::signal::{kill, Signal};
    use nix::sys::socket::MsgFlags;
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    use nix::unistd::{fork, getpid, ForkResult};

    use super::*;
    use crate::test_util::wait_until;

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn a_synchronous_signal_sent_with_kill_is_recorded_and_survived() {
        let read = install_handler().expect("install the handler");
        for sig in [
            Signal::SIGILL,
            Signal::SIGSEGV,
            Signal::SIGBUS,
            Signal::SIGPIPE,
        ] {
            kill(getpid(), sig).expect("kill");
            let mut record = [0u8; RECORD_LEN];
            wait_until("the handler's record", T, || {
                let n = nix::sys::socket::recv(read.as_raw_fd(), &mut record, MsgFlags::empty())
                    .ok()?;
                (n == RECORD_LEN).then_some(())
            })
            .await;
            assert_eq!(decode_record(&record), (sig as c_int, getpid().as_raw()));
        }
    }

    /// In a forked child: installs the handler, then makes a real fault with
    /// `fault`; the child must die of `expected`, not loop or go on.
    async fn a_real_fault_kills(fault: fn(), expected: Signal) {
        // SAFETY: the child makes only async-signal-safe calls (setrlimit,
        // socketpair, sigaction, mmap, the fault) and leaves with _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                let _ =
                    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
                if install_handler().is_err() {
                    // SAFETY: _exit is always safe to call.
                    unsafe { libc::_exit(3) };
                }
                fault();
                // SAFETY: as above; reached only if the fault did not kill.
                unsafe { libc::_exit(0) };
            }
            ForkResult::Parent { child } => {
                let status = wait_until("the faulting child to end", T, || {
                    match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::StillAlive) => None,
                        other => Some(other),
                    }
                })
                .await;
                assert!(
                    matches!(status, Ok(WaitStatus::Signaled(_, sig, _)) if sig == expected),
                    "{status:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn a_real_segfault_still_kills_the_process() {
        fn touch_an_inaccessible_page() {
            // SAFETY: an anonymous PROT_NONE mapping; reading it faults.
            unsafe {
                let page = libc::mmap(
                    std::ptr::null_mut(),
                    4096,
                    libc::PROT_NONE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                std::ptr::read_volatile(page.cast::<u8>());
            }
        }
        a_real_fault_kills(touch_an_inaccessible_page, Signal::SIGSEGV).await;
    }

    /// The handler before ours is called: Rust's runtime reports a stack
    /// overflow (on the alternate stack) and aborts.
    #[tokio::test]
    async fn a_stack_overflow_is_still_reported_by_the_runtime() {
        fn recurse() {
            #[allow(unconditional_recursion)]
            fn deeper(n: u64) -> u64 {
                let frame = std::hint::black_box([n; 64]);
                frame[0] + deeper(std::hint::black_box(n + 1))
            }
            std::hint::black_box(deeper(0));
        }
        a_real_fault_kills(recurse, Signal::SIGABRT).await;
    }

    /// A breakpoint goes on after the instruction when its handler returns:
    /// only the raise again makes it fatal.
    #[cfg(target_arch = "x86_64")]
    #[tokio::test]
    async fn a_real_breakpoint_still_kills_the_process() {
        fn breakpoint() {
            // SAFETY: int3 only raises SIGTRAP.
            unsafe { std::arch::asm!("int3") };
        }
        a_real_fault_kills(breakpoint, Signal::SIGTRAP).await;
    }
}
