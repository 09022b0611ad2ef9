//! Program output and the daemon's log over XML-RPC and supervisord's
//! `/logtail` HTTP paths.
//!
//! supervisord reads a program's log *file*; nsvisor answers from the
//! program's tail buffer (which exists whether or not the program has a log
//! file, and holds the console-only output of containers too). Offsets count
//! every byte the stream ever carried, as a file offset would; bytes older
//! than the buffer are gone, and a read from before them starts at the oldest
//! byte kept. `readFile`'s and `tailFile`'s rules (negative offsets, the
//! overflow flag) are supervisord's. Clearing a program's logs truncates its
//! log files and empties its tail buffers, so `tail` shows nothing older.
//! `GET /logtail/NAME[/stdout|stderr]` (supervisorctl's `tail -f`) sends the
//! last 1024 bytes, then follows. The daemon's own log is `mainlog.rs`.

use std::path::Path;

use bytes::Bytes;
use hyper::StatusCode;
use nsvisor_proto::StreamKind;
use tokio::sync::watch;

use super::super::reply::Reply;
use super::super::stream;
use super::codec::Value;
use super::fault::{Code, Fault};
use super::info::{self, Target};
use super::Rpc;
use crate::config::LogFile;

/// supervisord's `readFile` over a stream of `total` bytes of which the last
/// `kept` are known.
pub(super) fn read_range(
    kept: &[u8],
    total: u64,
    offset: i64,
    length: i64,
) -> Result<Vec<u8>, Fault> {
    let base = total - kept.len() as u64;
    let slice_from = |pos: u64| {
        &kept[usize::try_from(pos.saturating_sub(base))
            .unwrap_or(0)
            .min(kept.len())..]
    };
    if offset < 0 {
        if length != 0 {
            return Err(Fault::bare(Code::BadArguments));
        }
        let from = total.saturating_sub(offset.unsigned_abs());
        return Ok(slice_from(from).to_vec());
    }
    if length < 0 {
        return Err(Fault::bare(Code::BadArguments));
    }
    let data = slice_from(offset as u64);
    let take = if length == 0 {
        data.len()
    } else {
        data.len()
            .min(usize::try_from(length).unwrap_or(usize::MAX))
    };
    Ok(data[..take].to_vec())
}

/// supervisord's `tailFile`: `[bytes, next offset, overflow]`.
fn tail_range(kept: &[u8], total: u64, offset: i64, length: i64) -> Value {
    let sz = i64::try_from(total).unwrap_or(i64::MAX);
    let (mut offset, mut length) = (offset, length);
    let mut overflow = false;
    if sz > offset.saturating_add(length) {
        overflow = true;
        offset = sz - 1;
    }
    if offset.saturating_add(length) > sz {
        if offset > sz - 1 {
            length = 0;
        }
        offset = sz - length;
    }
    let offset = offset.max(0);
    let length = length.max(0);
    let data = if length == 0 {
        Vec::new()
    } else {
        read_range(kept, total, offset, length).unwrap_or_default()
    };
    Value::Array(vec![
        Value::str(String::from_utf8_lossy(&data)),
        Value::Int(sz),
        Value::Bool(overflow),
    ])
}

/// The kept bytes and total of a program's stream; `NO_FILE` for stderr of
/// a program whose stderr goes to stdout.
async fn stream_of(rpc: &Rpc, name: &str, stderr: bool) -> Result<(Vec<u8>, u64), Fault> {
    let (list, configs) = rpc.snapshot().await?;
    let p = info::one(&list, name)?;
    let cfg = configs.iter().find(|c| c.name.as_str() == p.name);
    if stderr && cfg.is_some_and(|c| c.redirect_stderr) {
        return Err(Fault::new(Code::NoFile, "stderr is redirected to stdout"));
    }
    let which = if stderr {
        StreamKind::Stderr
    } else {
        StreamKind::Stdout
    };
    let ring = rpc.handle.tail(&p.name, which).await?;
    Ok(ring.snapshot(usize::MAX))
}

/// `readProcessStdoutLog` / `readProcessStderrLog`.
pub async fn read(
    rpc: &Rpc,
    name: &str,
    offset: i64,
    length: i64,
    stderr: bool,
) -> Result<Value, Fault> {
    let (kept, total) = stream_of(rpc, name, stderr).await?;
    let data = read_range(&kept, total, offset, length)?;
    Ok(Value::str(String::from_utf8_lossy(&data)))
}

/// `tailProcessStdoutLog` / `tailProcessStderrLog`.
pub async fn tail(
    rpc: &Rpc,
    name: &str,
    offset: i64,
    length: i64,
    stderr: bool,
) -> Result<Value, Fault> {
    match stream_of(rpc, name, stderr).await {
        Ok((kept, total)) => Ok(tail_range(&kept, total, offset, length)),
        // supervisord answers an empty tail when there is no log file.
        Err(f) if f.code == Code::NoFile => Ok(Value::Array(vec![
            Value::str(""),
            Value::Int(0),
            Value::Bool(false),
        ])),
        Err(f) => Err(f),
    }
}

