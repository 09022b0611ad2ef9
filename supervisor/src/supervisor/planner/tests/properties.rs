//! Invariants over random event sequences (proptest).
//!
//! A random set of up to five programs (random dependencies on earlier ones,
//! each with a random condition, priorities, `startsecs`, restart policies, retries, spawn failures,
//! sandboxes, `critical`) gets a random sequence of client actions, exits,
//! timer advances, sandbox answers, reloads and signals, then a SIGTERM after
//! which every signalled process exits. [`World`] checks at every effect:
//! at most one live process per program; no spawn before each of the
//! program's dependencies meets its condition; during shutdown no program is signalled while a
//! dependant has a process (except the SIGKILL that ends a stop begun before
//! the shutdown, e.g. by `nsvisorctl stop db`); nothing spawned once shutdown began; exit allowed
//! only with no process left; no client answered twice. At the end: the
//! daemon may exit, and every client got exactly one answer.

use proptest::prelude::*;

use super::*;
use crate::config::{CheckConfig, CheckKind, OnFailure, Purpose};

const NAMES: [&str; 5] = ["a", "b", "c", "d", "e"];

#[derive(Debug, Clone)]
struct Spec {
    deps: Vec<(usize, Condition)>,
    priority: i32,
    startsecs: u64,
    autorestart: AutoRestart,
    startretries: u32,
    autostart: bool,
    critical: bool,
    fails: bool,
    sandbox: bool,
    check: Option<(Purpose, OnFailure)>,
}

fn spec(i: usize) -> impl Strategy<Value = Spec> {
    (
        proptest::collection::vec(
            (
                0..i.max(1),
                proptest::sample::select(Condition::NAMES.map(|(_, c)| c).to_vec()),
            ),
            0..=i.min(2),
        ),
        prop_oneof![Just(1), Just(999)],
        0u64..=1,
        prop_oneof![
            Just(AutoRestart::Always),
            Just(AutoRestart::Unexpected),
            Just(AutoRestart::Never)
        ],
        0u32..=2,
        proptest::bool::weighted(0.8),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.15),
        (
            proptest::bool::weighted(0.2),
            proptest::option::weighted(
                0.4,
                (
                    prop_oneof![Just(Purpose::Readiness), Just(Purpose::Liveness)],
                    prop_oneof![
                        Just(OnFailure::Restart),
                        Just(OnFailure::Stop),
                        Just(OnFailure::Shutdown),
                        Just(OnFailure::Ignore)
                    ],
                ),
            ),
        ),
    )
        .prop_map(
            move |(
                deps,
                priority,
                startsecs,
                autorestart,
                startretries,
                autostart,
                critical,
                fails,
                (sandbox, check),
            )| Spec {
                deps: if i == 0 { Vec::new() } else { deps },
                priority,
                startsecs,
                autorestart,
                startretries,
                autostart,
                critical,
                fails,
                sandbox,
                check,
            },
        )
}

fn program(i: usize, s: &Spec, present: &[bool], variant: u8) -> ProgramConfig {
    let mut p = prog(NAMES[i], &[]);
    for (d, condition) in &s.deps {
        if present[*d] && !p.depends_on.iter().any(|x| x.name == NAMES[*d]) {
            p.depends_on.push(Dependency::on(NAMES[*d], *condition));
        }
    }
    p.priority = s.priority;
    p.startsecs = Duration::from_secs(s.startsecs);
    p.autorestart = s.autorestart;
    p.startretries = s.startretries;
    p.autostart = s.autostart;
    p.critical = s.critical;
    p.command = p
        .command
        .iter()
        .cloned()
        .chain([format!("--variant={variant}")])
        .collect();
    if let Some((purpose, on_failure)) = s.check {
        let mut c = CheckConfig::new(
            purpose,
            CheckKind::Tcp {
                host: "127.0.0.1".into(),
                port: 80,
            },
        );
        c.period = Duration::from_secs(2);
        c.failure_threshold = 2;
        if purpose == Purpose::Liveness {
            c.on_failure = on_failure;
        }
        p.checks.push(c);
    }
    if s.sandbox {
        p = sandboxed(p, i as u8 + 1);
    }
    p
}

fn world_config(specs: &[Spec], present: &[bool], variants: &[u8]) -> Config {
    config(
        (0..specs.len())
            .filter(|i| present[*i])
            .map(|i| program(i, &specs[i], present, variants[i])),
    )
}

