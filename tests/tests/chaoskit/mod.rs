//! The workload of `chaos.rs`: the fifty programs and the config that swaps
//! some of them ([`config`]), and in [`clients`] the threads that act on the
//! daemon while the chaos lasts.

pub mod clients;

use nsvisor_tests::{program_toml, Rng};

/// Programs every config has (`p00` ... `p39`).
pub const FIXED: usize = 40;
/// Programs a reload may swap for others (`s0a` or `s0b`, ...).
pub const SLOTS: usize = 10;

/// What a program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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

pub fn fixed_kind(i: usize) -> Kind {
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
pub struct Slots {
    b: [bool; SLOTS],
    version: [u32; SLOTS],
}

impl Slots {
    pub fn names(&self) -> Vec<String> {
        (0..SLOTS)
            .map(|k| format!("s{k}{}", if self.b[k] { 'b' } else { 'a' }))
            .collect()
    }

    pub fn kind(k: usize) -> Kind {
        if k % 2 == 0 {
            Kind::Plain
        } else {
            Kind::Group
        }
    }

    /// A third of the slots swap their program for another, a third change it.
    pub fn shuffle(&mut self, rng: &mut Rng) {
        for k in 0..SLOTS {
            match rng.below(3) {
                0 => self.b[k] = !self.b[k],
                1 => self.version[k] += 1,
                _ => {}
            }
        }
    }
}

pub fn fixed_names() -> Vec<String> {
    (0..FIXED).map(|i| format!("p{i:02}")).collect()
}

pub fn config(slots: &Slots) -> String {
    let mut out = String::new();
    for (i, name) in fixed_names().iter().enumerate() {
        out += &program(name, fixed_kind(i), 0);
    }
    for (k, name) in slots.names().iter().enumerate() {
        out += &program(name, Slots::kind(k), slots.version[k]);
    }
    out
}
