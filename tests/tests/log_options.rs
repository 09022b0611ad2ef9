//! Where program output goes, per option: `log_dir` with automatic file names,
//! `stderr_logfile`, `stderr_console`, and the size of the tail buffer
//! (`tail_buffer`, per program and from `[supervisor]`).
//!
//! Programs are `testprog print-lines` / `stderr-lines` that exit when done;
//! the checks compare whole files, whole console lines and whole tail buffers.

use std::path::Path;
use std::time::Duration;

use nsvisor_proto::State;
use nsvisor_tests::{log_lines, program_toml, wait_until, Daemon};

const T: Duration = Duration::from_secs(20);

/// `"{prefix}line {i}\n"` for i in 1..=n, as `testprog print-lines` writes them.
fn lines(prefix: &str, n: u64) -> String {
    (1..=n).map(|i| format!("{prefix}line {i}\n")).collect()
}

/// Waits until `path` holds exactly `want`.
fn wait_file(path: &Path, want: &str) {
    let what = format!("{} to hold exactly {want:?}", path.display());
    wait_until(&what, T, || {
        (std::fs::read_to_string(path).ok()? == want).then_some(())
    });
}

/// Program output on the daemon's console: the lines that are not its own log.
fn console_lines(text: &str) -> Vec<&str> {
    text.lines().filter(|l| log_lines(l).is_empty()).collect()
}

const ONCE: &str = "startsecs = 0\nautorestart = \"never\"";

#[test]
fn log_dir_names_a_file_per_program_and_stream() {
    let b = Daemon::builder();
    let logs = b.dir().join("logs");
    std::fs::create_dir(&logs).expect("mkdir logs");
    let print = |out: &'static str, err: &'static str| {
        [
            "print-lines",
            "3",
            "--prefix",
            out,
            "stderr-lines",
            "2",
            "--prefix",
            err,
        ]
    };
    let web = print("web-", "web-err-");
    let pool = print("pool{process_num}-", "pool{process_num}-err-");
    let d = b
        .config(&format!(
            "[supervisor]\nlog_dir = \"{{dir}}/logs\"\n\n{}{}",
            program_toml("web", &web, ONCE),
            program_toml("pool", &pool, &format!("{ONCE}\nnumprocs = 2")),
        ))
        .start();
    let expected = [
        ("web.stdout.log", lines("web-", 3)),
        ("web.stderr.log", lines("web-err-", 2)),
        ("pool_0.stdout.log", lines("pool0-", 3)),
        ("pool_0.stderr.log", lines("pool0-err-", 2)),
        ("pool_1.stdout.log", lines("pool1-", 3)),
        ("pool_1.stderr.log", lines("pool1-err-", 2)),
    ];
    for (file, want) in &expected {
        wait_file(&logs.join(file), want);
    }
    for name in ["web", "pool:0", "pool:1"] {
        d.wait_state(name, State::Exited, T);
    }
    let mut files: Vec<String> = std::fs::read_dir(&logs)
        .expect("read logs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = expected.iter().map(|(f, _)| f.to_string()).collect();
    want.sort();
    assert_eq!(files, want, "one file per program and stream, nothing else");
}

#[test]
fn stderr_logfile_gets_stderr_and_only_stderr() {
    let d = Daemon::start(&program_toml(
        "p",
        &[
            "print-lines",
            "3",
            "stderr-lines",
            "2",
            "--prefix",
            "err-",
            "print-lines",
            "1",
            "--prefix",
            "last-",
        ],
        &format!(
            "{ONCE}\nstdout_logfile = \"{{dir}}/out.log\"\nstderr_logfile = \"{{dir}}/err.log\""
        ),
    ));
    wait_file(&d.dir().join("err.log"), &lines("err-", 2));
    wait_file(
        &d.dir().join("out.log"),
        &(lines("", 3) + &lines("last-", 1)),
    );
}

#[test]
fn stderr_console_off_hides_and_raw_shows_unprefixed() {
    let mut d = Daemon::start(
        &(program_toml(
            "quiet",
            &["stderr-lines", "2", "--prefix", "q-"],
            &format!("{ONCE}\nstderr_console = \"off\""),
        ) + &program_toml(
            "plain",
            &["stderr-lines", "2", "--prefix", "r-"],
            &format!("{ONCE}\nstderr_console = \"raw\""),
        )),
    );
    for name in ["quiet", "plain"] {
        d.wait_state(name, State::Exited, T);
    }
    let tail = d.request("GET", "/v1/programs/quiet/logs/stderr", "");
    assert_eq!(
        (tail.status, tail.text()),
        (200, lines("q-", 2)),
        "hidden from the console, still captured"
    );
    // At exit the daemon writes out everything its programs printed.
    assert_eq!(d.terminate().code(), Some(0));
    let stderr = d.stderr();
    assert_eq!(
        console_lines(&stderr),
        ["r-line 1", "r-line 2"],
        "only plain's lines, without a prefix:\n{stderr}"
    );
}

#[test]
fn tail_buffer_keeps_the_last_bytes_of_each_stream() {
    let n = 1000; // about 9 KB, far more than either buffer
    let d = Daemon::start(&format!(
        "[supervisor]\ntail_buffer = 200\n\n{}{}",
        program_toml(
            "small",
            &["print-lines", &n.to_string()],
            &format!("{ONCE}\ntail_buffer = 100")
        ),
        program_toml("default", &["print-lines", &n.to_string()], ONCE),
    ));
    let output = lines("", n);
    for (name, size) in [("small", 100), ("default", 200)] {
        d.wait_state(name, State::Exited, T);
        let path = format!("/v1/programs/{name}/logs/stdout");
        let kept = wait_until(&format!("{name}'s last line in its tail"), T, || {
            let r = d.request("GET", &path, "");
            (r.status == 200 && r.text().ends_with(&format!("line {n}\n"))).then(|| r.text())
        });
        assert_eq!(
            kept,
            output[output.len() - size..],
            "{name} keeps its last {size} bytes"
        );
    }
}

#[test]
fn raw_console_output_without_tail_buffer_goes_straight_to_the_daemon_stdout() {
    let mut d = Daemon::start(
        &(program_toml(
            "direct",
            &["print-lines", "2", "--prefix", "d-", "sleep", "60"],
            "stdout_console = \"raw\"\ntail_buffer = \"0\"\nredirect_stderr = true",
        ) + &program_toml(
            "piped",
            &["print-lines", "1", "--prefix", "p-", "sleep", "60"],
            "stdout_console = \"raw\"\nredirect_stderr = true",
        )),
    );
    let pid = |name: &str| {
        d.wait_state(name, State::Running, T)
            .pid
            .expect("a RUNNING program has a pid")
    };
    let (direct, piped) = (pid("direct"), pid("piped"));
    let target = |pid: u32, fd: u32| {
        std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let stdout_file = d.dir().join("daemon.stdout").display().to_string();
    // No pipe: the program's stdout and stderr are the daemon's stdout itself.
    assert_eq!(target(direct, 1), stdout_file);
    assert_eq!(target(direct, 2), stdout_file);
    assert!(
        target(piped, 1).starts_with("pipe:"),
        "{}",
        target(piped, 1)
    );
    wait_until("both programs' lines on the daemon's stdout", T, || {
        let out = d.stdout();
        (out.contains("d-line 1\nd-line 2\n") && out.contains("p-line 1\n")).then_some(())
    });
    assert_eq!(d.terminate().code(), Some(0));
}
