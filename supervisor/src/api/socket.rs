//! The control socket file: where it is, replacing a stale one, mode and owner.
//!
//! The path is `[supervisor] socket` or the default rule shared with
//! `nsvisorctl`; a `--` command's daemon whose default path is taken by
//! another nsvisor uses [`instance_socket_path`] instead (`lib.rs`).
//! A socket file left by a crashed daemon is removed before binding; one that a
//! live process still answers on is left alone and start-up fails, and so does
//! a path that is not a socket at all (nothing but a socket is ever deleted).
//! After binding, the file gets `socket_mode` and `socket_owner`, applied
//! through a handle opened without following links and checked to be the
//! daemon's socket, so a name swapped in a directory others can write never
//! makes nsvisor chmod or chown something else (a symbolic link already at
//! the path is refused before binding: it is not a socket). A socket in such
//! a directory is reported at start. The peer credential check in `peer.rs`
//! is the real gate; the mode is a second fence.
//! [`SocketFile`] removes the file on drop, but only while it is still the one
//! this process created (same device and inode).

use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::Uid;
use tokio::net::{UnixListener, UnixStream};

use super::Error;
use crate::accounts;
use crate::config::SupervisorConfig;
use crate::safe_open;

/// The socket path: `[supervisor] socket`, or the default rule shared with
/// `nsvisorctl` (`/run/nsvisor.sock` as root, `$XDG_RUNTIME_DIR/nsvisor.sock`,
/// else `/tmp/nsvisor-<uid>.sock`).
pub fn socket_path(cfg: &SupervisorConfig) -> PathBuf {
    match &cfg.socket {
        Some(path) => path.clone(),
        None => {
            let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
            PathBuf::from(nsvisor_proto::default_socket_path(
                Uid::current().as_raw(),
                xdg.as_deref(),
            ))
        }
    }
}

/// The socket path of one daemon among several: `nsvisor-<pid>.sock` beside
/// `default` (`/run/nsvisor.sock` → `/run/nsvisor-<pid>.sock`). Used by a
/// `--` command's daemon when the default path is taken.
pub fn instance_socket_path(default: &Path, pid: u32) -> PathBuf {
    let stem = default
        .file_stem()
        .map_or_else(|| "nsvisor".into(), |s| s.to_string_lossy());
    default.with_file_name(format!("{stem}-{pid}.sock"))
}

/// Creates the directory of the default socket path when it is missing (mode
/// 0755): an image built `FROM scratch` has no `/run`, and `nsvisorctl` in
/// `docker exec` must find the daemon at the default path. A configured
/// `socket` path's directory is the user's to provide.
pub fn create_default_dir(path: &Path) -> Result<(), Error> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|source| Error::CreateDir {
            path: path.to_owned(),
            source,
        })
}

/// The bound socket file; removed on drop while it is still ours.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| m.dev() == self.dev && m.ino() == self.ino)
            .unwrap_or(false);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!(socket = %self.path.display(), "cannot remove the control socket: {e}");
            }
        }
    }
}

/// Replaces a stale socket, binds, and applies mode and owner.
pub async fn bind(
    path: &Path,
    mode: u32,
    owner: Option<&str>,
) -> Result<(UnixListener, SocketFile), Error> {
    // Resolve the owner first: a typo must not leave a half-configured socket.
    let ids = owner.map(|o| resolve_owner(path, o)).transpose()?;
    remove_stale(path).await?;
    let listener = UnixListener::bind(path).map_err(|source| Error::Bind {
        path: path.to_owned(),
        source,
    })?;
    // From here on the file is reached only through `node`, an O_PATH handle
    // on the name that was checked to be our socket: if someone replaced it
    // in between (a directory others can write), the mode and owner are not
    // applied to what they put there.
    let (node, meta) = bound_node(path)?;
    let file = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    let by_fd = PathBuf::from(format!("/proc/self/fd/{}", node.as_raw_fd()));
    std::fs::set_permissions(&by_fd, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        Error::Chmod {
            path: path.to_owned(),
            mode,
            source,
        }
    })?;
    if let (Some((uid, gid)), Some(owner)) = (ids, owner) {
        std::os::unix::fs::chown(&by_fd, uid, gid).map_err(|source| Error::Chown {
            path: path.to_owned(),
            owner: owner.to_owned(),
            source,
        })?;
    }
    if let Some(shared) = safe_open::shared_dir(path) {
        tracing::warn!(
            socket = %path.display(),
            "the control socket is in {shared}: they can remove or replace it \
             (the peer check still guards the daemon, but clients could be misled)"
        );
    }
    Ok((listener, file))
}

/// The socket file just bound at `path`, opened without following a link
/// (`O_PATH | O_NOFOLLOW`): it must be a socket of the daemon's own uid.
fn bound_node(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), Error> {
    let replaced = |what: String| Error::Replaced {
        path: path.to_owned(),
        what,
    };
    // With O_PATH, O_NOFOLLOW opens a symbolic link itself.
    let node = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|source| Error::Bind {
            path: path.to_owned(),
            source,
        })?;
    let meta = node.metadata().map_err(|source| Error::Bind {
        path: path.to_owned(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(replaced("a symbolic link".into()));
    }
    if !meta.file_type().is_socket() {
        return Err(replaced("something that is not a socket".into()));
    }
    if meta.uid() != Uid::effective().as_raw() {
        return Err(replaced(format!("a socket of uid {}", meta.uid())));
    }
    Ok((node, meta))
}

/// Removes a socket file nobody answers on; refuses a live one or a non-socket.
async fn remove_stale(path: &Path) -> Result<(), Error> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Probe {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.file_type().is_socket() {
        return Err(Error::NotASocket {
            path: path.to_owned(),
        });
    }
    match UnixStream::connect(path).await {
        Ok(_) => Err(Error::AlreadyRunning {
            path: path.to_owned(),
        }),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            tracing::info!(socket = %path.display(), "removing the stale control socket of a previous run");
            std::fs::remove_file(path).map_err(|source| Error::RemoveStale {
                path: path.to_owned(),
                source,
            })
        }
        Err(source) => Err(Error::Probe {
            path: path.to_owned(),
            source,
        }),
    }
}

