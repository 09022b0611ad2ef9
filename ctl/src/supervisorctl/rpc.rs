//! supervisorctl's transport: XML-RPC calls to `/RPC2` and `GET /logtail/…`
//! over a unix socket (`unix:///path`) or TCP (`http://host:port`), with HTTP
//! basic auth when a username is given. One connection per call.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use nsvisor_proto::xmlrpc::{self, FaultAnswer, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// Where the server is.
#[derive(Debug, Clone)]
pub enum Server {
    /// `unix:///path`.
    Unix(PathBuf),
    /// `http://host:port` (host and port).
    Tcp(String, u16),
}

impl Server {
    /// Parses supervisorctl's server URL.
    pub fn parse(url: &str) -> Option<Server> {
        if let Some(path) = url.strip_prefix("unix://") {
            return Some(Server::Unix(PathBuf::from(path)));
        }
        let rest = url.strip_prefix("http://")?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
        Some(match hostport.rsplit_once(':') {
            Some((h, p)) => Server::Tcp(h.trim_matches(['[', ']']).to_string(), p.parse().ok()?),
            None => Server::Tcp(hostport.to_string(), 80),
        })
    }
}

/// Why a call did not answer a value.
#[derive(Debug)]
pub enum CallError {
    /// The server answered with a fault.
    Fault(FaultAnswer),
    /// The server could not be reached.
    Connect(std::io::Error),
    /// The server answered with an HTTP error status.
    Http(u16),
    /// The answer could not be understood, or the connection broke.
    Protocol(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Fault(fault) => write!(f, "<Fault {}: '{}'>", fault.code, fault.text),
            CallError::Connect(e) => write!(f, "{e}"),
            CallError::Http(status) => write!(f, "<ProtocolError: {status}>"),
            CallError::Protocol(m) => f.write_str(m),
        }
    }
}

/// A connection target and credentials.
#[derive(Debug, Clone)]
pub struct Rpc {
    /// Server.
    pub server: Server,
    /// `Authorization` header value, when a username is set.
    pub auth: Option<String>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

impl Rpc {
    async fn connect(&self) -> Result<Box<dyn Io>, CallError> {
        Ok(match &self.server {
            Server::Unix(path) => Box::new(
                UnixStream::connect(path)
                    .await
                    .map_err(CallError::Connect)?,
            ),
            Server::Tcp(host, port) => Box::new(
                TcpStream::connect((host.as_str(), *port))
                    .await
                    .map_err(CallError::Connect)?,
            ),
        })
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<Response<Incoming>, CallError> {
        let io = self.connect().await?;
        let (mut sender, conn) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| CallError::Protocol(e.to_string()))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "text/xml");
        if let Some(auth) = &self.auth {
            req = req.header("authorization", auth);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CallError::Protocol(e.to_string()))?;
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| CallError::Protocol(e.to_string()))?;
        if !res.status().is_success() {
            return Err(CallError::Http(res.status().as_u16()));
        }
        Ok(res)
    }

    /// Calls `supervisor.NAME` (or a full `ns.NAME`) with `params`.
    pub async fn call(&self, method: &str, params: &[Value]) -> Result<Value, CallError> {
        let method = if method.contains('.') {
            method.to_string()
        } else {
            format!("supervisor.{method}")
        };
        let body = xmlrpc::call(&method, params).into_bytes();
        let res = self.request(Method::POST, "/RPC2", body).await?;
        let data = res
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Protocol(e.to_string()))?
            .to_bytes();
        match xmlrpc::parse_response(&data) {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(fault)) => Err(CallError::Fault(fault)),
            Err(e) => Err(CallError::Protocol(e.to_string())),
        }
    }

    /// `GET path`: the streamed body, written to stdout until it ends or
    /// Ctrl-C (then an empty line, as supervisorctl prints).
    pub async fn follow(&self, path: &str) -> Result<(), CallError> {
        tokio::select! {
            done = self.copy_to_stdout(path) => done,
            _ = tokio::signal::ctrl_c() => {
                println!();
                Ok(())
            }
        }
    }

    /// `GET path`: the streamed body, written to stdout until it ends.
    pub async fn copy_to_stdout(&self, path: &str) -> Result<(), CallError> {
        use std::io::Write;
        let res = self.request(Method::GET, path, Vec::new()).await?;
        let mut body = res.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| CallError::Protocol(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(data);
                let _ = out.flush();
            }
        }
        Ok(())
    }
}

/// `Basic base64(user:password)`.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        nsvisor_proto::xmlrpc::base64_encode(format!("{user}:{password}").as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn server_urls() {
        assert!(
            matches!(Server::parse("unix:///run/s.sock"), Some(Server::Unix(p)) if p == Path::new("/run/s.sock"))
        );
        assert!(
            matches!(Server::parse("http://127.0.0.1:9001"), Some(Server::Tcp(h, 9001)) if h == "127.0.0.1")
        );
        assert!(
            matches!(Server::parse("http://localhost"), Some(Server::Tcp(h, 80)) if h == "localhost")
        );
        assert!(Server::parse("ftp://x").is_none());
        assert_eq!(basic_auth("user", "123"), "Basic dXNlcjoxMjM=");
    }
}
