//! Names: every program on a network reaches the others by name, as on a
//! Docker user-defined network. Each sandbox gets its own `hosts` and
//! `resolv.conf` under `/run/nsvisor/names/<netns>/`, bind-mounted over
//! `/etc/hosts` and `/etc/resolv.conf` in a mount namespace of the sandbox's
//! own (what `ip netns exec` does with `/etc/netns/NAME/`); the sandbox's
//! programs and exec checks are spawned into it. The host's files are never
//! written.
//!
//! The hosts file lists, for every sandbox on the same network, its address
//! and its names: the sandbox name, then the name and the group of each
//! program in it, each made a hostname by [`hostname`]. The manager rewrites
//! it whenever a program joins or leaves the network, *in place* (truncate
//! and write, same inode), since each bind mount holds the file it was made
//! on. `resolv.conf` follows [`resolv_conf`].
//!
//! The mount namespace is held by an fd of the daemon, never by a mount on
//! the host: it goes away with the daemon and the last process in it, and
//! the host's mount table never shows it. Only the files can outlive a
//! killed daemon; [`cleanup`] removes them at the next start. Blocking file
//! and mount work: called on blocking threads by the manager.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::owner;
use crate::sys;

/// Where the sandboxes' files live: one directory per namespace.
pub const NAMES_DIR: &str = "/run/nsvisor/names";

/// The host's files a sandbox gets its own copy of.
const HOSTS: &str = "/etc/hosts";
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// systemd-resolved's list of the upstream servers, used when the host's
/// `resolv.conf` names only its loopback stub (as Docker does).
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// One line of a hosts file: an address and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The sandbox's address.
    pub address: Ipv4Addr,
    /// Its names (already hostnames), first the sandbox's.
    pub names: Vec<String>,
}

impl Entry {
    /// The entry of a sandbox from its name and its programs' names and
    /// groups: each made a hostname, each once, in that order.
    pub fn new<'a>(
        address: Ipv4Addr,
        sandbox: &str,
        programs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Entry {
        let mut names: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if let Some(h) = hostname(name) {
                if !names.contains(&h) {
                    names.push(h);
                }
            }
        };
        add(sandbox);
        let programs: Vec<(&str, &str)> = programs.into_iter().collect();
        for (program, _) in &programs {
            add(program);
        }
        for (_, group) in &programs {
            add(group);
        }
        Entry { address, names }
    }
}

/// A name as a hostname: ASCII letters, digits, `-`, `_` and `.` are kept,
/// every other character becomes `-` (`web:0` → `web-0`); `-` and `.` are
/// trimmed from both ends, and the result is cut to 253 bytes. `None` when
/// nothing is left.
pub fn hostname(name: &str) -> Option<String> {
    let mapped: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_matches(['-', '.']);
    let cut = &trimmed[..trimmed.len().min(253)];
    let cut = cut.trim_end_matches(['-', '.']);
    (!cut.is_empty()).then(|| cut.to_string())
}

/// The hosts file of sandbox `sandbox` on network `network`: localhost,
/// then `entries` (every sandbox on the network) in address order.
pub fn hosts_file(sandbox: &str, network: &str, entries: &[Entry]) -> String {
    let mut text = format!(
        "# /etc/hosts of sandbox \"{sandbox}\" on network \"{network}\", written by nsvisor:\n\
         # every sandbox on the network by its sandbox, program and group names.\n\
         # Rewritten when programs join or leave the network; edits are lost.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n"
    );
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.names.is_empty()).collect();
    sorted.sort_by_key(|e| e.address);
    for e in sorted {
        let _ = writeln!(text, "{}\t{}", e.address, e.names.join(" "));
    }
    text
}

