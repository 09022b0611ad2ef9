//! Unit tests of the file sink with real files, pipes and FIFOs.

use std::io::{Read, Write};
use std::path::Path;

use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;

use nix::fcntl::OFlag;
use tokio::io::Interest;

use super::*;
use crate::sys;
use std::fs::OpenOptions;

fn sink(path: &Path, maxbytes: u64, backups: u32) -> FileSink {
    let spec = FileSpec {
        path: path.to_path_buf(),
        maxbytes,
        backups,
    };
    FileSink::new("t", spec, FileRegistry::default())
}

fn numbered(from: usize, to: usize) -> Vec<u8> {
    (from..to)
        .flat_map(|i| format!("line {i:06}\n").into_bytes())
        .collect()
}

/// Current file and backups, oldest first, concatenated.
fn all_files(path: &Path, backups: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for n in (1..=backups).rev() {
        out.extend(std::fs::read(rotate::backup_path(path, n)).unwrap_or_default());
    }
    out.extend(std::fs::read(path).unwrap_or_default());
    out
}

#[tokio::test]
async fn rotation_keeps_every_byte_once_in_whole_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let mut s = sink(&path, 1000, 50);
    let data = numbered(0, 2000); // 24 kB: 24 rotations
    for chunk in data.chunks(333) {
        s.write(chunk);
    }
    assert_eq!(all_files(&path, 50), data);
    let backups = (1..=50)
        .take_while(|&n| rotate::backup_path(&path, n).exists())
        .count() as u32;
    assert!(backups >= 20, "{backups} rotations");
    for n in 1..=backups {
        let f = std::fs::read(rotate::backup_path(&path, n)).unwrap();
        assert!(
            f.len() <= 1000 + rotate::OVERSHOOT as usize && f.ends_with(b"\n"),
            "backup {n}"
        );
    }
}

#[tokio::test]
async fn zero_backups_truncates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let mut s = sink(&path, 100, 0);
    s.write(&numbered(0, 30));
    assert!(std::fs::metadata(&path).unwrap().len() <= 100);
    assert!(!rotate::backup_path(&path, 1).exists());
}

#[tokio::test]
async fn missing_directory_counts_loss_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later").join("out.log");
    let mut s = sink(&path, 0, 1);
    s.write(b"lost\n");
    assert!(s.failing);
    assert_eq!(s.lost, 5);
    std::fs::create_dir(dir.path().join("later")).unwrap();
    s.write(b"too early\n"); // before the retry time: still lost
    assert_eq!(s.lost, 15);
    s.retry_at = Some(Instant::now());
    s.write(b"kept\n");
    assert!(!s.failing);
    assert_eq!(std::fs::read(&path).unwrap(), b"kept\n");
}

#[tokio::test]
async fn full_device_is_a_reported_failure() {
    let mut s = sink(Path::new("/dev/full"), 0, 1);
    s.write(b"x\n");
    assert!(s.failing);
    assert_eq!(s.lost, 2);
}

#[tokio::test]
async fn a_full_device_that_opens_again_is_still_failing_and_reported_once() {
    let mut s = sink(Path::new("/dev/full"), 0, 1);
    s.write(b"x\n");
    s.retry_at = Some(Instant::now());
    s.write(b"y\n");
    assert!(s.failing, "opening again is no recovery");
    assert_eq!(s.lost, 4);
    assert_eq!(s.suppressed, 1, "the second failure is not reported again");
}

#[tokio::test]
async fn reopen_follows_an_external_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let mut s = sink(&path, 0, 1);
    s.write(b"before\n");
    std::fs::rename(&path, dir.path().join("moved.log")).unwrap();
    s.write(b"still old\n");
    s.reopen();
    s.write(b"after\n");
    assert_eq!(
        std::fs::read(dir.path().join("moved.log")).unwrap(),
        b"before\nstill old\n"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"after\n");
}

#[tokio::test]
async fn splice_moves_bytes_and_reads_the_tail_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let mut s = sink(&path, 0, 1);
    s.write(b"copied\n");
    let (r, w) = sys::log_pipe().unwrap();
    sys::set_status_flag(r.as_fd(), OFlag::O_NONBLOCK, true).unwrap();
    let pipe = sys::register_async(File::from(r), Interest::READABLE).unwrap();
    let mut w = File::from(w);
    w.write_all(b"spliced 1\nspliced 2\n").unwrap();
    assert!(s.can_splice());
    let _ = pipe.readable().await.unwrap();
    assert_eq!(s.splice_from(&pipe, 1 << 20), Spliced::Drained);
    assert_eq!(s.take_unseen(|| 8), Some((20, b"liced 2\n".to_vec())));
    assert_eq!(s.take_unseen(|| 8), None);
    s.write(b"copied again\n"); // back in append mode
    drop(w);
    let _ = pipe.readable().await.unwrap();
    assert_eq!(s.splice_from(&pipe, 1 << 20), Spliced::Eof);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"copied\nspliced 1\nspliced 2\ncopied again\n"
    );
}

#[tokio::test]
async fn no_splice_when_two_sinks_share_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.log");
    let registry = FileRegistry::default();
    let spec = FileSpec {
        path: path.clone(),
        maxbytes: 0,
        backups: 1,
    };
    let mut a = FileSink::new("a", spec.clone(), registry.clone());
    let mut b = FileSink::new("b", spec, registry);
    assert!(a.can_splice());
    assert!(!b.can_splice() && !a.can_splice());
    drop(b);
    assert!(a.can_splice());
}

#[tokio::test]
async fn slow_fifo_gets_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fifo");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut reader = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let mut s = sink(&path, 0, 1);
    let data = numbered(0, 30_000); // 360 kB, more than a FIFO holds
    s.write(&data);
    assert!(s.blocked(), "a FIFO nobody reads takes only part");
    let mut got = Vec::new();
    let mut buf = vec![0; 65536];
    while got.len() < data.len() {
        match reader.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                s.writable().await;
                s.flush_pending();
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(!s.blocked());
    assert_eq!(got, data);
}
