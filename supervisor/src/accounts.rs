//! User and group lookup: names and numbers → uid, gid, home and groups.
//!
//! A dynamically linked daemon asks the C library (NSS: `getpwnam`,
//! `getgrnam`, `getgrouplist`), so whatever `/etc/nsswitch.conf` names (LDAP,
//! systemd-userdb ...) is honoured. A statically linked daemon (`+crt-static`,
//! the release tarball) cannot use NSS safely: glibc would `dlopen` NSS
//! modules of the image's own, possibly different, glibc. It reads
//! `/etc/passwd` and `/etc/group` itself instead, as they are in the image
//! (what busybox and musl do). The parser is compiled into every build and
//! unit-tested; only the choice of source depends on the link mode.
//!
//! Callers: `process::spawn` (a program's `user`), `api::socket`
//! (`socket_owner`). A missing file means "no such entry", not an error.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// One user: a line of `/etc/passwd` (or what NSS returned for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
}

/// A lookup that could not be answered (as opposed to "no such entry").
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The passwd or group file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadFile {
        /// `/etc/passwd` or `/etc/group`.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The C library's lookup failed.
    #[error("cannot look up {what}: {source}")]
    Nss {
        /// `user "web"`, `group "staff"` ...
        what: String,
        /// The errno of getpwnam_r and friends.
        source: nix::errno::Errno,
    },
}

/// The user called `name`.
pub fn user_by_name(name: &str) -> Result<Option<Account>, LookupError> {
    source::user_by_name(name)
}

/// The user with id `uid`.
pub fn user_by_uid(uid: u32) -> Result<Option<Account>, LookupError> {
    source::user_by_uid(uid)
}

/// The id of the group called `name`.
pub fn group_by_name(name: &str) -> Result<Option<u32>, LookupError> {
    source::group_by_name(name)
}

/// The groups of user `name` with primary group `gid`: `gid` first, then
/// every group that lists `name` as a member (what `initgroups` sets). On a
/// failed lookup, just `gid`.
pub fn group_list(name: &str, gid: u32) -> Vec<u32> {
    source::group_list(name, gid)
}

/// Lookups through the C library's NSS (dynamically linked builds).
#[cfg(not(target_feature = "crt-static"))]
mod source {
    use nix::unistd::{Gid, Group, Uid, User};

    use super::{Account, LookupError};

    fn account(u: User) -> Account {
        Account {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            home: u.dir,
        }
    }

    pub(super) fn user_by_name(name: &str) -> Result<Option<Account>, LookupError> {
        User::from_name(name)
            .map(|u| u.map(account))
            .map_err(|source| LookupError::Nss {
                what: format!("user {name:?}"),
                source,
            })
    }

    pub(super) fn user_by_uid(uid: u32) -> Result<Option<Account>, LookupError> {
        User::from_uid(Uid::from_raw(uid))
            .map(|u| u.map(account))
            .map_err(|source| LookupError::Nss {
                what: format!("uid {uid}"),
                source,
            })
    }

    pub(super) fn group_by_name(name: &str) -> Result<Option<u32>, LookupError> {
        Group::from_name(name)
            .map(|g| g.map(|g| g.gid.as_raw()))
            .map_err(|source| LookupError::Nss {
                what: format!("group {name:?}"),
                source,
            })
    }

    pub(super) fn group_list(name: &str, gid: u32) -> Vec<u32> {
        let Ok(cname) = std::ffi::CString::new(name) else {
            return vec![gid];
        };
        nix::unistd::getgrouplist(&cname, Gid::from_raw(gid))
            .map(|gs| gs.into_iter().map(|g| g.as_raw()).collect())
            .unwrap_or_else(|_| vec![gid])
    }
}

/// Lookups in `/etc/passwd` and `/etc/group` (statically linked builds).
#[cfg(target_feature = "crt-static")]
mod source {
    use super::{Account, Files, LookupError};

    pub(super) fn user_by_name(name: &str) -> Result<Option<Account>, LookupError> {
        Files::system().user_by_name(name)
    }

    pub(super) fn user_by_uid(uid: u32) -> Result<Option<Account>, LookupError> {
        Files::system().user_by_uid(uid)
    }

    pub(super) fn group_by_name(name: &str) -> Result<Option<u32>, LookupError> {
        Files::system().group_by_name(name)
    }

    pub(super) fn group_list(name: &str, gid: u32) -> Vec<u32> {
        Files::system()
            .group_list(name, gid)
            .unwrap_or_else(|_| vec![gid])
    }
}

/// A passwd file and a group file, read on every lookup (they are small, and
/// a reload must see an image's or a volume's current files).
#[derive(Debug, Clone)]
pub struct Files {
    passwd: PathBuf,
    group: PathBuf,
}

impl Files {
    /// `/etc/passwd` and `/etc/group`.
    pub fn system() -> Files {
        Files::at(Path::new("/etc/passwd"), Path::new("/etc/group"))
    }

    /// Other files (tests).
    pub fn at(passwd: &Path, group: &Path) -> Files {
        Files {
            passwd: passwd.to_owned(),
            group: group.to_owned(),
        }
    }

    /// The first passwd line whose name is `name`.
    pub fn user_by_name(&self, name: &str) -> Result<Option<Account>, LookupError> {
        let text = read(&self.passwd)?;
        let found = passwd_entries(&text).find(|a| a.name == name);
        Ok(found)
    }

