//! The daemon's own log over XML-RPC (`readLog`, `clearLog`) and
//! supervisord's `GET /mainlogtail` (supervisorctl's `maintail` and
//! `maintail -f`).
//!
//! With `[supervisor] logfile` set, the log is that file, read as supervisord
//! reads its main log: offsets are file offsets, `clearLog` truncates it, and
//! `/mainlogtail` sends its last 1024 bytes and then follows it like
//! supervisord's `tail_f_producer` (a rotated file is opened again and read
//! from its start; a truncated one says `==> File truncated <==`). Without a
//! log file (a container logging to stderr), the log is the tail the daemon
//! keeps in memory (`daemon_log::DaemonLogTail`): offsets count every byte
//! logged since start, bytes older than the tail are gone. A follower of the
//! file is woken by that tail (each event reaches the file first), and once a
//! second in case something else wrote the file.

use std::convert::Infallible;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::StatusCode;
use tokio::sync::{broadcast, watch};

use super::super::reply::{self, Reply};
use super::super::stream::{self as api_stream, Client};
use super::codec::Value;
use super::fault::{Code, Fault};
use super::logs::read_range;
use super::Rpc;

/// How much of the log `GET /mainlogtail` sends before following.
const FOLLOW_HEAD: u64 = 1024;

/// How often a follower of the log file looks at it without being woken.
const FILE_RECHECK: Duration = Duration::from_secs(1);

/// Where the daemon's log is read from.
enum MainLog<'a> {
    File(&'a Path),
    Kept(&'a crate::daemon_log::DaemonLogTail),
}

fn main_log(rpc: &Rpc) -> Result<MainLog<'_>, Fault> {
    match (rpc.setup.daemon_log.as_deref(), &rpc.setup.daemon_tail) {
        (Some(path), _) if path.exists() => Ok(MainLog::File(path)),
        (Some(path), _) => Err(Fault::new(Code::NoFile, path.display())),
        (None, Some(tail)) => Ok(MainLog::Kept(tail)),
        (None, None) => Err(Fault::new(Code::NoFile, "no [supervisor] logfile is set")),
    }
}

/// `readLog`: supervisord's `readFile` rules over the daemon's log.
pub fn read_main(rpc: &Rpc, offset: i64, length: i64) -> Result<Value, Fault> {
    let data = match main_log(rpc)? {
        MainLog::File(path) => read_file(path, offset, length)?,
        MainLog::Kept(tail) => {
            let (kept, total) = tail.ring().snapshot(usize::MAX);
            read_range(&kept, total, offset, length)?
        }
    };
    Ok(Value::str(String::from_utf8_lossy(&data)))
}

fn read_file(path: &Path, offset: i64, length: i64) -> Result<Vec<u8>, Fault> {
    let failed = |e: std::io::Error| Fault::new(Code::Failed, e);
    let mut file = File::open(path).map_err(failed)?;
    let size = file.seek(SeekFrom::End(0)).map_err(failed)?;
    let from = if offset < 0 {
        if length != 0 {
            return Err(Fault::bare(Code::BadArguments));
        }
        size.saturating_sub(offset.unsigned_abs())
    } else if length < 0 {
        return Err(Fault::bare(Code::BadArguments));
    } else {
        offset as u64
    };
    let limit = if offset < 0 {
        offset.unsigned_abs()
    } else if length == 0 {
        u64::MAX
    } else {
        length as u64
    };
    file.seek(SeekFrom::Start(from)).map_err(failed)?;
    let mut data = Vec::new();
    file.take(limit).read_to_end(&mut data).map_err(failed)?;
    Ok(data)
}

/// `clearLog`: truncates the daemon's log file (it is written in append
/// mode) and empties the kept tail.
pub fn clear_main(rpc: &Rpc) -> Result<Value, Fault> {
    let log = main_log(rpc)?;
    if let MainLog::File(path) = log {
        super::logs::truncate(path).map_err(|e| Fault::new(Code::Failed, e))?;
    }
    if let Some(tail) = &rpc.setup.daemon_tail {
        tail.ring().clear();
    }
    Ok(Value::Bool(true))
}

/// `GET /mainlogtail`: the last 1024 bytes of the daemon's log, then what it
/// gets, until the client leaves or the API closes. 404 when the log file is
/// set but missing, as supervisord answers.
pub fn follow(rpc: &Rpc, stopped: watch::Receiver<bool>, client: Option<Client>) -> Reply {
    let not_found = || super::plain(StatusCode::NOT_FOUND, "not found\n");
    let wake = rpc.setup.daemon_tail.as_ref().map(|t| t.ring().subscribe());
    match main_log(rpc) {
        Ok(MainLog::File(path)) => match FileTail::open(path, FOLLOW_HEAD) {
            Ok((tail, head)) => follow_file(tail, head, wake, stopped, client),
            Err(e) => {
                tracing::warn!("maintail -f: cannot read {}: {e}", path.display());
                not_found()
            }
        },
        Ok(MainLog::Kept(tail)) => {
            let (kept, rx) = tail.ring().follow();
            let head = kept[kept.len().saturating_sub(FOLLOW_HEAD as usize)..].to_vec();
            api_stream::follow(Bytes::from(head), rx, stopped, client)
        }
        Err(_) => not_found(),
    }
}

