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

mod chaoskit;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chaoskit::clients::{actor, events_client, killer, signaller, status_client, tail_client, Run};
use chaoskit::{config, fixed_names, Slots};
use nix::sys::signal::Signal;
use nsvisor_proto::{ProgramInfo, State};
use nsvisor_tests::{fd_count, poll, status_kb, wait_until, zombie_children, Daemon, Rng};

/// How long the chaos lasts.
const CHAOS: Duration = Duration::from_secs(40);
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
/// pages of its per-thread arenas. A leak per call (thousands of them) or per
/// spawn (hundreds) shows as more.
const RSS_SLACK_KB: u64 = 12 * 1024;

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
    wait_until("the warm-up connections to close", SETTLE, || {
        (d.metric("nsvisor_api_connections") == Some(1.0)).then_some(())
    });
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
