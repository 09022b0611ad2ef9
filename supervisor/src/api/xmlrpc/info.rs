//! supervisord's view of nsvisor's programs: names, state codes, process info.
//!
//! supervisord names a process by its group and its name in the group
//! (`namespec`: `web` when both are the same, else `group:name`). An nsvisor
//! program `web` of group `web` is `web`; a replica `web:0` of group `web` is
//! process `0` of group `web` (`web:0`); a program `a` in `[group:x]` is
//! process `a` of group `x` (`x:a`). Names given by clients are resolved the
//! way supervisord does (`split_namespec`): `NAME` alone means group `NAME`,
//! process `NAME`; `GROUP:*` or `GROUP:` means the whole group. Pure.

use nsvisor_proto::{ExitStatus, ProgramInfo, State};

use super::codec::Value;
use super::fault::{Code, Fault};
use crate::config::{LogFile, ProgramConfig};

/// The name of a program within its group.
pub fn process_name<'a>(name: &'a str, group: &str) -> &'a str {
    name.strip_prefix(group)
        .and_then(|rest| rest.strip_prefix(':'))
        .unwrap_or(name)
}

/// supervisord's `make_namespec`.
pub fn namespec(group: &str, process: &str) -> String {
    if group == process {
        process.to_string()
    } else {
        format!("{group}:{process}")
    }
}

/// supervisord's `split_namespec`: the group, and the process (`None` for the
/// whole group).
pub fn split_namespec(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((group, "" | "*")) => (group, None),
        Some((group, process)) => (group, Some(process)),
        None => (spec, Some(spec)),
    }
}

/// supervisord's numeric process state.
pub fn state_code(state: State) -> i64 {
    match state {
        State::Stopped => 0,
        State::Starting => 10,
        State::Running => 20,
        State::Backoff => 30,
        State::Stopping => 40,
        State::Exited => 100,
        State::Fatal => 200,
    }
}

/// supervisord's `RUNNING_STATES`: a start is refused, a stop applies.
pub fn is_running(state: State) -> bool {
    matches!(state, State::Running | State::Backoff | State::Starting)
}

/// supervisord's `SIGNALLABLE_STATES`.
pub fn is_signallable(state: State) -> bool {
    matches!(state, State::Running | State::Starting | State::Stopping)
}

/// The group and process names of a program.
pub fn names(p: &ProgramInfo) -> (&str, &str) {
    (p.group.as_str(), process_name(&p.name, &p.group))
}

/// What a client's name designates.
#[derive(Debug)]
pub enum Target<'a> {
    /// One process.
    Process(&'a ProgramInfo),
    /// A whole group (it has at least one process).
    Group(&'a str),
}

/// Resolves a client's name against the programs, as supervisord's
/// `_getGroupAndProcess` does; an unknown group or process is `BAD_NAME`.
pub fn resolve<'a>(all: &'a [ProgramInfo], spec: &str) -> Result<Target<'a>, Fault> {
    let (group, process) = split_namespec(spec);
    let members: Vec<&ProgramInfo> = all.iter().filter(|p| p.group == group).collect();
    if members.is_empty() {
        return Err(Fault::new(Code::BadName, spec));
    }
    match process {
        None => match members.first() {
            Some(first) => Ok(Target::Group(first.group.as_str())),
            None => Err(Fault::new(Code::BadName, spec)),
        },
        Some(name) => members
            .into_iter()
            .find(|p| names(p).1 == name)
            .map(Target::Process)
            .ok_or_else(|| Fault::new(Code::BadName, spec)),
    }
}

/// Resolves a name that must designate one process.
pub fn one<'a>(all: &'a [ProgramInfo], spec: &str) -> Result<&'a ProgramInfo, Fault> {
    match resolve(all, spec)? {
        Target::Process(p) => Ok(p),
        Target::Group(_) => Err(Fault::new(Code::BadName, spec)),
    }
}

