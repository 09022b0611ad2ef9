//! Answering a client when the daemon is out of file descriptors.
//!
//! An `accept` that fails with EMFILE/ENFILE leaves the client waiting in the
//! listen backlog with no word of why. Instead, the accept loop keeps one
//! spare descriptor ([`Spare`], /dev/null): it gives it up, accepts the
//! client, and takes the spare again. If that works, descriptors were freed
//! meanwhile and the client is served as usual; if not, it reads the
//! client's request head (briefly), answers `503` with kind `unavailable`
//! and the cause, and closes — the classic reserve-descriptor trick. Another
//! thread may take the freed descriptor first; the loop then backs off as
//! before. Used by `server.rs`.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nsvisor_proto::{ApiError, ErrorBody, ErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::sys;

/// How long a refused client may take to send its request head.
const READ_HEAD: Duration = Duration::from_millis(500);

/// The descriptor kept for refusing a client.
#[derive(Debug)]
pub struct Spare(Option<OwnedFd>);

impl Spare {
    /// Opens the spare (best effort: without it, clients wait in the backlog).
    pub fn new() -> Spare {
        Spare(sys::open_dev_null().ok())
    }

    /// Whether `e` (from `accept`) means the process or the system is out of descriptors.
    pub fn is_exhaustion(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }

    /// After `accept` failed with `cause`: frees the spare and accepts one
    /// client (waiting for one up to [`READ_HEAD`]: Linux fails `accept`
    /// with EMFILE even when no client is waiting). If a descriptor can be
    /// taken for the spare again, there is room now: the client is returned,
    /// to be served as usual. Otherwise it is answered `503 unavailable`.
    pub async fn accept_exhausted(
        &mut self,
        listener: &UnixListener,
        cause: &io::Error,
    ) -> Option<UnixStream> {
        if self.0.take().is_none() {
            // No spare to give up: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0 = sys::open_dev_null().ok();
            return None;
        }
        let accepted = tokio::time::timeout(READ_HEAD, listener.accept()).await;
        self.0 = sys::open_dev_null().ok();
        let Ok(Ok((mut stream, _))) = accepted else {
            return None;
        };
        if self.0.is_some() {
            return Some(stream);
        }
        read_head(&mut stream).await;
        let _ = stream.write_all(&answer(cause)).await;
        let _ = stream.shutdown().await;
        drop(stream);
        self.0 = sys::open_dev_null().ok();
        None
    }
}

/// Reads until the end of the request head, EOF, or [`READ_HEAD`], so that
/// closing does not reset a connection whose request is unread.
async fn read_head(stream: &mut UnixStream) {
    let mut buf = [0u8; 1024];
    let mut tail = Vec::new();
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    if memchr::memmem::find(&tail, b"\r\n\r\n").is_some() {
                        return;
                    }
                    let keep = tail.len().saturating_sub(3);
                    tail.drain(..keep);
                }
            }
        }
    };
    let _ = tokio::time::timeout(READ_HEAD, read).await;
}

/// The whole HTTP answer for a refused client.
fn answer(cause: &io::Error) -> Vec<u8> {
    let error = ApiError::new(
        ErrorKind::Unavailable,
        format!(
            "the daemon has run out of file descriptors ({cause}); connections opened \
             before go on working; try again once programs or clients have closed some"
        ),
    );
    let body = serde_json::to_string(&ErrorBody { error }).unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_is_a_503_naming_the_cause() {
        let text = String::from_utf8(answer(&io::Error::from_raw_os_error(libc::EMFILE)))
            .unwrap_or_default();
        assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        let parsed: ErrorBody =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(parsed.error.kind, ErrorKind::Unavailable);
        assert!(
            parsed.error.message.contains("Too many open files"),
            "{}",
            parsed.error.message
        );
    }
}
