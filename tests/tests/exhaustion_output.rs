//! Exhaustion of the output path: a program that writes a gigabyte with no
//! newline, a console nobody reads, and a full disk under a log file. What
//! docs/reliability.md ("Exhaustion") promises: the daemon's memory stays
//! within a bound whatever the program writes, nothing is lost from files
//! while they can be written, a full disk is reported with the path while the
//! program and the console go on, and the file sink recovers when space returns.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{log_lines, program_toml, require_root, status_kb, wait_until, Daemon};

const T: Duration = Duration::from_secs(15);
/// How long a flood may take (a debug build on a small machine).
const FLOOD: Duration = Duration::from_secs(300);

/// What the daemon's peak resident memory may grow by during a flood, in
/// KiB: the console queue (64 batches of at most 160 KiB per target), the
/// copy buffer of each log thread (128 KiB) and one unfinished line (16 KiB)
/// per stream, with room for the allocator. See docs/reliability.md.
const FLOOD_GROWTH_KIB: u64 = 32 * 1024;

/// Console pieces of a line with no newline: `MAX_LINE` bytes each.
const MAX_LINE: u64 = 16 * 1024;
/// The cut mark, `…`, in bytes.
const MARK: u64 = 3;

/// Size of the console output of `total` bytes of "x" with no newline from
/// program `name` (`total` a multiple of [`MAX_LINE`]): one piece per
/// `MAX_LINE` bytes, each `name | ` + marks + bytes + newline.
fn console_size(name: &str, total: u64) -> u64 {
    let pieces = total / MAX_LINE;
    let prefix = name.len() as u64 + 3;
    pieces * (prefix + MAX_LINE + 1) + MARK * (2 * pieces - 2)
}

/// Counts the bytes `b` and the newlines read from `r`.
fn count(mut r: impl Read, b: u8) -> (u64, u64) {
    let mut buf = vec![0u8; 1 << 20];
    let (mut hits, mut lines) = (0u64, 0u64);
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return (hits, lines),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("read: {e}"),
        };
        hits += buf[..n].iter().filter(|c| **c == b).count() as u64;
        lines += buf[..n].iter().filter(|c| **c == b'\n').count() as u64;
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// A program that waits for `{dir}/go`, then writes `total` bytes of "x"
/// with no newline, to a log file (no rotation) and the console.
fn flood_toml(total: u64) -> String {
    program_toml(
        "flood",
        &["wait-file", "{dir}/go", "bytes", &total.to_string()],
        "startsecs = 0\nautorestart = \"never\"\nstdout_logfile = \"{dir}/flood.log\"\n\
         stdout_logfile_maxbytes = 0",
    )
}

#[test]
fn a_gigabyte_without_a_newline_keeps_the_daemon_small_and_arrives_whole() {
    const TOTAL: u64 = 1 << 30;
    let d = Daemon::start(&flood_toml(TOTAL));
    d.wait_state("flood", State::Running, T);
    let before = status_kb(d.pid(), "VmHWM").expect("VmHWM");
    std::fs::write(d.dir().join("go"), "").expect("go");
    let log = d.dir().join("flood.log");
    let console = d.dir().join("daemon.stdout");
    let want = console_size("flood", TOTAL);
    wait_until(
        "the whole flood in the file and on the console",
        FLOOD,
        || (file_len(&log) >= TOTAL && file_len(&console) >= want).then_some(()),
    );
    d.wait_state("flood", State::Exited, T);
    let peak = status_kb(d.pid(), "VmHWM").expect("VmHWM");
    eprintln!("daemon peak RSS: {before} KiB before, {peak} KiB after a 1 GiB line");
    assert!(
        peak <= before + FLOOD_GROWTH_KIB,
        "peak RSS grew from {before} KiB to {peak} KiB"
    );
    assert_eq!(file_len(&log), TOTAL, "the file has every byte, once");
    assert_eq!(file_len(&console), want);
    let (xs, lines) = count(std::fs::File::open(&console).expect("open"), b'x');
    assert_eq!(xs, TOTAL, "the console has every byte");
    assert_eq!(lines, TOTAL / MAX_LINE, "cut into {MAX_LINE}-byte lines");
}

