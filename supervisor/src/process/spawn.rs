//! Builds a program's child setup (argv, environment, user, directory) and
//! spawns it through `sys::spawn_child`.
//!
//! Everything that can allocate or fail in user space happens here, before
//! the fork: the executable is looked up in `PATH`, the user and its groups
//! are resolved, strings become C strings. The caller is the supervisor task,
//! which reaps children itself (no `Child::wait` anywhere, DESIGN rule 3).

use std::ffi::{CString, OsStr};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::unistd::Pid;

use crate::accounts;

use crate::config::{ProgramConfig, UserSpec};
use crate::sys::{self, ChildSetup, Ids, Session, SpawnStage};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a program could not be spawned. Every variant names the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpawnError {
    /// The command is not in `PATH` / does not exist.
    #[error("cannot start {command}: {} (not found{})", os(*errno), if command.contains('/') { "" } else { " in PATH" })]
    NotFound {
        /// The command as configured.
        command: String,
        /// ENOENT.
        errno: Errno,
    },
    /// Found, but not executable.
    #[error("cannot start {command}: {} (not executable)", os(*errno))]
    NotExecutable {
        /// The resolved path.
        command: String,
        /// EACCES.
        errno: Errno,
    },
    /// The configured user does not exist.
    #[error("cannot start {command}: unknown user \"{user}\"")]
    UnknownUser {
        /// The command.
        command: String,
        /// The user as configured.
        user: String,
    },
    /// The configured group does not exist.
    #[error("cannot start {command}: unknown group \"{group}\"")]
    UnknownGroup {
        /// The command.
        command: String,
        /// The group as configured.
        group: String,
    },
    /// A string holds a NUL byte.
    #[error("cannot start {command}: {what} contains a NUL byte")]
    NulByte {
        /// The command.
        command: String,
        /// Which value.
        what: String,
    },
    /// A step of the child setup failed.
    #[error("cannot start {command}: {}{}: {}", stage.describe(), detail, os(*errno))]
    Setup {
        /// The command.
        command: String,
        /// Failed step.
        stage: SpawnStage,
        /// Extra words (`" to /srv/app"`).
        detail: String,
        /// OS error.
        errno: Errno,
        /// The failed child, already exiting (reaped by the reaper).
        pid: Option<Pid>,
    },
}

/// An errno as people read it: `No such file or directory (os error 2)`.
fn os(errno: Errno) -> std::io::Error {
    std::io::Error::from_raw_os_error(errno as i32)
}

impl SpawnError {
    /// Exit code a shell would give: 127 not found, 126 not executable, else 1.
    pub fn shell_code(&self) -> i32 {
        match self {
            SpawnError::NotFound { .. } => 127,
            SpawnError::NotExecutable { .. } => 126,
            SpawnError::Setup {
                stage: SpawnStage::Exec,
                errno,
                ..
            } => match errno {
                Errno::ENOENT => 127,
                _ => 126,
            },
            _ => 1,
        }
    }

    /// The OS error behind it, if any.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            SpawnError::NotFound { errno, .. }
            | SpawnError::NotExecutable { errno, .. }
            | SpawnError::Setup { errno, .. } => Some(*errno),
            SpawnError::UnknownUser { .. }
            | SpawnError::UnknownGroup { .. }
            | SpawnError::NulByte { .. } => None,
        }
    }

    /// The child that failed after the fork, if any.
    pub fn failed_pid(&self) -> Option<Pid> {
        match self {
            SpawnError::Setup { pid, .. } => *pid,
            _ => None,
        }
    }
}

/// File descriptors for the child's stdin, stdout, stderr (`None`: inherit the daemon's).
pub type Stdio = [Option<RawFd>; 3];

/// What the caller decides per spawn, beyond the program's config.
#[derive(Debug, Clone, Copy)]
pub struct SpawnOptions<'a> {
    /// Session / process group setup.
    pub session: Session,
    /// fds for 0, 1, 2.
    pub stdio: Stdio,
    /// Network namespace fd to enter.
    pub netns: Option<RawFd>,
    /// Mount namespace fd to enter after it (a sandbox's names).
    pub mntns: Option<RawFd>,
    /// Variables set after the program's own (`NOTIFY_SOCKET`, ...).
    pub env: &'a [(String, String)],
    /// One more fd for the program: (the daemon's fd, its number there).
    pub extra_fd: Option<(RawFd, RawFd)>,
}

