//! `testprog`: the fixture program end-to-end tests run under nsvisor.
//!
//! It runs a list of steps given on the command line, in order, so tests need
//! no shell tricks. A step name may be written with or without leading dashes
//! (`sleep 1` and `--sleep 1` are the same). After the last step it exits 0.
//!
//! ```text
//! record FILE              append "<unix_ms> <pid> EVENT" lines to FILE: "start" at once,
//!                          later "signal TERM", "exit CODE", "orphan-exit"
//! fail-starts N CODE      exit CODE now if the record file holds at most N "start"
//!                          lines (this start included): "fail the first N starts"
//! ready-file FILE          write our pid to FILE (atomically: temp file + rename)
//! report FILE|-            write one JSON object: pid, ppid, pgid, sid, cwd, umask, uid,
//!                          gid, euid, egid, groups, sigblk, sigign, cap_inh, cap_prm,
//!                          cap_eff, cap_amb, no_new_privs, env (to stdout for -)
//! trap SIG                 catch SIG (TERM, HUP, USR1, 15 ...): record it, print
//!                          "got SIGxxx" on stdout, go on
//! ignore-term              same as `trap TERM`
//! term-exit CODE [--after SECS]
//!                          on SIGTERM wait SECS (default 0; further signals are only
//!                          recorded), then exit CODE
//! exit-on SIG CODE         on SIG (INT, USR1, 2 ...): record it, then exit CODE
//! print-lines N [--rate PER_SEC] [--stderr] [--prefix TEXT]
//!                          print "<prefix>line <i>" for i in 1..=N
//! stderr-lines N           same as `print-lines N --stderr`
//! partial-line TEXT        write TEXT to stdout without a newline
//! bytes N [--stderr]       write N bytes of "x" to stdout (stderr) with no newline at
//!                          all, in 64 KiB writes; stop quietly if the reader is gone
//! close-stdout             close fd 1 (later output to stdout is lost, not an error)
//! ignore-all               ignore every catchable signal (all but KILL and STOP)
//! setsid                   try to start a new session; record "setsid ok" or
//!                          "setsid EPERM" (a session leader cannot)
//! cat FILE                 copy FILE's bytes to stdout
//! grandchildren N FILE [--keep-traps] [--setsid]
//!                          fork N children that stay in our process group and sleep
//!                          forever; append their pids to FILE, one per line. With
//!                          --keep-traps they keep the signals trapped so far (and
//!                          record them) instead of taking the default actions; with
//!                          --setsid each starts a session of its own (leaving our
//!                          process group) before FILE lists it
//! orphans N [--linger SECS]
//!                          make N orphans (double fork; the middle process exits at
//!                          once); each sleeps SECS (default 0), records "orphan-exit"
//!                          and exits, leaving a zombie for PID 1 / the subreaper
//! http PORT STATUSFILE     serve HTTP on 127.0.0.1:PORT from a background thread: each
//!                          request is answered with the status in STATUSFILE (200 while
//!                          it does not exist), then the connection is closed
//! request SOCKET METHOD PATH BODY [--head]
//!                          send one HTTP request to the unix socket SOCKET (BODY may be
//!                          ""), print the status code on a line, then the body (not
//!                          read with --head: for streams). Tests run it as another user
//! wait-file FILE           wait until FILE exists (signals are handled meanwhile)
//! sleep SECS|forever       sleep (signals are handled meanwhile)
//! kill-self SIG            die by SIG
//! exit CODE                exit now with CODE
//! ```
//!
//! Example: `testprog term-exit 7 --after 0.5 record /t/rec sleep forever`. Steps run
//! in order, so a "start" record written after the traps also says "signals are set up".
//!
//! It is single-threaded, so forking from it is safe. Signal handlers only set a
//! bit; the steps notice pending signals while they wait. It has its own C `main`
//! (`#![no_main]`) because Rust's runtime start-up sets SIGPIPE to ignored, which
//! would hide how nsvisor left the signal dispositions (`report` shows them).
#![no_main]

