//! The accept loop: one task per connection, hyper HTTP/1.1 on each.
//!
//! Every connection is checked against the [`Access`] policy first; a refused
//! peer still gets an HTTP answer (403 JSON) so it knows why. hyper enforces the
//! header read timeout (so a client that connects and sends nothing is dropped)
//! and the head size limit; malformed HTTP gets hyper's 400. At most
//! [`Limits::max_connections`] connections are served at once; more wait in
//! the listen backlog. When the API closes, the loop stops accepting, asks every
//! connection to finish its request in flight (streams end), and waits for them
//! a bounded time. Started by `api::serve`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, HttpService};
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use nsvisor_proto::ErrorKind;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::peer::{Access, Verdict};
use super::reply::{self, Body};
use super::routes::{self, Api};
use super::xmlrpc::Rpc;
use crate::supervisor::handle::Handle;

/// Bounds that protect the daemon from its clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// A connection that has not sent a whole request head within this is dropped.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// How long closing waits for requests in flight.
    pub close_grace: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: 512,
            close_grace: Duration::from_secs(5),
        }
    }
}

/// Largest request head (request line and headers) read, in bytes.
const MAX_HEAD: usize = 64 * 1024;

/// Accepts connections until `stopped` turns true.
pub async fn accept_loop(
    listener: UnixListener,
    access: Access,
    handle: Handle,
    rpc: Arc<Rpc>,
    mut stopped: watch::Receiver<bool>,
    limits: Limits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let api = Arc::new(Api {
        handle,
        rpc,
        stopped: stopped.clone(),
        slots: slots.clone(),
        max_connections: limits.max_connections,
    });
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = until_stopped(&mut stopped) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("control socket: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = until_stopped(&mut stopped) => break,
        };
        let conn = connection(
            stream,
            access.clone(),
            api.clone(),
            stopped.clone(),
            limits.clone(),
            slot,
        );
        conns.spawn(conn);
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.close_grace, async {
        while conns.join_next().await.is_some() {}
    });
    if drained.await.is_err() {
        tracing::warn!("control API closed with requests still in flight");
    }
}

/// Serves one connection: the API for allowed peers, 403 for everyone else.
pub(super) async fn connection(
    stream: UnixStream,
    access: Access,
    api: Arc<Api>,
    stopped: watch::Receiver<bool>,
    limits: Limits,
    _slot: OwnedSemaphorePermit,
) {
    let verdict = access.check_stream(&stream);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD);
    match verdict {
        Verdict::Allow => {
            let service = service_fn(move |req| routes::handle(api.clone(), req));
            drive(&builder, stream, service, stopped).await;
        }
        Verdict::Deny(message) => {
            let cred = stream.peer_cred().ok();
            tracing::warn!(
                uid = cred.map(|c| c.uid()),
                pid = cred.and_then(|c| c.pid()),
                "control socket: refused a client"
            );
            builder.keep_alive(false);
            let service = service_fn(move |_: Request<Incoming>| {
                let answer = reply::fail(ErrorKind::PermissionDenied, message.clone());
                async move { Ok::<_, Infallible>(answer) }
            });
            drive(&builder, stream, service, stopped).await;
        }
    }
}

/// Runs hyper on the connection until it ends, or until the API closes (then
/// the request in flight may finish).
async fn drive<S>(
    builder: &http1::Builder,
    stream: UnixStream,
    service: S,
    mut stopped: watch::Receiver<bool>,
) where
    S: HttpService<Incoming, ResBody = Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = until_stopped(&mut stopped) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Timeouts, malformed requests, clients that left: theirs, not ours.
        tracing::debug!("control socket: connection ended: {e}");
    }
}

/// Resolves once the API is closing (or its owner is gone).
pub async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}