/// Spawns `cfg`'s command; returns the pid once it has exec'd.
pub fn spawn(cfg: &ProgramConfig, opts: SpawnOptions<'_>) -> Result<Pid, SpawnError> {
    let setup = prepare(cfg, opts)?;
    sys::spawn_child(&setup).map_err(|f| SpawnError::Setup {
        command: cfg.command[0].clone(),
        stage: f.stage,
        detail: match (f.stage, &cfg.directory) {
            (SpawnStage::Chdir, Some(d)) => format!(" to {}", d.display()),
            (SpawnStage::Exec, _) => format!(" {}", setup.path.to_string_lossy()),
            _ => String::new(),
        },
        errno: f.errno,
        pid: f.pid,
    })
}

fn prepare(cfg: &ProgramConfig, opts: SpawnOptions<'_>) -> Result<ChildSetup, SpawnError> {
    let command = &cfg.command[0];
    let ids = cfg
        .user
        .as_ref()
        .map(|u| resolve_user(command, u))
        .transpose()?;
    let envp = environment(cfg, ids.as_ref(), opts.env);
    let ids = ids.filter(|ids| !is_current(ids));
    let path_var = cfg
        .environment
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| DEFAULT_PATH.to_string());
    let exe = find_executable(command, &path_var, cfg.directory.as_deref())?;
    let nul = |what: &str| SpawnError::NulByte {
        command: command.clone(),
        what: what.to_string(),
    };
    let argv = cfg
        .command
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| nul("an argument")))
        .collect::<Result<Vec<_>, _>>()?;
    let envp = envp
        .into_iter()
        .map(|e| CString::new(e).map_err(|_| nul("the environment")))
        .collect::<Result<Vec<_>, _>>()?;
    let cwd = cfg
        .directory
        .as_ref()
        .map(|d| CString::new(d.as_os_str().as_bytes()).map_err(|_| nul("directory")))
        .transpose()?;
    Ok(ChildSetup {
        path: CString::new(exe.as_os_str().as_bytes()).map_err(|_| nul("the command"))?,
        argv,
        envp,
        cwd,
        umask: cfg.umask.map(|m| m as libc::mode_t),
        ids,
        no_new_privs: cfg.no_new_privs,
        netns: opts.netns,
        mntns: opts.mntns,
        session: opts.session,
        stdio: opts.stdio,
        extra: opts.extra_fd,
    })
}

/// The daemon's environment, then HOME/USER/LOGNAME of a switched user, then
/// the program's `environment`, then `NSVISOR_PROGRAM` / `NSVISOR_PROCESS_NUM`,
/// then `extra` (the daemon's per-spawn variables, e.g. `NOTIFY_SOCKET`).
fn environment(cfg: &ProgramConfig, ids: Option<&Ids>, extra: &[(String, String)]) -> Vec<Vec<u8>> {
    let mut env: std::collections::BTreeMap<Vec<u8>, Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    if let (Some(ids), Some(spec)) = (ids, &cfg.user) {
        if let Ok(Some(user)) = accounts::user_by_uid(ids.uid) {
            env.insert(b"HOME".to_vec(), user.home.as_os_str().as_bytes().to_vec());
            env.insert(b"USER".to_vec(), user.name.clone().into_bytes());
            env.insert(b"LOGNAME".to_vec(), user.name.into_bytes());
        } else {
            env.insert(b"USER".to_vec(), spec.user.clone().into_bytes());
        }
    }
    for (k, v) in &cfg.environment {
        env.insert(k.clone().into_bytes(), v.clone().into_bytes());
    }
    env.insert(b"NSVISOR_PROGRAM".to_vec(), cfg.name.as_bytes().to_vec());
    env.insert(
        b"NSVISOR_PROCESS_NUM".to_vec(),
        cfg.process_num.to_string().into_bytes(),
    );
    for (k, v) in extra {
        env.insert(k.clone().into_bytes(), v.clone().into_bytes());
    }
    env.into_iter()
        .map(|(mut k, v)| {
            k.push(b'=');
            k.extend(v);
            k
        })
        .collect()
}

/// `execvp`'s search: a name with a `/` is used as is (relative to
/// `directory`); otherwise each `PATH` entry is tried. A match that is not
/// executable is remembered so the error says EACCES rather than ENOENT.
fn find_executable(
    command: &str,
    path_var: &str,
    dir: Option<&Path>,
) -> Result<PathBuf, SpawnError> {
    let check = |p: &Path| -> Result<(), Errno> {
        let meta = std::fs::metadata(p)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)))?;
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            Ok(())
        } else {
            Err(Errno::EACCES)
        }
    };
    let classify = |errno: Errno, shown: String| match errno {
        Errno::EACCES => SpawnError::NotExecutable {
            command: shown,
            errno,
        },
        errno => SpawnError::NotFound {
            command: shown,
            errno,
        },
    };
    if command.contains('/') {
        let p = PathBuf::from(command);
        let resolved = match (p.is_relative(), dir) {
            (true, Some(d)) => d.join(&p),
            _ => p.clone(),
        };
        return check(&resolved)
            .map(|()| p)
            .map_err(|e| classify(e, command.to_string()));
    }
    let mut denied = None;
    for entry in path_var.split(':') {
        let base = if entry.is_empty() {
            Path::new(".")
        } else {
            Path::new(entry)
        };
        let candidate = base.join(OsStr::new(command));
        match check(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(Errno::EACCES) if candidate.exists() => {
                denied.get_or_insert(candidate);
            }
            Err(_) => {}
        }
    }
    Err(match denied {
        Some(p) => classify(Errno::EACCES, p.display().to_string()),
        None => classify(Errno::ENOENT, command.to_string()),
    })
}