use std::collections::BTreeMap;
use std::ffi::c_int;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::exit;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

/// Bit N set: signal N arrived and was not handled yet.
static PENDING: AtomicU64 = AtomicU64::new(0);

extern "C" fn on_signal(sig: c_int) {
    PENDING.fetch_or(1 << sig, Ordering::SeqCst);
}

/// What the process has been told so far.
#[derive(Default)]
struct Prog {
    record: Option<PathBuf>,
    trapped: Vec<Signal>,
    term_exit: Option<(i32, Duration)>,
    exit_on: Vec<(Signal, i32)>,
    exit_at: Option<(Instant, i32)>,
}

#[no_mangle]
extern "C" fn main(_argc: c_int, _argv: *const *const std::ffi::c_char) -> c_int {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut prog = Prog::default();
    let mut args = Args { args, pos: 0 };
    while let Some(step) = args.next_step() {
        run_step(&mut prog, &step, &mut args);
    }
    prog.exit(0);
}

fn run_step(prog: &mut Prog, step: &str, args: &mut Args) {
    match step {
        "record" => {
            prog.record = Some(PathBuf::from(args.value(step)));
            prog.log("start");
        }
        "fail-starts" => {
            let n: usize = parse_num(step, &args.value(step));
            let code = parse_num(step, &args.value(step));
            let Some(record) = &prog.record else {
                die("fail-starts needs a record file first");
            };
            let text = std::fs::read_to_string(record).unwrap_or_default();
            if text.lines().filter(|l| l.ends_with(" start")).count() <= n {
                prog.exit(code);
            }
        }
        "ready-file" => write_atomic(
            Path::new(&args.value(step)),
            &std::process::id().to_string(),
        ),
        "report" => report(&args.value(step)),
        "trap" => prog.trap(parse_signal(&args.value(step))),
        "ignore-term" => prog.trap(Signal::SIGTERM),
        "term-exit" => {
            let code = parse_num(step, &args.value(step));
            let after = args.option("--after").map_or(0.0, |v| parse_num(step, &v));
            prog.term_exit = Some((code, Duration::from_secs_f64(after)));
            prog.trap(Signal::SIGTERM);
        }
        "exit-on" => {
            let sig = parse_signal(&args.value(step));
            let code = parse_num(step, &args.value(step));
            prog.exit_on.push((sig, code));
            prog.trap(sig);
        }
        "print-lines" | "stderr-lines" => {
            let n: u64 = parse_num(step, &args.value(step));
            let rate: Option<f64> = args.option("--rate").map(|v| parse_num(step, &v));
            let stderr = step == "stderr-lines" || args.flag("--stderr");
            let prefix = args.option("--prefix").unwrap_or_default();
            prog.print_lines(n, rate, stderr, &prefix);
        }
        "partial-line" => {
            let text = args.value(step);
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
        }
        "bytes" => {
            let n: u64 = parse_num(step, &args.value(step));
            let stderr = args.flag("--stderr");
            write_bytes(n, stderr);
        }
        "close-stdout" => {
            let _ = std::io::stdout().flush();
            // SAFETY: closing fd 1; Rust's stdout handle then gets EBADF, which
            // its writes report and the steps ignore.
            unsafe { libc::close(1) };
        }
        "ignore-all" => ignore_all(),
        "setsid" => match nix::unistd::setsid() {
            Ok(_) => prog.log("setsid ok"),
            Err(e) => prog.log(&format!("setsid {e:?}")),
        },
        "cat" => {
            let path = args.value(step);
            let bytes = std::fs::read(&path).unwrap_or_else(|e| die(&format!("cat {path}: {e}")));
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&bytes).and_then(|()| out.flush());
        }
        "grandchildren" => {
            let n: u32 = parse_num(step, &args.value(step));
            let file = PathBuf::from(args.value(step));
            let keep_traps = args.flag("--keep-traps");
            let setsid = args.flag("--setsid");
            prog.grandchildren(n, &file, keep_traps, setsid);
        }
        "orphans" => {
            let n: u32 = parse_num(step, &args.value(step));
            let linger = args.option("--linger").map_or(0.0, |v| parse_num(step, &v));
            prog.orphans(n, Duration::from_secs_f64(linger));
        }
        "http" => {
            let port: u16 = parse_num(step, &args.value(step));
            serve_http(port, PathBuf::from(args.value(step)));
        }
        "request" => {
            let socket = PathBuf::from(args.value(step));
            let (method, path, body) = (args.value(step), args.value(step), args.value(step));
            request(&socket, &method, &path, &body, args.flag("--head"));
        }
        "wait-file" => {
            let file = PathBuf::from(args.value(step));
            while !file.exists() {
                prog.idle(Some(Instant::now() + Duration::from_millis(10)));
            }
        }
        "sleep" => match args.value(step).as_str() {
            "forever" => prog.idle(None),
            secs => {
                let secs: f64 = parse_num(step, secs);
                prog.idle(Some(Instant::now() + Duration::from_secs_f64(secs)));
            }
        },
        "kill-self" => prog.kill_self(parse_signal(&args.value(step))),
        "exit" => {
            let code = parse_num(step, &args.value(step));
            prog.exit(code);
        }
        other => die(&format!("unknown step {other:?}")),
    }
}

