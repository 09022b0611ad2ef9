//! A tiny HTTP/1.1 client over a unix socket, for the e2e harness.
//!
//! Every request opens a new `UnixStream`, sends `Connection: close`, and reads
//! the status line, the headers and the body (`Content-Length`, chunked, or up
//! to EOF). Reads and writes have timeouts so a daemon that never answers fails
//! the test instead of hanging it. Streamed bodies (`/v1/events`,
//! `logs?follow=true`) are read incrementally through [`StreamBody`]; a read
//! that times out keeps what it already received, so callers can try again.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nsvisor_proto::StateEvent;
use serde_json::Value;

/// Bound on any single read or write of a plain request.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The (de-chunked) body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON; `Value::Null` when empty, `Value::String` when not JSON.
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|_| Value::String(self.text()))
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// One connection kept open across requests (HTTP/1.1 keep-alive), for
/// tests that need a connection made before the daemon stops accepting new
/// ones. Answers must have a `Content-Length` (every JSON answer has).
pub struct KeepAlive {
    reader: BufReader<UnixStream>,
}

impl KeepAlive {
    /// Connects to `socket`.
    pub fn open(socket: &Path) -> io::Result<KeepAlive> {
        Ok(KeepAlive {
            reader: BufReader::new(connect(socket, IO_TIMEOUT)?),
        })
    }

    /// Sends one request on this connection and reads its whole answer.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let conn = self.reader.get_mut();
        conn.write_all(head.as_bytes())?;
        conn.write_all(body)?;
        let (status, headers) = read_head(&mut self.reader)?;
        let len: usize = find_header(&headers, "content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad("a keep-alive answer without content-length"))?;
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Sends one request and reads the whole response.
pub fn request(socket: &Path, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
    request_within(socket, method, path, body, IO_TIMEOUT)
}

/// [`request`] with `timeout` as the bound on each read and write instead of
/// the default 30 s, for tests that count a slow answer as a hung one.
pub fn request_within(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let mut stream = send(socket, method, path, body, timeout)?;
    let mut body = Vec::new();
    stream.reader.read_to_end(&mut body)?;
    Ok(Response {
        status: stream.status,
        headers: stream.headers,
        body,
    })
}

/// Writes `raw` on a new connection and returns every byte received until EOF.
pub fn raw(socket: &Path, raw: &[u8]) -> io::Result<Vec<u8>> {
    let mut conn = connect(socket, IO_TIMEOUT)?;
    conn.write_all(raw)?;
    let mut out = Vec::new();
    conn.read_to_end(&mut out)?;
    Ok(out)
}

/// Sends a GET and returns once the status line and headers arrived.
pub fn stream(socket: &Path, path: &str) -> io::Result<StreamBody> {
    send(socket, "GET", path, b"", IO_TIMEOUT)
}

/// Sends any request and returns once the status line and headers arrived.
pub fn open(socket: &Path, method: &str, path: &str, body: &[u8]) -> io::Result<StreamBody> {
    send(socket, method, path, body, IO_TIMEOUT)
}

/// The same request as [`request`], made by a `testprog request` process
/// running as `uid`/`gid` (no supplementary groups), so the daemon sees
/// that client's credentials. With `head_only`, the body is
/// not read (for streams that do not end). Panics when the client cannot run.
pub fn request_as(
    socket: &Path,
    (uid, gid): (u32, u32),
    method: &str,
    path: &str,
    body: &str,
    head_only: bool,
) -> Response {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(crate::testprog());
    cmd.arg("request")
        .arg(socket)
        .args([method, path, body])
        .uid(uid)
        .gid(gid);
    if head_only {
        cmd.arg("--head");
    }
    let out = cmd.output().expect("cannot run testprog request");
    assert!(
        out.status.success(),
        "testprog request {method} {path} as uid {uid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = out
        .stdout
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(out.stdout.len());
    let status = std::str::from_utf8(&out.stdout[..split])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("testprog request: no status in {:?}", out.stdout));
    Response {
        status,
        headers: Vec::new(),
        body: out.stdout.get(split + 1..).unwrap_or_default().to_vec(),
    }
}

fn connect(socket: &Path, timeout: Duration) -> io::Result<UnixStream> {
    let conn = UnixStream::connect(socket)?;
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}

fn send(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> io::Result<StreamBody> {
    let mut conn = connect(socket, timeout)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    match conn.write_all(&request) {
        // A server that refuses the request may answer and close before
        // reading its body: its answer is still there to read.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ) => {}
        other => other?,
    }
    let mut reader = BufReader::new(conn);
    let (status, headers) = read_head(&mut reader)?;
    let mode = if find_header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"))
    {
        Mode::ChunkHeader
    } else if let Some(len) = find_header(&headers, "content-length") {
        Mode::Length(len.trim().parse().map_err(|_| bad("bad content-length"))?)
    } else {
        Mode::Eof
    };
    Ok(StreamBody {
        status,
        headers,
        reader: BodyReader {
            inner: reader,
            mode,
            line: Vec::new(),
        },
        pending: Vec::new(),
    })
}

fn read_head(reader: &mut BufReader<UnixStream>) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, headers));
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| bad(&format!("bad header {l:?}")))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Where the body reader is.
enum Mode {
    Length(u64),
    Eof,
    ChunkHeader,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Done,
}

/// Reads a response body, undoing chunked encoding; survives read timeouts.
struct BodyReader {
    inner: BufReader<UnixStream>,
    mode: Mode,
    /// Partial chunk-size or CRLF line kept across timeouts.
    line: Vec<u8>,
}

