//! The console sink: program lines written to the daemon's own stdout and stderr
//! (what `docker logs` shows).
//!
//! One writer thread per target (stdout, stderr) is the only place that writes
//! program lines there. Pumps send it batches of whole lines over a bounded
//! channel, so lines never mix. The thread writes with blocking calls: when
//! whoever reads the daemon's stdout is slow, the thread waits, the channel fills,
//! and the pumps of programs that print to the console wait too (their pipes fill
//! and the programs block on write, nothing is dropped). The supervisor task, the
//! API, and programs whose console is off are not slowed. Each `write(2)` carries
//! whole lines and at most `PIPE_BUF` bytes when the lines allow it, so lines stay
//! whole even next to other writers of the same pipe (the daemon's own log).
//!
//! Created once by `LogContext`; pumps hold [`ConsoleSink`]s.

use std::future::Future;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use nsvisor_proto::StreamKind;
use tokio::sync::{mpsc, oneshot};

/// Batches waiting per target before pumps must wait.
const QUEUE: usize = 64;
/// Largest write that stays atomic on a pipe.
const PIPE_BUF: usize = 4096;
/// How often a failing console may complain.
const REPORT_EVERY: Duration = Duration::from_secs(60);

enum Msg {
    Lines(Vec<u8>),
    Flush(oneshot::Sender<()>),
}

/// Handle to the two console writer threads.
#[derive(Debug, Clone)]
pub struct Console {
    out: mpsc::Sender<Msg>,
    err: mpsc::Sender<Msg>,
    /// The writers' descriptors, for programs that write to them directly.
    direct: [Arc<OwnedFd>; 2],
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Lines(b) => write!(f, "Lines({} bytes)", b.len()),
            Msg::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Console {
    /// A console writing to the daemon's own stdout and stderr (`/dev/null`
    /// for one that is closed).
    pub fn stdio() -> io::Result<Console> {
        use std::os::fd::AsFd;
        let dup = |fd: std::os::fd::BorrowedFd<'_>| {
            fd.try_clone_to_owned().or_else(|_| {
                let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
                Ok::<_, io::Error>(OwnedFd::from(null))
            })
        };
        Console::new(dup(io::stdout().as_fd())?, dup(io::stderr().as_fd())?)
    }

    /// A console writing to these descriptors (tests use pipes or files).
    pub fn new(out: OwnedFd, err: OwnedFd) -> io::Result<Console> {
        let direct = [Arc::new(out.try_clone()?), Arc::new(err.try_clone()?)];
        Ok(Console {
            out: spawn_writer("nsvisor-console-out", out)?,
            err: spawn_writer("nsvisor-console-err", err)?,
            direct,
        })
    }

    /// The descriptor lines of `target` are written to, for a program
    /// whose stream goes there unchanged (`StreamLog::is_direct`): the
    /// program writes to it itself, without a pipe or the writer thread.
    pub(crate) fn direct(&self, target: StreamKind) -> Arc<OwnedFd> {
        match target {
            StreamKind::Stdout => self.direct[0].clone(),
            StreamKind::Stderr => self.direct[1].clone(),
        }
    }

    /// A sink for one program stream: lines of `StreamKind::Stdout` go to stdout,
    /// of `StreamKind::Stderr` to stderr, each starting with `prefix`.
    pub(crate) fn sink(&self, target: StreamKind, prefix: Arc<[u8]>) -> ConsoleSink {
        let tx = match target {
            StreamKind::Stdout => self.out.clone(),
            StreamKind::Stderr => self.err.clone(),
        };
        ConsoleSink { tx, prefix }
    }

    /// Waits until everything sent so far has been written (or `timeout` passed).
    pub async fn flush(&self, timeout: Duration) {
        let flush = async {
            for tx in [&self.out, &self.err] {
                let (done, wait) = oneshot::channel();
                if tx.send(Msg::Flush(done)).await.is_ok() {
                    let _ = wait.await;
                }
            }
        };
        let _ = tokio::time::timeout(timeout, flush).await;
    }
}

/// One program stream's way to the console.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleSink {
    tx: mpsc::Sender<Msg>,
    /// `name | ` or empty (raw mode).
    pub prefix: Arc<[u8]>,
}

impl ConsoleSink {
    /// Queues whole lines if the console has room; otherwise returns the
    /// wait, which queues them once the console has caught up. (Only a wait
    /// allocates, so that the pumps, one per program stream, stay small.)
    #[must_use = "the lines are queued only once the wait is done"]
    pub fn send(&self, lines: Vec<u8>) -> Option<ConsoleWait> {
        if lines.is_empty() {
            return None;
        }
        match self.tx.try_send(Msg::Lines(lines)) {
            Err(mpsc::error::TrySendError::Full(msg)) => {
                let tx = self.tx.clone();
                Some(ConsoleWait(Box::pin(async move {
                    let _ = tx.send(msg).await;
                })))
            }
            // Closed only when the writer thread is gone: nothing left to write to.
            _ => None,
        }
    }
}

/// Lines waiting for room in the console's queue (see [`ConsoleSink::send`]).
pub(crate) struct ConsoleWait(Pin<Box<dyn Future<Output = ()> + Send>>);

