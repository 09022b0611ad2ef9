//! Where the binaries under test are, and whether root-only tests may run.
//!
//! Binaries are found next to the test executable (cargo's target dir) or at
//! `NSVISOR_BIN`, `NSVISORCTL_BIN`, `TESTPROG_BIN`; a binary older than its
//! sources is refused, so a stale build never passes silently.

use std::path::{Path, PathBuf};

/// The `testprog` fixture binary.
pub fn testprog() -> PathBuf {
    locate_bin("testprog", "TESTPROG_BIN")
}

/// The `nsvisor` daemon binary.
pub fn nsvisor_bin() -> PathBuf {
    locate_bin("nsvisor", "NSVISOR_BIN")
}

/// The `nsvisorctl` client binary.
pub fn nsvisorctl_bin() -> PathBuf {
    locate_bin("nsvisorctl", "NSVISORCTL_BIN")
}

/// Finds a workspace binary next to the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/<name>`), unless the
/// environment variable `env` names it. Panics when it is missing, or older
/// than one of the sources cargo's dep-info (`<name>.d`) lists for it:
/// `cargo test -p nsvisor-tests` alone does not rebuild other packages' binaries.
fn locate_bin(name: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("cannot find the test executable's path");
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    let hint = format!(
        "run `cargo test --workspace` (it builds every binary of the workspace), or \
         `cargo build --workspace` first, or set {env}"
    );
    let built = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("binary {name} not found at {}: {hint}", path.display()));
    if let Some(newer) = newer_source(&dir.join(format!("{name}.d")), built) {
        panic!(
            "binary {} is out of date ({} changed or is gone since it was built): {hint}",
            path.display(),
            newer.display()
        );
    }
    path
}

/// A source listed in the dep-info file `dep_info` modified after `than`, or
/// gone. (Paths with spaces are escaped as `\ ` in dep-info; the workspace has none.)
fn newer_source(dep_info: &Path, than: std::time::SystemTime) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dep_info).ok()?;
    let (_, deps) = text.lines().next()?.split_once(": ")?;
    deps.split_whitespace().map(PathBuf::from).find(|src| {
        std::fs::metadata(src)
            .and_then(|m| m.modified())
            .map_or(true, |m| m > than)
    })
}

/// True when running as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether a root-only test may run: true as root. Otherwise prints why the test
/// is skipped and returns false — unless `CI` is set, where root tests must run,
/// so it panics.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test} needs root, and CI is set: root tests must run in CI");
    }
    eprintln!("skipping {test}: needs root");
    false
}
