//! Signals delivered to the daemon, turned into a stream for the supervisor.
//!
//! Handlers are installed for every signal the daemon acts on or forwards
//! (as PID 1 the kernel drops signals that have no handler). SIGCHLD only
//! wakes the supervisor, which reaps (DESIGN rule 3). Programs get default
//! dispositions back in the child before exec (`sys::spawn_child`).

use signal_hook::consts::signal::*;
use signal_hook_tokio::Signals;

/// Signals the daemon itself acts on.
const OWN: &[i32] = &[SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2];

/// Further signals forwarded to a `--` command, like tini (not the
/// synchronous ones, SIGKILL/SIGSTOP, or the terminal's SIGTTIN/SIGTTOU).
const FORWARDED: &[i32] = &[
    SIGALRM,
    SIGCONT,
    SIGTSTP,
    SIGWINCH,
    SIGURG,
    SIGXCPU,
    SIGXFSZ,
    SIGVTALRM,
    SIGPROF,
    SIGIO,
    libc::SIGPWR,
];

/// Installs the handlers; the returned stream yields signal numbers.
pub fn register(forwarding: bool) -> std::io::Result<Signals> {
    let mut list: Vec<i32> = OWN.to_vec();
    if forwarding {
        list.extend_from_slice(FORWARDED);
    }
    Signals::new(&list)
}
