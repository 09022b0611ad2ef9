//! Tests of `sys/spawn.rs` and `sys/child.rs` that start real children (and
//! reap them here: no reaper runs in unit tests).

use std::ffi::CString;
use std::sync::Mutex;

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use super::spawn::{SpawnFailure, SpawnGuard};
use super::*;

/// The tests that spawn take turns: the spawn guard is process-wide.
static SPAWNS: Mutex<()> = Mutex::new(());

fn setup(path: &str, cwd: Option<&str>) -> ChildSetup {
    let c = |s: &str| CString::new(s).unwrap_or_default();
    ChildSetup {
        path: c(path),
        argv: vec![c(path)],
        envp: Vec::new(),
        cwd: cwd.map(c),
        umask: None,
        ids: None,
        no_new_privs: false,
        netns: None,
        mntns: None,
        session: Session::NewSession,
        stdio: [None; 3],
        extra: None,
    }
}

fn exit_code(pid: Pid) -> i32 {
    match waitpid(pid, None) {
        Ok(WaitStatus::Exited(_, code)) => code,
        other => panic!("child {pid}: {other:?}"),
    }
}

#[test]
fn every_stage_survives_the_wire_and_unknown_bytes_are_none() {
    for stage in SpawnStage::ALL {
        assert_eq!(SpawnStage::from_wire(stage.to_wire()), Some(stage));
    }
    let unused = (0..=u8::MAX)
        .find(|b| !SpawnStage::ALL.iter().any(|s| s.to_wire() == *b))
        .unwrap_or(u8::MAX);
    assert_eq!(SpawnStage::from_wire(unused), None);
}

#[test]
fn a_spawn_while_another_runs_is_refused() {
    let _turn = SPAWNS.lock().unwrap_or_else(|e| e.into_inner());
    let running = SpawnGuard::take().expect("no spawn running yet");
    assert!(SpawnGuard::take().is_none(), "the guard was taken twice");
    let refused = spawn_child(&setup("/bin/true", None)).unwrap_err();
    assert_eq!(
        refused,
        SpawnFailure {
            stage: SpawnStage::Busy,
            errno: Errno::EBUSY,
            pid: None,
        }
    );
    drop(running);
    let pid = spawn_child(&setup("/bin/true", None)).expect("spawn once the first is done");
    assert_eq!(exit_code(pid), 0);
}

#[test]
fn the_child_reports_the_failed_step_through_the_pipe() {
    let _turn = SPAWNS.lock().unwrap_or_else(|e| e.into_inner());
    let exec = spawn_child(&setup("/nonexistent/nsvisor-test", None)).unwrap_err();
    assert_eq!((exec.stage, exec.errno), (SpawnStage::Exec, Errno::ENOENT));
    assert_eq!(exit_code(exec.pid.expect("the child forked")), 127);

    let chdir = spawn_child(&setup("/bin/true", Some("/nonexistent/dir"))).unwrap_err();
    assert_eq!(
        (chdir.stage, chdir.errno),
        (SpawnStage::Chdir, Errno::ENOENT)
    );
    assert_eq!(exit_code(chdir.pid.expect("the child forked")), 127);
}

#[test]
fn the_extra_fd_reaches_the_child_at_its_number_whatever_slot_it_lands_on() {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let _turn = SPAWNS.lock().unwrap_or_else(|e| e.into_inner());
    reserve_spawn_slots();
    // Every number up to past the reserved slots, so the target meets each
    // slot (the error pipe's included) at least once.
    for target in 3..=16 {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        let c = |s: &str| CString::new(s).unwrap_or_default();
        let mut s = setup("/bin/sh", None);
        s.argv = vec![
            c("sh"),
            c("-c"),
            c(&format!("echo ready > /proc/self/fd/{target}")),
        ];
        s.extra = Some((write.as_raw_fd(), target));
        let pid = spawn_child(&s).unwrap_or_else(|e| panic!("fd {target}: {e:?}"));
        drop(write);
        assert_eq!(exit_code(pid), 0, "fd {target}");
        let mut got = String::new();
        std::fs::File::from(read)
            .read_to_string(&mut got)
            .expect("read");
        assert_eq!(got, "ready\n", "fd {target}");
    }
    // The error pipe still works when the extra fd took its number.
    let mut s = setup("/nonexistent/nsvisor-test", None);
    let (_read, write) = nix::unistd::pipe().expect("pipe");
    for target in 3..=16 {
        s.extra = Some((write.as_raw_fd(), target));
        let failed = spawn_child(&s).unwrap_err();
        assert_eq!(
            (failed.stage, failed.errno),
            (SpawnStage::Exec, Errno::ENOENT)
        );
        assert_eq!(exit_code(failed.pid.expect("forked")), 127);
    }
}

#[test]
fn a_pipe_has_ended_empty_only_once_every_writer_is_gone_and_it_is_read_out() {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    let (read, write) = log_pipe().unwrap();
    assert!(!pipe_ended_empty(read.as_fd()), "a writer is still open");
    let mut writer = std::fs::File::from(write);
    writer.write_all(b"x").unwrap();
    drop(writer);
    assert!(
        !pipe_ended_empty(read.as_fd()),
        "a byte is still to be read"
    );
    let mut reader = std::fs::File::from(read);
    let mut byte = [0u8; 1];
    reader.read_exact(&mut byte).unwrap();
    assert!(pipe_ended_empty(reader.as_fd()));
}
