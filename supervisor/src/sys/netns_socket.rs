//! TCP sockets made inside another network namespace, for the checks of
//! sandboxed programs: a socket belongs to the namespace it was created in,
//! so one made there and connected from a tokio task reaches the sandbox's
//! own `127.0.0.1` and addresses.
//!
//! One long-lived thread makes them all: per request it enters the target
//! namespace, creates a non-blocking socket and goes back to the daemon's
//! namespace before taking the next request (it never runs anything else,
//! and it stops for good if it cannot get back). So a thousand sandboxed
//! checks a second cost no thread each, and the connect itself waits in
//! tokio like any other.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

struct Request {
    netns: Arc<OwnedFd>,
    family: AddressFamily,
    reply: tokio::sync::oneshot::Sender<io::Result<OwnedFd>>,
}

static FACTORY: OnceLock<Mutex<Option<mpsc::Sender<Request>>>> = OnceLock::new();

/// A non-blocking, close-on-exec TCP socket (IPv6 when `v6`) created in the
/// network namespace `netns`.
pub async fn tcp_socket_in(netns: Arc<OwnedFd>, v6: bool) -> io::Result<OwnedFd> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    let request = Request {
        netns,
        family,
        reply,
    };
    sender()?
        .send(request)
        .map_err(|_| io::Error::other("the namespace socket thread has stopped"))?;
    answer
        .await
        .map_err(|_| io::Error::other("the namespace socket thread has stopped"))?
}

/// The factory thread's queue, started at first use.
fn sender() -> io::Result<mpsc::Sender<Request>> {
    let slot = FACTORY.get_or_init(|| Mutex::new(None));
    let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = slot.as_ref() {
        return Ok(tx.clone());
    }
    let home = std::fs::File::open("/proc/thread-self/ns/net")?;
    let (tx, rx) = mpsc::channel::<Request>();
    std::thread::Builder::new()
        .name("nsvisor-netns-sockets".into())
        .spawn(move || serve(&OwnedFd::from(home), rx))?;
    *slot = Some(tx.clone());
    Ok(tx)
}

fn serve(home: &OwnedFd, requests: mpsc::Receiver<Request>) {
    for req in requests {
        let made = super::enter_netns_thread(req.netns.as_fd()).and_then(|()| {
            socket(
                req.family,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            )
            .map_err(io::Error::from)
        });
        if let Err(e) = super::enter_netns_thread(home.as_fd()) {
            // Stuck in a sandbox: never make another socket here.
            let _ = req.reply.send(Err(io::Error::other(format!(
                "cannot return to the daemon's network namespace: {e}"
            ))));
            if let Some(slot) = FACTORY.get() {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            return;
        }
        let _ = req.reply.send(made);
    }
}