impl Prog {
    /// Appends one event line to the record file, with one write (O_APPEND), so
    /// several processes may share a file.
    fn log(&self, event: &str) {
        let Some(path) = &self.record else { return };
        let line = format!("{} {} {event}\n", unix_ms(), std::process::id());
        let file = OpenOptions::new().create(true).append(true).open(path);
        if let Err(e) = file.and_then(|mut f| f.write_all(line.as_bytes())) {
            die(&format!("record {}: {e}", path.display()));
        }
    }

    fn trap(&mut self, sig: Signal) {
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only does an atomic fetch_or, which is async-signal-safe.
        unsafe { signal::sigaction(sig, &action) }
            .unwrap_or_else(|e| die(&format!("trap {sig}: {e}")));
        self.trapped.push(sig);
    }

    /// Handles pending signals and waits until `until` (forever when `None`),
    /// exiting when a `term-exit` deadline passes.
    fn idle(&mut self, until: Option<Instant>) {
        loop {
            self.handle_signals();
            let now = Instant::now();
            if let Some((at, code)) = self.exit_at {
                if now >= at {
                    self.exit(code);
                }
            }
            if until.is_some_and(|u| now >= u) {
                return;
            }
            let mut nap = Duration::from_millis(5);
            if let Some(u) = until {
                nap = nap.min(u - now);
            }
            std::thread::sleep(nap);
        }
    }

    fn handle_signals(&mut self) {
        let pending = PENDING.swap(0, Ordering::SeqCst);
        for sig in Signal::iterator().filter(|s| pending & (1 << *s as i32) != 0) {
            let name = sig.as_str().trim_start_matches("SIG");
            self.log(&format!("signal {name}"));
            let _ = writeln!(std::io::stdout(), "got {}", sig.as_str());
            if sig == Signal::SIGTERM && self.exit_at.is_none() {
                if let Some((code, after)) = self.term_exit {
                    self.exit_at = Some((Instant::now() + after, code));
                }
            }
            if let Some((_, code)) = self.exit_on.iter().find(|(s, _)| *s == sig) {
                self.exit(*code);
            }
        }
    }

    fn print_lines(&mut self, n: u64, rate: Option<f64>, stderr: bool, prefix: &str) {
        let mut out: Box<dyn Write> = if stderr {
            Box::new(std::io::BufWriter::new(std::io::stderr().lock()))
        } else {
            Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
        };
        let start = Instant::now();
        for i in 1..=n {
            if let Some(rate) = rate {
                self.idle(Some(start + Duration::from_secs_f64((i - 1) as f64 / rate)));
            }
            let written = writeln!(out, "{prefix}line {i}");
            let flushed = if rate.is_some() { out.flush() } else { Ok(()) };
            if written.and(flushed).is_err() {
                return; // reader gone
            }
        }
        let _ = out.flush();
    }