/// A log file path as supervisord reports it (`""` for none).
pub fn logfile(cfg: Option<&ProgramConfig>, stderr: bool) -> String {
    let Some(cfg) = cfg else {
        return String::new();
    };
    let stream = if stderr { &cfg.stderr } else { &cfg.stdout };
    match &stream.logfile {
        LogFile::Path(p) => p.display().to_string(),
        LogFile::None => String::new(),
    }
}

/// What supervisord keeps as `spawnerr` for a program in BACKOFF or FATAL.
fn spawnerr(p: &ProgramInfo) -> String {
    match p.state {
        State::Backoff | State::Fatal if p.exit_status.is_some() => {
            "Exited too quickly (process log may have details)".to_string()
        }
        State::Backoff | State::Fatal => p.description.clone(),
        _ => String::new(),
    }
}

/// Times of one program that nsvisor does not keep in its answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct Times {
    /// Unix time of the last exit (0: never).
    pub stop: u64,
    /// Unix time now.
    pub now: u64,
    /// Its process was replaced (by `update` or `restart`) and has not
    /// started since: supervisord's process is new, never started (unless
    /// it runs: then its start has not been recorded yet).
    pub fresh: bool,
}

/// `getProcessInfo`'s struct, with supervisord's fields and description.
pub fn process_info(p: &ProgramInfo, cfg: Option<&ProgramConfig>, times: Times) -> Value {
    let (group, name) = names(p);
    let (start, times) = if times.fresh && !p.state.has_process() {
        (0, Times { stop: 0, ..times })
    } else {
        (p.started_at.unwrap_or(0), times)
    };
    let stdout = logfile(cfg, false);
    let exitstatus = match p.exit_status {
        Some(ExitStatus::Code(c)) => i64::from(c),
        Some(ExitStatus::Signal(_)) => -1,
        None => 0,
    };
    let spawnerr = spawnerr(p);
    let description = describe(p, start, times, &spawnerr);
    let int = |n: u64| Value::Int(i64::try_from(n).unwrap_or(i64::MAX));
    Value::strukt([
        ("name", Value::str(name)),
        ("group", Value::str(group)),
        ("start", int(start)),
        ("stop", int(times.stop)),
        ("now", int(times.now)),
        ("state", Value::Int(state_code(p.state))),
        ("statename", Value::str(p.state.as_str())),
        ("spawnerr", Value::str(spawnerr)),
        ("exitstatus", Value::Int(exitstatus)),
        ("logfile", Value::str(stdout.clone())),
        ("stdout_logfile", Value::str(stdout)),
        ("stderr_logfile", Value::str(logfile(cfg, true))),
        ("pid", Value::Int(p.pid.map_or(0, i64::from))),
        ("description", Value::str(description)),
    ])
}

