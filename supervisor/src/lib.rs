//! nsvisor: a process supervisor and PID 1 for containers.
#![deny(unsafe_code)]

pub mod api;
pub mod config;
pub mod logs;
pub mod net;
pub mod process;
pub mod supervisor;
pub mod sys;
