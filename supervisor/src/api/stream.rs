//! Streamed answers: `tail -f` bytes and NDJSON state events.
//!
//! Both read a broadcast receiver, so the writer (a log pump or the supervisor)
//! never waits for a client: a client too slow to keep up skips what it missed
//! (logged), it does not hold anyone back. A stream ends when its broadcast
//! closes (the program's stream is gone, or the supervisor stopped), when the
//! API closes, or when the client left: hyper notices that on its own only
//! when it writes, or reads an EOF it is still looking for (not after a
//! `Connection: close` request), so a stream of a quiet program also looks
//! every [`HANGUP_CHECK`] whether its [`Client`] hung up.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::StatusCode;
use nsvisor_proto::StateEvent;
use tokio::sync::{broadcast, watch};

use super::reply::{self, Reply};
use crate::sys;

/// How often a stream with nothing to send looks whether its client left.
const HANGUP_CHECK: Duration = Duration::from_secs(2);

/// The connection a streamed answer goes to, to see whether the client hung
/// up. Put into each request's extensions by `server.rs`; only looked at
/// while the answer's body is polled, i.e. while the connection (and so its
/// fd) is alive.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    fd: RawFd,
}

impl Client {
    /// The client at the other end of `socket`.
    pub fn of(socket: &impl AsRawFd) -> Client {
        Client {
            fd: socket.as_raw_fd(),
        }
    }

    /// The client of a request, when it came through the unix socket.
    pub fn of_request<B>(req: &hyper::Request<B>) -> Option<Client> {
        req.extensions().get::<Client>().copied()
    }

    /// Whether the client hung up.
    pub fn gone(self) -> bool {
        sys::peer_hung_up(self.fd)
    }
}

/// Content type of raw program output.
pub const OCTETS: &str = "application/octet-stream";

/// Content type of newline-delimited JSON.
pub const NDJSON: &str = "application/x-ndjson";

/// `first` (the tail already kept), then every chunk the ring receives.
pub fn follow(
    first: Bytes,
    rx: broadcast::Receiver<Bytes>,
    stopped: watch::Receiver<bool>,
    client: Option<Client>,
) -> Reply {
    let head = (!first.is_empty()).then_some(first);
    body_of(OCTETS, head, rx, stopped, client, Some)
}

/// Every state event from now on, one JSON object per line.
pub fn events(
    rx: broadcast::Receiver<StateEvent>,
    stopped: watch::Receiver<bool>,
    client: Option<Client>,
) -> Reply {
    body_of(NDJSON, None, rx, stopped, client, |event: StateEvent| {
        let mut line = serde_json::to_vec(&event).ok()?;
        line.push(b'\n');
        Some(Bytes::from(line))
    })
}

/// A streamed 200 answer: `head`, then `encode(item)` for every item received.
fn body_of<T: Clone + Send + 'static>(
    content_type: &'static str,
    head: Option<Bytes>,
    rx: broadcast::Receiver<T>,
    stopped: watch::Receiver<bool>,
    client: Option<Client>,
    encode: fn(T) -> Option<Bytes>,
) -> Reply {
    let head = stream::iter(head.map(|b| Ok::<_, Infallible>(Frame::data(b))));
    let rest = stream::unfold((rx, stopped), move |(mut rx, mut stopped)| async move {
        let data = next_item(&mut rx, &mut stopped, client, encode).await?;
        Some((Ok(Frame::data(data)), (rx, stopped)))
    });
    let body = StreamBody::new(head.chain(rest));
    reply::with_body(StatusCode::OK, content_type, body.boxed_unsync())
}

/// The next encoded item, or `None` when the stream is over.
async fn next_item<T: Clone>(
    rx: &mut broadcast::Receiver<T>,
    stopped: &mut watch::Receiver<bool>,
    client: Option<Client>,
    encode: fn(T) -> Option<Bytes>,
) -> Option<Bytes> {
    loop {
        if *stopped.borrow() {
            return None;
        }
        tokio::select! {
            item = rx.recv() => match item {
                Ok(item) => {
                    if let Some(data) = encode(item) {
                        return Some(data);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a streaming client is too slow; it skips what it missed");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            changed = stopped.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            () = tokio::time::sleep(HANGUP_CHECK), if client.is_some() => {
                if client.is_some_and(Client::gone) {
                    tracing::debug!("a streaming client hung up");
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn follow_ends_when_the_broadcast_closes() {
        let (tx, rx) = broadcast::channel(8);
        let (_stop, stopped) = watch::channel(false);
        let res = follow(Bytes::from_static(b"kept\n"), rx, stopped, None);
        tx.send(Bytes::from_static(b"new\n"))
            .expect("a receiver exists");
        drop(tx);
        let body = res
            .into_body()
            .collect()
            .await
            .expect("infallible")
            .to_bytes();
        assert_eq!(body, Bytes::from_static(b"kept\nnew\n"));
    }

    #[tokio::test]
    async fn events_end_when_the_api_closes() {
        let (tx, rx) = broadcast::channel(8);
        let (stop, stopped) = watch::channel(false);
        let mut body = events(rx, stopped, None).into_body();
        let event = StateEvent {
            ready: None,
            detail: None,
            name: "web".into(),
            from: nsvisor_proto::State::Starting,
            to: nsvisor_proto::State::Running,
            pid: Some(42),
            exit_status: None,
            time_ms: 1,
        };
        tx.send(event.clone()).expect("a receiver exists");
        let line = body
            .frame()
            .await
            .expect("a frame")
            .expect("infallible")
            .into_data()
            .expect("data");
        let mut want = serde_json::to_vec(&event).expect("serialisable");
        want.push(b'\n');
        assert_eq!(line, Bytes::from(want), "one JSON line per event");

        // The broadcast stays open (`tx` lives): only the API closing ends the body.
        stop.send(true).expect("a receiver exists");
        let end = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
            .await
            .expect("the body ends once the API closes");
        assert!(end.is_none(), "no frame after the close: {end:?}");
        drop(tx);
    }
}
