//! Runs one readiness or liveness check (DESIGN §9): a TCP connect, or an
//! HTTP GET whose status must be in a range, within the check's timeout.
//! (An `exec` check is a process: the supervisor spawns it through the one
//! spawn path and the one reaper reaps it; only its description is here.)
//!
//! The actor calls [`run`] in a short-lived task per run and hands the
//! result to the planner, which decides what follows. A check of a program in
//! a network sandbox connects from inside the sandbox: its socket is made in
//! the sandbox's namespace (by `sys::tcp_socket_in`, on a short-lived thread;
//! never on a tokio worker) and connected by the runtime, so `127.0.0.1` is
//! the sandbox's own loopback.

pub mod notify;
pub mod ready_fd;

use std::net::ToSocketAddrs;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::config::CheckKind;

/// Runs `kind` within `timeout` (in the namespace `netns` when given);
/// returns whether it passed, what happened in words, and how long it took.
pub async fn run(
    kind: &CheckKind,
    timeout: Duration,
    netns: Option<Arc<OwnedFd>>,
) -> (bool, String, Duration) {
    let t0 = Instant::now();
    let what = describe(kind);
    let result = tokio::time::timeout(timeout, probe(kind, timeout, netns)).await;
    let took = t0.elapsed();
    let ms = took.as_millis();
    let (passed, detail) = match result {
        Ok(Ok(outcome)) => (
            outcome.passed,
            format!("{what} → {} after {ms} ms", outcome.said),
        ),
        Ok(Err(e)) => (false, format!("{what}: {e}")),
        Err(_) => (
            false,
            format!("{what}: no answer within {} s", timeout.as_secs_f64()),
        ),
    };
    (passed, detail, took)
}

/// `tcp 127.0.0.1:8080` or `http GET http://127.0.0.1:8080/healthz`.
pub fn describe(kind: &CheckKind) -> String {
    match kind {
        CheckKind::Exec { command } => format!("exec {}", shell_words::join(command)),
        CheckKind::Tcp { host, port } => format!("tcp {host}:{port}"),
        CheckKind::Http {
            host, port, path, ..
        } => format!("http GET http://{host}:{port}{path}"),
        CheckKind::Log {
            pattern,
            stream: None,
        } => format!("log /{pattern}/"),
        CheckKind::Log {
            pattern,
            stream: Some(s),
        } => format!("log {} /{pattern}/", s.as_str()),
        CheckKind::NotifyReady => "notify READY=1".into(),
        CheckKind::NotifyWatchdog => "notify WATCHDOG=1".into(),
        CheckKind::ReadyFd { fd } => format!("ready_fd {fd}"),
    }
}

struct Outcome {
    passed: bool,
    said: String,
}

async fn probe(
    kind: &CheckKind,
    timeout: Duration,
    netns: Option<Arc<OwnedFd>>,
) -> std::io::Result<Outcome> {
    match kind {
        CheckKind::Exec { .. } => Err(std::io::Error::other(
            "exec checks are run by the supervisor, not here",
        )),
        CheckKind::Log { .. }
        | CheckKind::NotifyReady
        | CheckKind::NotifyWatchdog
        | CheckKind::ReadyFd { .. } => Err(std::io::Error::other(
            "the program signals this check itself; there is nothing to run",
        )),
        CheckKind::Tcp { host, port } => {
            connect(host, *port, timeout, netns).await?;
            Ok(Outcome {
                passed: true,
                said: "connected".into(),
            })
        }
        CheckKind::Http {
            host,
            port,
            path,
            status,
        } => {
            let mut stream = connect(host, *port, timeout, netns).await?;
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: nsvisor-check\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await?;
            let code = status_code(&mut stream).await?;
            Ok(Outcome {
                passed: (status.0..=status.1).contains(&code),
                said: code.to_string(),
            })
        }
    }
}

/// Connects to `host:port`, from inside `netns` when given. For an address
/// (the usual `127.0.0.1`), the socket is made in the sandbox on a
/// short-lived thread and connected here; a host name is resolved and
/// connected on a short-lived thread inside the sandbox (which gives up at
/// `timeout` too, so none lingers), so that the sandbox's resolver answers.
async fn connect(
    host: &str,
    port: u16,
    timeout: Duration,
    netns: Option<Arc<OwnedFd>>,
) -> std::io::Result<TcpStream> {
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>();
    match (netns, ip) {
        (None, Ok(ip)) => {
            let fd = crate::sys::tcp_socket(ip.is_ipv6())?;
            connect_fd(fd, std::net::SocketAddr::new(ip, port)).await
        }
        (None, Err(_)) => TcpStream::connect((host, port)).await,
        (Some(netns), Ok(ip)) => {
            let fd = crate::sys::tcp_socket_in(netns, ip.is_ipv6()).await?;
            connect_fd(fd, std::net::SocketAddr::new(ip, port)).await
        }
        (Some(netns), Err(_)) => connect_by_name_in(netns, host, port, timeout).await,
    }
}

