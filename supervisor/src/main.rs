//! `nsvisor` command line.
fn main() {}
