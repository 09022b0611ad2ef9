//! Log file rotation: the pure decision (`rotation_plan`: where to cut a
//! write for a file of a given size and limit) and the file sink that acts
//! on it with real files (`FileSink`: write, rotate, shift backups).
//!
//! Input: bytes 0-7 the current file size (little-endian, below 2^63 like
//! any file's), 8-15 `maxbytes` (any u64; small when byte 16 is even), byte
//! 16 also whether the file ends mid-line (bit 1) and the backups kept
//! (bits 2-4); byte 17 the number of write boundaries (0 to 15), the next
//! bytes where they fall; the rest is the output written.
//!
//! Checked, pure: every step makes progress (a rotation only of a non-empty
//! file, a cut that writes at least one byte and at most the write); a file
//! started by a rotation never holds more than `maxbytes` + `OVERSHOOT`.
//! With files (`maxbytes` up to 4 KiB, output up to 64 times that, starting
//! empty): the current file and its backups, oldest first, hold exactly the
//! last bytes written, all of them unless the oldest backup slot was used; no
//! backup is above the bound.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nsvisor::fuzzing::{
    backup_path, rotation_plan, FileRegistry, FileSink, FileSpec, Plan, OVERSHOOT,
};

fuzz_target!(|input: &[u8]| {
    if input.len() < 18 {
        return;
    }
    let size = u64::from_le_bytes(input[0..8].try_into().expect("8 bytes")) >> 1;
    let mut maxbytes = u64::from_le_bytes(input[8..16].try_into().expect("8 bytes"));
    let flags = input[16];
    if flags & 1 == 0 {
        maxbytes %= 4096;
    }
    let mid_line = flags & 2 != 0;
    let backups = u32::from((flags >> 2) & 7);
    let cuts = usize::from(input[17] % 16).min(input.len() - 18);
    let (cuts, data) = input[18..].split_at(cuts);
    let mut bounds: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) * data.len() / 256)
        .collect();
    bounds.sort_unstable();
    let mut writes = Vec::new();
    let mut from = 0;
    for &to in bounds.iter().chain([data.len()].iter()) {
        writes.push(&data[from..to]);
        from = to;
    }

    plans_make_progress(size, maxbytes, mid_line, &writes);
    // Real files only while rotations stay few (each renames every backup):
    // the model above covers tiny limits.
    if maxbytes <= 4096 && data.len() as u64 <= 64 * maxbytes {
        files_keep_every_byte(maxbytes, backups, &writes, data);
    }
});

/// Plays the plans on a model of the files (the first one only by its size).
fn plans_make_progress(size: u64, maxbytes: u64, mid_line: bool, writes: &[&[u8]]) {
    let bound = u128::from(maxbytes) + u128::from(OVERSHOOT);
    let mut size = size;
    let mut mid_line = mid_line;
    let mut first = true;
    for &write in writes {
        let mut rest = write;
        let mut steps = 0;
        while !rest.is_empty() {
            steps += 1;
            assert!(steps <= 2 * write.len() + 2, "no progress on a write");
            let plan = rotation_plan(size, maxbytes, mid_line, rest);
            let n = match plan {
                Plan::WriteAll => rest.len(),
                Plan::WriteThenRotate(n) => {
                    assert!(n >= 1 && n <= rest.len(), "cut at {n} of {}", rest.len());
                    n
                }
                Plan::RotateFirst => {
                    assert!(size > 0, "rotating an empty file");
                    0
                }
            };
            if n > 0 {
                size += n as u64;
                mid_line = rest[n - 1] != b'\n';
            }
            rest = &rest[n..];
            assert!(
                first || maxbytes == 0 || u128::from(size) <= bound,
                "a file of {size} bytes (maxbytes {maxbytes})"
            );
            if plan != Plan::WriteAll {
                size = 0;
                mid_line = false;
                first = false;
            }
        }
    }
}

/// Writes through a real file sink and reads the files back.
fn files_keep_every_byte(maxbytes: u64, backups: u32, writes: &[&[u8]], data: &[u8]) {
    let path = log_path();
    for n in 0..=8 {
        let file = if n == 0 {
            path.to_path_buf()
        } else {
            backup_path(path, n)
        };
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove {}: {e}", file.display()),
        }
    }
    let spec = FileSpec {
        path: path.to_path_buf(),
        maxbytes,
        backups,
    };
    let mut sink = FileSink::new("fuzz", spec, FileRegistry::default());
    for &write in writes {
        sink.write(write);
    }
    drop(sink);
    let mut kept = Vec::new();
    for n in (1..=backups).rev() {
        if let Ok(bytes) = std::fs::read(backup_path(path, n)) {
            assert!(
                maxbytes == 0 || bytes.len() as u64 <= maxbytes + OVERSHOOT,
                "backup {n} holds {} bytes (maxbytes {maxbytes})",
                bytes.len()
            );
            kept.extend(bytes);
        }
    }
    kept.extend(std::fs::read(path).unwrap_or_default());
    assert!(
        data.ends_with(&kept),
        "the files are not the last bytes written"
    );
    let oldest_used = backups == 0 || backup_path(path, backups).exists();
    if !oldest_used {
        assert_eq!(
            kept.len(),
            data.len(),
            "bytes lost without a full set of backups"
        );
    }
}

fn log_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = nsvisor_fuzz::config::temp_dir();
        let path = dir.path().join("out.log");
        // Kept for the whole run (libFuzzer exits without dropping statics).
        std::mem::forget(dir);
        path
    })
}
