//! `nsvisorctl`: the command-line client of the nsvisor daemon.
fn main() {}
