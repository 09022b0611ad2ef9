//! Control API: HTTP/1.1 + JSON on a unix socket (DESIGN §5, `docs/api.md`).
//!
//! [`serve`] binds the socket ([`socket`]: stale-socket replacement, mode,
//! owner), then runs the accept loop ([`server`]): every connection's peer
//! credentials are checked ([`peer`]) before hyper serves it, and each request
//! is turned into a supervisor [`Command`](crate::supervisor::handle::Command)
//! by [`routes`] (paths and queries parsed with `nsvisor_proto`'s `Route` and
//! `Query`, the definition `nsvisorctl` builds with) through the [`Handle`]. Streaming answers (`tail -f`, events)
//! live in [`stream`], Prometheus text in [`metrics`]. supervisord's XML-RPC
//! (`/RPC2`, `/logtail`) is answered by [`xmlrpc`] on the same socket, and
//! over TCP only when `[inet_http_server]` is configured.
//!
//! Invariants: the supervisor never waits on a client (requests go through the
//! Handle's channel with oneshot replies; streams read broadcast receivers, so a
//! slow client lags and loses data rather than slowing anyone); a misbehaving
//! client gets an error answer or is dropped, it never stops the loop; there is
//! no TCP listener for the JSON API. Called once by `lib.rs::run`; the returned [`ApiServer`]
//! removes the socket file when closed or dropped.

mod exec;
#[cfg(any(test, feature = "fuzzing"))]
mod fake;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzz_harness;
mod metrics;
mod peer;
pub mod probes;
mod refuse;
mod reply;
mod routes;
mod server;
mod socket;
mod stream;
#[cfg(test)]
mod tests;
pub mod xmlrpc;

use std::path::{Path, PathBuf};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::SupervisorConfig;
use crate::supervisor::handle::Handle;

pub use peer::Access;
pub use server::Limits;
pub use socket::{instance_socket_path, socket_path};

/// Why the control API could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A live daemon answers on the socket path.
    #[error(
        "control socket {path}: another nsvisor is already running and answering on it; \
         stop it first, or set a different [supervisor] socket"
    )]
    AlreadyRunning {
        /// Socket path.
        path: PathBuf,
    },
    /// Something that is not a socket is in the way.
    #[error("control socket {path}: the path exists and is not a socket; remove it or set a different [supervisor] socket")]
    NotASocket {
        /// Socket path.
        path: PathBuf,
    },
    /// The existing socket could not be checked.
    #[error("control socket {path}: cannot check the existing socket: {source}")]
    Probe {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A stale socket could not be removed.
    #[error(
        "control socket {path}: cannot remove the stale socket left by a previous run: {source}"
    )]
    RemoveStale {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The default socket's directory (`/run` in a minimal image) could not be made.
    #[error("control socket {path}: cannot create its directory: {source}")]
    CreateDir {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// bind(2) failed.
    #[error("control socket {path}: cannot listen: {source}")]
    Bind {
        /// Socket path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The name was replaced right after binding (by someone who can write
    /// the socket's directory).
    #[error("control socket {path}: replaced by {what} right after it was created; not touched")]
    Replaced {
        /// Socket path.
        path: PathBuf,
        /// What is there now.
        what: String,
    },
    /// chmod failed.
    #[error("control socket {path}: cannot set mode {mode:04o}: {source}")]
    Chmod {
        /// Socket path.
        path: PathBuf,
        /// Mode asked for.
        mode: u32,
        /// Cause.
        source: std::io::Error,
    },
    /// `socket_owner` names a user or group that does not exist.
    #[error("control socket {path}: socket_owner {owner:?}: {what}")]
    Owner {
        /// Socket path.
        path: PathBuf,
        /// `socket_owner` as written.
        owner: String,
        /// What is wrong with it.
        what: String,
    },
    /// `[inet_http_server]` could not listen.
    #[error("inet_http_server {port}: cannot listen: {source}")]
    InetBind {
        /// The address as configured.
        port: String,
        /// Cause.
        source: std::io::Error,
    },
    /// chown failed.
    #[error("control socket {path}: cannot change owner to {owner:?}: {source}")]
    Chown {
        /// Socket path.
        path: PathBuf,
        /// `socket_owner` as written.
        owner: String,
        /// Cause.
        source: std::io::Error,
    },
}

impl Error {
    /// True when the path is another process's socket: a live daemon answers
    /// on it, or it was bound between our check and our bind.
    pub fn is_taken(&self) -> bool {
        match self {
            Error::AlreadyRunning { .. } => true,
            Error::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
            _ => false,
        }
    }
}

/// The running control API. Closing it (or dropping it) stops accepting,
/// ends streaming answers and removes the socket file.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    inet: Option<JoinHandle<()>>,
    inet_addr: Option<std::net::SocketAddr>,
    _socket: socket::SocketFile,
}

impl ApiServer {
    /// The socket path the API listens on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The address `[inet_http_server]` listens on, when configured.
    pub fn inet_addr(&self) -> Option<std::net::SocketAddr> {
        self.inet_addr
    }

    /// Stops accepting, lets requests in flight finish (streams end at once),
    /// and removes the socket file.
    pub async fn close(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        if let Some(task) = self.inet.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Binds the control socket (`cfg.socket`, or the default rule of
/// [`nsvisor_proto::default_socket_path`]), applies `socket_mode` and
/// `socket_owner`, and spawns the accept loop on the current tokio runtime;
/// also listens for `[inet_http_server]` when configured. `rpc` says where
/// XML-RPC's `reloadConfig` reads the config from.
pub async fn serve(
    handle: Handle,
    cfg: &SupervisorConfig,
    rpc: xmlrpc::Setup,
) -> Result<ApiServer, Error> {
    serve_with(handle, cfg, Limits::default(), rpc).await
}

/// [`serve`] with other limits than the defaults.
pub async fn serve_with(
    handle: Handle,
    cfg: &SupervisorConfig,
    limits: Limits,
    mut rpc: xmlrpc::Setup,
) -> Result<ApiServer, Error> {
    let path = socket_path(cfg);
    // Bind TCP first: a busy port must not leave a socket file behind.
    let inet = match &cfg.inet_http_server {
        Some(inet) => Some(
            xmlrpc::inet::bind(inet)
                .await
                .map_err(|source| Error::InetBind {
                    port: inet.port.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    if cfg.socket.is_none() {
        socket::create_default_dir(&path)?;
    }
    let (listener, file) =
        socket::bind(&path, cfg.socket_mode, cfg.socket_owner.as_deref()).await?;
    let access = Access::from_config(cfg);
    let (stop, stopped) = watch::channel(false);
    rpc.auth = cfg.socket_auth.clone();
    if rpc.daemon_log.is_none() {
        rpc.daemon_log = cfg.logfile.clone();
    }
    let rpc = xmlrpc::Rpc::new(handle.clone(), rpc);
    let (inet, inet_addr) = match (inet, &cfg.inet_http_server) {
        (Some((listener, addr)), Some(inet_cfg)) => {
            tracing::info!(address = %addr, "inet_http_server: XML-RPC listening");
            let task = tokio::spawn(xmlrpc::inet::serve(
                listener,
                rpc.clone(),
                inet_cfg.clone(),
                stopped.clone(),
            ));
            (Some(task), Some(addr))
        }
        _ => (None, None),
    };
    let task = tokio::spawn(server::accept_loop(
        listener, access, handle, rpc, stopped, limits,
    ));
    tracing::info!(socket = %path.display(), "control API listening");
    Ok(ApiServer {
        path,
        stop,
        task: Some(task),
        inet,
        inet_addr,
        _socket: file,
    })
}
