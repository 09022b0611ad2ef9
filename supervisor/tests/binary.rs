//! Makes `cargo test --workspace` build the `nsvisor` binary: cargo builds a
//! package's binaries only for its own integration tests, and the end-to-end
//! tests in `tests/` run this binary. Also checks that it starts at all.

#[test]
fn help_exits_zero() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nsvisor"))
        .arg("--help")
        .output()
        .expect("cannot run nsvisor");
    assert!(out.status.success(), "nsvisor --help: {out:?}");
}
