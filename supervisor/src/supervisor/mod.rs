//! The supervisor: one task that owns every program's state (DESIGN rule 1).
//!
//! `actor.rs` is the event loop; `program.rs` the pure per-program state
//! machine; `order.rs` start/stop ordering; `commands.rs`, `reload.rs` and
//! `shutdown.rs` the cross-program rules; `entry.rs` a program's bookkeeping.

mod actor;
pub mod command;
mod commands;
mod entry;
mod network;
pub mod order;
pub mod program;
mod reload;
mod shutdown;

pub use actor::{RunOptions, Supervisor, MAIN_PROGRAM};
