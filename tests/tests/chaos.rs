//! Chaos: fifty programs (some with children of their own, some leaving
//! orphans, some chatty, some slow to start or to stop) under about forty
//! seconds of random SIGKILLs of programs and of their children, concurrent
//! clients (`status`, events follow, `tail -f`, start/stop/restart), a reload
//! every few seconds that swaps a subset of the programs, and bursts of SIGHUP
//! and SIGUSR2 to the daemon. Afterwards every program is in the state its
//! clients last asked for, the daemon has no unreaped child, its fd count and
//! memory are back near where they started, every API call was answered in
//! time, and its log holds no panic.
//!
//! The run is random but replayable: the seed is printed, and
//! `NSVISOR_CHAOS_SEED=N` runs the same choices again (the interleaving with
//! the daemon still varies). The sleeps between actions are the workload's
//! pace, not synchronisation: every check waits with `wait_until`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpgid, Pid};
use nsvisor_proto::{ProgramInfo, State, StateEvent};
use nsvisor_tests::http::{self, Response};
use nsvisor_tests::{
    children_of, comm_of, fd_count, poll, ppid_of, program_toml, status_kb, wait_until,
    zombie_children, Daemon, Rng,
};

/// How long the chaos lasts.
const CHAOS: Duration = Duration::from_secs(40);
/// An API call not answered within this counts as hung. The slowest honest
/// calls are a `start` that waits out `startsecs = 1` and a `stop` that waits
/// 0.3 s for a slow exit, on a busy 2-core machine.
const CALL_BOUND: Duration = Duration::from_secs(15);
/// How long the programs may take to reach their desired state afterwards
/// (a program killed several times while STARTING waits out a growing backoff).
const SETTLE: Duration = Duration::from_secs(30);
/// Open fds the daemon may have above its start once the same programs run
/// again. Everything it opens is per program (pipes, log files) or per client
/// connection, all of which are back to the same set, so any growth is a leak;
/// the slack only covers a connection or two still closing.
const FD_SLACK: usize = 4;
/// RssAnon (kB) the daemon may have grown by. What it legitimately keeps after
/// the chaos: tail buffers filled by the chatty programs (64 KiB each), the
/// follower channels created by `tail -f`, and the allocator keeping freed
/// pages of its per-thread arenas. A leak per call (some 10,000 calls) or per
/// spawn (some 1,000 spawns) shows as more.
const RSS_SLACK_KB: u64 = 12 * 1024;

const FIXED: usize = 40;
const SLOTS: usize = 10;

/// What a program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    /// Two children in its process group; stopped as a group.
    Group,
    /// 50 lines a second into a log file (reopened by SIGUSR2).
    Chatty,
    /// Two orphans per start, which exit 0.2 s later (the daemon reaps them).
    Orphans,
    /// `startsecs = 1`: killed while STARTING, it backs off.
    SlowStart,
    /// Takes 0.3 s to exit after SIGTERM.
    SlowStop,
}

fn fixed_kind(i: usize) -> Kind {
    match i % 8 {
        3 => Kind::Group,
        4 => Kind::Chatty,
        5 => Kind::Orphans,
        6 => Kind::SlowStart,
        7 => Kind::SlowStop,
        _ => Kind::Plain,
    }
}

fn program(name: &str, kind: Kind, version: u32) -> String {
    let children = format!("{{dir}}/{name}.children");
    let (args, extra): (Vec<&str>, String) = match kind {
        Kind::Plain => (vec!["sleep", "forever"], "startsecs = 0".into()),
        Kind::Group => (
            vec!["grandchildren", "2", &children, "sleep", "forever"],
            "startsecs = 0\nstopasgroup = true".into(),
        ),
        Kind::Chatty => (
            vec![
                "print-lines",
                "1000000000",
                "--rate",
                "50",
                "sleep",
                "forever",
            ],
            format!("startsecs = 0\nstdout_logfile = \"{{dir}}/{name}.log\""),
        ),
        Kind::Orphans => (
            vec!["orphans", "2", "--linger", "0.2", "sleep", "forever"],
            "startsecs = 0".into(),
        ),
        Kind::SlowStart => (
            vec!["sleep", "forever"],
            "startsecs = 1\nstartretries = 1000".into(),
        ),
        Kind::SlowStop => (
            vec!["term-exit", "0", "--after", "0.3", "sleep", "forever"],
            "startsecs = 0".into(),
        ),
    };
    let extra = format!("autorestart = true\n{extra}\nenvironment = {{ VERSION = \"{version}\" }}");
    program_toml(name, &args, &extra)
}

