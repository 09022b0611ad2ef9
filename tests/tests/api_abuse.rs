//! The control API under abuse, all at once for [`ABUSE`]: a thousand idle
//! connections (reopened as the daemon drops them), clients trickling their
//! request head one byte at a time, oversized heads and bodies, malformed
//! JSON, huge `lines=`/`bytes=`, and a hundred streaming clients (`tail -f` of
//! a program flooding its output, and events) that never read. Meanwhile a
//! normal client's `stop`, `status` and `start` each complete within
//! [`NORMAL_BOUND`], the daemon's memory stays within [`MEM_BOUND_KB`] of where
//! it started, and once the abusers are gone its fds come back.
//!
//! The pauses in the abusers' loops are their pace (one byte per 100 ms is
//! what a trickling client is), not synchronisation.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nsvisor_proto::State;
use nsvisor_tests::http::{self, Response};
use nsvisor_tests::{fd_count, program_toml, status_kb, wait_until, Daemon};

/// How long the abuse lasts.
const ABUSE: Duration = Duration::from_secs(25);
/// Idle connections held open.
const IDLE: usize = 1000;
/// Clients trickling their request head.
const TRICKLERS: usize = 5;
/// Streaming clients that never read (half events, half `tail -f`).
const STUCK: usize = 100;
/// The bound on each of the normal client's calls while the abuse runs. Its
/// calls take a few milliseconds; the bound leaves room for a 2-core machine
/// shared with the abusers, a program writing as fast as it can and whatever
/// else runs there, while staying well under the 10 s an idle client could
/// hold a connection slot (what a normal client waited for before idle
/// connections made room).
const NORMAL_BOUND: Duration = Duration::from_secs(5);
/// A call with no answer after this has hung (bad requests included).
const HUNG: Duration = Duration::from_secs(15);
/// The bound on the median of each kind of call: the common case stays fast.
const NORMAL_P50_BOUND: Duration = Duration::from_millis(500);
/// The daemon's request-head timeout (`server.rs`): a trickling client is cut
/// off by then at the latest, however steadily it sends.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How much RssAnon (kB) the daemon may grow by while abused. What it may
/// hold: per served connection hyper's buffers (at most 64 KiB each way for
/// a stuck stream, a few KiB for an idle one; 512 connections at most), and
/// per followed program stream the chunks its stuck followers have not taken
/// (a bounded queue). Buffering what stuck followers miss without a bound
/// (the flood writes 64 MiB, several times) would show as far more.
const MEM_BOUND_KB: u64 = 48 * 1024;
/// Fds the daemon may have above its start once every abuser has left and
/// the same programs run: one connection still closing, and one to spare.
const FD_SLACK: usize = 2;
/// The tail buffer kept per stream (the default `tail_buffer`).
const TAIL_BUFFER: usize = 64 * 1024;
/// Size of the file the flooding program writes out on each start.
const FLOOD_BYTES: usize = 64 << 20;

/// Raises this process's soft open-files limit to its hard one (the daemon
/// inherits it): the test holds some 1,100 connections at once.
fn raise_open_files() {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    let need = (IDLE + STUCK + 200) as u64;
    assert!(
        hard >= need,
        "the hard open-files limit ({hard}) is below the {need} this test needs"
    );
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).expect("setrlimit");
    }
}

/// What the abusers share: when to stop and what went wrong.
struct Abuse {
    socket: PathBuf,
    until: Instant,
    failures: Mutex<Vec<String>>,
    reconnects: AtomicU64,
    trickles: Mutex<Vec<Duration>>,
    answers: AtomicU64,
}

impl Abuse {
    fn going(&self) -> bool {
        Instant::now() < self.until
    }

    fn fail(&self, what: String) {
        self.failures.lock().expect("failures lock").push(what);
    }
}

fn connect(socket: &Path) -> UnixStream {
    UnixStream::connect(socket).expect("cannot connect to the daemon")
}

