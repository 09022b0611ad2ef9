//! Pumps end to end inside one process: real pipes in, real files and a
//! console captured to files out.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::test_util::wait_until;

const T: Duration = Duration::from_secs(10);

struct Fixture {
    dir: tempfile::TempDir,
    ctx: LogContext,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let out = File::create(dir.path().join("console.out")).unwrap();
        let err = File::create(dir.path().join("console.err")).unwrap();
        let ctx = LogContext::new(Console::new(out.into(), err.into()).unwrap()).unwrap();
        Fixture { dir, ctx }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn program(&self, name: &str, edit: impl FnOnce(&mut ProgramConfig)) -> ProgramConfig {
        let mut cfg = ProgramConfig::with_defaults(name, vec!["true".into()]);
        edit(&mut cfg);
        cfg
    }

    /// Waits for every pump to end and the console to be written.
    async fn settle(&self) {
        self.ctx.shutdown(T).await;
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_default()
    }
}

fn write(fd: &OwnedFd, data: &[u8]) {
    (&File::from(fd.try_clone().unwrap()))
        .write_all(data)
        .unwrap();
}

#[tokio::test]
async fn console_lines_are_whole_and_prefixed() {
    let f = Fixture::new();
    let a = ProgramLogs::new(&f.ctx, &f.program("a", |_| {}));
    let b = ProgramLogs::new(&f.ctx, &f.program("b", |_| {}));
    let (pa, pb) = (
        a.open_pipes([None, None]).unwrap(),
        b.open_pipes([None, None]).unwrap(),
    );
    let line = |p: &str, i: usize| format!("{p} line {i} {}\n", "x".repeat(i % 300));
    let writer = |fd: OwnedFd, p: &'static str| {
        std::thread::spawn(move || {
            let mut f = File::from(fd);
            for i in 0..3000 {
                // Lines split over two writes, to force partial reads.
                let l = line(p, i);
                let (x, y) = l.as_bytes().split_at(l.len() / 2);
                f.write_all(x).unwrap();
                f.write_all(y).unwrap();
            }
        })
    };
    let (ta, tb) = (writer(pa.stdout, "a"), writer(pb.stdout, "b"));
    write(&pa.stderr, b"to stderr\n");
    drop((pa.stderr, pb.stderr));
    ta.join().unwrap();
    tb.join().unwrap();
    drop((a, b));
    f.settle().await;
    let out = String::from_utf8(f.read("console.out")).unwrap();
    let (mut na, mut nb) = (0, 0);
    for l in out.lines() {
        let l = format!("{l}\n");
        if let Some(rest) = l.strip_prefix("a | ") {
            assert_eq!(rest, line("a", na));
            na += 1;
        } else {
            let rest = l
                .strip_prefix("b | ")
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            assert_eq!(rest, line("b", nb));
            nb += 1;
        }
    }
    assert_eq!((na, nb), (3000, 3000));
    assert_eq!(f.read("console.err"), b"a | to stderr\n");
}

#[tokio::test]
async fn unfinished_last_line_is_shown_at_exit() {
    let f = Fixture::new();
    let logs = ProgramLogs::new(
        &f.ctx,
        &f.program("p", |c| c.stdout.console = ConsoleMode::Raw),
    );
    let pipes = logs.open_pipes([None, None]).unwrap();
    write(&pipes.stdout, b"{\"a\":1}\nno newline");
    drop(pipes);
    drop(logs);
    f.settle().await;
    assert_eq!(f.read("console.out"), b"{\"a\":1}\nno newline\n");
}

