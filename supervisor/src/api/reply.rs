//! Building answers: the response body type, JSON answers and error answers.
//!
//! Every error leaves the API as `{"error":{"kind","message"}}` with the status
//! of its `ErrorKind` (`nsvisor_proto::ErrorBody`); nothing else builds error
//! responses. Used by `routes.rs`, `stream.rs` and `server.rs`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use nsvisor_proto::{ApiError, ErrorBody, ErrorKind};
use serde::Serialize;

/// The body of every answer: a whole buffer or a stream.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// An answer.
pub type Reply = Response<Body>;

/// `application/json`.
pub const JSON: &str = "application/json";

/// A whole-buffer body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed_unsync()
}

/// An answer with this status, content type and body.
pub fn with_body(status: StatusCode, content_type: &'static str, body: Body) -> Reply {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}

/// An answer at least this large is followed by a trim of the heap.
const LARGE_ANSWER: usize = 64 << 10;

/// A JSON answer. After a large one (the programs of a big config), the
/// memory it took is given back to the kernel once it has been sent.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(mut data) => {
            data.push(b'\n');
            json_bytes(status, data)
        }
        Err(e) => error(&ApiError::new(
            ErrorKind::Failed,
            format!("cannot encode the answer: {e}"),
        )),
    }
}

/// A JSON answer already encoded (ending in a newline), with the same heap
/// trim after a large one as [`json`].
pub fn json_bytes(status: StatusCode, data: Vec<u8>) -> Reply {
    trim_if_large(data.len());
    with_body(status, JSON, full(data))
}

/// After an answer of `len` bytes, if large: trims the heap once the
/// answer has been written and freed (and the program list behind it).
/// Large answers in quick succession (a client polling `status`) share one
/// trim, made when they have stopped for [`TRIM_QUIET`]: a trim walks the
/// whole heap, which costs more than the answer itself at 10,000 programs.
pub fn trim_if_large(len: usize) {
    static PENDING: AtomicBool = AtomicBool::new(false);
    static LAST: AtomicU64 = AtomicU64::new(0);
    if len < LARGE_ANSWER {
        return;
    }
    let epoch = *EPOCH.get_or_init(Instant::now);
    let millis = move |t: Instant| t.duration_since(epoch).as_millis() as u64;
    LAST.store(millis(Instant::now()), Ordering::Release);
    if PENDING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::spawn(async move {
        let quiet = TRIM_QUIET.as_millis() as u64;
        loop {
            tokio::time::sleep(TRIM_QUIET).await;
            if millis(Instant::now()).saturating_sub(LAST.load(Ordering::Acquire)) >= quiet {
                break;
            }
        }
        PENDING.store(false, Ordering::Release);
        crate::sys::release_free_heap();
    });
}

/// How long large answers must have stopped before the heap is trimmed.
const TRIM_QUIET: Duration = Duration::from_millis(300);

/// The origin of [`trim_if_large`]'s clock.
static EPOCH: OnceLock<Instant> = OnceLock::new();

/// The answer for an API error.
pub fn error(err: &ApiError) -> Reply {
    let status =
        StatusCode::from_u16(err.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = ErrorBody { error: err.clone() };
    let mut data = serde_json::to_vec(&body).unwrap_or_default();
    data.push(b'\n');
    with_body(status, JSON, full(data))
}

/// Shorthand for an error answer of a kind.
pub fn fail(kind: ErrorKind, message: impl Into<String>) -> Reply {
    error(&ApiError::new(kind, message))
}
