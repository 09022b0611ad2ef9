//! Spawning programs (`spawn.rs`) and reaping children (`reaper.rs`).

pub mod reaper;
pub mod spawn;
