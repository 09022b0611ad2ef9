//! Program output: pipes read by the daemon, written to console, files and the tail buffer.

pub mod ring;
