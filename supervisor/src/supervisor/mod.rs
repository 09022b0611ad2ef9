//! The supervisor: one task that owns every program's state (DESIGN rules 1, 2).
//!
//! Two pure layers and a thin shell:
//! - `machine.rs`: one program's state machine (supervisord's states and rules);
//! - `planner/`: every rule between programs (dependency gates, start and
//!   stop tiers, waiting clients, reload, shutdown, `critical`), turning
//!   events into effects;
//! - `actor.rs`: the task that receives events (signals, client commands,
//!   timers, background answers), asks the planner, and carries out the
//!   effects (spawn, signal, timers, sandboxes, answers, publishing).
//!
//! `program.rs` is a program as the planner holds it; `handle.rs` is how the
//! rest of the daemon talks to the task; `spawner.rs` starts programs' and
//! `exec` checks' processes for the actor; `linger.rs` is what is left of the
//! main program's process group after it exits; `exec.rs` holds the
//! commands clients run in programs' sandboxes (`nsvisorctl exec`).

mod actor;
pub mod exec;
pub mod handle;
mod linger;
pub mod machine;
mod passive;
pub mod planner;
pub mod program;
mod spawner;

pub use crate::config::MAIN_PROGRAM;
pub use actor::{RunOptions, Supervisor};
