//! The release artifacts (`scripts/dist.sh`): what the tree and the tarball
//! hold, that `--version` names the commit, and that the static binaries run
//! in a root filesystem that has nothing else — no libc, no shell, no `/etc`,
//! no `/run` — the way a `FROM scratch` image runs them.
//!
//! "The way an image runs them" is `unshare --mount --pid --fork` with a fresh
//! `/proc`, then `chroot`: the daemon is PID 1 of its namespace and sees only
//! the root filesystem, plus the `/dev/null` every engine provides.
//! `tests/tests/docker.rs` does the same under the real engine.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use nsvisor_tests::image::{elf_has_symtab, elf_interpreter, Dist, Rootfs};
use nsvisor_tests::{
    children_of, lines_of, nsvisor_bin, nsvisorctl_bin, require_root, wait_until, KillOnDrop,
};

const T: Duration = Duration::from_secs(10);

/// `git rev-parse --short HEAD` of the source tree, when it is a git checkout.
fn source_commit() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let hash = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && std::env::var_os("NSVISOR_COMMIT").is_none())
        .then(|| hash.trim().to_string())
}

/// `NAME VERSION (commit HASH)` with the commit of the source tree.
fn assert_version_line(bin: &str, out: &Output) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{bin} --version: {text}");
    let prefix = format!("{bin} {} (commit ", env!("CARGO_PKG_VERSION"));
    let commit = text
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("{bin} --version says {text:?}, not {prefix}HASH)"));
    match source_commit() {
        Some(hash) => assert_eq!(
            commit, hash,
            "{bin} --version names HEAD (after a commit, run scripts/dist.sh again)"
        ),
        None => assert!(!commit.is_empty(), "{bin} --version names a commit"),
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    assert_version_line(
        "nsvisor",
        &run(Command::new(nsvisor_bin()).arg("--version")),
    );
    assert_version_line(
        "nsvisorctl",
        &run(Command::new(nsvisorctl_bin()).arg("--version")),
    );
}

#[test]
fn the_tree_holds_static_stripped_binaries_man_pages_completions_and_checksums() {
    let Some(dist) = Dist::find("the_tree_holds_static_stripped_binaries_...") else {
        return;
    };
    for bin in ["nsvisor", "nsvisorctl"] {
        let path = dist.bin(bin);
        assert_eq!(
            elf_interpreter(&path).ok(),
            Some(None),
            "{} is statically linked",
            path.display()
        );
        assert_eq!(elf_has_symtab(&path).ok(), Some(false), "{bin} is stripped");
        assert_version_line(bin, &run(Command::new(&path).arg("--version")));
        let page = dist.dir.join(format!("share/man/man1/{bin}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            text.contains(&format!(".TH {bin} 1")) && text.contains("Exit codes"),
            "{} is a man page with the exit codes:\n{text}",
            page.display()
        );
        for completion in [
            format!("share/bash-completion/completions/{bin}"),
            format!("share/zsh/site-functions/_{bin}"),
            format!("share/fish/vendor_completions.d/{bin}.fish"),
        ] {
            let text = std::fs::read_to_string(dist.dir.join(&completion)).unwrap_or_default();
            assert!(text.contains(bin), "{completion} completes {bin}");
        }
    }
    assert!(
        dist.dir.join("share/man/man1/nsvisorctl-exec.1").is_file(),
        "each nsvisorctl command has its page"
    );
    let sums = run(Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dist.dir));
    let listed = String::from_utf8_lossy(&sums.stdout);
    assert!(sums.status.success(), "SHA256SUMS holds: {listed}");
    assert!(
        listed.contains("bin/nsvisor: OK") && listed.contains("share/man/man1/nsvisor.1: OK"),
        "SHA256SUMS lists the binaries and pages: {listed}"
    );
    let parent = dist
        .dir
        .parent()
        .expect("the tree is in the dist directory");
    let name = dist.dir.file_name().expect("a tree name").to_string_lossy();
    let tarball = run(Command::new("sha256sum")
        .args(["--check", "--strict", &format!("{name}.tar.gz.sha256")])
        .current_dir(parent));
    assert!(
        tarball.status.success(),
        "the tarball matches its checksum: {}",
        String::from_utf8_lossy(&tarball.stdout)
    );
}

