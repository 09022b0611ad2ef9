//! Root filesystems made of the release binaries, for the tests that run them
//! the way an image does: `tests/tests/dist.rs` chroots into one,
//! `tests/tests/docker.rs` imports one into the real engine.
//!
//! The binaries are those `scripts/dist.sh` built and unpacked (static,
//! stripped), found through `NSVISOR_DIST_DIR` (the unpacked
//! `nsvisor-VERSION-x86_64-linux/` directory; `scripts/test.sh` sets it).
//! Without it the tests are skipped with a message, except under `CI`, where
//! they fail. Programs' shell is Debian's `busybox-static`, at `/bin/busybox`.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

/// The unpacked release tree `scripts/dist.sh` wrote.
#[derive(Debug, Clone)]
pub struct Dist {
    /// `nsvisor-VERSION-x86_64-linux/`.
    pub dir: PathBuf,
}

impl Dist {
    /// The tree named by `NSVISOR_DIST_DIR`, or `None` after printing why
    /// `test` is skipped (a panic under `CI`: these tests must run there).
    pub fn find(test: &str) -> Option<Dist> {
        let why = match std::env::var_os("NSVISOR_DIST_DIR") {
            Some(dir) if Path::new(&dir).join("bin/nsvisor").is_file() => {
                return Some(Dist { dir: dir.into() })
            }
            Some(dir) => format!(
                "NSVISOR_DIST_DIR={} has no bin/nsvisor",
                Path::new(&dir).display()
            ),
            None => {
                "NSVISOR_DIST_DIR is not set (scripts/test.sh runs scripts/dist.sh and sets it)"
                    .to_string()
            }
        };
        if std::env::var_os("CI").is_some() {
            panic!("{test} needs the release binaries, and CI is set: {why}");
        }
        eprintln!("skipping {test}: {why}");
        None
    }

    /// `bin/NAME` of the tree.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.dir.join("bin").join(name)
    }
}

/// Debian's static busybox, for programs' shell inside a root filesystem.
/// Panics when it is missing or dynamically linked (`apt-get install busybox-static`).
pub fn static_busybox() -> PathBuf {
    let path = PathBuf::from("/bin/busybox");
    match elf_interpreter(&path) {
        Ok(None) => path,
        Ok(Some(interp)) => panic!(
            "{} is dynamically linked (interpreter {interp}): install busybox-static",
            path.display()
        ),
        Err(e) => panic!("{}: {e}: install busybox-static", path.display()),
    }
}

/// A temp directory laid out as a container's root filesystem.
#[derive(Debug)]
pub struct Rootfs {
    dir: tempfile::TempDir,
}

/// The busybox applets a root filesystem links to `/bin/busybox`.
const APPLETS: &[&str] = &[
    "sh", "sleep", "id", "echo", "cat", "kill", "true", "false", "ps",
];

impl Rootfs {
    /// An empty root.
    pub fn empty() -> Rootfs {
        let dir = tempfile::Builder::new()
            .prefix("nsvisor-rootfs-")
            .tempdir()
            .expect("cannot create a temp dir for a root filesystem");
        Rootfs { dir }
    }

    /// `/usr/bin/nsvisor` and `/usr/bin/nsvisorctl` from `dist`, and nothing
    /// else: no libc, no shell, no `/etc`, `/run` or `/tmp`.
    pub fn bare(dist: &Dist) -> Rootfs {
        let root = Rootfs::empty();
        for bin in ["nsvisor", "nsvisorctl"] {
            root.copy(&dist.bin(bin), &format!("usr/bin/{bin}"));
        }
        root
    }

    /// [`Rootfs::bare`] plus busybox (see [`Rootfs::add_busybox`]).
    pub fn with_busybox(dist: &Dist) -> Rootfs {
        let root = Rootfs::bare(dist);
        root.add_busybox();
        root
    }