#[test]
fn a_console_nobody_reads_holds_the_program_back_not_the_daemons_memory() {
    const TOTAL: u64 = 256 << 20;
    let (read, write) = nix::unistd::pipe().expect("pipe");
    let d = Daemon::builder()
        .stdout_to(write)
        .config(&flood_toml(TOTAL))
        .start();
    d.wait_state("flood", State::Running, T);
    let before = status_kb(d.pid(), "VmHWM").expect("VmHWM");
    std::fs::write(d.dir().join("go"), "").expect("go");
    let log = d.dir().join("flood.log");
    // Nobody reads the console: the flood stops, short of its end.
    let mut last = (0, 0);
    let stalled = wait_until("the flood to stall", T, || {
        let len = file_len(&log);
        last = if len == last.0 {
            (len, last.1 + 1)
        } else {
            (len, 0)
        };
        (len > 0 && last.1 >= 50).then_some(len)
    });
    assert!(stalled < TOTAL, "the file waits with the console");
    let stalled_peak = status_kb(d.pid(), "VmHWM").expect("VmHWM");
    // Now read the console: everything flows, nothing was dropped.
    let reader = std::thread::spawn(move || count(std::fs::File::from(read), b'x'));
    wait_until("the whole flood in the file", FLOOD, || {
        (file_len(&log) >= TOTAL).then_some(())
    });
    d.wait_state("flood", State::Exited, T);
    let peak = status_kb(d.pid(), "VmHWM").expect("VmHWM");
    eprintln!("daemon peak RSS: {before} KiB before, {stalled_peak} KiB stalled, {peak} KiB after");
    assert!(
        peak <= before + FLOOD_GROWTH_KIB,
        "peak RSS grew from {before} KiB to {peak} KiB"
    );
    assert_eq!(file_len(&log), TOTAL);
    drop(d); // closes the console pipe's last writer
    let (xs, _) = reader.join().expect("reader");
    assert_eq!(xs, TOTAL, "the console got every byte");
}

/// A tmpfs of `size` mounted at `dir` for one test; lazily unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        use nix::mount::{mount, MsFlags};
        std::fs::create_dir_all(&dir).expect("mkdir");
        let opts = format!("size={size}");
        mount(
            Some("tmpfs"),
            &dir,
            Some("tmpfs"),
            MsFlags::empty(),
            Some(opts.as_str()),
        )
        .unwrap_or_else(|e| panic!("mount a tmpfs on {}: {e}", dir.display()));
        Tmpfs(dir)
    }

    /// Writes `name` until the file system is full; returns its path.
    fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.0.join(name);
        let mut f = std::fs::File::create(&path).expect("create filler");
        let chunk = [0u8; 4096];
        while f.write_all(&chunk).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("cannot unmount {}: {e}", self.0.display());
        }
    }
}

/// Console lines of program `p`'s ticks so far.
fn ticks(d: &Daemon) -> usize {
    d.stdout()
        .lines()
        .filter(|l| l.starts_with("p | tick-"))
        .count()
}

#[test]
fn a_full_disk_is_reported_with_the_path_the_program_and_console_go_on_and_the_file_recovers() {
    if !require_root(
        "a_full_disk_is_reported_with_the_path_the_program_and_console_go_on_and_the_file_recovers",
    ) {
        return;
    }
    let b = Daemon::builder();
    let fs = Tmpfs::mount(b.dir().join("full"), "256k");
    let d = b
        .config(&program_toml(
            "p",
            &[
                "print-lines",
                "1000000",
                "--rate",
                "100",
                "--prefix",
                "tick-",
            ],
            "startsecs = 0\nstdout_logfile = \"{dir}/full/p.log\"",
        ))
        .start();
    let pid = d.wait_state("p", State::Running, T).pid;
    let log = fs.0.join("p.log");
    wait_until("ticks in the log file", T, || {
        (file_len(&log) > 0).then_some(())
    });
    let filler = fs.fill("filler");

    let error = format!(
        "ERROR program \"p\": cannot write log file {}: No space left on device (os error 28)",
        log.display()
    );
    let errors = |d: &Daemon| {
        log_lines(&d.stderr())
            .iter()
            .filter(|l| l.starts_with(&error))
            .count()
    };
    wait_until("the full disk to be reported", T, || {
        (errors(&d) > 0).then_some(())
    });
    let at_error = ticks(&d);
    // Three seconds of ticks (the sink retries every second).
    wait_until("the console to go on", T, || {
        (ticks(&d) >= at_error + 300).then_some(())
    });
    let info = d.status("p").expect("p");
    assert_eq!(
        (info.state, info.pid),
        (State::Running, pid),
        "the program runs on"
    );
    assert_eq!(errors(&d), 1, "reported once, not at every retry");
    assert!(
        !d.stderr().contains("is writable again"),
        "no recovery is claimed while the disk is full:\n{}",
        d.stderr()
    );

    let size_full = file_len(&log);
    std::fs::remove_file(&filler).expect("free the space");
    let recovered = format!(
        "WARN program \"p\": log file {} is writable again; ",
        log.display()
    );
    wait_until("the recovery to be reported", T, || {
        log_lines(&d.stderr())
            .iter()
            .any(|l| {
                l.starts_with(&recovered)
                    && l.ends_with("bytes of output could not be written to it")
            })
            .then_some(())
    });
    wait_until("new ticks in the file", T, || {
        (file_len(&log) > size_full + 1000).then_some(())
    });
    let text = std::fs::read_to_string(&log).expect("read the log");
    let last: u64 = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("tick-line ")?.parse().ok())
        .expect("a whole tick line");
    assert!(
        last as usize > at_error + 300,
        "the file has ticks from after the recovery"
    );
}