impl Future for ConsoleWait {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.as_mut().poll(cx)
    }
}

fn spawn_writer(name: &str, fd: OwnedFd) -> io::Result<mpsc::Sender<Msg>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let target = name.trim_start_matches("nsvisor-console-").to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || write_loop(rx, std::fs::File::from(fd), &target))?;
    Ok(tx)
}

/// The writer thread: until every sender is gone, write each batch, gathering
/// queued batches into writes of at most `PIPE_BUF` bytes of whole lines.
fn write_loop(mut rx: mpsc::Receiver<Msg>, mut out: std::fs::File, target: &str) {
    let mut staged: Vec<u8> = Vec::with_capacity(PIPE_BUF);
    let mut trouble = WriteTrouble::default();
    while let Some(mut msg) = rx.blocking_recv() {
        loop {
            match msg {
                Msg::Lines(lines) => stage(&lines, &mut staged, |data| {
                    trouble.write(&mut out, data, target)
                }),
                Msg::Flush(done) => {
                    trouble.write(&mut out, &staged, target);
                    staged.clear();
                    let _ = done.send(());
                }
            }
            match rx.try_recv() {
                Ok(next) => msg = next,
                Err(_) => break,
            }
        }
        trouble.write(&mut out, &staged, target);
        staged.clear();
    }
}

/// Adds whole lines to `staged`, handing it to `write` whenever the next line
/// would not fit in `PIPE_BUF`; a single longer line is written on its own.
fn stage(mut lines: &[u8], staged: &mut Vec<u8>, mut write: impl FnMut(&[u8])) {
    while !lines.is_empty() {
        let room = PIPE_BUF - staged.len();
        if lines.len() <= room {
            staged.extend_from_slice(lines);
            return;
        }
        match memchr::memrchr(b'\n', &lines[..room]) {
            Some(i) => {
                staged.extend_from_slice(&lines[..=i]);
                lines = &lines[i + 1..];
                write(staged);
                staged.clear();
            }
            None if staged.is_empty() => {
                let end = memchr::memchr(b'\n', lines).map_or(lines.len(), |i| i + 1);
                write(&lines[..end]);
                lines = &lines[end..];
            }
            None => {
                write(staged);
                staged.clear();
            }
        }
    }
}

/// Console write failures (a closed stdout, say): reported at most once a
/// minute; the lines are dropped, since there is nowhere else to put them.
#[derive(Default)]
struct WriteTrouble {
    last_report: Option<Instant>,
}

impl WriteTrouble {
    fn write(&mut self, out: &mut std::fs::File, data: &[u8], target: &str) {
        if data.is_empty() {
            return;
        }
        if let Err(e) = write_all_waiting(out, data) {
            let now = Instant::now();
            if self
                .last_report
                .is_none_or(|t| now.duration_since(t) >= REPORT_EVERY)
            {
                self.last_report = Some(now);
                tracing::error!("cannot write program output to the daemon's {target}: {e}");
            }
        }
    }
}

/// `write_all` that also waits when someone made the shared descriptor non-blocking.
fn write_all_waiting(out: &mut std::fs::File, mut data: &[u8]) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    while !data.is_empty() {
        match out.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
                poll(&mut fds, PollTimeout::NONE)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn writes_are_whole_lines_of_at_most_pipe_buf() {
        let line = |i: usize| format!("{i} {}\n", "x".repeat(i % 700)).into_bytes();
        let long = format!("{}\n", "y".repeat(PIPE_BUF + 10)).into_bytes();
        let mut all = Vec::new();
        let mut writes: Vec<Vec<u8>> = Vec::new();
        let mut staged = Vec::new();
        for i in 0..300 {
            let batch: Vec<u8> = if i == 100 { long.clone() } else { line(i) };
            all.extend_from_slice(&batch);
            stage(&batch, &mut staged, |d| writes.push(d.to_vec()));
        }
        writes.push(staged);
        assert_eq!(writes.concat(), all);
        for w in &writes {
            assert!(w.ends_with(b"\n"));
            assert!(w.len() <= PIPE_BUF || *w == long, "{} bytes", w.len());
        }
    }

    #[tokio::test]
    async fn lines_reach_their_target_whole() {
        let (out_r, out_w) = crate::sys::log_pipe().unwrap();
        let (err_r, err_w) = crate::sys::log_pipe().unwrap();
        let console = Console::new(out_w, err_w).unwrap();
        let a = console.sink(StreamKind::Stdout, Arc::from(&b"a | "[..]));
        let b = console.sink(StreamKind::Stderr, Arc::from(&b"b | "[..]));
        for (sink, line) in [(&a, b"a | 1\n"), (&b, b"b | 2\n")] {
            if let Some(wait) = sink.send(line.to_vec()) {
                wait.await;
            }
        }
        console.flush(Duration::from_secs(5)).await;
        drop((a, b, console));
        let mut text = String::new();
        std::fs::File::from(out_r)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "a | 1\n");
        text.clear();
        std::fs::File::from(err_r)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "b | 2\n");
    }
}
