//! `nsvisorctl exec`: runs a command inside a program's sandbox through the
//! daemon, like `docker exec`, and exits with the command's exit code.
//!
//! Sends `POST /v1/programs/{name}/exec`, then copies the answer's frames
//! (`nsvisor_proto`'s exec stream) to its own stdout and stderr as they
//! arrive. SIGINT, SIGTERM, SIGHUP and SIGQUIT received meanwhile are sent
//! on to the command's process group (`POST /v1/exec/{id}/signal`), so
//! Ctrl-C reaches the command and the command decides how to end. Exit
//! codes: the command's (128+N for signal N), 126/127 when it cannot be
//! executed / is not found, and [`EXEC_FAILED`] when the exec itself could
//! not happen (the daemon unreachable, an unknown program, ...), as Docker.

use std::io::Write;

use http_body_util::BodyExt;
use nsvisor_proto::{ExecExit, ExecRequest, ExecStarted, FrameKind, FrameReader, Query, Route};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;

use crate::client::{Client, CtlError};
use crate::ExecArgs;

/// Exit code when the exec itself failed (Docker's 125).
pub const EXEC_FAILED: u8 = 125;

/// Runs `args` against the daemon behind `client`; returns the exit code.
pub async fn run(args: ExecArgs, client: Client, json: bool) -> u8 {
    match exec(args, &client).await {
        Ok(exit) => {
            if exit.timed_out {
                eprintln!("nsvisorctl: exec: the command timed out and was killed");
            }
            if let Some(error) = &exit.error {
                eprintln!("nsvisorctl: exec: {error}");
            }
            u8::try_from(exit.code).unwrap_or(EXEC_FAILED)
        }
        Err(e) => {
            if json {
                eprintln!(
                    "{}",
                    serde_json::json!({"error": {"kind": "exec_failed", "message": e.to_string()}})
                );
            } else {
                eprintln!("nsvisorctl: exec: {e}");
            }
            EXEC_FAILED
        }
    }
}

async fn exec(args: ExecArgs, client: &Client) -> Result<ExecExit, CtlError> {
    let request = ExecRequest {
        command: args.command,
        user: args.user,
        env: args.env,
        workdir: args.workdir,
        timeout_secs: args.timeout,
    };
    let body = serde_json::to_vec(&request).unwrap_or_default();
    let route = Route::Exec(args.program.clone());
    // Listening before the request: a Ctrl-C from now on reaches the command.
    let mut signals = forward_signals();
    let res = client.send(&route, &Query::new(), Some(body)).await?;
    let status = res.status();
    if !status.is_success() {
        let data = client.read_all(res).await?;
        return Err(client.api_error(status.as_u16(), &data));
    }
    let protocol = |m: String| CtlError::Protocol {
        socket: client.socket().to_path_buf(),
        message: m,
    };
    let mut session: Option<u64> = None;
    let mut pending: Vec<i32> = Vec::new();
    let mut body = res.into_body();
    let mut frames = FrameReader::default();
    loop {
        tokio::select! {
            frame = body.frame() => {
                let chunk = match frame {
                    None => return Err(CtlError::Stopped {
                        socket: client.socket().to_path_buf(),
                        following: format!("the exec in \"{}\"", args.program),
                    }),
                    Some(Err(e)) => return Err(protocol(format!("reading the exec stream: {e}"))),
                    Some(Ok(f)) => match f.into_data() {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                };
                frames.push(&chunk);
                while let Some((kind, payload)) = frames
                    .next_frame()
                    .map_err(|k| protocol(format!("unknown exec frame kind {}", k.0)))?
                {
                    match kind {
                        FrameKind::Started => {
                            let started: ExecStarted = serde_json::from_slice(&payload)
                                .map_err(|e| protocol(format!("exec start: {e}")))?;
                            session = Some(started.id);
                            for sig in pending.drain(..) {
                                send_signal(client, started.id, sig).await;
                            }
                        }
                        FrameKind::Stdout => write_all(&mut std::io::stdout(), &payload),
                        FrameKind::Stderr => write_all(&mut std::io::stderr(), &payload),
                        FrameKind::Exit => {
                            return serde_json::from_slice(&payload)
                                .map_err(|e| protocol(format!("exec exit: {e}")));
                        }
                    }
                }
            }
            Some(sig) = signals.recv() => match session {
                Some(id) => send_signal(client, id, sig).await,
                None => pending.push(sig),
            },
        }
    }
}

/// Writes and flushes; a closed stdout or stderr is ignored (the command
/// goes on, as it would in a pipeline whose reader left).
fn write_all(out: &mut impl Write, data: &[u8]) {
    let _ = out.write_all(data).and_then(|()| out.flush());
}

/// The signals to send on, as numbers, from a task that listens for them.
fn forward_signals() -> mpsc::UnboundedReceiver<i32> {
    let (tx, rx) = mpsc::unbounded_channel();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
        SignalKind::quit(),
    ] {
        let Ok(mut stream) = signal(kind) else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(kind.as_raw_value()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// Asks the daemon to send `sig` to session `id`; a failure is only said.
async fn send_signal(client: &Client, id: u64, sig: i32) {
    let body = serde_json::to_vec(&serde_json::json!({ "signal": sig })).unwrap_or_default();
    let route = Route::ExecSignal(id);
    match client.send(&route, &Query::new(), Some(body)).await {
        Ok(res) if res.status().is_success() => {}
        Ok(res) => {
            let status = res.status().as_u16();
            let data = client.read_all(res).await.unwrap_or_default();
            // The command may have ended meanwhile: nothing to say then.
            if status != 404 {
                eprintln!("nsvisorctl: exec: {}", client.api_error(status, &data));
            }
        }
        Err(e) => eprintln!("nsvisorctl: exec: cannot send signal {sig}: {e}"),
    }
}
