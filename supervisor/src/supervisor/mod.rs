//! The supervisor: one task that owns every program's state (DESIGN rule 1).

pub mod command;
