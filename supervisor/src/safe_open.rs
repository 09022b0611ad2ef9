//! Opening the files nsvisor writes by path — program log files, the
//! daemon's own log, the pidfile — so that nobody else can make it write
//! somewhere else.
//!
//! The danger is a directory other users can write (`/tmp`, a group-writable
//! log directory, one owned by another user): someone there can plant a
//! symbolic link at the path nsvisor is about to open (`app.log →
//! /etc/shadow`), a hard link, or a file of their own, and a daemon running as
//! root would append to, create or truncate whatever it points to. So in such
//! a *shared* directory ([`shared_dir`]):
//! - the last path component is never followed: `O_NOFOLLOW`, and a missing
//!   file is created with `O_CREAT | O_EXCL` (which never follows either);
//! - what was opened is checked on the open file itself (no race): it must
//!   belong to root or to the daemon's user, and a regular file must have no
//!   other hard link.
//!
//! In a directory only root or the daemon's user can write, paths are opened
//! as given, symbolic links included: `stdout_logfile = "/dev/stdout"` (a
//! link to `/proc/self/fd/1`) must keep working. Directories above the last
//! component are the administrator's to choose and are followed as usual.
//! Refusals are `io::Error`s whose message says why; callers add the path.
//! Used by `logs/target.rs`, `daemon_log/file.rs`, the XML-RPC `clear*Log`
//! methods and `main.rs` (pidfile).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::Uid;

/// How to open a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Open {
    /// Also for reading.
    pub read: bool,
    /// Writes go to the end (`O_APPEND`); otherwise plain writes.
    pub append: bool,
    /// Truncate an existing file.
    pub truncate: bool,
    /// Create a missing file with this mode (`None`: a missing file is an error).
    pub create: Option<u32>,
    /// `O_NONBLOCK` (a FIFO must never block the opener).
    pub nonblock: bool,
}

/// Why a directory counts as shared: someone other than root and the
/// daemon's user may add or replace entries in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// The directory.
    pub dir: PathBuf,
}

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, a directory other users can write",
            self.dir.display()
        )
    }
}

/// The directory `path` is in, when other users can write it: world- or
/// group-writable (sticky or not: a sticky `/tmp` still lets anyone plant a
/// name before nsvisor creates it), or owned by a user other than root and
/// the daemon's. `None` when it is private, or cannot be read (opening the
/// file then fails on its own).
pub fn shared_dir(path: &Path) -> Option<Shared> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let meta = std::fs::metadata(dir).ok()?;
    is_shared(meta.mode(), meta.uid(), Uid::effective().as_raw()).then(|| Shared {
        dir: dir.to_path_buf(),
    })
}

/// The rule of [`shared_dir`] for a directory's mode and owner.
fn is_shared(mode: u32, owner: u32, own_uid: u32) -> bool {
    mode & 0o022 != 0 || (owner != 0 && owner != own_uid)
}

/// Opens `path` as `how` says, refusing in a shared directory what another
/// user could have planted (see the module doc).
pub fn open(path: &Path, how: Open) -> io::Result<File> {
    let shared = shared_dir(path);
    let mut flags = 0;
    if how.nonblock {
        flags |= libc::O_NONBLOCK;
    }
    if shared.is_some() {
        flags |= libc::O_NOFOLLOW;
    }
    let mut opts = OpenOptions::new();
    opts.read(how.read)
        .write(!how.append)
        .append(how.append)
        .truncate(how.truncate)
        .custom_flags(flags);
    let opened = match (&shared, how.create) {
        (_, None) => opts.open(path),
        (None, Some(mode)) => opts.create(true).mode(mode).open(path),
        (Some(_), Some(mode)) => open_or_create_new(&mut opts, path, mode),
    };
    let file = opened.map_err(|e| match (&shared, e.raw_os_error()) {
        (Some(shared), Some(libc::ELOOP)) => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("it is a symbolic link in {shared}: not followed"),
        ),
        _ => e,
    })?;
    if let Some(shared) = shared {
        check_planted(&file, &shared)?;
    }
    Ok(file)
}

/// In a shared directory: opens an existing file without following it, or
/// creates a new one with `O_EXCL` (a name planted in between is opened
/// on the next round, then checked like any existing file).
fn open_or_create_new(opts: &mut OpenOptions, path: &Path, mode: u32) -> io::Result<File> {
    for _ in 0..3 {
        match opts.create(false).open(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        match opts.create_new(true).mode(mode).open(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            other => return other,
        }
        opts.create_new(false);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "the file kept appearing and disappearing while it was being opened",
    ))
}