/// True when the daemon has closed `conn` (it is non-blocking).
fn closed(conn: &mut UnixStream) -> bool {
    let mut byte = [0u8; 1];
    match conn.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// Holds [`IDLE`] connections that never send a byte, reopening every
/// second each one the daemon dropped.
fn idler(abuse: &Abuse) {
    let open = || {
        let conn = connect(&abuse.socket);
        conn.set_nonblocking(true).expect("non-blocking");
        conn
    };
    let mut conns: Vec<UnixStream> = (0..IDLE).map(|_| open()).collect();
    while abuse.going() {
        for conn in conns.iter_mut() {
            if closed(conn) {
                *conn = open();
                abuse.reconnects.fetch_add(1, Relaxed);
            }
        }
        thread::sleep(Duration::from_secs(1));
    }
}

/// Sends a request head one byte every 100 ms, without end, and records how
/// long the daemon let it go on; then starts again.
fn trickler(abuse: &Abuse) {
    let head = b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    while abuse.going() {
        let mut conn = connect(&abuse.socket);
        conn.set_nonblocking(true).expect("non-blocking");
        let start = Instant::now();
        let mut sent = 0;
        loop {
            let byte = head.get(sent).copied().unwrap_or(b'a');
            let gone = match conn.write(&[byte]) {
                Ok(_) => closed(&mut conn),
                Err(e) => e.kind() != ErrorKind::WouldBlock,
            };
            if gone {
                abuse.trickles.lock().expect("lock").push(start.elapsed());
                break;
            }
            if start.elapsed() > HEADER_TIMEOUT * 3 {
                abuse.fail(format!(
                    "a trickling client was let go on for {:?}",
                    start.elapsed()
                ));
                break;
            }
            sent += 1;
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Writes `raw` (the daemon may stop reading it half-way) and returns the
/// answer, which must come within [`HUNG`].
fn answer(abuse: &Abuse, what: &str, raw: &[u8]) -> String {
    let mut conn = connect(&abuse.socket);
    conn.set_read_timeout(Some(HUNG)).expect("timeout");
    conn.set_write_timeout(Some(HUNG)).expect("timeout");
    let _ = conn.write_all(raw);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if http::is_timeout(&e) => {
                abuse.fail(format!("{what}: no answer within {:?}", HUNG));
                break;
            }
            Err(_) => break,
        }
    }
    abuse.answers.fetch_add(1, Relaxed);
    String::from_utf8_lossy(&out).into_owned()
}

/// A request with `Connection: close`, as raw bytes.
fn raw_request(method: &str, path: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{extra_headers}\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

/// The status code and body of a raw answer.
fn split_answer(text: &str) -> (u16, &str) {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map_or("", |(_, b)| b))
}

/// Oversized heads and bodies, malformed JSON and huge `lines=`/`bytes=`, in
/// a loop; each must get its error (or its bounded) answer.
fn bad_requests(abuse: &Abuse) {
    let big_head = raw_request(
        "GET",
        "/v1/programs",
        &format!("X-Big: {}\r\n", "a".repeat(1 << 20)),
        b"",
    );
    let big_body = raw_request(
        "POST",
        "/v1/programs/victim/signal",
        "",
        &vec![b'{'; 1 << 20],
    );
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("a 1 MiB request head", big_head, &[431, 400]),
        ("a 1 MiB body", big_body, &[413]),
        (
            "malformed JSON",
            raw_request("POST", "/v1/programs/victim/signal", "", b"{\"signal\":"),
            &[400],
        ),
        (
            "a JSON body of the wrong shape",
            raw_request(
                "POST",
                "/v1/programs/victim/signal",
                "",
                b"[1,2,{\"a\":null}]",
            ),
            &[400],
        ),
        (
            "lines=99999999999",
            raw_request(
                "GET",
                "/v1/programs/flood/logs/stdout?lines=99999999999",
                "",
                b"",
            ),
            &[200],
        ),
        (
            "bytes=99999999999",
            raw_request(
                "GET",
                "/v1/programs/flood/logs/stdout?bytes=99999999999",
                "",
                b"",
            ),
            &[200],
        ),
        (
            "bytes= past 64 bits",
            raw_request(
                "GET",
                "/v1/programs/flood/logs/stdout?bytes=999999999999999999999999",
                "",
                b"",
            ),
            &[400],
        ),
    ];
    while abuse.going() {
        for (what, raw, ok) in &cases {
            let text = answer(abuse, what, raw);
            let (status, body) = split_answer(&text);
            if !ok.contains(&status) {
                abuse.fail(format!(
                    "{what}: answered {status}, not one of {ok:?}: {:.200}",
                    text
                ));
            } else if status == 200 && body.len() > TAIL_BUFFER + 64 {
                abuse.fail(format!(
                    "{what}: {} bytes, more than the tail buffer",
                    body.len()
                ));
            }
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Opens a streamed GET and never reads its answer.
fn stuck(socket: &Path, path: &str) -> UnixStream {
    let mut conn = connect(socket);
    let head = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.write_all(head.as_bytes()).expect("write a request");
    conn
}

/// The p50 and the maximum of some durations.
fn p50_max(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    (d[d.len() / 2], d[d.len() - 1])
}

#[test]
fn abusive_clients_do_not_hold_up_a_normal_one() {
    raise_open_files();
    let b = Daemon::builder();
    let line = format!("{}\n", "x".repeat(99));
    let flood: String = line.repeat(FLOOD_BYTES / line.len());
    std::fs::write(b.dir().join("flood.bin"), flood).expect("write the flood file");
    let d = b
        .config(
            &(program_toml("victim", &["sleep", "forever"], "startsecs = 0")
                + &program_toml(
                    "flood",
                    &["cat", "{dir}/flood.bin", "sleep", "forever"],
                    "startsecs = 0\nautostart = false\nstdout_console = \"off\"",
                )),
        )
        .start();
    let daemon = d.daemon_pid();
    let normal = |method: &str, path: &str| -> (Duration, Response) {
        let start = Instant::now();
        let r = http::request_within(d.socket(), method, path, b"", HUNG)
            .unwrap_or_else(|e| panic!("{method} {path}: no answer within {:?}: {e}", HUNG));
        (start.elapsed(), r)
    };
    d.wait_state("victim", State::Running, Duration::from_secs(10));
    drop(d.stream("/v1/programs/flood/logs/stdout?follow=true"));
    drop(d.events());
    wait_until("the warm-up connections to close", HUNG, || {
        (d.metric("nsvisor_api_connections") == Some(1.0)).then_some(())
    });
    let fds_start = fd_count(daemon).expect("the daemon's fds");
    let rss_start = status_kb(daemon, "RssAnon").expect("the daemon's RssAnon");

    // The stuck followers come first, so all of them are being served.
    let stuck_conns: Vec<UnixStream> = (0..STUCK)
        .map(|i| {
            let path = if i % 2 == 0 {
                "/v1/events"
            } else {
                "/v1/programs/flood/logs/stdout?follow=true"
            };
            stuck(d.socket(), path)
        })
        .collect();
    let mut served = None;
    let all_served = nsvisor_tests::poll(Duration::from_secs(10), || {
        served = d.metric("nsvisor_api_connections");
        (served == Some(STUCK as f64 + 1.0)).then_some(())
    });
    assert!(
        all_served.is_some(),
        "the {STUCK} stuck followers are not all served: {served:?} connections"
    );

    let abuse = Arc::new(Abuse {
        socket: d.socket().to_path_buf(),
        until: Instant::now() + ABUSE,
        failures: Mutex::new(Vec::new()),
        reconnects: AtomicU64::new(0),
        trickles: Mutex::new(Vec::new()),
        answers: AtomicU64::new(0),
    });
    let mut threads = Vec::new();
    type Abuser = fn(&Abuse);
    let abusers: [(Abuser, usize); 3] = [(idler, 1), (trickler, TRICKLERS), (bad_requests, 1)];
    for (abuser, n) in abusers {
        for _ in 0..n {
            let abuse = abuse.clone();
            threads.push(thread::spawn(move || abuser(&abuse)));
        }
    }

    let mut latencies: [(&str, Vec<Duration>); 4] = [
        ("stop", Vec::new()),
        ("status", Vec::new()),
        ("start", Vec::new()),
        ("list", Vec::new()),
    ];
    let mut rss_peak = rss_start;
    let mut floods = 0;
    let mut next_flood = Instant::now();
    while abuse.going() {
        if Instant::now() >= next_flood {
            // A new process writes the whole file again (restart or start).
            let (_, r) = normal("POST", "/v1/programs/flood/restart");
            assert_eq!(r.status, 200, "restart flood: {}", r.text());
            floods += 1;
            next_flood = Instant::now() + Duration::from_secs(5);
        }
        let calls = [
            ("POST", "/v1/programs/victim/stop", State::Stopped),
            ("GET", "/v1/programs/victim", State::Stopped),
            ("POST", "/v1/programs/victim/start", State::Running),
            ("GET", "/v1/programs", State::Running),
        ];
        for (i, (method, path, state)) in calls.into_iter().enumerate() {
            let (took, r) = normal(method, path);
            assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
            let text = r.text();
            assert!(
                text.contains(&format!("\"{state}\"")),
                "{method} {path}: {text}"
            );
            latencies[i].1.push(took);

            rss_peak = rss_peak.max(status_kb(daemon, "RssAnon").expect("RssAnon"));
        }
        thread::sleep(Duration::from_millis(50));
    }
    for t in threads {
        t.join().expect("an abuser panicked");
    }
    rss_peak = rss_peak.max(status_kb(daemon, "RssAnon").expect("RssAnon"));
    let trickles = abuse.trickles.lock().expect("lock").clone();
    let failures = abuse.failures.lock().expect("lock").clone();

    let mut report = Vec::new();
    for (op, took) in &latencies {
        let (p50, max) = p50_max(took.clone());
        report.push(format!(
            "{op} p50 {p50:?} max {max:?} ({} calls)",
            took.len()
        ));
    }
    eprintln!("normal client under abuse: {}", report.join(", "));
    eprintln!(
        "abuse: {} idle connections reopened, {} bad requests answered, {floods} floods, \
         {} trickling clients cut after {:?} at most; \
         daemon RssAnon {rss_start} kB at start, {rss_peak} kB at most",
        abuse.reconnects.load(Relaxed),
        abuse.answers.load(Relaxed),
        trickles.len(),
        trickles.iter().max(),
    );
    assert!(
        failures.is_empty(),
        "{} abusive requests went wrong: {failures:#?}",
        failures.len()
    );
    for (op, took) in &latencies {
        let (p50, max) = p50_max(took.clone());
        assert!(
            max <= NORMAL_BOUND,
            "the normal client's {op} took {max:?} (bound {NORMAL_BOUND:?})"
        );
        assert!(
            p50 <= NORMAL_P50_BOUND,
            "the normal client's {op} took {p50:?} at the median (bound {NORMAL_P50_BOUND:?})"
        );
    }
    assert!(!trickles.is_empty(), "no trickling client was cut off");
    let longest = trickles.iter().max().expect("some");
    assert!(
        *longest <= HEADER_TIMEOUT + Duration::from_secs(3),
        "a trickling client held its connection for {longest:?}"
    );
    assert!(
        rss_peak <= rss_start + MEM_BOUND_KB,
        "the daemon's RssAnon grew from {rss_start} kB to {rss_peak} kB (bound +{MEM_BOUND_KB} kB)"
    );

    drop(stuck_conns);
    // The flood was not running at the start: its pipes would count.
    let (_, r) = normal("POST", "/v1/programs/flood/stop");
    assert_eq!(r.status, 200, "stop flood: {}", r.text());
    let mut fds = 0;
    let back = nsvisor_tests::poll(Duration::from_secs(15), || {
        fds = fd_count(daemon).expect("the daemon's fds");
        (fds <= fds_start + FD_SLACK).then_some(())
    });
    eprintln!("daemon fds: {fds_start} at start, {fds} once the abusers left");
    assert!(
        back.is_some(),
        "the daemon's fds did not come back within +{FD_SLACK}: {fds_start} → {fds}"
    );
    let (status, _) = d.get("/v1/health");
    assert_eq!(status, 200, "the daemon still serves");
    assert!(!d.stderr().contains("panicked"), "the daemon panicked");
}

#[test]
fn followers_that_hang_up_on_a_quiet_program_free_their_connections() {
    // `Connection: close` requests (what the harness sends): hyper stops
    // reading after the request, so only the stream itself can notice.
    let d = Daemon::start(&program_toml(
        "quiet",
        &["sleep", "forever"],
        "startsecs = 0",
    ));
    d.wait_state("quiet", State::Running, Duration::from_secs(10));
    let streams: Vec<_> = (0..10)
        .map(|i| {
            if i % 2 == 0 {
                d.stream("/v1/events")
            } else {
                d.stream("/v1/programs/quiet/logs/stdout?follow=true")
            }
        })
        .collect();
    wait_until(
        "the followers to be served",
        Duration::from_secs(10),
        || (d.metric("nsvisor_api_connections") == Some(11.0)).then_some(()),
    );
    drop(streams);
    wait_until(
        "the followers' connections to be closed",
        Duration::from_secs(10),
        || (d.metric("nsvisor_api_connections") == Some(1.0)).then_some(()),
    );
}