    fn grandchildren(&mut self, n: u32, file: &Path, keep_traps: bool, setsid: bool) {
        for _ in 0..n {
            // The child closes its end once set up (after its setsid), so the
            // pid is listed only then, and before the next step of ours.
            let (ready_r, ready_w) =
                nix::unistd::pipe().unwrap_or_else(|e| die(&format!("pipe: {e}")));
            // SAFETY: testprog is single-threaded; the child resets signals and pauses,
            // or keeps its traps and idles.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    drop(ready_r);
                    if setsid {
                        if let Err(e) = nix::unistd::setsid() {
                            die(&format!("setsid: {e}"));
                        }
                    }
                    drop(ready_w);
                    if keep_traps {
                        self.idle(None);
                    }
                    self.reset_traps();
                    loop {
                        nix::unistd::pause();
                    }
                }
                Ok(ForkResult::Parent { child }) => {
                    drop(ready_w);
                    // End of file: the child has closed its end (or died).
                    let _ = std::io::Read::read(&mut std::fs::File::from(ready_r), &mut [0u8; 1]);
                    let line = format!("{child}\n");
                    let f = OpenOptions::new().create(true).append(true).open(file);
                    if let Err(e) = f.and_then(|mut f| f.write_all(line.as_bytes())) {
                        die(&format!("grandchildren {}: {e}", file.display()));
                    }
                }
                Err(e) => die(&format!("fork: {e}")),
            }
        }
    }

    fn orphans(&mut self, n: u32, linger: Duration) {
        for _ in 0..n {
            // SAFETY: testprog is single-threaded; the middle child forks once more and
            // exits, the grandchild sleeps, records and exits.
            match unsafe { fork() } {
                Ok(ForkResult::Child) => {
                    // SAFETY: as above.
                    if let Ok(ForkResult::Child) = unsafe { fork() } {
                        self.reset_traps();
                        std::thread::sleep(linger);
                        self.log("orphan-exit");
                    }
                    // SAFETY: _exit skips atexit handlers and buffers shared with the parent.
                    unsafe { libc::_exit(0) }
                }
                Ok(ForkResult::Parent { child }) => {
                    let _ = waitpid(child, None);
                }
                Err(e) => die(&format!("fork: {e}")),
            }
        }
    }

    fn reset_traps(&self) {
        for sig in &self.trapped {
            // SAFETY: restoring the default disposition has no handler to worry about.
            let _ = unsafe { signal::signal(*sig, SigHandler::SigDfl) };
        }
    }

    fn kill_self(&mut self, sig: Signal) {
        let _ = std::io::stdout().flush();
        self.log(&format!(
            "kill-self {}",
            sig.as_str().trim_start_matches("SIG")
        ));
        // SAFETY: restoring the default disposition has no handler to worry about.
        let _ = unsafe { signal::signal(sig, SigHandler::SigDfl) };
        let mut set = SigSet::empty();
        set.add(sig);
        let _ = set.thread_unblock();
        let _ = signal::kill(Pid::this(), sig);
        loop {
            nix::unistd::pause();
        }
    }

    fn exit(&self, code: i32) -> ! {
        let _ = std::io::stdout().flush();
        self.log(&format!("exit {code}"));
        exit(code)
    }
}

/// `bytes N`: N bytes of "x" and never a newline.
fn write_bytes(n: u64, stderr: bool) {
    let chunk = [b'x'; 64 << 10];
    let mut out: Box<dyn Write> = if stderr {
        Box::new(std::io::stderr().lock())
    } else {
        Box::new(std::io::stdout().lock())
    };
    let mut left = n;
    while left > 0 {
        let len = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
        if out.write_all(&chunk[..len]).is_err() {
            return; // reader gone
        }
        left -= len as u64;
    }
    let _ = out.flush();
}

/// `ignore-all`: SIG_IGN for every signal that can be ignored.
fn ignore_all() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: setting SIG_IGN installs no handler; signals glibc reserves
        // for itself (32, 33) are refused with EINVAL, which is ignored.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// Everything a test may want to check about how the process was started.