/// What was opened in a shared directory must be the daemon's (or root's),
/// and a regular file must have no other name.
fn check_planted(file: &File, shared: &Shared) -> io::Result<()> {
    let meta = file.metadata()?;
    let own = Uid::effective().as_raw();
    if meta.uid() != 0 && meta.uid() != own {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to uid {}, in {shared}: not written (only files of uid {own} or root are)",
                meta.uid()
            ),
        ));
    }
    if meta.is_file() && meta.nlink() > 1 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it has {} hard links, in {shared}: not written",
                meta.nlink()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const APPEND: Open = Open {
        read: false,
        append: true,
        truncate: false,
        create: Some(0o644),
        nonblock: false,
    };

    fn dir(mode: u32) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
        d
    }

    #[test]
    fn which_directories_are_shared() {
        let me = 1000;
        assert!(!is_shared(0o755, 0, me));
        assert!(!is_shared(0o700, me, me));
        assert!(
            is_shared(0o1777, 0, me),
            "sticky /tmp: names can be planted"
        );
        assert!(is_shared(0o775, 0, me), "group-writable");
        assert!(is_shared(0o755, 2000, me), "another user's directory");
        assert!(!is_shared(0o755, 0, 0));
    }

    #[test]
    fn a_symlink_in_a_shared_directory_is_not_followed() {
        let shared = dir(0o777);
        let target = shared.path().join("target");
        std::fs::write(&target, "untouched").expect("write");
        let link = shared.path().join("app.log");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = open(&link, APPEND).expect_err("a planted symlink is refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(err.to_string().contains("other users can write"), "{err}");
        // A dangling one is not created through either.
        let dangling = shared.path().join("new.log");
        std::os::unix::fs::symlink(shared.path().join("made"), &dangling).expect("symlink");
        assert!(open(&dangling, APPEND).is_err());
        assert!(!shared.path().join("made").exists());
        assert_eq!(
            std::fs::read_to_string(&target).ok().as_deref(),
            Some("untouched")
        );
    }

    #[test]
    fn a_symlink_in_a_private_directory_is_followed() {
        let private = dir(0o755);
        let target = private.path().join("target");
        let link = private.path().join("app.log");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let f = open(&link, APPEND).expect("followed");
        drop(f);
        assert!(target.exists());
    }

    #[test]
    fn a_file_is_created_in_a_shared_directory_and_opened_again() {
        let shared = dir(0o777);
        let path = shared.path().join("app.log");
        std::io::Write::write_all(&mut open(&path, APPEND).expect("create"), b"a").expect("write");
        std::io::Write::write_all(&mut open(&path, APPEND).expect("reopen"), b"b").expect("write");
        assert_eq!(std::fs::read_to_string(&path).ok().as_deref(), Some("ab"));
    }

    #[test]
    fn another_users_file_in_a_shared_directory_is_refused() {
        if !Uid::effective().is_root() {
            eprintln!("skipping: needs root to give a file away");
            return;
        }
        let shared = dir(0o777);
        let path = shared.path().join("app.log");
        std::fs::write(&path, "theirs").expect("write");
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).expect("chown");
        let err = open(&path, APPEND).expect_err("a planted file is refused");
        assert!(err.to_string().contains("belongs to uid 65534"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("theirs")
        );
    }

    #[test]
    fn a_hard_link_in_a_shared_directory_is_refused() {
        let shared = dir(0o777);
        let target = shared.path().join("target");
        std::fs::write(&target, "untouched").expect("write");
        let link = shared.path().join("app.log");
        std::fs::hard_link(&target, &link).expect("link");
        let err = open(&link, APPEND).expect_err("a second name is refused");
        assert!(err.to_string().contains("hard links"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&target).ok().as_deref(),
            Some("untouched")
        );
    }

    #[test]
    fn without_create_a_missing_file_is_an_error() {
        let shared = dir(0o777);
        let path = shared.path().join("none");
        let how = Open {
            create: None,
            ..APPEND
        };
        assert_eq!(
            open(&path, how).err().map(|e| e.kind()),
            Some(io::ErrorKind::NotFound)
        );
        assert!(!path.exists());
    }
}
