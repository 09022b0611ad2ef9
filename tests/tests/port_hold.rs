//! The port proxy holds new connections while its program restarts (root):
//! a steady client through a mapped port loses no request over five
//! restarts, and with `port_hold = 0` it does lose some (so the first
//! result means something). The server is `nettool echo --graceful`, which
//! finishes its open connections on SIGTERM, as a real server drains: with
//! the hold it gets no new ones once it is stopping, so it drains at once;
//! without, new connections keep reaching it until `stopwaitsecs` ends it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[allow(dead_code)]
mod netkit;

use netkit::*;
use nsvisor_proto::State;
use nsvisor_tests::{require_root, wait_until, Daemon};

/// One request: connect, send, half-close, read the echo.
fn request(port: u16, i: u32) -> Result<(), String> {
    let msg = format!("request {i}");
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    s.write_all(msg.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    s.shutdown(std::net::Shutdown::Write)
        .map_err(|e| format!("shutdown: {e}"))?;
    let mut back = String::new();
    s.read_to_string(&mut back)
        .map_err(|e| format!("read: {e}"))?;
    if back == msg {
        Ok(())
    } else {
        Err(format!("echo {back:?} for {msg:?}"))
    }
}

/// Restarts `web` five times under a steady client; returns (requests, failures).
fn restarts_under_load(hold: &str) -> (u32, Vec<String>, Daemon, Net, u16) {
    let n = Net::new();
    let port = free_port();
    let extra = format!(
        "ports = [\"127.0.0.1:{port}:8080\"]\nstopwaitsecs = 2\n{hold}\n[[programs.web.checks]]\ntcp = 8080\nperiod = 0.2"
    );
    let config =
        n.network_toml() + &n.program("web", "web", 10, &["echo", "8080", "--graceful"], &extra);
    let d = Daemon::start(&config);
    d.wait_state("web", State::Running, T);
    let out = d.ctl(&["wait", "web", "--for", "ready", "--timeout", "15"]);
    assert!(out.status.success(), "{out:?}");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU32::new(0));
    let client = {
        let (stop, done) = (stop.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut count, mut failures) = (0u32, Vec::new());
            // A steady client: one request every 5 ms (a failed one does not
            // make it go faster).
            let mut next = std::time::Instant::now();
            while !stop.load(Ordering::Relaxed) {
                next += Duration::from_millis(5);
                std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
                count += 1;
                if let Err(e) = request(port, count) {
                    failures.push(e);
                }
                done.store(count, Ordering::Relaxed);
            }
            (count, failures)
        })
    };
    for _ in 0..5 {
        // Some requests between restarts, so each restart meets the client.
        let before = done.load(Ordering::Relaxed);
        wait_until("the client to make 10 requests", T, || {
            (done.load(Ordering::Relaxed) >= before + 10).then_some(())
        });
        let out = d.ctl(&["restart", "web"]);
        assert!(out.status.success(), "{out:?}");
    }
    stop.store(true, Ordering::Relaxed);
    let (count, failures) = client.join().expect("client thread");
    (count, failures, d, n, port)
}

#[test]
fn no_request_is_lost_while_a_mapped_program_restarts() {
    if !require_root("port hold: traffic") {
        return;
    }
    let (count, failures, d, _n, port) = restarts_under_load("");
    assert!(count >= 50, "only {count} requests were made");
    assert!(
        failures.is_empty(),
        "{} of {count} failed: {failures:?}",
        failures.len()
    );
    let web = d.status("web").expect("web");
    assert_eq!(
        web.restarts, 0,
        "restarts by request are not automatic restarts"
    );
    let labels = format!("{{name=\"web\",group=\"web\",port=\"127.0.0.1:{port}/tcp\"}}");
    let held = d
        .metric(&format!("nsvisor_port_connections_held_total{labels}"))
        .expect("held metric");
    let total = d
        .metric(&format!("nsvisor_port_connections_total{labels}"))
        .expect("total metric");
    assert!(held >= 1.0, "no connection was held");
    assert!(
        total >= f64::from(count),
        "{total} connections counted for {count} requests"
    );
    let ports = &web.net.expect("net").ports;
    assert_eq!(ports[0].connections_held, Some(held as u64));
    assert_eq!(ports[0].mode, "proxy");
}

#[test]
fn without_port_hold_requests_are_lost_during_restarts() {
    if !require_root("port hold: traffic") {
        return;
    }
    let (count, failures, _d, _n, _) = restarts_under_load("port_hold = 0");
    assert!(count >= 50, "only {count} requests were made");
    assert!(
        !failures.is_empty(),
        "none of {count} failed without the hold"
    );
}
