//! How the harness starts the daemon's process beyond its arguments: signals
//! it inherits ignored and blocked, resource limits, a cgroup to start in,
//! capabilities it must not have, its stdout. Each is applied in the child
//! between fork and exec, with async-signal-safe calls on data prepared
//! before the fork.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::sys::resource::Resource;
use nix::sys::signal::{SigSet, Signal};

/// What the daemon's process starts with.
#[derive(Debug, Default)]
pub(crate) struct Launch {
    /// Signals ignored and blocked (as a careless parent might leave them).
    pub inherited: Vec<Signal>,
    /// Resource limits: (resource, soft, hard).
    pub rlimits: Vec<(Resource, u64, u64)>,
    /// A cgroup directory whose `cgroup.procs` the process joins.
    pub cgroup: Option<CString>,
    /// Capabilities dropped from the bounding set (so a root daemon lacks them).
    pub dropped_caps: Vec<i32>,
    /// The daemon's stdout, instead of `daemon.stdout`.
    pub stdout: Option<OwnedFd>,
    /// A capability raised into the inheritable and ambient sets.
    pub ambient_cap: Option<u32>,
    /// Runs the daemon as this uid and gid instead of root.
    pub run_as: Option<(u32, u32)>,
}

impl Launch {
    /// Joins the cgroup at `dir` (cgroup v1 or v2) before exec.
    pub fn set_cgroup(&mut self, dir: &Path) {
        let procs = dir.join("cgroup.procs");
        self.cgroup = Some(CString::new(procs.as_os_str().as_bytes()).expect("a path"));
    }

    /// Registers every setting with `cmd`.
    pub fn apply(self, cmd: &mut Command) {
        if let Some(fd) = self.stdout {
            cmd.stdout(fd);
        }
        if !self.inherited.is_empty() {
            ignore_and_block(cmd, &self.inherited);
        }
        for (resource, soft, hard) in self.rlimits {
            set_rlimit(cmd, resource, soft, hard);
        }
        if let Some(procs) = self.cgroup {
            join_cgroup(cmd, procs);
        }
        if !self.dropped_caps.is_empty() {
            drop_caps(cmd, self.dropped_caps);
        }
        if let Some(cap) = self.ambient_cap {
            raise_ambient(cmd, cap);
        }
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid);
        }
    }
}

/// Makes the spawned child start with `signals` ignored and blocked.
fn ignore_and_block(cmd: &mut Command, signals: &[Signal]) {
    let signals: Vec<i32> = signals.iter().map(|s| *s as i32).collect();
    let mut set = SigSet::empty();
    for sig in &signals {
        set.add(Signal::try_from(*sig).expect("a signal"));
    }
    let set = *set.as_ref();
    // SAFETY: between fork and exec the closure only calls async-signal-safe
    // functions (signal, pthread_sigmask) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for sig in &signals {
                libc::signal(*sig, libc::SIG_IGN);
            }
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
}

/// Makes the spawned child start with these limits of `resource`.
fn set_rlimit(cmd: &mut Command, resource: Resource, soft: u64, hard: u64) {
    // SAFETY: between fork and exec the closure only calls setrlimit, which is
    // async-signal-safe, on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::resource::setrlimit(resource, soft, hard).map_err(std::io::Error::from)
        });
    }
}

/// Makes the spawned child move itself into the cgroup whose `cgroup.procs`
/// is `procs` ("0" stands for the writer, in cgroup v1 and v2).
fn join_cgroup(cmd: &mut Command, procs: CString) {
    // SAFETY: between fork and exec the closure only calls open, write and
    // close, which are async-signal-safe, on a path prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if written != 1 {
                return Err(err);
            }
            Ok(())
        });
    }
}

/// Makes the spawned child drop `caps` from its bounding set, so that even as
/// root the program it executes does not have them.
fn drop_caps(cmd: &mut Command, caps: Vec<i32>) {
    // SAFETY: between fork and exec the closure only calls prctl, which is
    // async-signal-safe, on values prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for cap in &caps {
                if libc::prctl(libc::PR_CAPBSET_DROP, *cap as libc::c_ulong, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Makes the spawned child (run as root) start with capability `cap` in its
/// inheritable and ambient sets, as a daemon started by a capability-aware
/// service manager may.
fn raise_ambient(cmd: &mut Command, cap: u32) {
    // SAFETY: between fork and exec the closure only makes raw syscalls
    // (capget, capset, prctl) on stack data.
    unsafe {
        cmd.pre_exec(move || {
            // _LINUX_CAPABILITY_VERSION_3, pid 0; then effective, permitted,
            // inheritable of capabilities 0-31, and of 32-63.
            let mut header = [0x2008_0522u32, 0];
            let mut data = [0u32; 6];
            if libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            data[(cap / 32) as usize * 3 + 2] |= 1 << (cap % 32);
            if libc::syscall(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr()) != 0
                || libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                    cap as libc::c_ulong,
                    0 as libc::c_ulong,
                    0 as libc::c_ulong,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
