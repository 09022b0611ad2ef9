//! The health listener (`[supervisor] health_listen`): a TCP endpoint for
//! Kubernetes `httpGet` probes and load balancers that should not spawn a
//! process per probe.
//!
//! It serves only `GET /livez` (every program that should run is RUNNING and
//! alive), `GET /readyz` (and ready) and `GET /readyz/NAME` (that program is
//! ready): `200 ok` or `503` with the reason, as plain text. Nothing it serves
//! changes anything, and nothing else is served (404, or 405 for another
//! method), so it needs no access control. Answers come from the supervisor
//! through its [`Handle`], like the control API's. Started by `lib::run`;
//! the task ends with the daemon.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::supervisor::handle::Handle;

/// Probe connections served at once (more wait in the backlog).
const MAX_CONNECTIONS: usize = 64;

/// Why the health listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("health_listen {addr}: cannot listen: {source}")]
pub struct ListenError {
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// A running health listener; dropping it stops it.
#[derive(Debug)]
pub struct Probes {
    task: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
}

impl Probes {
    /// The address it listens on (with the port chosen when 0 was asked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on `addr` and answers probes from `handle`.
pub async fn listen(addr: SocketAddr, handle: Handle) -> Result<Probes, ListenError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenError { addr, source })?;
    let addr = listener.local_addr().unwrap_or(addr);
    tracing::info!("health listener on http://{addr} (GET /livez, /readyz, /readyz/NAME)");
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let task = tokio::spawn(async move {
        loop {
            let Ok(permit) = limit.clone().acquire_owned().await else {
                return;
            };
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| answer(req, handle.clone()));
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .keep_alive(false)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
                drop(permit);
            });
        }
    });
    Ok(Probes { task, addr })
}

async fn answer(
    req: Request<Incoming>,
    handle: Handle,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let (status, body) = match (req.method(), path.as_str()) {
        (&Method::GET | &Method::HEAD, "/livez") => match handle.health().await {
            Ok(h) if h.healthy => ok(),
            Ok(h) => unavailable(why(&h.not_running, &h.failing, &[], h.shutting_down)),
            Err(e) => unavailable(e.message),
        },
        (&Method::GET | &Method::HEAD, "/readyz") => match handle.health().await {
            Ok(h) if h.ready => ok(),
            Ok(h) => unavailable(why(&[], &h.failing, &h.not_ready, h.shutting_down)),
            Err(e) => unavailable(e.message),
        },
        (&Method::GET | &Method::HEAD, p) if p.starts_with("/readyz/") => {
            let name = &p["/readyz/".len()..];
            match handle.list().await {
                Ok(list) => match list.iter().find(|i| i.name == name) {
                    Some(i) if i.ready => ok(),
                    Some(i) => unavailable(format!(
                        "{name}: not ready ({}: {})",
                        i.state, i.description
                    )),
                    None => (
                        StatusCode::NOT_FOUND,
                        format!("no such program: {name:?}\n"),
                    ),
                },
                Err(e) => unavailable(e.message),
            }
        }
        (_, "/livez" | "/readyz") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET is served here\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "only GET /livez, /readyz and /readyz/NAME are served here\n".to_string(),
        ),
    };
    let mut res = Response::new(Full::new(Bytes::from(body)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(res)
}

fn ok() -> (StatusCode, String) {
    (StatusCode::OK, "ok\n".to_string())
}

fn unavailable(why: String) -> (StatusCode, String) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{}\n", why.trim_end()),
    )
}

/// `not running: a, b; failing liveness: c; not ready: d`.
fn why(
    not_running: &[String],
    failing: &[String],
    not_ready: &[String],
    shutting_down: bool,
) -> String {
    let mut parts = Vec::new();
    if shutting_down {
        parts.push("shutting down".to_string());
    }
    for (what, names) in [
        ("not running", not_running),
        ("failing liveness", failing),
        ("not ready", not_ready),
    ] {
        if !names.is_empty() {
            parts.push(format!("{what}: {}", names.join(", ")));
        }
    }
    parts.join("; ")
}
