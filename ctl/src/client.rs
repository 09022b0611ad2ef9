//! Talking to the daemon: HTTP/1.1 over its unix socket, one connection per call.
//!
//! Owns the socket path rule (`-s`, then `NSVISOR_SOCKET`, then the daemon's
//! own default rule) and the mapping of transport and API failures onto
//! [`CtlError`], whose messages say what to check. Callers in `commands.rs`
//! name a [`Route`] and its [`Query`] (from `nsvisor_proto`, the definition the
//! daemon parses with), which give the path and the method; they get decoded
//! JSON, or a streamed body for `tail -f` and `events`.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use nsvisor_proto::{ApiError, ErrorBody, ErrorKind, HttpMethod, Query, Route};
use serde::de::{Deserialize, DeserializeOwned};
use tokio::net::UnixStream;

/// What can go wrong talking to the daemon.
#[derive(Debug)]
pub enum CtlError {
    /// Nothing answers on the socket.
    Unreachable {
        /// Socket path.
        socket: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The daemon answered with an error.
    Api(ApiError),
    /// The daemon stopped (or began to) while a command followed its output.
    Stopped {
        /// Socket path.
        socket: PathBuf,
        /// What was being followed, e.g. `"web"'s stdout`.
        following: String,
    },
    /// The answer could not be understood.
    Protocol {
        /// Socket path.
        socket: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// The most room reserved up front for an answer, whatever size it announces.
const MAX_PRESIZE: u64 = 64 << 20;

impl std::fmt::Display for CtlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CtlError::Unreachable { socket, source } => {
                let socket = socket.display();
                let hint = match source.kind() {
                    std::io::ErrorKind::NotFound => {
                        "no socket there: is nsvisor running, and does its [supervisor] socket match \
                         (-s/--socket or NSVISOR_SOCKET)?"
                    }
                    std::io::ErrorKind::ConnectionRefused => {
                        "nothing listens there: the daemon is not running (the file is left from an earlier run)"
                    }
                    std::io::ErrorKind::PermissionDenied => {
                        "this user may not open the socket: check [supervisor] socket_mode and socket_owner, \
                         or run as a user that may"
                    }
                    _ => "is nsvisor running, and is this its socket (-s/--socket or NSVISOR_SOCKET)?",
                };
                write!(
                    f,
                    "cannot reach the nsvisor daemon at {socket}: {source}\n  {hint}"
                )
            }
            CtlError::Api(e) => f.write_str(&e.message),
            CtlError::Stopped { socket, following } => write!(
                f,
                "the nsvisor daemon at {} stopped while following {following}",
                socket.display()
            ),
            CtlError::Protocol { socket, message } => {
                write!(f, "unexpected answer from {}: {message}", socket.display())
            }
        }
    }
}

impl std::error::Error for CtlError {}