#[derive(Debug, Clone)]
enum Op {
    Act(Verb, usize, bool),
    ActAll(Verb, bool),
    Exit(usize, i32),
    /// Every process that got a signal exits, reaped in one pass.
    ExitSignalled,
    Advance(u64),
    Sandbox(usize, bool),
    /// Reload with program `usize` toggled present/absent and another changed.
    Reload(usize, usize),
    Signal(Signal),
    /// Every check run under way of program `usize` reports this result.
    Checks(usize, bool),
}

fn op() -> impl Strategy<Value = Op> {
    let verb = prop_oneof![Just(Verb::Start), Just(Verb::Stop), Just(Verb::Restart)];
    prop_oneof![
        3 => (verb.clone(), 0..5usize, any::<bool>()).prop_map(|(v, i, w)| Op::Act(v, i, w)),
        1 => (verb, any::<bool>()).prop_map(|(v, w)| Op::ActAll(v, w)),
        4 => (0..5usize, prop_oneof![Just(0), Just(1), Just(137)]).prop_map(|(i, c)| Op::Exit(i, c)),
        1 => Just(Op::ExitSignalled),
        3 => (0..5usize, any::<bool>()).prop_map(|(i, ok)| Op::Checks(i, ok)),
        4 => prop_oneof![Just(100u64), Just(1000), Just(5000)].prop_map(Op::Advance),
        2 => (0..5usize, proptest::bool::weighted(0.8)).prop_map(|(i, ok)| Op::Sandbox(i, ok)),
        1 => (0..5usize, 0..5usize).prop_map(|(a, b)| Op::Reload(a, b)),
        1 => prop_oneof![
            Just(Signal::SIGTERM),
            Just(Signal::SIGHUP),
            Just(Signal::SIGUSR2),
            Just(Signal::SIGUSR1)
        ]
        .prop_map(Op::Signal),
    ]
}

fn scenario() -> impl Strategy<Value = (Vec<Spec>, Vec<Op>)> {
    (1usize..=5)
        .prop_flat_map(|n| (0..n).map(spec).collect::<Vec<_>>())
        .prop_flat_map(|specs| (Just(specs), proptest::collection::vec(op(), 0..60)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_over_random_events((specs, ops) in scenario()) {
        let n = specs.len();
        let mut present = vec![true; n];
        let mut variants = vec![0u8; n];
        let mut w = World::new(world_config(&specs, &present, &variants));
        for (i, s) in specs.iter().enumerate() {
            if s.fails {
                w.failing.insert(NAMES[i].into());
            }
        }
        let mut clients = Vec::new();
        w.boot();
        for op in ops {
            match op {
                Op::Act(verb, i, wait) => clients.push(w.act(verb, NAMES[i % n], wait)),
                Op::ActAll(verb, wait) => clients.push(w.act(verb, "all", wait)),
                Op::Exit(i, code) => {
                    if w.pid(NAMES[i % n]).is_some() {
                        w.exit(NAMES[i % n], ExitStatus::Code(code));
                    }
                }
                Op::ExitSignalled => w.exit_all_signalled(),
                Op::Checks(i, ok) => w.checks_report(NAMES[i % n], ok),
                Op::Advance(ms) => w.advance(Duration::from_millis(ms)),
                Op::Sandbox(i, ok) => {
                    if w.sandbox_asks.iter().any(|(name, _)| name == NAMES[i % n]) {
                        w.sandbox_answer(NAMES[i % n], ok);
                    }
                }
                Op::Reload(toggle, change) => {
                    present[toggle % n] = !present[toggle % n];
                    variants[change % n] = variants[change % n].wrapping_add(1);
                    clients.push(w.reload(world_config(&specs, &present, &variants)));
                }
                Op::Signal(sig) => w.signal(sig),
            }
        }
        // The end: SIGTERM, and every process exits once signalled.
        w.signal(Signal::SIGTERM);
        for _ in 0..200 {
            if w.planner.exit_code().is_some() {
                break;
            }
            while let Some((name, _)) = w.sandbox_asks.first().cloned() {
                w.sandbox_answer(&name, true);
            }
            w.exit_all_signalled();
            w.advance(Duration::from_secs(1));
        }
        prop_assert!(w.planner.exit_code().is_some(), "shutdown never completed: {:?}",
            w.planner.programs().map(|p| (p.cfg.name.clone(), p.state(), p.gate.clone())).collect::<Vec<_>>());
        for c in clients {
            prop_assert_eq!(w.answers.get(&c).map(Vec::len), Some(1), "client {} answers", c);
        }
    }
}
