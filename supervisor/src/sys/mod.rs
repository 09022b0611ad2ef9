//! The only module with `unsafe`: raw syscalls behind safe functions (DESIGN
//! rule 4). The rest of the daemon calls them as `crate::sys::name`; the
//! submodules are private and each owns one concern:
//!
//! - `spawn.rs`: starting a program ([`spawn_child`], [`ChildSetup`]), the
//!   low fd slots it uses ([`reserve_spawn_slots`]) and the guard that keeps
//!   spawns one at a time; `child.rs`: what the child does between clone and
//!   exec (raw async-signal-safe syscalls only).
//! - `process.rs`: signals to programs and groups, job control (stopping the
//!   daemon, a child's stop, the terminal's foreground group), subreaper,
//!   capabilities.
//! - `signal.rs`: the daemon's own dispositions: the handler of the
//!   synchronous signals (a fault kills, a kill(2) is caught) and SIGPIPE,
//!   ignored signals, the inherited mask.
//! - `fd.rs`: `/dev/null`, close-on-exec duplicates, the tty test, status flags.
//! - `heap.rs`: giving freed heap memory back to the kernel (`malloc_trim`).
//! - `pipe.rs`: program output pipes, pipe sizes, `splice(2)`.
//! - `reactor.rs`: registering fds and the daemon's epoll with tokio.
//! - `socket.rs`: peer groups, UDP `IP_PKTINFO`, socket shutdown, peer hang-up.
//! - `namespace.rs`: network and mount namespaces for a thread, bind
//!   mounts, umount.
//! - `netns_socket.rs`: TCP sockets created inside a sandbox's namespace (on a
//!   short-lived thread), for the checks of sandboxed programs.
//! - `time.rs`: the local time zone's offset (times printed as supervisord does).
//!
//! Every `unsafe` block carries a `// SAFETY:` comment. Where nix already has a
//! safe wrapper, the function here only gathers it, so that the daemon's
//! syscalls are found in one place.

mod child;
mod fd;
mod heap;
mod namespace;
mod netns_socket;
mod pipe;
mod process;
mod reactor;
mod signal;
mod socket;
mod spawn;
mod time;

pub use fd::{open_dev_null, set_status_flag, stdin_is_tty};
pub use heap::{keep_large_blocks_mapped, release_free_heap};
pub use namespace::{
    bind_mount, enter_netns_thread, make_rshared, rbind_onto_itself, umount_detach,
    unshare_mountns, unshare_netns,
};
pub use netns_socket::tcp_socket_in;
pub use pipe::{
    log_pipe, pipe_ended_empty, set_pipe_size, splice_move, splice_pipe, splice_pipe_to_file,
};
pub use process::{
    effective_caps, give_terminal, group_alive, send_signal, send_signal_number, set_subreaper,
    stop_self, stopped_by,
};
pub use reactor::{register_async, register_epoll, OwnedEpoll};
pub use signal::{
    decode_record, ignore as ignore_signal, install_handler as install_signal_handler,
    sender as signal_sender, unblock_all as unblock_signals, HANDLED as HANDLED_SIGNALS,
    RECORD_LEN,
};
pub use socket::{
    connect_now, peer_groups, peer_hung_up, recv_from_to, send_to_from, set_pktinfo,
    shutdown_socket, tcp_socket,
};
pub use spawn::{reserve_spawn_slots, spawn_child, ChildSetup, Ids, Session, SpawnStage};
pub use time::utc_offset_secs;

#[cfg(test)]
mod tests;