    /// Adds `/bin/busybox` (static) with `/bin/sh`, `sleep`, `id` ... linked
    /// to it, for programs written as shell commands.
    pub fn add_busybox(&self) {
        self.copy(&static_busybox(), "bin/busybox");
        for applet in APPLETS {
            symlink("busybox", self.path().join("bin").join(applet))
                .unwrap_or_else(|e| panic!("cannot link /bin/{applet}: {e}"));
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` at `rel` (e.g. `"etc/passwd"`), creating its directories.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// Copies the executable `from` to `rel`.
    pub fn copy(&self, from: &Path, rel: &str) {
        let to = self.path().join(rel);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::copy(from, &to)
            .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", from.display(), to.display()));
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", to.display()));
    }

    /// Every file and link under the root, relative and sorted (`usr/bin/nsvisor`).
    pub fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&path, root, out);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.path(), self.path(), &mut out);
        out.sort();
        out
    }
}

/// Little-endian reads of an ELF file's bytes (`None` past its end).
struct Elf(Vec<u8>);

impl Elf {
    /// A 64-bit ELF file.
    fn read(path: &Path) -> std::io::Result<Elf> {
        let bytes = std::fs::read(path)?;
        if bytes.get(..5) != Some(b"\x7fELF\x02") {
            return Err(invalid("not a 64-bit ELF file"));
        }
        Ok(Elf(bytes))
    }

    fn u16(&self, at: usize) -> Option<usize> {
        let b = self.0.get(at..at + 2)?;
        Some(u16::from_le_bytes([b[0], b[1]]) as usize)
    }

    fn u32(&self, at: usize) -> Option<u32> {
        Some(u32::from_le_bytes(self.0.get(at..at + 4)?.try_into().ok()?))
    }

    fn u64(&self, at: usize) -> Option<usize> {
        Some(u64::from_le_bytes(self.0.get(at..at + 8)?.try_into().ok()?) as usize)
    }
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// The program interpreter an ELF executable asks for (`PT_INTERP`), `None`
/// for a statically linked one. Only 64-bit little-endian ELF is read.
pub fn elf_interpreter(path: &Path) -> std::io::Result<Option<String>> {
    const PT_INTERP: u32 = 3;
    let elf = Elf::read(path)?;
    let (Some(phoff), Some(phentsize), Some(phnum)) = (elf.u64(0x20), elf.u16(0x36), elf.u16(0x38))
    else {
        return Err(invalid("truncated ELF header"));
    };
    for ph in (0..phnum).map(|i| phoff + i * phentsize) {
        if elf.u32(ph) != Some(PT_INTERP) {
            continue;
        }
        let name = elf
            .u64(ph + 8)
            .zip(elf.u64(ph + 32))
            .and_then(|(off, size)| elf.0.get(off..off + size))
            .ok_or_else(|| invalid("truncated PT_INTERP"))?;
        return Ok(Some(
            String::from_utf8_lossy(name)
                .trim_end_matches('\0')
                .to_string(),
        ));
    }
    Ok(None)
}

/// Whether an ELF file still has a symbol table (`SHT_SYMTAB`): not stripped.
pub fn elf_has_symtab(path: &Path) -> std::io::Result<bool> {
    const SHT_SYMTAB: u32 = 2;
    let elf = Elf::read(path)?;
    let (Some(shoff), Some(shentsize), Some(shnum)) = (elf.u64(0x28), elf.u16(0x3a), elf.u16(0x3c))
    else {
        return Err(invalid("truncated ELF header"));
    };
    Ok((0..shnum).any(|i| elf.u32(shoff + i * shentsize + 4) == Some(SHT_SYMTAB)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamic_executable_names_its_interpreter() {
        let exe = std::env::current_exe().expect("the test executable");
        let interp = elf_interpreter(&exe).ok().flatten();
        assert!(
            interp.as_deref().is_some_and(|i| i.contains("ld-linux")),
            "{interp:?}"
        );
        assert_eq!(
            elf_has_symtab(&exe).ok(),
            Some(true),
            "a test build keeps symbols"
        );
    }
}