/// supervisord's `_interpretProcessInfo`.
fn describe(p: &ProgramInfo, start: u64, times: Times, spawnerr: &str) -> String {
    match p.state {
        State::Running => format!(
            "pid {}, uptime {}",
            p.pid.unwrap_or(0),
            nsvisor_proto::format_uptime(times.now.saturating_sub(start))
        ),
        State::Fatal | State::Backoff if spawnerr.is_empty() => {
            format!("unknown error (try \"tail {}\")", names(p).1)
        }
        State::Fatal | State::Backoff => spawnerr.to_string(),
        State::Stopped | State::Exited if start == 0 => "Not started".to_string(),
        State::Stopped | State::Exited => {
            let offset = crate::sys::utc_offset_secs(i64::try_from(times.stop).unwrap_or(0));
            clock(times.stop as i64 + offset)
        }
        State::Starting | State::Stopping => String::new(),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `%b %d %I:%M %p` of a (local) time in seconds since the epoch: `Dec 01 09:05 PM`.
pub fn clock(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let (hour, minute) = (of_day / 3600, (of_day % 3600) / 60);
    let (h12, ampm) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    let name = MONTHS[usize::try_from(month - 1).unwrap_or(0).min(11)];
    format!("{name} {day:02} {h12:02}:{minute:02} {ampm}")
}

/// One entry of a group action's answer (`startProcessGroup`, …).
pub fn result(p: &ProgramInfo, code: Code, description: &str) -> Value {
    let (group, name) = names(p);
    Value::strukt([
        ("name", Value::str(name)),
        ("group", Value::str(group)),
        ("status", Value::Int(code.number().into())),
        ("description", Value::str(description)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(name: &str, group: &str, state: State) -> ProgramInfo {
        ProgramInfo {
            name: name.into(),
            group: group.into(),
            state,
            pid: state.has_process().then_some(42),
            uptime_secs: None,
            started_at: None,
            started_at_ms: None,
            stopped_at: None,
            exit_status: None,
            restarts: 0,
            autostart: true,
            description: String::new(),
            ready: false,
            net: None,
            checks: vec![],
        }
    }

    #[test]
    fn names_follow_supervisord() {
        assert_eq!(process_name("web:0", "web"), "0");
        assert_eq!(process_name("web", "web"), "web");
        assert_eq!(process_name("a", "x"), "a");
        assert_eq!(namespec("web", "web"), "web");
        assert_eq!(namespec("x", "a"), "x:a");
        assert_eq!(split_namespec("web"), ("web", Some("web")));
        assert_eq!(split_namespec("x:a"), ("x", Some("a")));
        assert_eq!(split_namespec("x:*"), ("x", None));
        assert_eq!(split_namespec("x:"), ("x", None));
    }

    #[test]
    fn resolution_and_bad_names() {
        let all = vec![
            prog("a", "x", State::Running),
            prog("b", "x", State::Stopped),
            prog("web:0", "web", State::Running),
            prog("db", "db", State::Running),
        ];
        assert!(matches!(one(&all, "x:a"), Ok(p) if p.name == "a"));
        assert!(matches!(one(&all, "web:0"), Ok(p) if p.name == "web:0"));
        assert!(matches!(one(&all, "db"), Ok(p) if p.name == "db"));
        assert!(matches!(resolve(&all, "x:*"), Ok(Target::Group("x"))));
        // A member's own name is not a group: supervisord says BAD_NAME.
        let e = one(&all, "a").err();
        assert_eq!(
            e.map(|f| (f.code, f.text)),
            Some((Code::BadName, "BAD_NAME: a".into()))
        );
        assert!(matches!(one(&all, "x:*"), Err(f) if f.code == Code::BadName));
        assert!(matches!(one(&all, "x:zz"), Err(f) if f.code == Code::BadName));
    }

    #[test]
    fn states_and_descriptions() {
        let codes: Vec<i64> = [
            State::Stopped,
            State::Starting,
            State::Running,
            State::Backoff,
            State::Stopping,
            State::Exited,
            State::Fatal,
        ]
        .into_iter()
        .map(state_code)
        .collect();
        assert_eq!(codes, [0, 10, 20, 30, 40, 100, 200]);
        let mut p = prog("db", "db", State::Running);
        p.started_at = Some(1000);
        let t = Times {
            stop: 0,
            now: 1062,
            fresh: false,
        };
        let v = process_info(&p, None, t);
        assert_eq!(
            v.member("description"),
            Some(&Value::str("pid 42, uptime 0:01:02"))
        );
        assert_eq!(v.member("state"), Some(&Value::Int(20)));
        assert_eq!(v.member("pid"), Some(&Value::Int(42)));
        let never = process_info(&prog("db", "db", State::Stopped), None, t);
        assert_eq!(
            never.member("description"),
            Some(&Value::str("Not started"))
        );
        let mut fatal = prog("db", "db", State::Fatal);
        fatal.exit_status = Some(ExitStatus::Code(1));
        let v = process_info(&fatal, None, t);
        assert_eq!(
            v.member("description"),
            Some(&Value::str(
                "Exited too quickly (process log may have details)"
            ))
        );
        assert_eq!(v.member("exitstatus"), Some(&Value::Int(1)));
    }

    #[test]
    fn clock_format() {
        assert_eq!(clock(0), "Jan 01 12:00 AM");
        // 2026-12-01 21:05:00 UTC
        assert_eq!(clock(1_796_159_100), "Dec 01 09:05 PM");
        assert_eq!(clock(1_796_159_100 - 9 * 3600), "Dec 01 12:05 PM");
    }
}