/// The swapped part of the config: each slot holds `sNa` or `sNb` at some version.
#[derive(Debug, Clone, Default)]
struct Slots {
    b: [bool; SLOTS],
    version: [u32; SLOTS],
}

impl Slots {
    fn names(&self) -> Vec<String> {
        (0..SLOTS)
            .map(|k| format!("s{k}{}", if self.b[k] { 'b' } else { 'a' }))
            .collect()
    }

    fn kind(k: usize) -> Kind {
        if k % 2 == 0 {
            Kind::Plain
        } else {
            Kind::Group
        }
    }

    /// A third of the slots swap their program for another, a third change it.
    fn shuffle(&mut self, rng: &mut Rng) {
        for k in 0..SLOTS {
            match rng.below(3) {
                0 => self.b[k] = !self.b[k],
                1 => self.version[k] += 1,
                _ => {}
            }
        }
    }
}

fn fixed_names() -> Vec<String> {
    (0..FIXED).map(|i| format!("p{i:02}")).collect()
}

fn config(slots: &Slots) -> String {
    let mut out = String::new();
    for (i, name) in fixed_names().iter().enumerate() {
        out += &program(name, fixed_kind(i), 0);
    }
    for (k, name) in slots.names().iter().enumerate() {
        out += &program(name, Slots::kind(k), slots.version[k]);
    }
    out
}

