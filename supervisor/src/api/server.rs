//! The accept loop: one task per connection, hyper HTTP/1.1 on each.
//!
//! Every connection is checked against the [`Access`] policy first; a refused
//! peer still gets an HTTP answer (403 JSON) so it knows why, and an allowed
//! one is served at the level it was granted (full control or read-only). hyper enforces the
//! header read timeout (so a client that connects and sends nothing is dropped)
//! and the head size limit; malformed HTTP gets hyper's 400. At most
//! [`Limits::max_connections`] connections are served at once. When all are
//! taken and another client connects, the connection idle the longest (no
//! request in flight: it sends nothing, or trickles a head, or waits between
//! requests) is closed to make room, so idle clients, however many, never keep
//! a working one waiting; connections answering a request (streams included)
//! are never closed for that; when every connection is busy, new clients wait
//! for a slot (the first accepted, the others in the listen backlog). When the
//! API closes, the loop stops accepting, asks every connection to finish its
//! request in flight (streams end), and waits for them a bounded time.
//! Out of file descriptors, a new client is answered `503` with the cause
//! (`refuse.rs`) instead of waiting unanswered. Started by `api::serve`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::{service_fn, HttpService};
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use nsvisor_proto::ErrorKind;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::peer::{Access, Verdict};
use super::refuse::Spare;
use super::reply::{self, Body, Reply};
use super::routes::{self, Api};
use super::stream::Client;
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

/// How long a new connection waits for the slot of an evicted one before
/// another is chosen (the chosen one may have received a request meanwhile).
const EVICT_RECHECK: Duration = Duration::from_millis(100);

/// What the accept loop knows of a connection it serves.
#[derive(Debug, Default)]
pub(super) struct Served {
    /// Requests being answered; a request counts until its answer's body is
    /// done (or dropped). 0: the connection waits for a request head.
    in_flight: AtomicUsize,
    /// Set once the connection was asked to make room.
    evicted: AtomicBool,
    /// Wakes the connection's task to make room.
    evict: Notify,
}

/// Counts a request as in flight until dropped; it rides on the answer's body.
struct InFlight(Arc<Served>);

impl InFlight {
    fn new(conn: &Arc<Served>) -> InFlight {
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(conn.clone())
    }

    /// The answer, with this request counted until its body is done.
    fn attach(self, reply: Reply) -> Reply {
        reply.map(|body| {
            Counted {
                body,
                _in_flight: self,
            }
            .boxed_unsync()
        })
    }
}

/// An answer's body that keeps its request counted until it is dropped.
/// Its size hint is the body's own, so a whole answer keeps its
/// `Content-Length` (a mapped body would be sent chunked).
struct Counted {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

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
    // The connections served, in accept order (ended ones are pruned).
    let mut served: VecDeque<Weak<Served>> = VecDeque::new();
    let mut spare = Spare::new();
    let mut complaints = Complaints::default();
    loop {
        while conns.try_join_next().is_some() {}
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) if Spare::is_exhaustion(&e) => {
                    complaints.report(&e);
                    // Out of descriptors: a client is refused with the
                    // cause, or served if room came back meanwhile.
                    match spare.accept_exhausted(&listener, &e).await {
                        Some(stream) => stream,
                        None => continue,
                    }
                }
                Err(e) => {
                    complaints.report(&e);
                    // Back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = until_stopped(&mut stopped) => break,
        };
        let slot = tokio::select! {
            slot = make_room(&slots, &mut served) => match slot {
                Some(slot) => slot,
                None => break,
            },
            _ = until_stopped(&mut stopped) => break,
        };
        let state = Arc::new(Served::default());
        served.push_back(Arc::downgrade(&state));
        if served.len() > 2 * limits.max_connections {
            // At most `max_connections` are alive: this runs once in that many accepts.
            served.retain(|c| c.strong_count() > 0);
        }
        let conn = connection(
            stream,
            access.clone(),
            api.clone(),
            stopped.clone(),
            limits.clone(),
            slot,
            state,
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

/// A free connection slot. While none is free, asks the connection idle the
/// longest to close (the oldest first: `served` is in accept order) and waits
/// for its slot; `None` once the slots are closed.
async fn make_room(
    slots: &Arc<Semaphore>,
    served: &mut VecDeque<Weak<Served>>,
) -> Option<OwnedSemaphorePermit> {
    loop {
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            return Some(slot);
        }
        served.retain(|c| c.strong_count() > 0);
        let idle = served
            .iter()
            .filter_map(Weak::upgrade)
            .find(|c| c.in_flight.load(Ordering::SeqCst) == 0 && !c.evicted.load(Ordering::SeqCst));
        if let Some(conn) = idle {
            conn.evicted.store(true, Ordering::SeqCst);
            conn.evict.notify_one();
        }
        match tokio::time::timeout(EVICT_RECHECK, slots.clone().acquire_owned()).await {
            Ok(slot) => return slot.ok(),
            Err(_) => continue,
        }
    }
}

/// Failed accepts, logged at most once per [`Complaints::EVERY`] with the
/// number of the others.
#[derive(Debug, Default)]
struct Complaints {
    last: Option<std::time::Instant>,
    quiet: u64,
}

impl Complaints {
    const EVERY: Duration = Duration::from_secs(10);

    fn report(&mut self, e: &std::io::Error) {
        let now = std::time::Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < Self::EVERY)
        {
            self.quiet += 1;
            return;
        }
        let also = match std::mem::take(&mut self.quiet) {
            0 => String::new(),
            n => format!(" ({n} more since the last message)"),
        };
        tracing::warn!("control socket: cannot accept a connection: {e}{also}");
        self.last = Some(now);
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
    state: Arc<Served>,
) {
    let verdict = access.check_stream(&stream);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEAD);
    match verdict {
        Verdict::Allow(level) => {
            let client = Client::of(&stream);
            let counted = state.clone();
            let service = service_fn(move |mut req: Request<Incoming>| {
                let in_flight = InFlight::new(&counted);
                req.extensions_mut().insert(client);
                let answer = routes::handle(api.clone(), level, req);
                async move { Ok::<_, Infallible>(in_flight.attach(answer.await?)) }
            });
            drive(&builder, stream, service, stopped, &state).await;
        }
        Verdict::Deny(message) => {
            let cred = stream.peer_cred().ok();
            tracing::warn!(
                uid = cred.map(|c| c.uid()),
                pid = cred.and_then(|c| c.pid()),
                "control socket: refused a client"
            );
            builder.keep_alive(false);
            let counted = state.clone();
            let service = service_fn(move |_: Request<Incoming>| {
                let in_flight = InFlight::new(&counted);
                let answer = reply::fail(ErrorKind::PermissionDenied, message.clone());
                async move { Ok::<_, Infallible>(in_flight.attach(answer)) }
            });
            drive(&builder, stream, service, stopped, &state).await;
        }
    }
}

/// Runs hyper on the connection until it ends, until the API closes (then
/// the request in flight may finish), or until it is asked to make room:
/// then it closes at once when idle, or after the request in flight.
async fn drive<S>(
    builder: &http1::Builder,
    stream: UnixStream,
    service: S,
    mut stopped: watch::Receiver<bool>,
    state: &Served,
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
        () = state.evict.notified() => {
            if state.in_flight.load(Ordering::SeqCst) == 0 {
                tracing::debug!("control socket: closed an idle connection to make room");
                return;
            }
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                result = conn.as_mut() => result,
                _ = until_stopped(&mut stopped) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
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
