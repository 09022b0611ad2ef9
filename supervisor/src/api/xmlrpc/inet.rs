//! supervisord's `[inet_http_server]`: the same XML-RPC (and `/logtail`) over
//! TCP, only when configured. The JSON API is never served here: it stays on
//! the unix socket, behind its peer-credential check. HTTP basic auth is the
//! gate on TCP; a listener without credentials is refused at load unless it
//! is bound to a loopback address (see `config/supervisor.rs`). Started by
//! `api::serve_with`, stopped with the control API.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use nsvisor_proto::Level;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{owns_path, plain, Rpc};
use crate::config::InetHttpServer;

/// `PORT`, `HOST:PORT`, `*:PORT` or `:PORT` → what to bind (no host, `*`:
/// every address, as supervisord does).
pub fn bind_target(port: &str) -> (String, u16) {
    let (host, port) = match port.rsplit_once(':') {
        Some((host, port)) => (host.trim_matches(['[', ']']), port),
        None => ("", port),
    };
    let host = match host {
        "" | "*" => "0.0.0.0",
        h => h,
    };
    (host.to_string(), port.trim().parse().unwrap_or(0))
}

/// Binds the listener.
pub async fn bind(cfg: &InetHttpServer) -> std::io::Result<(TcpListener, SocketAddr)> {
    let (host, port) = bind_target(&cfg.port);
    let listener = TcpListener::bind((host.as_str(), port)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves XML-RPC on `listener` until `stopped` turns true.
pub async fn serve(
    listener: TcpListener,
    rpc: Arc<Rpc>,
    cfg: InetHttpServer,
    mut stopped: watch::Receiver<bool>,
) {
    let auth = Arc::new(cfg.auth);
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("inet_http_server: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = super::super::server::until_stopped(&mut stopped) => break,
        };
        let (rpc, auth, stop) = (rpc.clone(), auth.clone(), stopped.clone());
        conns.spawn(async move {
            let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let (rpc, auth, stop) = (rpc.clone(), auth.clone(), stop.clone());
                async move {
                    let answer = if owns_path(req.uri().path()) {
                        rpc.serve(req, auth.as_ref().as_ref(), Level::Control, stop).await
                    } else {
                        plain(
                            StatusCode::NOT_FOUND,
                            "only XML-RPC (/RPC2) is served over TCP; the JSON API is on the unix socket\n",
                        )
                    };
                    Ok::<_, Infallible>(answer)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("inet_http_server: connection ended: {e}");
            }
        });
    }
    conns.abort_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_like_supervisord() {
        assert_eq!(bind_target("9001"), ("0.0.0.0".into(), 9001));
        assert_eq!(bind_target("*:9001"), ("0.0.0.0".into(), 9001));
        assert_eq!(bind_target(":9001"), ("0.0.0.0".into(), 9001));
        assert_eq!(bind_target("127.0.0.1:9001"), ("127.0.0.1".into(), 9001));
        assert_eq!(bind_target("[::1]:9001"), ("::1".into(), 9001));
        assert_eq!(bind_target("localhost:9001"), ("localhost".into(), 9001));
    }
}