/// What the chaos threads share: where the daemon is, when to stop, the
/// current swapped names, and what every call did.
struct Run {
    socket: PathBuf,
    daemon: u32,
    until: Instant,
    slots: Mutex<Vec<String>>,
    calls: AtomicU64,
    latencies: Mutex<Vec<(Duration, String)>>,
    kills: AtomicU64,
    events: AtomicU64,
    tailed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Run {
    fn going(&self) -> bool {
        Instant::now() < self.until
    }

    fn fail(&self, what: String) {
        self.failures.lock().expect("failures lock").push(what);
    }

    fn slot_names(&self) -> Vec<String> {
        self.slots.lock().expect("slots lock").clone()
    }

    /// Records how long a call took; false (and a failure) when over the bound.
    fn timed(&self, what: &str, took: Duration) -> bool {
        self.calls.fetch_add(1, Relaxed);
        self.latencies
            .lock()
            .expect("latencies lock")
            .push((took, what.to_string()));
        if took > CALL_BOUND {
            self.fail(format!("{what}: answered after {took:?}"));
        }
        took <= CALL_BOUND
    }

    /// One API call, which must be answered within [`CALL_BOUND`] with one of `ok`.
    fn call(&self, method: &str, path: &str, body: &str, ok: &[u16]) -> Option<Response> {
        let what = format!("{method} {path}");
        let start = Instant::now();
        let r = http::request_within(&self.socket, method, path, body.as_bytes(), CALL_BOUND);
        let in_time = self.timed(&what, start.elapsed());
        match r {
            Ok(r) if ok.contains(&r.status) => in_time.then_some(r),
            Ok(r) => {
                self.fail(format!("{what}: {} {}", r.status, r.text()));
                None
            }
            Err(e) => {
                self.fail(format!(
                    "{what}: no answer ({e}) after {:?}",
                    start.elapsed()
                ));
                None
            }
        }
    }

    fn list(&self) -> Vec<ProgramInfo> {
        let Some(r) = self.call("GET", "/v1/programs", "", &[200]) else {
            return Vec::new();
        };
        serde_json::from_slice(&r.body).unwrap_or_else(|e| {
            self.fail(format!("GET /v1/programs: not a program list ({e})"));
            Vec::new()
        })
    }

    /// Opens a streamed GET; `None` (and a failure unless `ok` has it) otherwise.
    fn open(&self, path: &str, ok: &[u16]) -> Option<http::StreamBody> {
        let start = Instant::now();
        let stream = http::stream(&self.socket, path);
        self.timed(&format!("GET {path}"), start.elapsed());
        match stream {
            Ok(s) if s.status == 200 => Some(s),
            Ok(s) if ok.contains(&s.status) => None,
            Ok(s) => {
                self.fail(format!("GET {path}: {}", s.status));
                None
            }
            Err(e) => {
                self.fail(format!("GET {path}: {e}"));
                None
            }
        }
    }

    /// Sends SIGKILL to `pid` if it still is a `testprog` whose parent is
    /// `parent` (a pid read a moment ago may have gone; never kill a stranger).
    fn kill_if(&self, pid: u32, parent: u32, group: bool) {
        if ppid_of(pid) != Some(parent) || comm_of(pid).as_deref() != Some("testprog") {
            return;
        }
        let target = Pid::from_raw(pid as i32);
        if group && getpgid(Some(target)) != Ok(target) {
            return;
        }
        let target = if group {
            Pid::from_raw(-(pid as i32))
        } else {
            target
        };
        if kill(target, Signal::SIGKILL).is_ok() {
            self.kills.fetch_add(1, Relaxed);
        }
    }
}

/// Starts, stops and restarts the programs it owns (each fixed program has one
/// owner, so its last answered action is its desired state), and now and then
/// restarts a swapped program that a reload may be removing.
fn actor(run: &Run, mut rng: Rng, owned: Vec<String>, desired: &Mutex<BTreeMap<String, State>>) {
    while run.going() {
        if rng.chance(0.15) {
            if let Some(name) = rng.pick(&run.slot_names()) {
                run.call(
                    "POST",
                    &format!("/v1/programs/{name}/restart"),
                    "",
                    &[200, 404],
                );
            }
        } else {
            let name = rng.pick(&owned).expect("owns programs").clone();
            let verb = *rng.pick(&["start", "stop", "restart"]).expect("verbs");
            let path = format!("/v1/programs/{name}/{verb}");
            if run.call("POST", &path, "", &[200]).is_some() {
                let want = if verb == "stop" {
                    State::Stopped
                } else {
                    State::Running
                };
                desired.lock().expect("desired lock").insert(name, want);
            }
        }
        thread::sleep(rng.millis(20, 200));
    }
}

/// `status` in its forms: the list, one program, health, metrics.
fn status_client(run: &Run, mut rng: Rng) {
    let fixed = fixed_names();
    while run.going() {
        match rng.below(4) {
            0 => {
                run.list();
            }
            1 => {
                let name = if rng.chance(0.5) {
                    rng.pick(&fixed).cloned()
                } else {
                    rng.pick(&run.slot_names()).cloned()
                };
                let path = format!("/v1/programs/{}", name.expect("a name"));
                run.call("GET", &path, "", &[200, 404]);
            }
            2 => {
                run.call("GET", "/v1/health", "", &[200, 503]);
            }
            _ => {
                run.call("GET", "/metrics", "", &[200]);
            }
        }
        thread::sleep(rng.millis(5, 50));
    }
}

/// Follows `/v1/events` for a few seconds at a time; every line must be an event.
fn events_client(run: &Run, mut rng: Rng) {
    while run.going() {
        let Some(mut stream) = run.open("/v1/events", &[]) else {
            thread::sleep(rng.millis(50, 200));
            continue;
        };
        let stop = Instant::now() + rng.millis(1000, 6000);
        while run.going() && Instant::now() < stop {
            match stream.try_next_line(Duration::from_millis(500)) {
                Ok(Some(line)) if line.trim().is_empty() => {}
                Ok(Some(line)) => match serde_json::from_str::<StateEvent>(&line) {
                    Ok(_) => {
                        run.events.fetch_add(1, Relaxed);
                    }
                    Err(e) => run.fail(format!("events: bad line {line:?}: {e}")),
                },
                Ok(None) => {
                    run.fail("events: the stream ended while the daemon runs".into());
                    break;
                }
                Err(e) if http::is_timeout(&e) => {}
                Err(e) => {
                    run.fail(format!("events: {e}"));
                    break;
                }
            }
        }
    }
}

/// `tail -f` of a program (mostly a chatty one) for a few seconds at a time.
/// The stream of a fixed program never ends; a swapped one's may (removed).
fn tail_client(run: &Run, mut rng: Rng) {
    let fixed = fixed_names();
    let chatty: Vec<String> = (0..FIXED)
        .filter(|i| fixed_kind(*i) == Kind::Chatty)
        .map(|i| fixed[i].clone())
        .collect();
    while run.going() {
        let (name, swapped) = match rng.below(10) {
            0..=5 => (rng.pick(&chatty).cloned(), false),
            6..=7 => (rng.pick(&fixed).cloned(), false),
            _ => (rng.pick(&run.slot_names()).cloned(), true),
        };
        let name = name.expect("a name");
        let path = format!("/v1/programs/{name}/logs/stdout?follow=true&lines=5");
        let Some(mut stream) = run.open(&path, &[404]) else {
            continue;
        };
        let stop = Instant::now() + rng.millis(500, 4000);
        let mut buf = [0u8; 4096];
        while run.going() && Instant::now() < stop {
            stream
                .set_timeout(Duration::from_millis(300))
                .expect("set a read timeout");
            match std::io::Read::read(&mut stream, &mut buf) {
                Ok(0) if swapped => break,
                Ok(0) => {
                    run.fail(format!("tail -f {name}: the stream ended while it exists"));
                    break;
                }
                Ok(n) => {
                    run.tailed.fetch_add(n as u64, Relaxed);
                }
                Err(e) if http::is_timeout(&e) => {}
                Err(e) => {
                    run.fail(format!("tail -f {name}: {e}"));
                    break;
                }
            }
        }
    }
}

/// SIGKILLs a random program now and then: its main process, its whole
/// group, or one of its children. A group program is never killed alone:
/// its children would live on as orphans holding its output pipe open
/// (supervisord's semantics, not a leak), which is not what this measures.
fn killer(run: &Run, mut rng: Rng) {
    let group_names: BTreeSet<String> = fixed_names()
        .into_iter()
        .enumerate()
        .filter(|(i, _)| fixed_kind(*i) == Kind::Group)
        .map(|(_, n)| n)
        .chain(
            (0..SLOTS)
                .filter(|k| Slots::kind(*k) == Kind::Group)
                .flat_map(|k| [format!("s{k}a"), format!("s{k}b")]),
        )
        .collect();
    while run.going() {
        let live: Vec<(String, u32)> = run
            .list()
            .into_iter()
            .filter(|p| matches!(p.state, State::Running | State::Starting))
            .filter_map(|p| Some((p.name, p.pid?)))
            .collect();
        if let Some((name, pid)) = rng.pick(&live) {
            let is_group = group_names.contains(name);
            match (is_group, rng.below(2)) {
                (false, _) => run.kill_if(*pid, run.daemon, false),
                (true, 0) => run.kill_if(*pid, run.daemon, true),
                (true, _) => {
                    if let Some(child) = rng.pick(&children_of(*pid)) {
                        run.kill_if(*child, *pid, false);
                    }
                }
            }
        }
        thread::sleep(rng.millis(20, 120));
    }
}

/// Bursts of SIGHUP (reload) and SIGUSR2 (reopen logs) to the daemon.
fn signaller(run: &Run, mut rng: Rng) {
    let daemon = Pid::from_raw(run.daemon as i32);
    while run.going() {
        for _ in 0..rng.below(6) + 1 {
            let sig = if rng.chance(0.5) {
                Signal::SIGHUP
            } else {
                Signal::SIGUSR2
            };
            kill(daemon, sig).expect("cannot signal the daemon");
        }
        thread::sleep(rng.millis(300, 2000));
    }
}

/// The daemon's open fds and RssAnon (kB).
fn measure(pid: u32) -> (usize, u64) {
    (
        fd_count(pid).expect("the daemon's fds"),
        status_kb(pid, "RssAnon").expect("the daemon's RssAnon"),
    )
}

/// Waits until the programs are exactly `fixed` (each in its desired state)
/// and `slots` (RUNNING); panics with the differences otherwise. A program
/// whose last answered action was `stop` must not run: STOPPED, or EXITED
/// when the stop came while it waited to be restarted (the stop cancels the
/// restart and leaves the state as it was, as in supervisord).
fn wait_desired(d: &Daemon, fixed: &BTreeMap<String, State>, slots: &[String]) {
    let mut want = fixed.clone();
    want.extend(slots.iter().map(|n| (n.clone(), State::Running)));
    let fits = |want: State, have: State| {
        want == have || (want == State::Stopped && have == State::Exited)
    };
    let mut last = Vec::new();
    let settled = poll(SETTLE, || {
        let list: Vec<ProgramInfo> = serde_json::from_value(d.get("/v1/programs").1).ok()?;
        let have: BTreeMap<String, State> = list.into_iter().map(|p| (p.name, p.state)).collect();
        last = want
            .iter()
            .filter(|(n, s)| !have.get(*n).is_some_and(|h| fits(**s, *h)))
            .map(|(n, s)| format!("{n}: want {s}, have {:?}", have.get(n)))
            .chain(
                have.keys()
                    .filter(|n| !want.contains_key(*n))
                    .map(|n| format!("{n}: unexpected")),
            )
            .collect();
        last.is_empty().then_some(())
    });
    assert!(
        settled.is_some(),
        "after {SETTLE:?} not every program is in its desired state: {last:#?}"
    );
}

#[test]
fn fifty_programs_survive_a_minute_of_chaos() {
    let mut rng = Rng::from_env("NSVISOR_CHAOS_SEED");
    let mut slots = Slots::default();
    let d = Daemon::start(&config(&slots));
    let daemon = d.daemon_pid();
    let all: Vec<String> = fixed_names().into_iter().chain(slots.names()).collect();
    for name in &all {
        d.wait_state(name, State::Running, SETTLE);
    }
    // Warm up every path once, so what is allocated once per daemon is in the baseline.
    let (status, _) = d.post("/v1/programs/p00/restart", "");
    assert_eq!(status, 200);
    drop(d.events());
    drop(d.stream("/v1/programs/p04/logs/stdout?follow=true"));
    let (status, _) = d.post("/v1/reload", "");
    assert_eq!(status, 200);
    d.signal(Signal::SIGUSR2);
    wait_until(
        "no unreaped child of the daemon",
        Duration::from_secs(5),
        || zombie_children(daemon).is_empty().then_some(()),
    );
    let (fds_start, rss_start) = measure(daemon);

    let run = Arc::new(Run {
        socket: d.socket().to_path_buf(),
        daemon,
        until: Instant::now() + CHAOS,
        slots: Mutex::new(slots.names()),
        calls: AtomicU64::new(0),
        latencies: Mutex::new(Vec::new()),
        kills: AtomicU64::new(0),
        events: AtomicU64::new(0),
        tailed: AtomicU64::new(0),
        failures: Mutex::new(Vec::new()),
    });
    let desired: Arc<Mutex<BTreeMap<String, State>>> = Arc::new(Mutex::new(
        fixed_names()
            .into_iter()
            .map(|n| (n, State::Running))
            .collect(),
    ));
    let mut threads = Vec::new();
    let actors = 3;
    for a in 0..actors {
        let owned: Vec<String> = fixed_names().into_iter().skip(a).step_by(actors).collect();
        let (run, desired, rng) = (run.clone(), desired.clone(), rng.fork());
        threads.push(thread::spawn(move || actor(&run, rng, owned, &desired)));
    }
    type Client = fn(&Run, Rng);
    let clients: [(Client, usize); 5] = [
        (status_client, 2),
        (events_client, 2),
        (tail_client, 3),
        (killer, 1),
        (signaller, 1),
    ];
    for (client, n) in clients {
        for _ in 0..n {
            let (run, rng) = (run.clone(), rng.fork());
            threads.push(thread::spawn(move || client(&run, rng)));
        }
    }
    let mut reloads = 0;
    while run.going() {
        thread::sleep(rng.millis(2000, 4000));
        slots.shuffle(&mut rng);
        d.write_config(&config(&slots));
        if run.call("POST", "/v1/reload", "", &[200]).is_some() {
            reloads += 1;
        }
        *run.slots.lock().expect("slots lock") = slots.names();
    }
    for t in threads {
        t.join().expect("a chaos thread panicked");
    }
    let (fds_chaos, rss_chaos) = measure(daemon);
    let failures = run.failures.lock().expect("failures lock").clone();
    let mut latencies = run.latencies.lock().expect("latencies lock").clone();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].0;
    eprintln!(
        "chaos: {} calls (p50 {:?}, p99 {:?}, slowest {:?}: {}), {reloads} reloads, {} kills, \
         {} events and {} bytes of output followed",
        run.calls.load(Relaxed),
        at(0.5),
        at(0.99),
        latencies.last().map(|l| l.0).unwrap_or_default(),
        latencies.last().map(|l| l.1.as_str()).unwrap_or_default(),
        run.kills.load(Relaxed),
        run.events.load(Relaxed),
        run.tailed.load(Relaxed),
    );
    assert!(
        failures.is_empty(),
        "{} calls failed or hung: {failures:#?}",
        failures.len()
    );
    assert!(
        run.kills.load(Relaxed) > 50,
        "the chaos killed too little to mean anything"
    );

