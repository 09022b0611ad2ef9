//! `testprog`: the fixture program end-to-end tests run under nsvisor.
fn main() {}
