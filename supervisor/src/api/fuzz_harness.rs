//! The control API driven by raw bytes, for the `http_api` fuzz target
//! (`fuzz/`, cargo feature `fuzzing`; never in a normal build).
//!
//! Each input is everything one client sends on one connection. It goes to
//! the real connection handler (`server::connection`: peer check, hyper's
//! HTTP/1.1 with the daemon's limits, the routes, the JSON bodies and the
//! XML-RPC front end) over a socketpair, against the fake supervisor of the
//! unit tests (`fake.rs`), so no request can start, stop or exec anything.
//!
//! After the input the client sends one more request of its own, with
//! `Connection: close` ([`LAST`]), and keeps its side open like a real client
//! (hyper drops a request in flight when the client half-closes). When the
//! input ends in whole requests, the server closes after answering them and
//! [`LAST`]. Otherwise (an unfinished request swallows [`LAST`], a streaming
//! answer, a call waiting for a state change the fake never makes) the server
//! goes quiet: a streaming answer is ended at once by closing the API, as
//! the daemon's shutdown does; after [`IDLE`] of silence the client also
//! half-closes, and after another [`IDLE`] it gives up on the connection, as
//! the daemon drops connections that outlive its close grace. (On a busy
//! machine a slow answer may be cut short that way: a lost input, never a
//! false failure.)

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::runtime::Runtime;
use tokio::sync::{watch, Semaphore};

use super::fake::{fake, Fake};
use super::peer::Access;
use super::routes::Api;
use super::server::{connection, Limits};
use super::xmlrpc::{Rpc, Setup};
use crate::config::SupervisorConfig;

/// Silence from the server after which the client stops waiting for more.
pub const IDLE: Duration = Duration::from_millis(50);

/// The client's own last request: its answer ends the connection.
pub const LAST: &[u8] = b"GET /v1/health HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n\r\n";

/// A runtime with the fake supervisor running in it, serving one input at a time.
pub struct HttpHarness {
    runtime: Runtime,
    fake: Fake,
    /// The XML-RPC front end, one for every input as the daemon has one.
    rpc: Arc<Rpc>,
    /// Silence after which the client stops waiting ([`IDLE`] when fuzzing).
    idle: Duration,
}

impl HttpHarness {
    /// Starts the runtime and the fake supervisor, and checks that a plain
    /// request gets through to the routes (a harness that only ever got
    /// errors would fuzz nothing).
    pub fn new() -> HttpHarness {
        HttpHarness::with_idle(IDLE)
    }

    /// [`HttpHarness::new`], waiting `idle` instead of [`IDLE`] for the
    /// server to say more (tests, on a busy machine).
    pub fn with_idle(idle: Duration) -> HttpHarness {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let (fake, rpc) = runtime.block_on(async {
            let fake = fake();
            let rpc = Rpc::new(fake.handle.clone(), Setup::default());
            (fake, rpc)
        });
        // The check must not fail because the machine is busy.
        let mut harness = HttpHarness {
            runtime,
            fake,
            rpc,
            idle: Duration::from_secs(10),
        };
        let answer = harness.serve(b"GET /v1/programs HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            answer.starts_with(b"HTTP/1.1 200 "),
            "the harness does not reach the routes: {:?}",
            String::from_utf8_lossy(&answer)
        );
        harness.idle = idle;
        harness
    }

    /// Sends `request` as one client's whole input and returns every byte
    /// the server answered.
    pub fn serve(&self, request: &[u8]) -> Vec<u8> {
        self.runtime.block_on(self.serve_async(request))
    }

    async fn serve_async(&self, request: &[u8]) -> Vec<u8> {
        let (client, server) = UnixStream::pair().expect("a socketpair");
        let (stop, stopped) = watch::channel(false);
        let slots = Arc::new(Semaphore::new(1));
        let slot = slots.clone().try_acquire_owned().expect("a free slot");
        let api = Arc::new(Api {
            handle: self.fake.handle.clone(),
            rpc: self.rpc.clone(),
            stopped: stopped.clone(),
            slots,
            max_connections: 1,
        });
        let access = Access::from_config(&SupervisorConfig::default());
        let conn = tokio::spawn(connection(
            server,
            access,
            api,
            stopped,
            Limits::default(),
            slot,
            Arc::default(),
        ));
        let (mut rx, mut tx) = client.into_split();
        let mut sent = request.to_vec();
        sent.extend_from_slice(LAST);
        let (half_close, mut half_closed) = watch::channel(false);
        // A server that stops reading must not block the reader below.
        let writer = tokio::spawn(async move {
            tokio::select! {
                // The server may answer and close before it has read everything.
                _ = tx.write_all(&sent) => {}
                _ = half_closed.wait_for(|c| *c) => {}
            }
            let _ = half_closed.wait_for(|c| *c).await;
            let _ = tx.shutdown().await;
        });
        let mut answer = Vec::new();
        let mut buf = vec![0; 16 * 1024];
        let mut quiet = 0;
        loop {
            match tokio::time::timeout(self.idle, rx.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    answer.extend_from_slice(&buf[..n]);
                    if is_streaming(&answer) {
                        let _ = stop.send(true);
                    }
                }
                Err(_) if quiet == 0 => {
                    quiet += 1;
                    let _ = stop.send(true);
                    let _ = half_close.send(true);
                }
                Err(_) => break,
            }
        }
        writer.abort();
        conn.abort();
        for task in [writer, conn] {
            if let Err(e) = task.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
        answer
    }
}

impl Default for HttpHarness {
    fn default() -> Self {
        HttpHarness::new()
    }
}

/// The answer so far has the head of a chunked (streaming) response.
fn is_streaming(answer: &[u8]) -> bool {
    let Some(end) = memchr::memmem::find(answer, b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    head.contains("transfer-encoding: chunked")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(h: &HttpHarness, request: &str) -> String {
        String::from_utf8_lossy(&h.serve(request.as_bytes())).into_owned()
    }

    #[test]
    fn answers_requests_and_ends_streams_and_waits() {
        let h = HttpHarness::with_idle(Duration::from_secs(2));
        let a = serve(&h, "GET /v1/programs/web HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(
            a.starts_with("HTTP/1.1 200 ") && a.contains("\"name\":\"web\""),
            "{a}"
        );
        let a = serve(
            &h,
            "GET /v1/programs/web/logs/stdout?follow=1 HTTP/1.1\r\n\r\n",
        );
        assert!(a.starts_with("HTTP/1.1 200 "), "{a}");
        let body = "<methodCall><methodName>supervisor.startProcess</methodName><params>\
                    <param><value>broken</value></param></params></methodCall>";
        let waited = format!(
            "POST /RPC2 HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        // The fake never reports the start's outcome: the call is dropped.
        assert_eq!(serve(&h, &waited), "");
        // A body shorter than announced swallows the last request.
        let a = serve(
            &h,
            "GET /v1/health HTTP/1.1\r\nContent-Length: 1000\r\n\r\nshort",
        );
        assert_eq!(a.matches("HTTP/1.1 200 ").count(), 1, "{a}");
        let a = serve(&h, "GARBAGE\r\n\r\n");
        assert!(a.starts_with("HTTP/1.1 400 "), "{a}");
    }
}
