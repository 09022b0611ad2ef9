//! supervisorctl's shell, `reload` and `maintail`, compared between a real
//! supervisord and nsvisor on the same `supervisord.conf` (the harness and
//! the config are `nsvisor_tests::supervisord`): commands piped into the
//! shell give the same transcript; `reload` restarts every program with the
//! config read again; `maintail -f` follows the daemon's own log. Each runs
//! with the real supervisorctl and with `nsvisorctl` invoked as
//! `supervisorctl`.

use std::process::Stdio;

use nsvisor_tests::supervisord::{
    conf, mask, running_pids, supervisor_bin, Pair, Server, API, EXTRA, T,
};
use nsvisor_tests::{lines_of, wait_until};

/// A shell transcript masked: each prompt ends a line, so what follows it
/// (a pid) is masked like the output of the command line.
fn mask_shell(text: &str) -> String {
    mask(&text.replace("supervisor> ", "supervisor> \n"))
}

/// Runs `case` on each server and reports every output that differs from
/// supervisord's.
fn compare(servers: &[Server; 3], what: &str, case: impl Fn(&Server) -> (String, i32)) {
    let outputs: Vec<(String, i32)> = servers.iter().map(case).collect();
    let mut differences = Vec::new();
    for (i, (text, code)) in outputs.iter().enumerate().skip(1) {
        let (want, want_code) = &outputs[0];
        if (text, code) != (want, want_code) {
            differences.push(format!(
                "{what}\n  supervisord (exit {want_code}):\n{want}\n  {} (exit {code}):\n{text}",
                Pair::ALL[i].who()
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "supervisorctl printed differently:\n{}\n\nnsvisor's stderr:\n{}",
        differences.join("\n\n"),
        servers[1].stderr()
    );
}

#[test]
fn the_shell_reads_commands_line_by_line_like_supervisorctls() {
    let Some(bin) = supervisor_bin() else {
        return;
    };
    let body = conf(API, "forever");
    let servers = Pair::ALL.map(|pair| Server::start(&bin, pair, &body));
    // The status it starts with, help, unknown and empty lines, commands,
    // confirmations refused, usage errors; nothing after `quit` runs.
    let session = "help\nhelp status\n?stop\nhelp nosuch\nhelp help\nfoo-bar\n\n\
                   status web\nstop web\nstart web\nstart x:x_00\nstatus x:x_00 grp:*\n\
                   pid web\ntail -7 web\nsignal HUP web\nclear web\nshutdown\nn\nreload\nno\n\
                   version x\nstop nosuch\nquit\nstop web\n";
    compare(&servers, "the shell", |s| {
        let (text, code) = s.ctl_with_input("", session);
        (mask_shell(&text), code)
    });
    // The end of input ends it too, with an empty line; the exit status
    // stays 0 after a failed command.
    compare(&servers, "the shell until the end of input", |s| {
        let (text, code) = s.ctl_with_input("", "start nosuch\n");
        (mask_shell(&text), code)
    });
    // `-i` with an action: that action alone, asking first.
    compare(&servers, "-i shutdown, refused", |s| {
        s.ctl_with_input("-i shutdown", "no\n")
    });
}

#[test]
fn reload_restarts_every_program_with_the_config_read_again() {
    let Some(bin) = supervisor_bin() else {
        return;
    };
    let body = conf(API, "forever");
    let servers = Pair::ALL.map(|pair| Server::start(&bin, pair, &body));
    for s in &servers {
        // idle started by hand; api leaves the config, extra comes in.
        assert_eq!(s.ctl("start idle").1, 0);
        s.write(&conf(EXTRA, "forever"));
    }
    let before: Vec<Vec<(String, u32)>> = servers
        .iter()
        .map(|s| running_pids(&s.ctl("status").0))
        .collect();
    compare(&servers, "reload", |s| s.ctl("reload"));
    for (s, before) in servers.iter().zip(&before) {
        let status = wait_until("web and extra to run again", T, || {
            let (status, _) = s.ctl("status");
            let running = running_pids(&status);
            let up = |n: &str| running.iter().any(|(name, _)| name == n);
            (up("web") && up("extra")).then_some(status)
        });
        for (name, pid) in running_pids(&status) {
            assert!(
                !before.iter().any(|(_, old)| *old == pid),
                "{name} kept pid {pid} across reload:\n{status}"
            );
        }
    }
    compare(&servers, "status after reload", |s| {
        let (text, code) = s.ctl("status");
        (mask(&text), code)
    });
}

/// `maintail -f` against `s`: the banner, the log so far, then the line
/// `start idle` makes (`spawned`, in either daemon's words).
fn follows_the_main_log(s: &Server, already: &str) {
    let mut child = s
        .command("maintail -f")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run supervisorctl maintail -f");
    let lines = lines_of(&mut child);
    let wait_for = |what: &str, pred: &dyn Fn(&str) -> bool| {
        wait_until(what, T, || loop {
            match lines.try_recv() {
                Ok(line) if pred(&line) => return Some(()),
                Ok(_) => {}
                Err(_) => return None,
            }
        })
    };
    wait_for("the banner", &|l| l == "==> Press Ctrl-C to exit <==");
    wait_for("the log so far", &|l| l.contains(already));
    assert_eq!(s.ctl("start idle").0.trim(), "idle: started");
    wait_for("idle's spawn in the log", &|l| {
        l.contains("spawned") && l.contains("idle")
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn maintail_shows_and_follows_the_daemons_log() {
    let Some(bin) = supervisor_bin() else {
        return;
    };
    let body = conf(API, "forever");
    for pair in Pair::ALL {
        let s = Server::start(&bin, pair, &body);
        let already = match pair {
            Pair::Real => "supervisord started with pid",
            _ => "control API listening",
        };
        let (out, code) = s.ctl("maintail -5000");
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(already), "{}: {out}", pair.who());
        follows_the_main_log(&s, already);
    }
}

#[test]
fn without_a_log_file_maintail_reads_the_log_kept_in_memory() {
    let Some(bin) = supervisor_bin() else {
        return;
    };
    let body = conf(API, "forever").replace("logfile=%(here)s/main.log\n", "");
    for pair in [Pair::Ours, Pair::OursCtl] {
        let s = Server::start(&bin, pair, &body);
        let (out, code) = s.ctl("maintail");
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("control API listening"), "{out}");
        let (out, _) = s.ctl("maintail -30");
        assert!(out.trim_end().len() <= 30, "the last 30 bytes: {out:?}");
        follows_the_main_log(&s, "control API listening");
    }
}