/// Connects the non-blocking socket `fd` to `addr`: at once when the kernel
/// can (usual on this host), else through the runtime.
async fn connect_fd(fd: OwnedFd, addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    let connected = crate::sys::connect_now(fd.as_fd(), addr)?;
    let stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
    if !connected {
        stream.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    Ok(stream)
}

/// Resolves `host` and connects inside `netns`, on a short-lived thread
/// there (so the sandbox's resolver answers); it gives up at `timeout` too.
async fn connect_by_name_in(
    netns: Arc<OwnedFd>,
    host: &str,
    port: u16,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let host = host.to_string();
    std::thread::Builder::new()
        .name("nsvisor-check".into())
        .spawn(move || {
            let connected = crate::sys::enter_netns_thread(netns.as_fd()).and_then(|()| {
                let addr = (host.as_str(), port)
                    .to_socket_addrs()?
                    .next()
                    .ok_or_else(|| {
                        std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
                    })?;
                let stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
                stream.set_nonblocking(true)?;
                Ok(stream)
            });
            // The receiver is gone when the check timed out: nothing to do.
            let _ = tx.send(connected);
        })?;
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("the check thread ended without an answer"))??;
    TcpStream::from_std(stream)
}

/// Reads the status line of an HTTP response: `HTTP/1.x NNN ...`.
async fn status_code(stream: &mut TcpStream) -> std::io::Result<u16> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.contains(&b'\n') && buf.len() < 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let line = line.lines().next().unwrap_or("");
    let mut words = line.split_whitespace();
    match (
        words.next(),
        words.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "not an HTTP response: {:?}",
                line.chars().take(60).collect::<String>()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn tcp(port: u16) -> CheckKind {
        CheckKind::Tcp {
            host: "127.0.0.1".into(),
            port,
        }
    }

    fn http(port: u16) -> CheckKind {
        CheckKind::Http {
            host: "127.0.0.1".into(),
            port,
            path: "/healthz".into(),
            status: (200, 399),
        }
    }

    /// Serves one HTTP answer with `status` to each connection.
    async fn server(status: u16) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut req = [0u8; 512];
                let _ = s.read(&mut req).await;
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        port
    }

    #[tokio::test]
    async fn tcp_passes_on_a_listener_and_fails_without_one() {
        let port = server(200).await;
        let (ok, said, _) = run(&tcp(port), Duration::from_secs(2), None).await;
        assert!(ok, "{said}");
        assert!(
            said.starts_with(&format!("tcp 127.0.0.1:{port} → connected after ")),
            "{said}"
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let free = closed.local_addr().expect("addr").port();
        drop(closed);
        let (ok, said, _) = run(&tcp(free), Duration::from_secs(2), None).await;
        assert!(!ok);
        assert!(
            said.starts_with(&format!("tcp 127.0.0.1:{free}: ")),
            "{said}"
        );
        assert!(said.to_lowercase().contains("refused"), "{said}");
    }

    #[tokio::test]
    async fn http_passes_in_range_and_fails_outside() {
        let good = server(204).await;
        let (ok, said, _) = run(&http(good), Duration::from_secs(2), None).await;
        assert!(ok, "{said}");
        assert!(
            said.starts_with(&format!(
                "http GET http://127.0.0.1:{good}/healthz → 204 after "
            )),
            "{said}"
        );
        let bad = server(503).await;
        let (ok, said, _) = run(&http(bad), Duration::from_secs(2), None).await;
        assert!(!ok);
        assert!(said.contains("→ 503 after"), "{said}");
    }

    #[tokio::test]
    async fn a_silent_server_fails_at_the_timeout() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let t0 = Instant::now();
        let (ok, said, _) = run(&http(port), Duration::from_millis(300), None).await;
        assert!(!ok);
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert!(said.ends_with("no answer within 0.3 s"), "{said}");
        drop(l);
    }
}