/// What an engine gives every container: `/dev/null` (and a `/proc`, which
/// [`in_root`] mounts).
fn engine_provided(root: &Rootfs) {
    let dev = root.path().join("dev");
    std::fs::create_dir_all(&dev).expect("cannot create dev/");
    std::fs::create_dir_all(root.path().join("proc")).expect("cannot create proc/");
    nix::sys::stat::mknod(
        &dev.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("cannot make dev/null");
}

/// `ARGS` run as PID 1 of a new PID namespace, chrooted into `root`.
fn in_root(root: &Rootfs, args: &[&str]) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--pid", "--fork", "--kill-child"])
        .arg(format!(
            "--mount-proc={}",
            root.path().join("proc").display()
        ))
        .arg("chroot")
        .arg(root.path())
        .args(args);
    cmd
}

#[test]
fn the_static_binaries_run_in_a_root_that_has_nothing_else() {
    if !require_root("the_static_binaries_run_in_a_root_that_has_nothing_else") {
        return;
    }
    let Some(dist) = Dist::find("the_static_binaries_run_in_a_root_that_has_nothing_else") else {
        return;
    };
    let root = Rootfs::bare(&dist);
    engine_provided(&root);
    assert_eq!(
        root.files(),
        ["dev/null", "usr/bin/nsvisor", "usr/bin/nsvisorctl"],
        "nothing but the binaries"
    );
    let version = run(&mut in_root(
        &root,
        &["/usr/bin/nsvisor", "--", "/usr/bin/nsvisorctl", "--version"],
    ));
    assert_version_line("nsvisorctl", &version);
    let missing = run(&mut in_root(&root, &["/usr/bin/nsvisor", "--", "/bin/sh"]));
    assert_eq!(
        missing.status.code(),
        Some(127),
        "no shell in the root: {}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let status = run(&mut in_root(&root, &["/usr/bin/nsvisorctl", "status"]));
    assert_eq!(
        status.status.code(),
        Some(5),
        "nsvisorctl runs and finds no daemon: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1235:App:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\napp:x:1235:\nextra:x:77:other,app\n";

#[test]
fn a_static_daemon_finds_users_in_the_roots_passwd_and_group_and_makes_run() {
    let test = "a_static_daemon_finds_users_in_the_roots_passwd_and_group_and_makes_run";
    if !require_root(test) {
        return;
    }
    let Some(dist) = Dist::find(test) else {
        return;
    };
    let root = Rootfs::with_busybox(&dist);
    engine_provided(&root);
    root.write("etc/passwd", PASSWD);
    root.write("etc/group", GROUP);
    // The default config path, and the default socket path in a root without /run.
    root.write(
        "etc/nsvisor/nsvisor.toml",
        r#"
[programs.who]
command = ["/bin/sh", "-c", "echo \"$(id) home=$HOME user=$USER\"; exec sleep 1000"]
user = "app"
startsecs = 0
"#,
    );
    assert!(!root.path().join("run").exists());
    let mut daemon = in_root(&root, &["/usr/bin/nsvisor"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start unshare");
    let _guard = KillOnDrop(vec![daemon.id()]);
    let lines = lines_of(&mut daemon);
    let who = wait_until("the program's id line", T, || {
        lines.try_recv().ok().filter(|l| l.contains("uid="))
    });
    // (The kernel keeps supplementary groups sorted.)
    assert_eq!(
        who, "who | uid=1234(app) gid=1235(app) groups=77(extra),1235(app) home=/home/app user=app",
        "user, groups and HOME come from the root's files"
    );
    let status =
        run(Command::new("chroot")
            .arg(root.path())
            .args(["/usr/bin/nsvisorctl", "status", "who"]));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && text.starts_with("who") && text.contains("RUNNING"),
        "nsvisorctl finds the daemon at the default socket: {text}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        root.path().join("run/nsvisor.sock").exists(),
        "the daemon made /run for its socket"
    );
    let pid1 = wait_until("unshare's child, the daemon", T, || {
        children_of(daemon.id()).first().copied()
    });
    kill(Pid::from_raw(pid1 as i32), Signal::SIGTERM).expect("cannot signal the daemon");
    let exit = wait_until("the daemon to exit", T, || daemon.try_wait().ok().flatten());
    assert_eq!(exit.code(), Some(0), "a requested shutdown exits 0");
}
