//! The real supervisorctl (the `supervisor` package from PyPI, 4.3.0) against
//! nsvisor and against a real supervisord, both started on the same
//! `supervisord.conf` (each in its own directory, paths relative to
//! `%(here)s`): every command prints the same text and exits with the same
//! code, once pids, uptimes and times are masked. `nsvisorctl` invoked as
//! `supervisorctl` (a symlink so named) against a third nsvisor prints the
//! same again. The harness is `nsvisor_tests::supervisord`; the shell,
//! `reload` and `maintail -f` are compared in `supervisorctl_shell.rs`.

use std::process::Command;

use nsvisor_tests::supervisord::{conf, mask, supervisor_bin, Pair, Server, API, EXTRA, T};
use nsvisor_tests::{nsvisorctl_bin, testprog};

#[test]
fn supervisorctl_prints_the_same_against_nsvisor_and_supervisord() {
    let Some(bin) = supervisor_bin() else {
        return;
    };
    let first = conf(API, "forever");
    let servers = Pair::ALL.map(|pair| Server::start(&bin, pair, &first));
    // (command, compare the lines sorted: results whose order is completion order)
    let steps: &[(&str, bool)] = &[
        ("status", false),
        ("status web", false),
        ("status nosuch", false),
        ("start web", false),
        ("stop web", false),
        ("status web", false),
        ("start web", false),
        ("restart api", false),
        ("stop nosuch", false),
        ("start nosuch", false),
        ("start grp:*", true),
        ("status grp:*", false),
        ("stop grp:*", true),
        ("start idle", false),
        ("stop idle", false),
        ("stop idle", false),
        ("signal HUP web", false),
        ("signal HUP idle", false),
        ("signal HUP nosuch", false),
        ("pid web", false),
        ("pid idle", false),
        ("pid", false),
        ("pid nosuch", false),
        ("tail web", false),
        ("tail -7 web", false),
        ("tail web stderr", false),
        ("tail nosuch", false),
        ("clear web", false),
        ("tail web", false),
        ("tail web stderr", false),
        ("clear nosuch", false),
        ("clear grp:a x:x_01", false),
        ("clear all", false),
        ("start x:x_00", false),
        ("status x:*", false),
        ("pid x:x_00", false),
        ("stop x:*", true),
        ("start x:*", true),
        ("status x:x_01 x:nosuch", false),
        ("avail", false),
        ("reread", false),
        ("update", false),
        ("version", false),
        ("RECONFIGURE", false),
        ("reread", true),
        ("avail", false),
        ("update", false),
        ("status", false),
        ("stop all", true),
        ("status", false),
        ("start all", true),
        ("status", false),
        ("shutdown", false),
    ];
    let mut differences = Vec::new();
    for (step, sorted) in steps {
        if *step == "RECONFIGURE" {
            // api removed, extra added, idle changed.
            for s in &servers {
                s.write(&conf(EXTRA, "3600"));
            }
            continue;
        }
        let outputs = servers.each_ref().map(|s| {
            let (text, code) = s.ctl(step);
            let mut text = mask(&text);
            if *step == "version" {
                text.clear();
            }
            if *sorted {
                let mut l: Vec<&str> = text.lines().collect();
                l.sort_unstable();
                text = l.join("\n");
            }
            (text, code)
        });
        for (i, (text, code)) in outputs.iter().enumerate().skip(1) {
            let (want, want_code) = &outputs[0];
            if (text, code) != (want, want_code) {
                differences.push(format!(
                    "supervisorctl {step}\n  supervisord (exit {want_code}):\n{want}\n  {} (exit {code}):\n{text}",
                    Pair::ALL[i].who()
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "supervisorctl printed differently:\n{}\n\nnsvisor's stderr:\n{}",
        differences.join("\n\n"),
        servers[1].stderr()
    );
}

/// A container's life: nsvisor as PID 1 (a new PID namespace) on a
/// `supervisord.conf`, driven with supervisorctl (nsvisorctl under that
/// name); `stop` and `start` one program, then SIGTERM: each program gets its
/// own `stopsignal`, and the daemon exits 0.
#[test]
fn container_shaped_pid1_from_a_supervisord_conf() {
    if !nsvisor_tests::require_root("container_shaped_pid1_from_a_supervisord_conf") {
        return;
    }
    let b = nsvisor_tests::Daemon::builder();
    let dir = b.dir().to_path_buf();
    let tp = testprog();
    let ini = format!(
        "[supervisord]\nnodaemon=true\n\n\
         [program:web]\ncommand={tp} exit-on INT 0 record {d}/web.rec sleep forever\nstopsignal=INT\nstartsecs=0\n\n\
         [program:worker]\ncommand={tp} exit-on QUIT 0 record {d}/worker.rec sleep forever\nstopsignal=QUIT\nstartsecs=0\n",
        tp = tp.display(),
        d = dir.display()
    );
    let mut d = b.supervisord_conf(&ini).pid1(true).start();
    let link = dir.join("supervisorctl");
    std::os::unix::fs::symlink(nsvisorctl_bin(), &link).expect("symlink");
    let ctl = |args: &[&str]| {
        let out = Command::new(&link)
            .arg("-c")
            .arg(dir.join("supervisord.conf"))
            .args(args)
            .output()
            .expect("run supervisorctl");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    };
    let web = dir.join("web.rec");
    let worker = dir.join("worker.rec");
    nsvisor_tests::wait_record(&web, "start", T);
    nsvisor_tests::wait_record(&worker, "start", T);
    assert_eq!(ctl(&["stop", "web"]), ("web: stopped\n".into(), Some(0)));
    nsvisor_tests::wait_record(&web, "signal INT", T);
    assert_eq!(ctl(&["start", "web"]), ("web: started\n".into(), Some(0)));
    let (status, code) = ctl(&["status"]);
    assert_eq!(code, Some(0), "{status}");
    assert_eq!(
        status.lines().filter(|l| l.contains("RUNNING")).count(),
        2,
        "{status}"
    );
    let exit = d.terminate();
    assert_eq!(exit.code(), Some(0));
    let signals = |f: &std::path::Path| -> Vec<String> {
        nsvisor_tests::read_records(f)
            .into_iter()
            .filter(|r| r.event.starts_with("signal"))
            .map(|r| r.event)
            .collect()
    };
    assert_eq!(signals(&web), ["signal INT", "signal INT"]);
    assert_eq!(signals(&worker), ["signal QUIT"]);
}