impl BodyReader {
    /// Reads one CRLF-terminated line into `self.line`; keeps partial data on errors.
    fn fill_line(&mut self) -> io::Result<()> {
        self.inner.read_until(b'\n', &mut self.line)?;
        if !self.line.ends_with(b"\n") {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "body cut short",
            ));
        }
        Ok(())
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.mode {
                Mode::Done | Mode::Length(0) => return Ok(0),
                Mode::Eof => return self.inner.read(out),
                Mode::Length(n) | Mode::ChunkData(n) => {
                    let max = out.len().min(usize::try_from(n).unwrap_or(usize::MAX));
                    let k = self.inner.read(&mut out[..max])?;
                    if k == 0 && max > 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "body cut short",
                        ));
                    }
                    let left = n - k as u64;
                    self.mode = match self.mode {
                        Mode::Length(_) => Mode::Length(left),
                        _ if left == 0 => Mode::ChunkEnd,
                        _ => Mode::ChunkData(left),
                    };
                    return Ok(k);
                }
                Mode::ChunkHeader => {
                    self.fill_line()?;
                    let text = String::from_utf8_lossy(&self.line).into_owned();
                    let size = text.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size, 16)
                        .map_err(|_| bad(&format!("bad chunk size {text:?}")))?;
                    self.line.clear();
                    self.mode = if size == 0 {
                        Mode::Trailers
                    } else {
                        Mode::ChunkData(size)
                    };
                }
                Mode::ChunkEnd => {
                    self.fill_line()?;
                    self.line.clear();
                    self.mode = Mode::ChunkHeader;
                }
                Mode::Trailers => {
                    self.fill_line()?;
                    let end = self.line == b"\r\n" || self.line == b"\n";
                    self.line.clear();
                    if end {
                        self.mode = Mode::Done;
                    }
                }
            }
        }
    }
}

/// A response whose body is read as it arrives.
pub struct StreamBody {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    reader: BodyReader,
    /// Bytes of an unfinished line, kept across timeouts.
    pending: Vec<u8>,
}

impl StreamBody {
    /// The next whole line (without its `\n`) arriving within `timeout`.
    /// `Ok(None)` at the end of the body; an error of kind `WouldBlock`/`TimedOut`
    /// when nothing complete arrived in time (what did arrive is kept).
    pub fn try_next_line(&mut self, timeout: Duration) -> io::Result<Option<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=i).collect();
                return Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no whole line in time",
                ));
            }
            self.set_timeout(left)?;
            let mut buf = [0u8; 8192];
            let n = self.reader.read(&mut buf)?;
            if n == 0 {
                if self.pending.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.pending);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            self.pending.extend_from_slice(&buf[..n]);
        }
    }

    /// The next line within `timeout`, `None` at the end of the body; panics on timeout.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        self.try_next_line(timeout)
            .unwrap_or_else(|e| panic!("no line from the stream within {timeout:?}: {e}"))
    }

    /// Reads until the bytes received so far contain `needle` (or the body ends,
    /// which panics), and returns everything received, including earlier reads.
    pub fn read_until_contains(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {timeout:?} waiting for {needle:?} in the stream; got {:?}",
                String::from_utf8_lossy(&seen)
            );
            self.set_timeout(left).expect("cannot set the read timeout");
            let mut buf = [0u8; 8192];
            match self.reader.read(&mut buf) {
                Ok(0) => panic!(
                    "stream ended before {needle:?}; got {:?}",
                    String::from_utf8_lossy(&seen)
                ),
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => panic!("reading the stream: {e}"),
            }
        }
        String::from_utf8_lossy(&seen).into_owned()
    }

    /// Sets the timeout of the next reads.
    pub fn set_timeout(&self, timeout: Duration) -> io::Result<()> {
        self.reader
            .inner
            .get_ref()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))
    }
}

impl Read for StreamBody {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if !self.pending.is_empty() {
            let n = out.len().min(self.pending.len());
            out[..n].copy_from_slice(&self.pending[..n]);
            self.pending.drain(..n);
            return Ok(n);
        }
        self.reader.read(out)
    }
}

/// True for the errors a read timeout produces.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The `/v1/events` NDJSON stream, parsed.
pub struct EventStream {
    body: StreamBody,
    /// Every event received so far, in order.
    pub seen: Vec<StateEvent>,
}

impl EventStream {
    /// Wraps a streamed `GET /v1/events`; panics unless it answered 200.
    pub fn new(body: StreamBody) -> EventStream {
        assert_eq!(body.status, 200, "GET /v1/events answered {}", body.status);
        EventStream {
            body,
            seen: Vec::new(),
        }
    }

    /// The next event within `timeout`; `None` when the stream ended. Panics on timeout.
    pub fn next(&mut self, timeout: Duration) -> Option<StateEvent> {
        loop {
            let line = self.body.next_line(timeout)?;
            if line.trim().is_empty() {
                continue;
            }
            let ev: StateEvent = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("bad event line {line:?}: {e}"));
            self.seen.push(ev.clone());
            return Some(ev);
        }
    }

    /// Reads events until one matches `pred`, and returns it. Panics with `what`
    /// and the events seen when `timeout` passes or the stream ends.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&StateEvent) -> bool,
    ) -> StateEvent {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.body.try_next_line(left) {
                Ok(Some(line)) => line,
                Ok(None) => panic!(
                    "event stream ended waiting for {what}; seen {:?}",
                    self.seen
                ),
                Err(e) if is_timeout(&e) => panic!(
                    "timed out after {timeout:?} waiting for {what}; seen {:?}",
                    self.seen
                ),
                Err(e) => panic!("reading events waiting for {what}: {e}"),
            };
            if line.trim().is_empty() {
                continue;
            }
            let ev: StateEvent = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("bad event line {line:?}: {e}"));
            self.seen.push(ev.clone());
            if pred(&ev) {
                return ev;
            }
        }
    }
}
