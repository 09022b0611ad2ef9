//! HTTP ↔ supervisor commands: the table of endpoints and what each one asks.
//!
//! A request is parsed into a [`Route`] and its [`Query`] (both defined in
//! `nsvisor_proto`, where `nsvisorctl` builds them from the same definition),
//! the client's access level checked against the route's (a read-only client
//! gets 403 for anything else), its method checked against the route's one, then answered by one small function that asks the supervisor
//! through the [`Handle`] and turns the reply into JSON (or a stream). Every
//! failure becomes an `ApiError` answer: unknown path 404, wrong method 405,
//! bad query or body 400, body over [`MAX_BODY`] 413. Nothing here can panic
//! on client input. Called by `server.rs` for every allowed request.

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, StatusCode};
use nix::sys::signal::Signal;
use nsvisor_proto::{
    ApiError, ErrorKind, HttpMethod, Level, Param, Query, Route, StreamKind, Verb,
};
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};

use super::reply::{self, Reply};
use super::xmlrpc::{self, Rpc};
use super::{exec, metrics, peer, stream};
use crate::logs::ring;
use crate::supervisor::handle::{Action, Handle};

/// Largest request body accepted (bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a request handler needs: the way to the supervisor and the signal
/// that the API is closing (ends streams).
#[derive(Debug, Clone)]
pub struct Api {
    /// Supervisor handle.
    pub handle: Handle,
    /// supervisord's XML-RPC front end (`/RPC2`, `/logtail`).
    pub rpc: Arc<Rpc>,
    /// Becomes true when the API closes.
    pub stopped: watch::Receiver<bool>,
    /// Connection slots (free ones are not in use).
    pub slots: Arc<Semaphore>,
    /// How many slots there are.
    pub max_connections: usize,
}

impl Api {
    /// What the API itself is doing, for `/metrics`.
    fn stats(&self) -> metrics::ApiStats {
        metrics::ApiStats {
            connections: self
                .max_connections
                .saturating_sub(self.slots.available_permits()),
            event_followers: self.handle.events.receiver_count(),
        }
    }
}

/// The hyper method of a route's method.
fn http_method(route: &Route) -> Method {
    match route.method() {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
    }
}

/// Answers one request of a client granted `level` (never fails: errors
/// become error answers).
pub async fn handle(
    api: Arc<Api>,
    level: Level,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    if xmlrpc::owns_path(req.uri().path()) {
        let auth = api.rpc.socket_auth();
        return Ok(api.rpc.serve(req, auth, level, api.stopped.clone()).await);
    }
    Ok(dispatch(&api, level, req)
        .await
        .unwrap_or_else(|e| reply::error(&e)))
}

async fn dispatch(api: &Api, level: Level, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let client = stream::Client::of_request(&req);
    let (parts, body) = req.into_parts();
    let route = Route::parse(parts.uri.path())?;
    let method = http_method(&route);
    if route.level() > level {
        return Err(ApiError::new(
            ErrorKind::PermissionDenied,
            peer::too_low(&format!("{method} {}", parts.uri.path()), route.level()),
        ));
    }
    if parts.method != method {
        let mut res = reply::fail(
            ErrorKind::MethodNotAllowed,
            format!(
                "{} is not allowed on {}; use {method}",
                parts.method,
                parts.uri.path()
            ),
        );
        if let Ok(allow) = HeaderValue::try_from(method.as_str()) {
            res.headers_mut().insert(ALLOW, allow);
        }
        return Ok(res);
    }
    let query = Query::parse(parts.uri.query(), route.params())?;
    let body = if method == Method::POST {
        read_body(body).await?
    } else {
        Bytes::new()
    };
    let h = &api.handle;
    match route {
        Route::Programs => {
            let mut data = h.list_json().await?;
            data.push(b'\n');
            Ok(reply::json_bytes(StatusCode::OK, data))
        }
        Route::Program(name) => {
            let info = h.list().await?.into_iter().find(|p| p.name == name);
            let info = info.ok_or_else(|| no_such_program(&name))?;
            Ok(reply::json(StatusCode::OK, &info))
        }
        Route::Act(target, verb) => {
            let action: Action = verb.try_map_signal(|()| parse_signal_body(&body))?;
            // A signal is sent and answered at once: there is no outcome to wait for.
            let wait = match verb {
                Verb::Signal(()) => false,
                _ => query.flag(Param::Wait, true)?,
            };
            Ok(reply::json(
                StatusCode::OK,
                &h.act(action, &target, wait).await?,
            ))
        }
        Route::Logs(name, which) => logs(api, &name, which, &query, client).await,
        Route::Exec(name) => exec::exec(h, &name, &body).await,
        Route::ExecSignal(id) => exec::signal(h, id, &body).await,
        Route::Reload => Ok(reply::json(StatusCode::OK, &h.reload().await?)),
        Route::Shutdown => {
            h.shutdown().await?;
            Ok(reply::json(StatusCode::ACCEPTED, &serde_json::json!({})))
        }
        Route::Events => Ok(stream::events(h.events(), api.stopped.clone(), client)),
        Route::Health => {
            let health = h.health().await?;
            let status = if health.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Ok(reply::json(status, &health))
        }
        Route::Metrics => {
            let text = metrics::render(&h.list().await?, &h.stats().await?, &api.stats())?;
            reply::trim_if_large(text.len());
            Ok(reply::with_body(
                StatusCode::OK,
                metrics::CONTENT_TYPE,
                reply::full(text),
            ))
        }
    }
}