    // The last config is applied (a SIGHUP may already have done it).
    let (status, body) = d.post("/v1/reload", "");
    assert_eq!(status, 200, "{body}");
    let desired = desired.lock().expect("desired lock").clone();
    wait_desired(&d, &desired, &slots.names());
    wait_until(
        "no unreaped child of the daemon",
        Duration::from_secs(5),
        || zombie_children(daemon).is_empty().then_some(()),
    );

    // The same programs as at the start run again: fds and memory compare.
    let (status, body) = d.post("/v1/programs/all/start", "");
    assert_eq!(status, 200, "{body}");
    let running: BTreeMap<String, State> = desired
        .keys()
        .map(|n| (n.clone(), State::Running))
        .collect();
    wait_desired(&d, &running, &slots.names());
    wait_until(
        "no unreaped child of the daemon",
        Duration::from_secs(5),
        || zombie_children(daemon).is_empty().then_some(()),
    );
    let mut after = measure(daemon);
    let back = poll(Duration::from_secs(10), || {
        after = measure(daemon);
        (after.0 <= fds_start + FD_SLACK && after.1 <= rss_start + RSS_SLACK_KB).then_some(())
    });
    eprintln!(
        "daemon fds: {fds_start} at start, {fds_chaos} right after the chaos, {} settled; \
         RssAnon: {rss_start} kB, {rss_chaos} kB, {} kB",
        after.0, after.1
    );
    assert!(
        back.is_some(),
        "the daemon did not come back within +{FD_SLACK} fds and +{RSS_SLACK_KB} kB RssAnon: \
         {fds_start} → {} fds, {rss_start} → {} kB",
        after.0,
        after.1
    );
    let log = d.stderr() + &d.stdout();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
    let stderr = d.stderr().to_lowercase();
    assert!(
        !stderr.contains("panic"),
        "the daemon's log mentions a panic:\n{stderr}"
    );
}