    /// The first passwd line whose uid is `uid`.
    pub fn user_by_uid(&self, uid: u32) -> Result<Option<Account>, LookupError> {
        let text = read(&self.passwd)?;
        let found = passwd_entries(&text).find(|a| a.uid == uid);
        Ok(found)
    }

    /// The gid of the first group line whose name is `name`.
    pub fn group_by_name(&self, name: &str) -> Result<Option<u32>, LookupError> {
        let text = read(&self.group)?;
        let found = group_entries(&text).find(|g| g.name == name);
        Ok(found.map(|g| g.gid))
    }

    /// `gid`, then the gid of every group listing `user` as a member, each once.
    pub fn group_list(&self, user: &str, gid: u32) -> Result<Vec<u32>, LookupError> {
        let text = read(&self.group)?;
        let mut groups = vec![gid];
        for g in group_entries(&text) {
            if g.members.split(',').any(|m| m == user) && !groups.contains(&g.gid) {
                groups.push(g.gid);
            }
        }
        Ok(groups)
    }
}

/// The file's text; a missing file is an empty one.
fn read(path: &Path) -> Result<String, LookupError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(LookupError::ReadFile {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The well-formed entries of a passwd file: `name:password:uid:gid:gecos:home:shell`.
/// Comments, blank lines, NIS `+`/`-` lines and lines with a bad number are skipped.
fn passwd_entries(text: &str) -> impl Iterator<Item = Account> + '_ {
    entry_fields(text).filter_map(|f| {
        let [name, _, uid, gid, _, home, ..] = f[..] else {
            return None;
        };
        Some(Account {
            name: name.to_string(),
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            home: PathBuf::from(home),
        })
    })
}

/// One line of a group file: `name:password:gid:member,member`.
struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: &'a str,
}

/// The well-formed entries of a group file (skipped lines as for passwd).
fn group_entries(text: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    entry_fields(text).filter_map(|f| {
        let [name, _, gid, ref rest @ ..] = f[..] else {
            return None;
        };
        Some(GroupEntry {
            name,
            gid: gid.parse().ok()?,
            members: rest.first().copied().unwrap_or(""),
        })
    })
}

/// The `:`-separated fields of each line that can be an entry.
fn entry_fields(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(['+', '-']))
        .map(|l| l.split(':').collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
# comment
root:x:0:0:root:/root:/bin/sh

app:x:1234:1235:The App,,,:/home/app:/sbin/nologin
broken:x:notanumber:1:::
short:x:5
+nisuser::::::
app:x:9999:9999::/shadowed:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
app:x:1235:
extra:x:77:other,app
more:x:78:app
dup:x:1235:app
bad:x:zz:app
";

    fn files() -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let (p, g) = (dir.path().join("passwd"), dir.path().join("group"));
        std::fs::write(&p, PASSWD).unwrap_or_else(|e| panic!("write: {e}"));
        std::fs::write(&g, GROUP).unwrap_or_else(|e| panic!("write: {e}"));
        let files = Files::at(&p, &g);
        (dir, files)
    }

    #[test]
    fn users_resolve_by_name_and_uid_first_line_wins() {
        let (_dir, f) = files();
        let app = Account {
            name: "app".into(),
            uid: 1234,
            gid: 1235,
            home: "/home/app".into(),
        };
        assert_eq!(f.user_by_name("app").ok().flatten(), Some(app.clone()));
        assert_eq!(f.user_by_uid(1234).ok().flatten(), Some(app));
        assert_eq!(
            f.user_by_uid(0).ok().flatten().map(|a| a.name),
            Some("root".into())
        );
    }

    #[test]
    fn malformed_comment_and_nis_lines_are_skipped() {
        let (_dir, f) = files();
        for name in ["broken", "short", "+nisuser", "nisuser", "# comment", ""] {
            assert_eq!(f.user_by_name(name).ok().flatten(), None, "{name:?}");
        }
        assert_eq!(f.group_by_name("bad").ok().flatten(), None);
    }

    #[test]
    fn groups_resolve_by_name() {
        let (_dir, f) = files();
        assert_eq!(f.group_by_name("extra").ok().flatten(), Some(77));
        assert_eq!(f.group_by_name("nope").ok().flatten(), None);
    }

    #[test]
    fn group_list_is_primary_then_memberships_each_once() {
        let (_dir, f) = files();
        assert_eq!(f.group_list("app", 1235).ok(), Some(vec![1235, 77, 78]));
        assert_eq!(f.group_list("root", 0).ok(), Some(vec![0]));
        assert_eq!(f.group_list("other", 500).ok(), Some(vec![500, 77]));
    }

    #[test]
    fn missing_files_mean_no_entries() {
        let f = Files::at(
            Path::new("/nonexistent/passwd"),
            Path::new("/nonexistent/group"),
        );
        assert_eq!(f.user_by_name("root").ok().flatten(), None);
        assert_eq!(f.group_list("root", 0).ok(), Some(vec![0]));
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        // A directory cannot be read as a file, even by root.
        let f = Files::at(dir.path(), dir.path());
        let err = f.user_by_name("root").err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with(&format!("cannot read {}: ", dir.path().display()))),
            "{err:?}"
        );
    }

    #[test]
    fn the_build_resolves_root() {
        assert_eq!(
            user_by_uid(0).ok().flatten().map(|a| a.name),
            Some("root".into())
        );
        assert_eq!(user_by_name("root").ok().flatten().map(|a| a.uid), Some(0));
        assert_eq!(group_list("root", 0).first(), Some(&0));
    }
}