/// A log file being followed: supervisord's `tail_f_producer`.
#[derive(Debug)]
struct FileTail {
    path: PathBuf,
    file: File,
    ino: u64,
    /// How far it has been sent.
    pos: u64,
}

impl FileTail {
    /// Opens `path`; also returns its last `head` bytes (all of it when
    /// shorter).
    fn open(path: &Path, head: u64) -> std::io::Result<(FileTail, Vec<u8>)> {
        let mut tail = FileTail::at_start(path)?;
        let size = tail.file.metadata()?.len();
        tail.pos = size.saturating_sub(head);
        let first = tail.more()?;
        Ok((tail, first))
    }

    fn at_start(path: &Path) -> std::io::Result<FileTail> {
        let file = File::open(path)?;
        let ino = file.metadata()?.ino();
        Ok(FileTail {
            path: path.to_path_buf(),
            file,
            ino,
            pos: 0,
        })
    }

    /// What was written since the last call: the file opened again when the
    /// path names another file now (rotation), a notice when it shrank.
    fn more(&mut self) -> std::io::Result<Vec<u8>> {
        if let Ok(meta) = std::fs::metadata(&self.path) {
            if meta.ino() != self.ino {
                *self = FileTail::at_start(&self.path)?;
            }
        }
        let size = self.file.metadata()?.len();
        if size < self.pos {
            self.pos = 0;
            return Ok(b"==> File truncated <==\n".to_vec());
        }
        let mut data = Vec::new();
        if size > self.pos {
            self.file.seek(SeekFrom::Start(self.pos))?;
            (&mut self.file)
                .take(size - self.pos)
                .read_to_end(&mut data)?;
            self.pos += data.len() as u64;
        }
        Ok(data)
    }
}

/// The streamed answer of a followed log file.
fn follow_file(
    tail: FileTail,
    head: Vec<u8>,
    wake: Option<broadcast::Receiver<Bytes>>,
    stopped: watch::Receiver<bool>,
    client: Option<Client>,
) -> Reply {
    let head = (!head.is_empty()).then(|| Ok::<_, Infallible>(Frame::data(Bytes::from(head))));
    let rest = stream::unfold(
        (tail, wake, stopped),
        move |(mut tail, mut wake, mut stopped)| async move {
            loop {
                if *stopped.borrow() {
                    return None;
                }
                let woken = async {
                    match wake.as_mut() {
                        Some(rx) => match rx.recv().await {
                            Err(broadcast::error::RecvError::Closed) => {
                                wake = None;
                            }
                            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        },
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = woken => {}
                    () = tokio::time::sleep(FILE_RECHECK) => {}
                    changed = stopped.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                    }
                }
                match tail.more() {
                    // Checked only while quiet, as `api::stream` does.
                    Ok(data) if data.is_empty() => {
                        if client.is_some_and(Client::gone) {
                            return None;
                        }
                    }
                    Ok(data) => {
                        return Some((Ok(Frame::data(Bytes::from(data))), (tail, wake, stopped)))
                    }
                    Err(e) => {
                        tracing::warn!("maintail -f: cannot read {}: {e}", tail.path.display());
                        return None;
                    }
                }
            }
        },
    );
    let body = StreamBody::new(stream::iter(head).chain(rest));
    reply::with_body(
        StatusCode::OK,
        "text/plain;charset=utf-8",
        body.boxed_unsync(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_followed_file_gives_its_tail_then_what_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.log");
        std::fs::write(&path, b"0123456789").unwrap();
        let (mut tail, head) = FileTail::open(&path, 4).unwrap();
        assert_eq!(head, b"6789");
        assert_eq!(tail.more().unwrap(), b"");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"ab").unwrap();
        assert_eq!(tail.more().unwrap(), b"ab");
        // A short file is sent whole.
        let (_, head) = FileTail::open(&path, 1024).unwrap();
        assert_eq!(head, b"0123456789ab");
    }

    #[test]
    fn truncation_and_rotation_are_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("main.log");
        std::fs::write(&path, b"old lines\n").unwrap();
        let (mut tail, _) = FileTail::open(&path, 1024).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        assert_eq!(tail.more().unwrap(), b"==> File truncated <==\n");
        std::fs::write(&path, b"new\n").unwrap();
        assert_eq!(tail.more().unwrap(), b"new\n");
        std::fs::rename(&path, dir.path().join("main.log.1")).unwrap();
        std::fs::write(&path, b"rotated\n").unwrap();
        assert_eq!(
            tail.more().unwrap(),
            b"rotated\n",
            "the new file from its start"
        );
    }
}
