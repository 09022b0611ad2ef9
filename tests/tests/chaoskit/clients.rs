//! The chaos threads: clients acting on the daemon's API, the killer of
//! processes and the sender of signals. Each runs until [`Run::going`] turns
//! false and records in the [`Run`] what every call did.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getpgid, Pid};
use nsvisor_proto::{ProgramInfo, State, StateEvent};
use nsvisor_tests::http::{self, Response};
use nsvisor_tests::{children_of, comm_of, ppid_of, Rng};

use super::{fixed_kind, fixed_names, Kind, Slots, FIXED, SLOTS};

/// An API call not answered within this counts as hung. The slowest honest
/// calls with a bound of their own are a `start` that waits out
/// `startsecs = 1` and a `stop` that waits 0.3 s for a slow exit, on a busy
/// 2-core machine.
pub const CALL_BOUND: Duration = Duration::from_secs(15);

/// The bound of a waiting `start` or `restart` of a [`Kind::SlowStart`]
/// program, from when it was sent. Each time the killer hits the program
/// within its `startsecs` the daemon backs off one second longer and the call
/// keeps waiting (it answers on RUNNING or FATAL, and `startretries = 1000`),
/// so while the chaos lasts no bound holds. Once the killer stops, the call is
/// answered after at most the current backoff and one `startsecs`: n failures
/// take at least n(n+1)/2 seconds of backoff, so in 40 s of chaos the backoff
/// reaches 8 s at most, and [`CALL_BOUND`] after the chaos covers it.
fn backoff_bound(run: &Run, sent: Instant) -> Duration {
    run.until.max(sent) + CALL_BOUND - sent
}

/// What the chaos threads share: where the daemon is, when to stop, the
/// current swapped names, and what every call did.
pub struct Run {
    pub socket: PathBuf,
    pub daemon: u32,
    pub until: Instant,
    pub slots: Mutex<Vec<String>>,
    pub calls: AtomicU64,
    pub latencies: Mutex<Vec<(Duration, String)>>,
    pub kills: AtomicU64,
    pub events: AtomicU64,
    pub tailed: AtomicU64,
    pub failures: Mutex<Vec<String>>,
}

impl Run {
    pub fn going(&self) -> bool {
        Instant::now() < self.until
    }

    fn fail(&self, what: String) {
        self.failures.lock().expect("failures lock").push(what);
    }

    fn slot_names(&self) -> Vec<String> {
        self.slots.lock().expect("slots lock").clone()
    }

    /// Records how long a call took; false (and a failure) when over `bound`.
    fn timed(&self, what: &str, took: Duration, bound: Duration) -> bool {
        self.calls.fetch_add(1, Relaxed);
        self.latencies
            .lock()
            .expect("latencies lock")
            .push((took, what.to_string()));
        if took > bound {
            self.fail(format!("{what}: answered after {took:?} (bound {bound:?})"));
        }
        took <= bound
    }

    /// One API call, which must be answered within [`CALL_BOUND`] with one of `ok`.
    pub fn call(&self, method: &str, path: &str, body: &str, ok: &[u16]) -> Option<Response> {
        self.call_within(method, path, body, ok, |_| CALL_BOUND)
    }

    /// One API call, which must be answered within `bound(sent)` with one of `ok`.
    fn call_within(
        &self,
        method: &str,
        path: &str,
        body: &str,
        ok: &[u16],
        bound: impl Fn(Instant) -> Duration,
    ) -> Option<Response> {
        let what = format!("{method} {path}");
        let start = Instant::now();
        let bound = bound(start);
        let r = http::request_within(&self.socket, method, path, body.as_bytes(), bound);
        let in_time = self.timed(&what, start.elapsed(), bound);
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
        self.timed(&format!("GET {path}"), start.elapsed(), CALL_BOUND);
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

/// The kind of fixed program `pNN`.
fn kind_of(name: &str) -> Kind {
    fixed_kind(name[1..].parse().expect("a fixed program's number"))
}

/// Starts, stops and restarts the programs it owns (each fixed program has one
/// owner, so its last answered action is its desired state), and now and then
/// restarts a swapped program that a reload may be removing.
pub fn actor(
    run: &Run,
    mut rng: Rng,
    owned: Vec<String>,
    desired: &Mutex<BTreeMap<String, State>>,
) {
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
            let slow = verb != "stop" && kind_of(&name) == Kind::SlowStart;
            let bound = |sent| {
                if slow {
                    backoff_bound(run, sent)
                } else {
                    CALL_BOUND
                }
            };
            if run.call_within("POST", &path, "", &[200], bound).is_some() {
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
pub fn status_client(run: &Run, mut rng: Rng) {
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
pub fn events_client(run: &Run, mut rng: Rng) {
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
pub fn tail_client(run: &Run, mut rng: Rng) {
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
pub fn killer(run: &Run, mut rng: Rng) {
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
pub fn signaller(run: &Run, mut rng: Rng) {
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
