//! `exec`: running a command inside a program's sandbox, like `docker exec`.
//!
//! The client posts an [`ExecRequest`] to `POST /v1/programs/{name}/exec`;
//! the answer is a stream of frames in Docker's multiplexed-stream
//! layout (an 8-byte header: the frame kind, three zero bytes, the payload
//! length as a big-endian u32; then the payload), so the command's output
//! travels byte for byte, stdout and stderr apart. The first frame says the
//! command started (its session id, for `POST /v1/exec/{id}/signal`), the
//! last one how it ended (both JSON). [`FrameReader`] reassembles frames
//! from the body's chunks, wherever the chunks were cut.

use serde::{Deserialize, Serialize};

use crate::ExitStatus;

/// What to run, and how (`nsvisorctl exec`'s options). Unset fields take
/// the program's own setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The command and its arguments (looked up in `PATH` like the program's).
    pub command: Vec<String>,
    /// `USER` or `USER:GROUP` (name or number) instead of the program's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `KEY=VALUE` pairs set over the program's environment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Working directory instead of the program's `directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Seconds after which the command's process group is killed (SIGKILL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
}

/// The first frame: the command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecStarted {
    /// Session id, for `POST /v1/exec/{id}/signal`.
    pub id: u64,
    /// The command's pid (also its process group).
    pub pid: u32,
}

/// The last frame: how the command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecExit {
    /// Exit code, shell style: the code, 128+N for signal N, 127 when the
    /// command is not found, 126 when it cannot be executed.
    pub code: i32,
    /// How the process ended (`None` when it could not be started).
    pub status: Option<ExitStatus>,
    /// Killed because its timeout passed.
    #[serde(default)]
    pub timed_out: bool,
    /// Why the command could not be started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The kind of a frame: the first byte of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// The command started: an [`ExecStarted`] as JSON.
    Started = 0,
    /// Bytes the command wrote to stdout.
    Stdout = 1,
    /// Bytes the command wrote to stderr.
    Stderr = 2,
    /// The command ended: an [`ExecExit`] as JSON; nothing follows.
    Exit = 3,
}

impl FrameKind {
    const ALL: [FrameKind; 4] = [
        FrameKind::Started,
        FrameKind::Stdout,
        FrameKind::Stderr,
        FrameKind::Exit,
    ];
}

/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 8;

/// Content type of an exec stream (Docker's name for this layout).
pub const EXEC_CONTENT_TYPE: &str = "application/vnd.docker.multiplexed-stream";

/// A frame as bytes: the header, then `payload`.
pub fn encode_frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload.len());
    out.extend([kind as u8, 0, 0, 0]);
    out.extend((payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reassembles frames from the chunks of a stream.
#[derive(Debug, Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

/// A frame of an unknown kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownFrame(pub u8);

impl FrameReader {
    /// Adds a chunk of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next whole frame, `Ok(None)` until one has arrived.
    pub fn next_frame(&mut self) -> Result<Option<(FrameKind, Vec<u8>)>, UnknownFrame> {
        if self.buf.len() < FRAME_HEADER {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]);
        let end = FRAME_HEADER + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let byte = self.buf[0];
        let kind = FrameKind::ALL
            .into_iter()
            .find(|k| *k as u8 == byte)
            .ok_or(UnknownFrame(byte))?;
        let payload = self.buf[FRAME_HEADER..end].to_vec();
        self.buf.drain(..end);
        Ok(Some((kind, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_survive_any_cut_of_the_stream() {
        let frames: Vec<(FrameKind, Vec<u8>)> = vec![
            (FrameKind::Started, br#"{"id":7,"pid":4242}"#.to_vec()),
            (FrameKind::Stdout, b"hello\n".to_vec()),
            (FrameKind::Stderr, vec![0, 255, 10]),
            (FrameKind::Stdout, Vec::new()),
            (FrameKind::Exit, br#"{"code":130}"#.to_vec()),
        ];
        let bytes: Vec<u8> = frames
            .iter()
            .flat_map(|(k, p)| encode_frame(*k, p))
            .collect();
        for cut in [1, 3, 8, 13, bytes.len()] {
            let mut reader = FrameReader::default();
            let mut got = Vec::new();
            for chunk in bytes.chunks(cut) {
                reader.push(chunk);
                while let Some(f) = reader.next_frame().unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "chunks of {cut}");
        }
    }

    #[test]
    fn the_header_is_dockers_and_unknown_kinds_are_refused() {
        let b = encode_frame(FrameKind::Stderr, b"ab");
        assert_eq!(b, [2, 0, 0, 0, 0, 0, 0, 2, b'a', b'b']);
        let mut r = FrameReader::default();
        r.push(&[9, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.next_frame(), Err(UnknownFrame(9)));
    }

    #[test]
    fn exit_json_round_trips() {
        let exit = ExecExit {
            code: 137,
            status: Some(ExitStatus::Signal(9)),
            timed_out: true,
            error: None,
        };
        let json = serde_json::to_string(&exit).unwrap();
        assert_eq!(serde_json::from_str::<ExecExit>(&json).unwrap(), exit);
    }
}
