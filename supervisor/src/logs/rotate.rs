//! Size-based rotation of a log file, the way supervisord does it.
//!
//! When the file would grow past `maxbytes`, it is renamed to `PATH.1`, `PATH.1`
//! to `PATH.2`, … up to `PATH.N` (`N = backups`, the oldest is replaced), and a
//! new `PATH` is started. Rotation happens *between* writes and right after a
//! newline, so every file holds whole lines: a file may exceed `maxbytes` by up
//! to [`OVERSHOOT`] to finish its last line; only a longer line is cut. No byte is lost or written twice: the writer
//! (`file.rs`) writes the part before the cut to the old file and the rest to
//! the new one. `backups = 0` truncates the file instead (supervisord does the same).
//!
//! Pure decisions ([`plan`]) plus one filesystem step ([`shift`]); called by
//! `file.rs` only.

use std::io;
use std::path::{Path, PathBuf};

/// How far a file may grow past `maxbytes` to finish the line it ends with.
pub const OVERSHOOT: u64 = 16 * 1024;

/// What to do with `data` given the file's current size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Everything fits (or rotation is off).
    WriteAll,
    /// Write the first `n` bytes, then rotate, then go on with the rest.
    WriteThenRotate(usize),
    /// Rotate first: the file is not empty and no line of `data` fits after it.
    RotateFirst,
}

/// Decides where `data` must be cut for a file of `size` bytes limited to
/// `maxbytes` (0 = unlimited); `mid_line` says the file does not end with a
/// newline. In order of preference:
/// 1. everything fits;
/// 2. cut after the last newline that fits;
/// 3. the file ends mid-line: finish that line first, growing the file past
///    `maxbytes` by at most [`OVERSHOOT`];
/// 4. rotate before writing (the file is not empty);
/// 5. an empty file and a line longer than `maxbytes`: cut the line at `maxbytes`.
///
/// Always makes progress: `RotateFirst` only for a non-empty file, and
/// `WriteThenRotate` always writes at least one byte.
pub fn plan(size: u64, maxbytes: u64, mid_line: bool, data: &[u8]) -> Plan {
    if maxbytes == 0 || size + data.len() as u64 <= maxbytes {
        return Plan::WriteAll;
    }
    let fit = |limit: u64| {
        usize::try_from(limit.saturating_sub(size)).map_or(data.len(), |n| n.min(data.len()))
    };
    let room = fit(maxbytes);
    if let Some(i) = memchr::memrchr(b'\n', &data[..room]) {
        return Plan::WriteThenRotate(i + 1);
    }
    if mid_line && size > 0 {
        let allowed = fit(maxbytes + OVERSHOOT);
        match memchr::memchr(b'\n', &data[..allowed]) {
            Some(i) => return Plan::WriteThenRotate(i + 1),
            // The line may still end within the allowance, in a later write.
            None if allowed == data.len() => return Plan::WriteAll,
            None => {}
        }
    }
    if size > 0 {
        Plan::RotateFirst
    } else {
        Plan::WriteThenRotate(room.max(1))
    }
}

/// `PATH.n`.
pub fn backup_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Renames `PATH.(N-1)` → `PATH.N`, …, `PATH` → `PATH.1`. Missing backups are
/// skipped. On error, the files that were already shifted stay shifted (none is
/// lost: each rename replaces only the oldest copy), and the caller keeps
/// writing to `PATH`.
pub fn shift(path: &Path, backups: u32) -> io::Result<()> {
    for n in (1..backups).rev() {
        match std::fs::rename(backup_path(path, n), backup_path(path, n + 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    std::fs::rename(path, backup_path(path, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_or_unlimited() {
        assert_eq!(plan(0, 0, false, b"anything"), Plan::WriteAll);
        assert_eq!(plan(2, 10, true, b"12345678"), Plan::WriteAll);
    }

    #[test]
    fn cuts_after_the_last_newline_that_fits() {
        assert_eq!(
            plan(2, 10, false, b"abc\ndef\nghi\n"),
            Plan::WriteThenRotate(8)
        );
        assert_eq!(
            plan(2, 10, true, b"abc\ndef\nghi\n"),
            Plan::WriteThenRotate(8)
        );
        assert_eq!(plan(0, 4, false, b"ab\ncd\n"), Plan::WriteThenRotate(3));
    }

    #[test]
    fn rotates_first_when_no_line_fits() {
        assert_eq!(plan(8, 10, false, b"abcdef\n"), Plan::RotateFirst);
        assert_eq!(plan(10, 10, false, b"x"), Plan::RotateFirst);
    }

    #[test]
    fn finishes_the_last_line_past_the_limit() {
        assert_eq!(
            plan(8, 10, true, b"abcdef\nxyz\n"),
            Plan::WriteThenRotate(7)
        );
        assert_eq!(plan(12, 10, true, b"abc"), Plan::WriteAll);
        let long = vec![b'x'; OVERSHOOT as usize + 10];
        assert_eq!(plan(8, 10, true, &long), Plan::RotateFirst);
    }

    #[test]
    fn cuts_a_line_longer_than_the_file() {
        assert_eq!(plan(0, 4, false, b"abcdefgh\n"), Plan::WriteThenRotate(4));
    }

    /// Feeding random chunks through `plan` with an in-memory "file system"
    /// keeps every byte exactly once, in order, in files never above maxbytes.
    #[test]
    fn no_byte_lost_or_duplicated() {
        let data: Vec<u8> = (0..5000)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let maxbytes = 97;
        let mut files: Vec<Vec<u8>> = vec![Vec::new()];
        let mut seed = 7u64;
        let mut rest = &data[..];
        while !rest.is_empty() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = ((seed >> 33) as usize % 300 + 1).min(rest.len());
            let mut chunk = &rest[..n];
            rest = &rest[n..];
            while !chunk.is_empty() {
                let cur = files.last_mut().unwrap();
                let mid_line = cur.last().is_some_and(|&b| b != b'\n');
                match plan(cur.len() as u64, maxbytes, mid_line, chunk) {
                    Plan::WriteAll => {
                        cur.extend_from_slice(chunk);
                        chunk = &[];
                    }
                    Plan::WriteThenRotate(k) => {
                        cur.extend_from_slice(&chunk[..k]);
                        chunk = &chunk[k..];
                        files.push(Vec::new());
                    }
                    Plan::RotateFirst => files.push(Vec::new()),
                }
            }
        }
        assert!(files.iter().all(|f| f.len() as u64 <= maxbytes + OVERSHOOT));
        assert!(
            files.iter().all(|f| f.is_empty() || f.ends_with(b"\n")),
            "whole lines per file"
        );
        assert_eq!(files.concat(), data);
    }

    #[test]
    fn shift_renames_like_supervisord() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.log");
        for round in 0..5 {
            std::fs::write(&path, format!("{round}")).unwrap();
            shift(&path, 3).unwrap();
        }
        let read = |n| std::fs::read_to_string(backup_path(&path, n)).unwrap();
        assert_eq!(
            (read(1), read(2), read(3)),
            ("4".into(), "3".into(), "2".into())
        );
        assert!(!backup_path(&path, 4).exists());
        assert!(!path.exists());
    }
}