/// `user[:group]` (names or numbers) → uid and gid; the group defaults to the
/// user's primary group.
fn resolve_owner(path: &Path, owner: &str) -> Result<(Option<u32>, Option<u32>), Error> {
    let bad = |what: String| Error::Owner {
        path: path.to_owned(),
        owner: owner.to_owned(),
        what,
    };
    let (user, group) = match owner.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (owner, None),
    };
    let (uid, primary_gid) = if user.is_empty() {
        (None, None)
    } else if let Ok(n) = user.parse::<u32>() {
        let primary = accounts::user_by_uid(n).ok().flatten().map(|u| u.gid);
        (Some(n), primary)
    } else {
        match accounts::user_by_name(user) {
            Ok(Some(u)) => (Some(u.uid), Some(u.gid)),
            Ok(None) => return Err(bad(format!("no such user {user:?}"))),
            Err(e) => return Err(bad(e.to_string())),
        }
    };
    let gid = match group {
        None | Some("") => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => match accounts::group_by_name(g) {
                Ok(Some(gid)) => Some(gid),
                Ok(None) => return Err(bad(format!("no such group {g:?}"))),
                Err(e) => return Err(bad(e.to_string())),
            },
        },
    };
    if uid.is_none() && gid.is_none() {
        return Err(bad("expected user[:group]".to_string()));
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_socket_directory_is_created_0755_when_missing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let run = dir.path().join("run");
        let path = run.join("nsvisor.sock");
        assert!(create_default_dir(&path).is_ok());
        let mode = std::fs::metadata(&run).map(|m| m.permissions().mode() & 0o7777);
        assert_eq!(mode.ok(), Some(0o755));
        assert!(create_default_dir(&path).is_ok(), "an existing one is fine");
    }

    #[test]
    fn an_instance_path_is_beside_the_default() {
        let path = |p: &str| instance_socket_path(Path::new(p), 42);
        assert_eq!(path("/run/nsvisor.sock"), Path::new("/run/nsvisor-42.sock"));
        assert_eq!(
            path("/tmp/nsvisor-1000.sock"),
            Path::new("/tmp/nsvisor-1000-42.sock")
        );
    }

    #[test]
    fn owner_forms() {
        let p = Path::new("/x.sock");
        assert_eq!(resolve_owner(p, "0").ok(), Some((Some(0), Some(0))));
        assert_eq!(resolve_owner(p, "root:0").ok(), Some((Some(0), Some(0))));
        assert_eq!(
            resolve_owner(p, "12345:54321").ok(),
            Some((Some(12345), Some(54321)))
        );
        assert_eq!(resolve_owner(p, ":7").ok(), Some((None, Some(7))));
        let err = resolve_owner(p, "no-such-user-xyz")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("control socket /x.sock: socket_owner \"no-such-user-xyz\": no such user \"no-such-user-xyz\"")
        );
        assert!(resolve_owner(p, ":").is_err());
    }

    #[tokio::test]
    async fn stale_socket_is_replaced_and_live_one_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sock");
        // A stale socket: bound, then its listener dropped (no one answers).
        drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
        let (live, file) = bind(&path, 0o600, None)
            .await
            .expect("bind over a stale socket");
        let mode = std::fs::metadata(&path)
            .map(|m| m.permissions().mode() & 0o777)
            .ok();
        assert_eq!(mode, Some(0o600));
        let again = bind(&path, 0o600, None).await.err().map(|e| e.to_string());
        assert!(again.is_some_and(|m| m.contains("another nsvisor is already running")));
        drop(live);
        drop(file);
        assert!(!path.exists(), "the socket file is removed on drop");
        std::fs::write(&path, b"not a socket").expect("write");
        assert!(matches!(
            bind(&path, 0o600, None).await,
            Err(Error::NotASocket { .. })
        ));
        assert!(path.exists(), "a non-socket is never deleted");
    }

    #[tokio::test]
    async fn a_symlink_at_the_socket_path_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        std::fs::write(&target, b"untouched").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let path = dir.path().join("s.sock");
        std::os::unix::fs::symlink(&target, &path).expect("symlink");
        let err = bind(&path, 0o666, None).await.err();
        assert!(matches!(err, Some(Error::NotASocket { .. })), "{err:?}");
        // A link to a dead socket is no socket either.
        let dead = dir.path().join("dead.sock");
        drop(std::os::unix::net::UnixListener::bind(&dead).expect("bind"));
        let link = dir.path().join("l.sock");
        std::os::unix::fs::symlink(&dead, &link).expect("symlink");
        let err = bind(&link, 0o666, None).await.err();
        assert!(matches!(err, Some(Error::NotASocket { .. })), "{err:?}");
        assert!(dead.exists(), "the link's target is not removed");
        let meta = std::fs::metadata(&target).expect("target");
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "target's mode untouched"
        );
        assert_eq!(
            std::fs::read(&target).ok().as_deref(),
            Some(&b"untouched"[..])
        );
    }

    #[test]
    fn only_our_own_socket_is_chmodded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").expect("write");
        assert!(matches!(bound_node(&file), Err(Error::Replaced { .. })));
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let err = bound_node(&link).err().map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("replaced by a symbolic link")));
        let sock = dir.path().join("s");
        let _l = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        assert!(bound_node(&sock).is_ok());
    }
}