/// The `resolv.conf` of a sandbox from the host's `text`: the same lines,
/// except that `nameserver` lines naming a loopback address (127.0.0.0/8,
/// `::1`, e.g. systemd-resolved's 127.0.0.53) are commented out: inside the
/// sandbox's network namespace the loopback is the sandbox's own, and no
/// server listens there.
pub fn resolv_conf(text: &str) -> String {
    let mut out = String::from(
        "# resolv.conf of an nsvisor sandbox: the host's, without loopback nameservers\n",
    );
    for line in text.lines() {
        if nameserver(line).is_some_and(is_loopback) {
            let _ = writeln!(
                out,
                "# {line}  (the host's loopback: not reachable from the sandbox)"
            );
        } else {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// The address of a `nameserver ADDR` line.
fn nameserver(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    (words.next()? == "nameserver").then_some(())?;
    words.next()
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The host's resolver configuration to copy: `/etc/resolv.conf`, or
/// systemd-resolved's upstream list when every nameserver of the former is
/// a loopback address. Empty when the host has none.
pub fn host_resolv_conf() -> String {
    let text = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
    let servers: Vec<&str> = text.lines().filter_map(nameserver).collect();
    if !servers.is_empty() && servers.iter().all(|s| is_loopback(s)) {
        if let Ok(upstream) = std::fs::read_to_string(RESOLVED_UPSTREAM) {
            return upstream;
        }
    }
    text
}

/// The directory of namespace `netns`'s files.
pub fn dir_of(names_dir: &Path, netns: &str) -> PathBuf {
    names_dir.join(netns)
}

/// Path of a sandbox's hosts file.
pub fn hosts_path(dir: &Path) -> PathBuf {
    dir.join("hosts")
}

/// Writes `text` into `path` in place: created if missing, else truncated
/// and rewritten, never replaced (a bind mount holds the inode). Mode 0644.
pub fn write_in_place(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.write_all(text.as_bytes())
}

/// One sandbox's names to bring up to date.
#[derive(Debug, Clone)]
pub struct Job {
    /// Sandbox name.
    pub sandbox: String,
    /// Its directory ([`dir_of`]).
    pub dir: PathBuf,
    /// Its hosts file.
    pub hosts: String,
    /// It has no files and mount namespace yet.
    pub new: bool,
}

/// Rewrites the hosts file of each job, or makes the files and the mount
/// namespace of a new one (with the host's resolver configuration). Returns
/// the new namespaces by sandbox; an error names the sandbox and the step.
pub fn apply(jobs: Vec<Job>) -> Result<Vec<(String, OwnedFd)>, (String, String, io::Error)> {
    let resolv = resolv_conf(&host_resolv_conf());
    let mut made = Vec::new();
    for job in jobs {
        if job.new {
            let fd = create(&job.dir, &job.hosts, &resolv).map_err(|e| {
                let step = format!("make its names in {}", job.dir.display());
                (job.sandbox.clone(), step, e)
            })?;
            made.push((job.sandbox, fd));
        } else {
            let path = hosts_path(&job.dir);
            write_in_place(&path, &job.hosts)
                .map_err(|e| (job.sandbox, format!("rewrite {}", path.display()), e))?;
        }
    }
    Ok(made)
}

/// Writes a sandbox's files into `dir` and makes its mount namespace, with
/// them laid over the host's `/etc/hosts` and `/etc/resolv.conf` (a host
/// file that does not exist has nothing to lay over: skipped). Returns the
/// namespace's fd; on error the directory is removed again.
pub fn create(dir: &Path, hosts: &str, resolv: &str) -> io::Result<OwnedFd> {
    let made = write_files(dir, hosts, resolv).and_then(|()| mount_namespace(dir));
    if made.is_err() {
        let _ = remove(dir);
    }
    made
}

fn write_files(dir: &Path, hosts: &str, resolv: &str) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    write_in_place(&hosts_path(dir), hosts)?;
    write_in_place(&dir.join("resolv.conf"), resolv)
}

/// A new mount namespace with the files of `dir` over the host's, and
/// without the host's `/run/netns`, made on a dedicated thread that exits
/// right after (DESIGN §6): the fd keeps it.
fn mount_namespace(dir: &Path) -> io::Result<OwnedFd> {
    let pairs = [
        (hosts_path(dir), Path::new(HOSTS)),
        (dir.join("resolv.conf"), Path::new(RESOLV_CONF)),
    ];
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<OwnedFd> {
            sys::unshare_mountns()?;
            // The copy of /run/netns would hold every other sandbox's
            // namespace open, and every sandbox made later would be mounted
            // into this copy too (O(N) per sandbox): the sandbox needs none.
            match sys::umount_detach(Path::new(super::netns::NETNS_DIR)) {
                Err(e) if e.raw_os_error() != Some(libc::EINVAL) => return Err(e),
                _ => {}
            }
            for (file, target) in &pairs {
                if target.exists() {
                    sys::bind_mount(file, target)?;
                } else {
                    tracing::warn!(
                        "the host has no {}: the sandbox gets none either",
                        target.display()
                    );
                }
            }
            Ok(OwnedFd::from(File::open("/proc/thread-self/ns/mnt")?))
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("mount namespace thread panicked")))
    })
}

