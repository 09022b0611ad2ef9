//! Program output end to end: log files with rotation, the console (the
//! daemon's captured stdout), SIGUSR2, failures of the log directory, binary
//! output, a slow sink, and the daemon's own log file.
//!
//! Programs are `testprog` steps (`print-lines`, `partial-line`, `cat`); the
//! checks read the files the daemon wrote and its captured stdout/stderr.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use nsvisor_proto::State;
use nsvisor_tests::{program_toml, toml_quote, wait_until, Daemon};

const T: Duration = Duration::from_secs(20);

/// `"{prefix}line {i}\n"` for i in 1..=n, as `testprog print-lines` writes them.
fn lines(prefix: &str, n: u64) -> Vec<u8> {
    (1..=n)
        .flat_map(|i| format!("{prefix}line {i}\n").into_bytes())
        .collect()
}

/// `PATH.N` … `PATH.1`, `PATH` concatenated (oldest first).
fn with_backups(path: &Path, backups: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for n in (1..=backups).rev() {
        out.extend(std::fs::read(backup(path, n)).unwrap_or_default());
    }
    out.extend(std::fs::read(path).unwrap_or_default());
    out
}

fn backup(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Asserts `got` is exactly `want`, reporting the first difference (not megabytes).
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let at = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let show = |d: &[u8]| {
            String::from_utf8_lossy(&d[at.saturating_sub(40)..(at + 40).min(d.len())]).into_owned()
        };
        panic!(
            "{what}: {} bytes, expected {}; first difference at {at}: {:?} vs {:?}",
            got.len(),
            want.len(),
            show(got),
            show(want)
        );
    }
}

#[test]
fn rotation_keeps_every_line_exactly_once_across_20_plus_files() {
    let n = 2_200_000; // ~27 MB: ~27 rotations at 1 MB
    let d = Daemon::start(&program_toml(
        "p",
        &["print-lines", &n.to_string()],
        "startsecs = 0\nautorestart = \"never\"\n\
         stdout_logfile = \"{dir}/p.log\"\nstdout_logfile_maxbytes = \"1MB\"\n\
         stdout_logfile_backups = 40\nstdout_console = \"off\"",
    ));
    let path = d.dir().join("p.log");
    let want = lines("", n);
    d.wait_state("p", State::Exited, T);
    wait_until("every byte in the files", T, || {
        let total: u64 = (1..=40).map(|i| len(&backup(&path, i))).sum::<u64>() + len(&path);
        (total >= want.len() as u64).then_some(())
    });
    assert_same(&with_backups(&path, 40), &want, "current file and backups");
    let rotated = (1..=40).take_while(|&i| backup(&path, i).exists()).count();
    assert!(rotated >= 20, "only {rotated} rotations");
    for i in 1..=rotated as u32 {
        let f = std::fs::read(backup(&path, i)).unwrap();
        assert!(
            f.len() <= (1 << 20) + 16 * 1024,
            "{} has {} bytes",
            backup(&path, i).display(),
            f.len()
        );
        assert!(
            f.ends_with(b"\n"),
            "{} ends mid-line",
            backup(&path, i).display()
        );
    }
}

#[test]
fn two_fast_programs_give_only_whole_prefixed_lines() {
    let n = 20_000;
    let extra = "startsecs = 0\nautorestart = \"never\"";
    let d = Daemon::start(&format!(
        "{}{}",
        program_toml(
            "a",
            &["print-lines", &n.to_string(), "--prefix", "a-"],
            extra
        ),
        program_toml(
            "bb",
            &["print-lines", &n.to_string(), "--prefix", "bb-"],
            extra
        ),
    ));
    wait_until("both last lines on the console", T, || {
        let out = d.stdout();
        (out.contains(&format!("a | a-line {n}\n")) && out.contains(&format!("bb | bb-line {n}\n")))
            .then_some(())
    });
    let (mut a, mut b) = (0, 0);
    for line in d.stdout().lines() {
        if let Some(rest) = line.strip_prefix("a | ") {
            a += 1;
            assert_eq!(rest, format!("a-line {a}"));
        } else if let Some(rest) = line.strip_prefix("bb | ") {
            b += 1;
            assert_eq!(rest, format!("bb-line {b}"));
        } else {
            panic!("mixed or unprefixed console line: {line:?}");
        }
    }
    assert_eq!((a, b), (n, n));
}

#[test]
fn stderr_goes_to_the_daemons_stderr_and_raw_mode_has_no_prefix() {
    let d = Daemon::start(&program_toml(
        "p",
        &[
            "print-lines",
            "2",
            "--prefix",
            "{\"out\":",
            "stderr-lines",
            "1",
        ],
        "startsecs = 0\nautorestart = \"never\"\nstdout_console = \"raw\"",
    ));
    wait_until("stderr line on the daemon's stderr", T, || {
        d.stderr().contains("p | line 1\n").then_some(())
    });
    wait_until("raw stdout lines", T, || {
        d.stdout()
            .contains("{\"out\":line 1\n{\"out\":line 2\n")
            .then_some(())
    });
    assert!(!d.stdout().contains("p | "), "stdout: {}", d.stdout());
}