#[tokio::test]
async fn file_gets_exact_bytes_and_the_ring_the_tail() {
    let f = Fixture::new();
    let path = f.path("out.log");
    let cfg = f.program("p", |c| {
        c.stdout.logfile = LogFile::Path(path.clone());
        c.stdout.console = ConsoleMode::Off;
        c.stdout.maxbytes = 0;
        c.stdout.tail_bytes = 1000;
    });
    let logs = ProgramLogs::new(&f.ctx, &cfg);
    let pipes = logs.open_pipes([None, None]).unwrap();
    // Not UTF-8, several MB: goes through splice.
    let data: Vec<u8> = (0..6_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let fd = pipes.stdout.try_clone().unwrap();
    let d = data.clone();
    let t = std::thread::spawn(move || File::from(fd).write_all(&d).unwrap());
    t.join().unwrap();
    let ring = logs.ring(StreamKind::Stdout);
    let want_tail = data[data.len() - 1000..].to_vec();
    wait_until("the tail buffer to catch up", T, || {
        (ring.snapshot(usize::MAX) == (want_tail.clone(), data.len() as u64)).then_some(())
    })
    .await;
    drop(pipes);
    drop(logs);
    f.settle().await;
    assert!(f.read("out.log") == data, "file differs");
    assert!(f.read("console.out").is_empty());
}

#[tokio::test]
async fn followers_get_every_byte() {
    let f = Fixture::new();
    let cfg = f.program("p", |c| {
        c.stdout.logfile = LogFile::Path(f.path("out.log"));
        c.stdout.console = ConsoleMode::Off;
    });
    let logs = ProgramLogs::new(&f.ctx, &cfg);
    let mut follow = logs.ring(StreamKind::Stdout).subscribe();
    let pipes = logs.open_pipes([None, None]).unwrap();
    let data: Vec<u8> = (0..200_000u32)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .collect();
    let fd = pipes.stdout.try_clone().unwrap();
    let d = data.clone();
    let t = std::thread::spawn(move || File::from(fd).write_all(&d).unwrap());
    let mut got = Vec::new();
    while got.len() < data.len() {
        got.extend_from_slice(&follow.recv().await.unwrap());
    }
    t.join().unwrap();
    assert!(got == data);
}

#[tokio::test]
async fn redirect_stderr_merges_into_stdout() {
    let f = Fixture::new();
    let cfg = f.program("p", |c| {
        c.redirect_stderr = true;
        c.stdout.logfile = LogFile::Path(f.path("out.log"));
    });
    let logs = ProgramLogs::new(&f.ctx, &cfg);
    let pipes = logs.open_pipes([None, None]).unwrap();
    write(&pipes.stdout, b"out\n");
    write(&pipes.stderr, b"err\n");
    drop(pipes);
    let stderr_ring = logs.ring(StreamKind::Stderr);
    drop(logs);
    f.settle().await;
    assert_eq!(f.read("out.log"), b"out\nerr\n");
    assert_eq!(f.read("console.out"), b"p | out\np | err\n");
    assert!(f.read("console.err").is_empty());
    assert!(stderr_ring.snapshot(100).0.is_empty());
}

#[tokio::test]
async fn reopen_all_after_an_external_rename() {
    let f = Fixture::new();
    let path = f.path("out.log");
    let cfg = f.program("p", |c| {
        c.stdout.logfile = LogFile::Path(path.clone());
        c.stdout.console = ConsoleMode::Off;
    });
    let logs = ProgramLogs::new(&f.ctx, &cfg);
    let pipes = logs.open_pipes([None, None]).unwrap();
    write(&pipes.stdout, b"one\n");
    wait_until("the first line in the file", T, || {
        (f.read("out.log") == b"one\n").then_some(())
    })
    .await;
    std::fs::rename(&path, f.path("out.log.old")).unwrap();
    f.ctx.reopen_all();
    wait_until("the file to be reopened", T, || path.exists().then_some(())).await;
    write(&pipes.stdout, b"two\n");
    drop(pipes);
    drop(logs);
    f.settle().await;
    assert_eq!(f.read("out.log.old"), b"one\n");
    assert_eq!(f.read("out.log"), b"two\n");
}

#[tokio::test]
async fn an_old_pipe_still_open_is_read_next_to_the_new_one() {
    let f = Fixture::new();
    let logs = ProgramLogs::new(&f.ctx, &f.program("p", |_| {}));
    let first = logs.open_pipes([None, None]).unwrap(); // a "grandchild" keeps this one
    let second = logs.open_pipes([None, None]).unwrap();
    write(&first.stdout, b"old ");
    write(&second.stdout, b"new\n");
    write(&first.stdout, b"still there\n");
    drop((first, second));
    drop(logs);
    f.settle().await;
    let out = String::from_utf8(f.read("console.out")).unwrap();
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["p | new", "p | old still there"]);
}

#[test]
fn an_idle_pump_stays_small() {
    // Each program stream has a pump task for as long as the program is
    // configured: thousands of idle programs must stay cheap. The task
    // allocation is this plus ~100 bytes, rounded up to 128.
    let size = std::mem::size_of::<pump::Pump<Live>>();
    assert!(size <= 144, "a pump is {size} bytes");
}

#[tokio::test]
async fn a_program_that_never_writes_ends_its_pumps() {
    let f = Fixture::new();
    let logs = ProgramLogs::new(&f.ctx, &f.program("p", |_| {}));
    let first = logs.open_pipes([None, None]).unwrap();
    let second = logs.open_pipes([None, None]).unwrap();
    drop(first);
    write(&second.stdout, b"late\n");
    drop(second);
    drop(logs);
    f.settle().await;
    assert_eq!(*f.ctx.inner.live.borrow(), 0, "pumps still running");
    assert_eq!(f.read("console.out"), b"p | late\n");
}