/// A daemon that is not root, asked to run a program as its own user and
/// group: there is nothing to switch (and it could not call setgroups), so
/// the program runs as the daemon does — what supervisord does too.
fn is_current(ids: &Ids) -> bool {
    let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    !uid.is_root() && ids.uid == uid.as_raw() && ids.gid == gid.as_raw()
}

/// The uid and gid `spec` stands for (e.g. to give a file to a program's user).
pub fn owner_ids(command: &str, spec: &UserSpec) -> Result<(u32, u32), SpawnError> {
    resolve_user(command, spec).map(|ids| (ids.uid, ids.gid))
}

fn resolve_user(command: &str, spec: &UserSpec) -> Result<Ids, SpawnError> {
    let unknown_user = || SpawnError::UnknownUser {
        command: command.to_string(),
        user: spec.user.clone(),
    };
    let user = match spec.user.parse::<u32>() {
        Ok(uid) => accounts::user_by_uid(uid).ok().flatten(),
        Err(_) => accounts::user_by_name(&spec.user).ok().flatten(),
    };
    let (uid, mut gid, name) = match (&user, spec.user.parse::<u32>()) {
        (Some(u), _) => (u.uid, u.gid, Some(u.name.clone())),
        // A bare numeric uid without a passwd entry is allowed (containers).
        (None, Ok(uid)) => (uid, uid, None),
        (None, Err(_)) => return Err(unknown_user()),
    };
    if let Some(group) = &spec.group {
        let g = match group.parse::<u32>() {
            Ok(gid) => Some(gid),
            Err(_) => accounts::group_by_name(group).ok().flatten(),
        };
        gid = g.ok_or_else(|| SpawnError::UnknownGroup {
            command: command.to_string(),
            group: group.clone(),
        })?;
    }
    let groups = match name {
        Some(name) => accounts::group_list(&name, gid),
        None => vec![gid],
    };
    Ok(Ids { uid, gid, groups })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_commands_in_path() {
        let p = find_executable("sh", "/nonexistent:/bin:/usr/bin", None).unwrap_or_default();
        assert!(p.ends_with("sh"), "{p:?}");
    }

    #[test]
    fn missing_command_is_not_found() {
        let e = find_executable("no-such-cmd-xyz", "/bin:/usr/bin", None).unwrap_err();
        assert_eq!(e.shell_code(), 127);
        assert!(e.to_string().contains("no-such-cmd-xyz"), "{e}");
    }

    #[test]
    fn non_executable_file_is_eacces() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let f = dir.path().join("script");
        std::fs::write(&f, "#!/bin/sh\n").unwrap_or_else(|e| panic!("write: {e}"));
        let e = find_executable(f.to_str().unwrap_or_default(), "", None).unwrap_err();
        assert_eq!(e.shell_code(), 126, "{e}");
    }

    #[test]
    fn unknown_user_is_an_error() {
        let spec = UserSpec {
            user: "no-such-user-xyz".into(),
            group: None,
        };
        assert!(matches!(
            resolve_user("x", &spec),
            Err(SpawnError::UnknownUser { .. })
        ));
    }

    #[test]
    fn numeric_uid_without_passwd_entry_is_allowed() {
        let spec = UserSpec {
            user: "54321".into(),
            group: None,
        };
        let ids = resolve_user("x", &spec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((ids.uid, ids.gid), (54321, 54321));
    }

    #[test]
    fn only_a_non_root_daemon_skips_switching_to_itself() {
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        let me = Ids {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            groups: vec![gid.as_raw()],
        };
        // Root always switches (and sets the groups); another user never matches.
        assert_eq!(is_current(&me), !uid.is_root());
        let other = Ids {
            uid: uid.as_raw().wrapping_add(1),
            ..me.clone()
        };
        assert!(!is_current(&other));
        let other_group = Ids {
            gid: gid.as_raw().wrapping_add(1),
            ..me
        };
        assert!(!is_current(&other_group));
    }
}