#[test]
fn partial_last_line_is_flushed_when_the_program_exits() {
    let d = Daemon::start(&program_toml(
        "p",
        &[
            "print-lines",
            "2",
            "partial-line",
            "no newline at the end",
            "exit",
            "0",
        ],
        "startsecs = 0\nautorestart = \"never\"",
    ));
    wait_until("the unfinished line on the console", T, || {
        d.stdout()
            .contains("p | no newline at the end\n")
            .then_some(())
    });
    assert_eq!(
        d.stdout(),
        "p | line 1\np | line 2\np | no newline at the end\n"
    );
}

#[test]
fn unwritable_log_dir_is_reported_and_recovers() {
    let builder = Daemon::builder();
    // A path whose parent is a file: fails even for root.
    let parent = builder.dir().join("logs");
    std::fs::write(&parent, "not a directory").unwrap();
    let d = builder
        .config(&program_toml(
            "p",
            &["print-lines", "100000", "--rate", "50"],
            "stdout_logfile = \"{dir}/logs/p.log\"",
        ))
        .start();
    let path = parent.join("p.log");
    let error = format!("cannot open log file {}: Not a directory", path.display());
    wait_until("the error in the daemon's log", T, || {
        d.stderr().contains(&error).then_some(())
    });
    wait_until("console output going on", T, || {
        d.stdout().contains("p | line 20\n").then_some(())
    });
    d.wait_state("p", State::Running, T);

    std::fs::remove_file(&parent).unwrap();
    std::fs::create_dir(&parent).unwrap();
    let text = wait_until("lines in the log file", T, || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        (text.lines().count() >= 3).then_some(text)
    });
    wait_until("the recovery in the daemon's log", T, || {
        d.stderr().contains("is writable again").then_some(())
    });
    assert_eq!(
        d.stderr().matches(&error).count(),
        1,
        "errors are rate-limited:\n{}",
        d.stderr()
    );
    // The file starts at a line boundary and has consecutive lines.
    let first: u64 = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("line ")
        .unwrap()
        .parse()
        .unwrap();
    for (k, line) in text.lines().enumerate() {
        assert_eq!(line, format!("line {}", first + k as u64));
    }
    assert_eq!(d.status("p").unwrap().state, State::Running);
}

#[test]
fn sigusr2_after_an_external_rename_writes_to_the_new_file() {
    let n = 400;
    let d = Daemon::start(&program_toml(
        "p",
        &["print-lines", &n.to_string(), "--rate", "200"],
        "startsecs = 0\nautorestart = \"never\"\nstdout_logfile = \"{dir}/p.log\"\nstdout_console = \"off\"",
    ));
    let path = d.dir().join("p.log");
    let old = d.dir().join("p.log.old");
    wait_until("some lines in the file", T, || {
        (len(&path) > 50).then_some(())
    });
    std::fs::rename(&path, &old).unwrap();
    d.signal(Signal::SIGUSR2);
    wait_until("lines in the new file", T, || {
        (len(&path) > 0).then_some(())
    });
    d.wait_state("p", State::Exited, T);
    let want = lines("", n);
    wait_until("every line written", T, || {
        (len(&old) + len(&path) >= want.len() as u64).then_some(())
    });
    let mut both = std::fs::read(&old).unwrap();
    both.extend(std::fs::read(&path).unwrap());
    assert_same(&both, &want, "old file + new file");
}