/// The socket to use: `-s`, else `$NSVISOR_SOCKET`, else the default rule.
pub fn socket_path(flag: Option<PathBuf>) -> PathBuf {
    if let Some(path) = flag {
        return path;
    }
    if let Some(env) = std::env::var_os("NSVISOR_SOCKET").filter(|v| !v.is_empty()) {
        return PathBuf::from(env);
    }
    let xdg = std::env::var("XDG_RUNTIME_DIR").ok();
    let uid = nix::unistd::getuid().as_raw();
    PathBuf::from(nsvisor_proto::default_socket_path(uid, xdg.as_deref()))
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the daemon at `socket`.
    pub fn new(socket: PathBuf) -> Client {
        Client { socket }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends one request to `route` with `query`; any status comes back as it is.
    pub async fn send(
        &self,
        route: &Route,
        query: &Query,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, CtlError> {
        let path = route.uri(query);
        let method = match route.method() {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
        };
        let unreachable = |source| CtlError::Unreachable {
            socket: self.socket.clone(),
            source,
        };
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(unreachable)?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(format!("handshake: {e}")))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(&path)
            .header("host", "localhost");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| self.protocol(format!("bad request {path}: {e}")))?;
        sender.send_request(req).await.map_err(|e| {
            // A daemon that closes without answering is as good as gone.
            CtlError::Unreachable {
                socket: self.socket.clone(),
                source: std::io::Error::new(std::io::ErrorKind::ConnectionReset, e.to_string()),
            }
        })
    }

    /// Sends a request and decodes a JSON answer; error answers become
    /// [`CtlError::Api`]. `also_ok` lists non-2xx statuses whose body is still
    /// the answer (health's 503).
    pub async fn call<T: DeserializeOwned>(
        &self,
        route: &Route,
        query: &Query,
        body: Option<Vec<u8>>,
        also_ok: &[u16],
    ) -> Result<T, CtlError> {
        let res = self.send(route, query, body).await?;
        let status = res.status();
        let data = self.read_all(res).await?;
        if status.is_success() {
            return self.decode(route, query, &data);
        }
        if also_ok.contains(&status.as_u16()) {
            if let Ok(answer) = serde_json::from_slice(&data) {
                return Ok(answer);
            }
        }
        Err(self.api_error(status.as_u16(), &data))
    }

    /// The body of a successful answer to a GET, still encoded: for an
    /// answer decoded into types that borrow from it ([`Self::decode`]).
    pub async fn fetch(&self, route: &Route, query: &Query) -> Result<Bytes, CtlError> {
        let res = self.send(route, query, None).await?;
        let status = res.status();
        let data = self.read_all(res).await?;
        if status.is_success() {
            return Ok(data);
        }
        Err(self.api_error(status.as_u16(), &data))
    }

    /// Decodes the JSON answer `data` to `route`.
    pub fn decode<'de, T: Deserialize<'de>>(
        &self,
        route: &Route,
        query: &Query,
        data: &'de [u8],
    ) -> Result<T, CtlError> {
        serde_json::from_slice(data)
            .map_err(|e| self.protocol(format!("{}: {e}", route.uri(query))))
    }

    /// The whole body of an answer, gathered into one buffer of the size
    /// the answer announces (a `status` of 10,000 programs is 2.3 MB), each
    /// piece freed once copied.
    pub async fn read_all(&self, res: Response<Incoming>) -> Result<Bytes, CtlError> {
        let mut body = res.into_body();
        let announced = body.size_hint().exact().unwrap_or(0);
        let mut data =
            BytesMut::with_capacity(usize::try_from(announced.min(MAX_PRESIZE)).unwrap_or(0));
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| self.protocol(format!("reading the answer: {e}")))?;
            if let Ok(piece) = frame.into_data() {
                data.extend_from_slice(&piece);
            }
        }
        Ok(data.freeze())
    }

    /// The error an error answer carries (or one made up from its status).
    pub fn api_error(&self, status: u16, data: &[u8]) -> CtlError {
        match serde_json::from_slice::<ErrorBody>(data) {
            Ok(body) => CtlError::Api(body.error),
            Err(_) => CtlError::Api(ApiError::new(
                kind_of_status(status),
                format!(
                    "the daemon answered {status}: {}",
                    String::from_utf8_lossy(data).trim()
                ),
            )),
        }
    }

    fn protocol(&self, message: String) -> CtlError {
        CtlError::Protocol {
            socket: self.socket.clone(),
            message,
        }
    }
}

fn kind_of_status(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::WrongState,
        403 => ErrorKind::PermissionDenied,
        413 => ErrorKind::PayloadTooLarge,
        400 => ErrorKind::BadRequest,
        405 => ErrorKind::MethodNotAllowed,
        422 => ErrorKind::InvalidConfig,
        503 => ErrorKind::ShuttingDown,
        _ => ErrorKind::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_message_names_the_socket_and_what_to_check() {
        let e = CtlError::Unreachable {
            socket: PathBuf::from("/run/x.sock"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        let m = e.to_string();
        assert!(
            m.starts_with("cannot reach the nsvisor daemon at /run/x.sock"),
            "{m}"
        );
        assert!(m.contains("NSVISOR_SOCKET"), "{m}");
    }
}
