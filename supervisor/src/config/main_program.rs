//! The main program of single-command and sidecar mode (`nsvisor -- CMD ARGS`),
//! as a program config like any other.
//!
//! It runs once (no restarts, no retries), is RUNNING as soon as it is spawned,
//! is `critical` (its end ends the daemon with its status, like tini), and
//! gets `shutdown_grace` between its stop signal and SIGKILL. Its name is
//! reserved: a config cannot define a program called [`MAIN_PROGRAM`].

use std::time::Duration;

use super::{AutoRestart, ProgramConfig, SupervisorConfig};

/// Name of the single-command main program.
pub const MAIN_PROGRAM: &str = "main";

/// The program config of `-- CMD ARGS`.
pub fn main_program(command: Vec<String>, supervisor: &SupervisorConfig) -> ProgramConfig {
    let mut cfg = ProgramConfig::with_defaults(MAIN_PROGRAM, command);
    cfg.autorestart = AutoRestart::Never;
    cfg.startsecs = Duration::ZERO;
    cfg.startretries = 0;
    cfg.critical = true;
    cfg.stopwaitsecs = supervisor.shutdown_grace;
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_once_is_critical_and_stops_within_the_grace() {
        let sup = SupervisorConfig {
            shutdown_grace: Duration::from_secs(7),
            ..SupervisorConfig::default()
        };
        let cfg = main_program(vec!["sleep".into(), "1".into()], &sup);
        assert_eq!(cfg.name, MAIN_PROGRAM);
        assert_eq!(*cfg.command, ["sleep", "1"]);
        assert_eq!(cfg.autorestart, AutoRestart::Never);
        assert_eq!((cfg.startsecs, cfg.startretries), (Duration::ZERO, 0));
        assert!(cfg.critical);
        assert_eq!(cfg.stopwaitsecs, Duration::from_secs(7));
    }
}