#[test]
fn binary_output_reaches_files_and_tail_byte_for_byte() {
    let builder = Daemon::builder();
    let blob: Vec<u8> = (0..3_000_000u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    assert!(std::str::from_utf8(&blob).is_err());
    std::fs::write(builder.dir().join("blob"), &blob).unwrap();
    let extra = |name: &str, console: &str| {
        format!(
            "startsecs = 0\nautorestart = \"never\"\nstdout_logfile = \"{{dir}}/{name}.log\"\n\
             stdout_logfile_maxbytes = 0\nstdout_console = \"{console}\""
        )
    };
    let d = builder
        .config(&format!(
            "{}{}",
            program_toml("spliced", &["cat", "{dir}/blob"], &extra("spliced", "off")),
            program_toml("copied", &["cat", "{dir}/blob"], &extra("copied", "raw")),
        ))
        .start();
    for name in ["spliced", "copied"] {
        let path = d.dir().join(format!("{name}.log"));
        wait_until(&format!("{name}.log complete"), T, || {
            (len(&path) >= blob.len() as u64).then_some(())
        });
        assert_same(&std::fs::read(&path).unwrap(), &blob, name);
        let tail = wait_until(&format!("{name}'s tail buffer"), T, || {
            let r = d.request(
                "GET",
                &format!("/v1/programs/{name}/logs/stdout?bytes=5000"),
                "",
            );
            (r.status == 200 && r.body == blob[blob.len() - 5000..]).then_some(r.body)
        });
        assert_eq!(tail.len(), 5000);
    }
}

#[test]
fn a_program_blocked_on_a_slow_sink_is_neither_killed_nor_loses_output() {
    let builder = Daemon::builder();
    let fifo = builder.dir().join("slow.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A reader that does not read yet: the daemon can open the FIFO, then it fills.
    let mut reader: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let n = 100_000; // ~1 MB: far more than the FIFO and the pipe hold
    let extra = "startsecs = 0\nautorestart = \"never\"";
    let d = builder
        .config(&format!(
            "{}{}",
            program_toml(
                "slow",
                &["print-lines", &n.to_string()],
                &format!(
                    "{extra}\nstdout_logfile = {}\nstdout_console = \"off\"",
                    toml_quote(&fifo)
                ),
            ),
            program_toml("other", &["print-lines", "30", "--rate", "100"], extra),
        ))
        .start();
    // Meanwhile another program's output flows, and the API answers.
    wait_until("the other program's output", T, || {
        d.stdout().contains("other | line 30\n").then_some(())
    });
    d.wait_state("other", State::Exited, T);
    assert_eq!(
        d.status("slow").unwrap().state,
        State::Running,
        "slow is blocked, not done or killed"
    );

    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&reader),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .unwrap();
    let want = lines("", n);
    let mut got = Vec::with_capacity(want.len());
    let mut buf = vec![0; 1 << 16];
    while got.len() < want.len() {
        let k = reader.read(&mut buf).unwrap();
        assert!(k > 0, "the FIFO ended after {} bytes", got.len());
        got.extend_from_slice(&buf[..k]);
    }
    assert_same(&got, &want, "FIFO contents");
    d.wait_state("slow", State::Exited, T);
}

#[test]
fn daemon_log_goes_to_its_file_as_json_and_is_reopened_on_sigusr2() {
    let d = Daemon::builder()
        .config(&format!(
            "{}[supervisor]\nlogfile = \"{{dir}}/nsvisor.log\"\n",
            program_toml("p", &["sleep", "forever"], "")
        ))
        .args(["--log-format", "json"])
        .start();
    let path = d.dir().join("nsvisor.log");
    let first = wait_until("the spawn in the daemon's log file", T, || {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        text.lines()
            .find(|l| l.contains("spawned"))
            .map(str::to_string)
    });
    let json: serde_json::Value = serde_json::from_str(&first).expect("a JSON line");
    assert_eq!(json["fields"]["message"], "spawned");
    assert!(d.stderr().contains(&first), "stderr gets the same lines");
    std::fs::rename(&path, d.dir().join("nsvisor.log.1")).unwrap();
    d.signal(Signal::SIGUSR2);
    wait_until("the new daemon log file", T, || {
        std::fs::read_to_string(&path)
            .ok()
            .filter(|t| t.contains("reopening log files"))
    });
}

#[test]
fn a_stalled_stderr_reader_stops_neither_supervision_nor_shutdown() {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::sync::{Arc, Mutex};
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).unwrap();
    fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&read),
        FcntlArg::F_SETPIPE_SZ(4096),
    )
    .unwrap();
    // 400 starts with 2,500-byte names log about 2 MB: far more than the
    // pipe and the daemon's 1 MiB queue hold while nobody reads.
    let name = "n".repeat(2500);
    let n = 400;
    let mut d = Daemon::builder()
        .stderr_to(write)
        .config(&program_toml(
            &name,
            &["sleep", "forever"],
            &format!("numprocs = {n}\nstartsecs = 0"),
        ))
        .start();
    // Supervision goes on: every program gets to RUNNING, the API answers.
    wait_until("every program RUNNING", T, || {
        let (_, list) = d.get("/v1/programs");
        let running = list
            .as_array()?
            .iter()
            .filter(|p| p["state"] == "RUNNING")
            .count();
        (running == n).then_some(())
    });
    // Once someone reads again, the loss is reported.
    let out = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let out = Arc::clone(&out);
        std::thread::spawn(move || {
            let mut file = File::from(read);
            let mut buf = vec![0; 1 << 16];
            loop {
                match file.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => out.lock().unwrap().extend_from_slice(&buf[..k]),
                }
            }
        })
    };
    let text = || String::from_utf8_lossy(&out.lock().unwrap()).into_owned();
    wait_until("the warning about dropped lines", T, || {
        text()
            .contains("of the daemon's own log dropped: stderr was not read for a while")
            .then_some(())
    });
    assert!(d.terminate().success());
    reader.join().unwrap();
    let text = text();
    assert!(text.contains("shutting down ("), "the shutdown is logged");
    assert!(text.ends_with('\n'));
    for line in text.lines() {
        assert!(
            line.contains(" INFO ") || line.contains(" WARN "),
            "a whole log line: {:.200}",
            line
        );
    }
}
