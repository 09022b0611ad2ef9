//! The exec endpoints: `POST /v1/programs/{name}/exec` runs a command in a
//! program's sandbox and streams it back as frames (`nsvisor_proto`'s
//! `exec.rs`: started, stdout and stderr bytes as they come, the exit last);
//! `POST /v1/exec/{id}/signal` signals a running command (Ctrl-C in the
//! client).
//!
//! The command's output pipes are read here, on the API's side, so a slow
//! client slows only its own command (the pipe fills, the command waits),
//! never the supervisor. After the command exits, output still in the pipes
//! is sent for up to [`DRAIN`] (a background process that keeps the pipes
//! open does not hold the answer). A client that leaves before the exit
//! frame has its command killed (the body's drop tells the supervisor).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::StatusCode;
use nsvisor_proto::{
    encode_frame, ApiError, ErrorKind, ExecExit, ExecRequest, ExecStarted, FrameKind,
    EXEC_CONTENT_TYPE,
};
use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::reply::{self, Reply};
use crate::supervisor::exec::ExecOutput;
use crate::supervisor::handle::Handle;

/// How long output is still read after the command exited.
const DRAIN: Duration = Duration::from_millis(200);

/// `POST /v1/programs/{name}/exec` with an [`ExecRequest`] body.
pub async fn exec(handle: &Handle, name: &str, body: &[u8]) -> Result<Reply, ApiError> {
    let request: ExecRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::BadRequest,
            format!("body must be {{\"command\": [\"CMD\", \"ARG\"...], ...}}: {e}"),
        )
    })?;
    let output = handle.exec(name, request).await?;
    let pump = Pump::new(output, handle.clone()).map_err(|e| {
        ApiError::new(
            ErrorKind::Failed,
            format!("exec: cannot read the command's output: {e}"),
        )
    })?;
    let frames = stream::unfold(pump, |mut pump| async move {
        let frame = pump.next().await?;
        Some((Ok::<_, Infallible>(Frame::data(frame)), pump))
    });
    let body = StreamBody::new(frames);
    Ok(reply::with_body(
        StatusCode::OK,
        EXEC_CONTENT_TYPE,
        body.boxed_unsync(),
    ))
}

/// `POST /v1/exec/{id}/signal` with `{"signal": ...}`.
pub async fn signal(handle: &Handle, id: u64, body: &[u8]) -> Result<Reply, ApiError> {
    let signal = super::routes::parse_signal_body(body)?;
    handle.exec_signal(id, signal).await?;
    Ok(reply::json(
        StatusCode::OK,
        &serde_json::json!({"id": id, "signal": signal.as_str()}),
    ))
}

/// Turns a command's pipes and exit into frames.
struct Pump {
    started: Option<ExecStarted>,
    stdout: Option<pipe::Receiver>,
    stderr: Option<pipe::Receiver>,
    exit: Option<oneshot::Receiver<ExecExit>>,
    exited: Option<ExecExit>,
    drain_until: Option<Instant>,
    done: bool,
    detach: Detach,
    /// Read buffers of stdout and stderr.
    buffers: [Vec<u8>; 2],
}

/// Tells the supervisor the client left, unless the stream ended.
struct Detach {
    handle: Handle,
    id: u64,
    finished: bool,
}

impl Drop for Detach {
    fn drop(&mut self) {
        if !self.finished {
            self.handle.exec_detach(self.id);
        }
    }
}

impl Pump {
    fn new(output: ExecOutput, handle: Handle) -> std::io::Result<Pump> {
        Ok(Pump {
            started: Some(ExecStarted {
                id: output.id,
                pid: output.pid,
            }),
            stdout: Some(pipe::Receiver::from_owned_fd(output.stdout)?),
            stderr: Some(pipe::Receiver::from_owned_fd(output.stderr)?),
            exit: Some(output.exit),
            exited: None,
            drain_until: None,
            done: false,
            buffers: [vec![0; 64 * 1024], vec![0; 64 * 1024]],
            detach: Detach {
                handle,
                id: output.id,
                finished: false,
            },
        })
    }

    /// The next frame, `None` after the exit frame.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        if let Some(started) = self.started.take() {
            return Some(json_frame(FrameKind::Started, &started));
        }
        let [out, err] = &mut self.buffers;
        loop {
            if self.stdout.is_none() && self.stderr.is_none() {
                if let Some(exit) = self.exited.take() {
                    self.done = true;
                    self.detach.finished = true;
                    return Some(json_frame(FrameKind::Exit, &exit));
                }
            }
            let drain = self.drain_until;
            tokio::select! {
                n = read(&mut self.stdout, out), if self.stdout.is_some() => match n {
                    Some(n) => return Some(Bytes::from(encode_frame(FrameKind::Stdout, &out[..n]))),
                    None => self.stdout = None,
                },
                n = read(&mut self.stderr, err), if self.stderr.is_some() => match n {
                    Some(n) => return Some(Bytes::from(encode_frame(FrameKind::Stderr, &err[..n]))),
                    None => self.stderr = None,
                },
                exit = wait_exit(&mut self.exit), if self.exit.is_some() => {
                    self.exit = None;
                    self.exited = Some(exit);
                    self.drain_until = Some(Instant::now() + DRAIN);
                }
                () = sleep_until(drain), if drain.is_some() => {
                    self.stdout = None;
                    self.stderr = None;
                }
            }
        }
    }
}

/// Reads from a pipe: `Some(n)` bytes, `None` at its end (or an error).
async fn read(pipe: &mut Option<pipe::Receiver>, buf: &mut [u8]) -> Option<usize> {
    match pipe.as_mut()?.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

/// The command's exit; one saying so when the supervisor is gone.
async fn wait_exit(exit: &mut Option<oneshot::Receiver<ExecExit>>) -> ExecExit {
    let gone = || ExecExit {
        code: 1,
        status: None,
        timed_out: false,
        error: Some("the daemon stopped before the command ended".into()),
    };
    match exit.as_mut() {
        Some(rx) => rx.await.unwrap_or_else(|_| gone()),
        None => gone(),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn json_frame(kind: FrameKind, value: &impl serde::Serialize) -> Bytes {
    let payload = serde_json::to_vec(value).unwrap_or_default();
    Bytes::from(encode_frame(kind, &payload))
}