/// Removes a sandbox's directory (absent is fine).
pub fn remove(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the directories of namespaces whose owner mark (in `mark_dir`)
/// is gone or names a daemon that no longer runs: a live daemon writes the
/// mark before the files and removes the files before the mark. Returns
/// what was removed and what could not be.
pub fn cleanup(names_dir: &Path, mark_dir: &Path) -> (Vec<String>, Vec<(PathBuf, io::Error)>) {
    let (mut removed, mut errors) = (Vec::new(), Vec::new());
    let Ok(entries) = std::fs::read_dir(names_dir) else {
        return (removed, errors);
    };
    for entry in entries.flatten() {
        let netns = entry.file_name().to_string_lossy().into_owned();
        let dead = match owner::read_mark(mark_dir, &netns) {
            Ok(Some(o)) => !o.is_alive(),
            Ok(None) => true,
            Err(_) => false,
        };
        if dead {
            match remove(&entry.path()) {
                Ok(()) => removed.push(format!("names of {netns} ({})", entry.path().display())),
                Err(e) => errors.push((entry.path(), e)),
            }
        }
    }
    (removed, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_hostnames() {
        assert_eq!(hostname("web").as_deref(), Some("web"));
        assert_eq!(hostname("web:0").as_deref(), Some("web-0"));
        assert_eq!(hostname("db_main.v2").as_deref(), Some("db_main.v2"));
        assert_eq!(hostname("-a b-").as_deref(), Some("a-b"));
        assert_eq!(hostname("é").as_deref(), None);
        assert_eq!(hostname(":::"), None);
        assert_eq!(hostname(&"x".repeat(300)).map(|h| h.len()), Some(253));
    }

    #[test]
    fn an_entry_lists_sandbox_programs_then_groups_once() {
        let e = Entry::new(
            Ipv4Addr::new(172, 20, 0, 2),
            "pod",
            [("web:0", "web"), ("side", "side"), ("web", "web")],
        );
        assert_eq!(e.names, ["pod", "web-0", "side", "web"]);
    }

    #[test]
    fn the_hosts_file_has_localhost_then_every_sandbox_by_address() {
        let a = Entry::new(Ipv4Addr::new(172, 20, 0, 10), "b", [("b", "b")]);
        let b = Entry::new(Ipv4Addr::new(172, 20, 0, 2), "a", [("a", "grp")]);
        let text = hosts_file("a", "front", &[a, b]);
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "127.0.0.1\tlocalhost",
                "::1\tlocalhost ip6-localhost ip6-loopback",
                "172.20.0.2\ta grp",
                "172.20.0.10\tb",
            ]
        );
    }

    #[test]
    fn loopback_nameservers_are_commented_out() {
        let host = "search example.org\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n\
                    nameserver ::1\noptions edns0\n";
        let text = resolv_conf(host);
        let live: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            live,
            ["search example.org", "nameserver 10.0.0.1", "options edns0"]
        );
        assert!(text.contains("# nameserver 127.0.0.53"), "{text}");
    }

    #[test]
    fn rewriting_keeps_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        write_in_place(&path, "first, longer text\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        write_in_place(&path, "second\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
    }

    #[test]
    fn cleanup_removes_files_without_a_live_owner_only() {
        let names = tempfile::tempdir().unwrap();
        let marks = tempfile::tempdir().unwrap();
        for netns in ["nsvisor-live", "nsvisor-dead", "nsvisor-unmarked"] {
            write_files(&names.path().join(netns), "h", "r").unwrap();
        }
        let me = owner::Owner::current().unwrap();
        owner::write_mark(marks.path(), "nsvisor-live", me).unwrap();
        let dead = owner::Owner {
            start: me.start + 1,
            ..me
        };
        owner::write_mark(marks.path(), "nsvisor-dead", dead).unwrap();
        let (removed, errors) = cleanup(names.path(), marks.path());
        assert!(errors.is_empty());
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(names.path().join("nsvisor-live/hosts").exists());
        assert!(!names.path().join("nsvisor-dead").exists());
        assert!(!names.path().join("nsvisor-unmarked").exists());
    }
}