fn no_such_program(name: &str) -> ApiError {
    ApiError::new(ErrorKind::NotFound, format!("no such program: \"{name}\""))
}

/// Reads a request body of at most [`MAX_BODY`] bytes, within [`BODY_TIMEOUT`].
pub(super) async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            format!("request body is larger than {MAX_BODY} bytes"),
        )
    };
    if body.size_hint().lower() > MAX_BODY as u64 {
        return Err(too_large());
    }
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect());
    match read.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(
            ErrorKind::BadRequest,
            format!("cannot read the request body: {e}"),
        )),
        Err(_) => Err(ApiError::new(
            ErrorKind::BadRequest,
            format!("request body not received within {BODY_TIMEOUT:?}"),
        )),
    }
}

/// `{"signal": "HUP" | "SIGHUP" | 1 | "1"}`.
pub(super) fn parse_signal_body(body: &[u8]) -> Result<Signal, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct SignalBody {
        signal: serde_json::Value,
    }
    let bad = |m: String| ApiError::new(ErrorKind::BadRequest, m);
    let parsed: SignalBody = serde_json::from_slice(body)
        .map_err(|e| bad(format!("body must be {{\"signal\": \"NAME\"}}: {e}")))?;
    match parsed.signal {
        serde_json::Value::String(s) => {
            parse_signal(&s).ok_or_else(|| bad(format!("unknown signal {s:?}")))
        }
        serde_json::Value::Number(n) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .and_then(|n| Signal::try_from(n).ok())
            .ok_or_else(|| bad(format!("unknown signal number {n}"))),
        other => Err(bad(format!(
            "signal must be a name or a number, not {other}"
        ))),
    }
}

/// `HUP`, `SIGHUP`, `hup` or `1`.
pub fn parse_signal(s: &str) -> Option<Signal> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).ok()
}

/// `GET /v1/programs/{name}/logs/{stream}`: the tail, then (with follow) a
/// stream of new output until the program's stream ends or the client leaves.
async fn logs(
    api: &Api,
    name: &str,
    which: StreamKind,
    query: &Query,
    client: Option<stream::Client>,
) -> Result<Reply, ApiError> {
    let lines = query.number(Param::Lines)?;
    let bytes = query.number(Param::Bytes)?;
    if lines.is_some() && bytes.is_some() {
        return Err(ApiError::new(
            ErrorKind::BadRequest,
            "give lines or bytes, not both",
        ));
    }
    let follow = query.flag(Param::Follow, false)?;
    let ring = api.handle.tail(name, which).await?;
    let cut = |kept: Vec<u8>| -> Vec<u8> {
        match (lines, bytes) {
            (Some(n), _) => ring::last_lines(&kept, n).to_vec(),
            (_, Some(n)) => kept[kept.len().saturating_sub(n)..].to_vec(),
            _ => kept,
        }
    };
    if !follow {
        let (kept, _) = ring.snapshot(usize::MAX);
        return Ok(reply::with_body(
            StatusCode::OK,
            stream::OCTETS,
            reply::full(cut(kept)),
        ));
    }
    let (kept, rx) = ring.follow();
    // Only the receiver is kept: holding the ring would keep its stream open.
    drop(ring);
    Ok(stream::follow(
        Bytes::from(cut(kept)),
        rx,
        api.stopped.clone(),
        client,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("HUP"), Some(Signal::SIGHUP));
        assert_eq!(parse_signal("sigusr1"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("9"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("NOPE"), None);
        assert_eq!(
            parse_signal_body(br#"{"signal":15}"#).ok(),
            Some(Signal::SIGTERM)
        );
        assert!(parse_signal_body(br#"{"signal":"HUP","x":1}"#).is_err());
        assert!(parse_signal_body(b"not json").is_err());
    }
}