/// Truncates `path` if it exists; in a directory other users can write, a
/// planted link or file is refused (`safe_open`), not truncated.
pub(super) fn truncate(path: &Path) -> std::io::Result<()> {
    let how = crate::safe_open::Open {
        nonblock: true,
        ..Default::default()
    };
    match crate::safe_open::open(path, how) {
        Ok(f) => f.set_len(0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Truncates a program's log files and empties its tail buffers.
async fn clear_logs(
    rpc: &Rpc,
    cfg: Option<&crate::config::ProgramConfig>,
    name: &str,
) -> Result<(), Fault> {
    for which in [StreamKind::Stdout, StreamKind::Stderr] {
        // A program gone since the snapshot has nothing left to clear.
        if let Ok(ring) = rpc.handle.tail(name, which).await {
            ring.clear();
        }
    }
    let Some(cfg) = cfg else {
        return Ok(());
    };
    for stream in [&cfg.stdout, &cfg.stderr] {
        if let LogFile::Path(path) = &stream.logfile {
            truncate(path).map_err(|e| Fault::new(Code::Failed, format!("{name}: {e}")))?;
        }
    }
    Ok(())
}

/// `clearProcessLogs`.
pub async fn clear(rpc: &Rpc, name: &str) -> Result<Value, Fault> {
    let (list, configs) = rpc.snapshot().await?;
    let p = info::one(&list, name)?;
    let cfg = configs.iter().find(|c| c.name.as_str() == p.name);
    clear_logs(rpc, cfg, &p.name)
        .await
        .map_err(|f| Fault::new(f.code, name))?;
    Ok(Value::Bool(true))
}

/// `clearAllProcessLogs`: every process, in supervisord's priority order.
pub async fn clear_all(rpc: &Rpc) -> Result<Value, Fault> {
    let (list, configs) = rpc.snapshot().await?;
    let cfgs = super::process::configs_by_name(&configs);
    let mut results = Vec::with_capacity(list.len());
    for p in super::process::members(&list, &cfgs, None)? {
        let cfg = cfgs.get(p.name.as_str()).copied();
        results.push(match clear_logs(rpc, cfg, &p.name).await {
            Ok(()) => info::result(p, Code::Success, "OK"),
            Err(f) => info::result(p, f.code, &f.text),
        });
    }
    Ok(Value::Array(results))
}

/// `GET /logtail/NAME[/CHANNEL]` and `GET /mainlogtail`.
pub async fn logtail(
    rpc: &Rpc,
    path: &str,
    stopped: watch::Receiver<bool>,
    client: Option<stream::Client>,
) -> Reply {
    let not_found = || super::plain(StatusCode::NOT_FOUND, "not found\n");
    let Some(rest) = path.strip_prefix("/logtail/") else {
        return super::mainlog::follow(rpc, stopped, client);
    };
    let rest = nsvisor_proto::percent_decode(rest).unwrap_or_else(|_| rest.to_string());
    let (spec, channel) = match rest.rsplit_once('/') {
        Some((spec, ch @ ("stdout" | "stderr"))) => (spec.to_string(), ch),
        _ => (rest.clone(), "stdout"),
    };
    let Ok(list) = rpc.handle.list().await else {
        return not_found();
    };
    let name = match info::resolve(&list, &spec) {
        Ok(Target::Process(p)) => p.name.clone(),
        _ => return not_found(),
    };
    let which = if channel == "stderr" {
        StreamKind::Stderr
    } else {
        StreamKind::Stdout
    };
    let Ok(ring) = rpc.handle.tail(&name, which).await else {
        return not_found();
    };
    let (kept, rx) = ring.follow();
    drop(ring);
    let first = kept[kept.len().saturating_sub(1024)..].to_vec();
    stream::follow(Bytes::from(first), rx, stopped, client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_follows_read_file() {
        // A stream of 10 bytes of which the last 6 ("456789") are kept.
        let kept = b"456789";
        let r = |o, l| read_range(kept, 10, o, l).map(|d| String::from_utf8_lossy(&d).into_owned());
        assert_eq!(r(-3, 0).ok().as_deref(), Some("789"));
        assert_eq!(r(-100, 0).ok().as_deref(), Some("456789"));
        assert_eq!(r(5, 2).ok().as_deref(), Some("56"));
        assert_eq!(r(0, 0).ok().as_deref(), Some("456789"));
        assert_eq!(r(20, 0).ok().as_deref(), Some(""));
        assert_eq!(r(-3, 1).err().map(|f| f.code), Some(Code::BadArguments));
        assert_eq!(r(1, -1).err().map(|f| f.code), Some(Code::BadArguments));
    }

    #[test]
    fn tail_follows_tail_file() {
        let kept = b"456789";
        // More written than asked: the last `length` bytes and overflow.
        assert_eq!(
            tail_range(kept, 10, 0, 3),
            Value::Array(vec![Value::str("789"), Value::Int(10), Value::Bool(true)])
        );
        // Caught up: nothing new.
        assert_eq!(
            tail_range(kept, 10, 10, 100),
            Value::Array(vec![Value::str(""), Value::Int(10), Value::Bool(false)])
        );
        // A little new output since offset 8.
        assert_eq!(
            tail_range(kept, 10, 8, 100),
            Value::Array(vec![
                Value::str("456789"),
                Value::Int(10),
                Value::Bool(false)
            ])
        );
    }
}