/// The `request` step: one request, the status on a line, then the body.
fn request(socket: &Path, method: &str, path: &str, body: &str, head_only: bool) {
    let mut answer = nsvisor_tests::http::open(socket, method, path, body.as_bytes())
        .unwrap_or_else(|e| die(&format!("request {method} {path}: {e}")));
    let mut out = format!("{}\n", answer.status).into_bytes();
    if !head_only {
        std::io::Read::read_to_end(&mut answer, &mut out)
            .unwrap_or_else(|e| die(&format!("request {method} {path}: reading the body: {e}")));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out).and_then(|()| stdout.flush());
}

fn report(dest: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let groups: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .iter()
        .map(|g| g.as_raw())
        .collect();
    let cwd = std::env::current_dir()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let json = serde_json::json!({
        "pid": std::process::id(),
        "ppid": nix::unistd::getppid().as_raw(),
        "pgid": nix::unistd::getpgrp().as_raw(),
        "sid": nix::unistd::getsid(None).map(|p| p.as_raw()).unwrap_or(-1),
        "cwd": cwd,
        "umask": field("Umask:"),
        "uid": nix::unistd::getuid().as_raw(),
        "gid": nix::unistd::getgid().as_raw(),
        "euid": nix::unistd::geteuid().as_raw(),
        "egid": nix::unistd::getegid().as_raw(),
        "groups": groups,
        "sigblk": field("SigBlk:"),
        "sigign": field("SigIgn:"),
        "cap_inh": field("CapInh:"),
        "cap_prm": field("CapPrm:"),
        "cap_eff": field("CapEff:"),
        "cap_amb": field("CapAmb:"),
        "no_new_privs": field("NoNewPrivs:"),
        "env": env,
    });
    let text = format!("{json}\n");
    if dest == "-" {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    } else {
        write_atomic(Path::new(dest), &text);
    }
}

/// Writes a whole file so that readers see either nothing or all of it.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let done = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = done {
        die(&format!("write {}: {e}", path.display()));
    }
}

/// The command-line cursor: step names, their values and their options.
struct Args {
    args: Vec<String>,
    pos: usize,
}

impl Args {
    fn next_step(&mut self) -> Option<String> {
        let arg = self.args.get(self.pos)?;
        self.pos += 1;
        Some(arg.trim_start_matches('-').to_string())
    }

    fn value(&mut self, step: &str) -> String {
        let Some(v) = self.args.get(self.pos) else {
            die(&format!("{step}: missing value"));
        };
        self.pos += 1;
        v.clone()
    }

    fn option(&mut self, name: &str) -> Option<String> {
        if self.args.get(self.pos).map(String::as_str) != Some(name) {
            return None;
        }
        self.pos += 1;
        Some(self.value(name))
    }

    fn flag(&mut self, name: &str) -> bool {
        let found = self.args.get(self.pos).map(String::as_str) == Some(name);
        if found {
            self.pos += 1;
        }
        found
    }
}

fn parse_num<T: FromStr>(step: &str, text: &str) -> T {
    text.parse()
        .unwrap_or_else(|_| die(&format!("{step}: not a number: {text:?}")))
}

fn parse_signal(text: &str) -> Signal {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).unwrap_or_else(|_| die(&format!("bad signal {text}")));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).unwrap_or_else(|_| die(&format!("bad signal {text}")))
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

fn die(msg: &str) -> ! {
    eprintln!("testprog: {msg}");
    exit(100)
}

/// `http PORT STATUSFILE`: answers every request on a background thread.
fn serve_http(port: u16, status_file: PathBuf) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| die(&format!("http: bind 127.0.0.1:{port}: {e}")));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut request = [0u8; 1024];
            let _ = std::io::Read::read(&mut conn, &mut request);
            let status = std::fs::read_to_string(&status_file)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
                .unwrap_or(200);
            let answer =
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = conn.write_all(answer.as_bytes());
        }
    });
}
