//! The pump of one program stream: reads the program's pipe(s) and feeds the
//! file sink, the tail buffer and the console.
//!
//! One pump task per stream lives as long as the program's `ProgramLogs`
//! (across restarts): it owns the file sink, so rotation and reopening never
//! race. Each spawn hands it a new pipe; an old pipe stays until every writer
//! has closed it (a grandchild may keep it open), so several can be read at
//! once, each with its own unfinished line. The pump ends when its
//! `ProgramLogs` is gone and every pipe has ended.
//!
//! Per burst of readable data, the pump either
//! - splices pipe → file without copying (only the file sink wants the bytes:
//!   console off, no live follower; the tail buffer is refilled from the file's
//!   last bytes at most `TAIL_LAG` later), or
//! - copies: reads into a per-thread buffer, then file, tail buffer, console.
//!
//! A sink that cannot keep up (a slow FIFO, a console nobody reads) makes the
//! pump stop reading that stream, so the program blocks on its full pipe:
//! output is delayed, never dropped. Runs on the log runtime (`mod.rs`).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::console::ConsoleSink;
use super::file::{FileRegistry, FileSink, FileSpec, Spliced};
use super::lines::LineSplitter;
use super::ring::Ring;
use crate::supervisor::command::Stream;

/// Bytes moved from one pipe before the pump looks at its other work.
const DRAIN_BUDGET: usize = 4 << 20;
/// Copy buffer size (one per log runtime thread).
const READ_BUF: usize = 128 << 10;
/// How stale the tail buffer may get while bytes are spliced.
const TAIL_LAG: Duration = Duration::from_millis(100);

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
}

/// What a pump is for.
pub struct PumpSpec {
    /// Program name (for messages).
    pub program: String,
    /// Which stream (for messages).
    pub stream: Stream,
    /// File sink, if any.
    pub file: Option<FileSpec>,
    /// Console sink, if any.
    pub console: Option<ConsoleSink>,
    /// Tail buffer.
    pub ring: Arc<Ring>,
}

struct Source {
    pipe: AsyncFd<File>,
    lines: LineSplitter,
}

struct Pump {
    program: String,
    stream: Stream,
    file: Option<FileSink>,
    console: Option<ConsoleSink>,
    ring: Arc<Ring>,
    ring_capacity: usize,
    sources: Vec<Source>,
    /// When spliced bytes must reach the tail buffer.
    sync_at: Option<Instant>,
    /// Where the next readiness scan starts (fairness between pipes).
    next_first: usize,
}

/// Outcome of one copy step.
enum Step {
    Data { bytes: usize, lines: Vec<u8> },
    Empty,
    Eof,
}

/// Runs the pump until `pipes` is closed and every pipe received has ended.
/// `reopen` ticks on SIGUSR2.
pub async fn run(
    spec: PumpSpec,
    registry: FileRegistry,
    mut pipes: mpsc::UnboundedReceiver<OwnedFd>,
    mut reopen: watch::Receiver<u64>,
) {
    let ring_capacity = spec.ring.capacity();
    let mut pump = Pump {
        file: spec.file.map(|f| FileSink::new(&spec.program, f, registry)),
        program: spec.program,
        stream: spec.stream,
        console: spec.console,
        ring: spec.ring,
        ring_capacity,
        sources: Vec::new(),
        sync_at: None,
        next_first: 0,
    };
    let mut accepting = true;
    let mut reopen_alive = true;
    while accepting || !pump.sources.is_empty() {
        let blocked = pump.file.as_ref().is_some_and(FileSink::blocked);
        tokio::select! {
            fd = pipes.recv(), if accepting => match fd {
                Some(fd) => pump.add(fd),
                None => accepting = false,
            },
            changed = reopen.changed(), if reopen_alive => match changed {
                Ok(()) => pump.reopen(),
                Err(_) => reopen_alive = false,
            },
            i = next_ready(&pump.sources, pump.next_first), if !blocked => pump.drain(i).await,
            () = writable(&pump.file), if blocked => pump.flush_pending(),
            () = sleep_until(pump.sync_at) => pump.sync_tail(),
        }
    }
    pump.sync_tail();
}

async fn next_ready(sources: &[Source], first: usize) -> usize {
    std::future::poll_fn(|cx| {
        let n = sources.len();
        for k in 0..n {
            let i = (first + k) % n;
            if sources[i].pipe.poll_read_ready(cx).is_ready() {
                return Poll::Ready(i);
            }
        }
        Poll::Pending
    })
    .await
}

async fn writable(file: &Option<FileSink>) {
    match file {
        Some(f) => f.writable().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Pump {
    fn add(&mut self, fd: OwnedFd) {
        match crate::sys::register_async(File::from(fd), Interest::READABLE) {
            Ok(pipe) => self.sources.push(Source {
                pipe,
                lines: LineSplitter::default(),
            }),
            Err(e) => tracing::error!(
                "program \"{}\": cannot watch its {} pipe: {e}",
                self.program,
                stream_name(self.stream)
            ),
        }
        if let Some(f) = &mut self.file {
            // Open at program start, so a bad path is reported at once.
            f.ensure_open();
        }
    }

    fn reopen(&mut self) {
        self.sync_tail();
        if let Some(f) = &mut self.file {
            f.reopen();
        }
    }

    fn flush_pending(&mut self) {
        if let Some(f) = &mut self.file {
            f.flush_pending();
        }
    }

    /// Moves what pipe `i` holds now (up to a budget) to the sinks.
    async fn drain(&mut self, i: usize) {
        self.next_first = i + 1;
        let mut budget = DRAIN_BUDGET;
        loop {
            if self.file.as_ref().is_some_and(FileSink::blocked) {
                return;
            }
            if let Some(outcome) = self.try_splice(i, budget) {
                match outcome {
                    Spliced::Drained | Spliced::Budget => return,
                    Spliced::Eof => return self.close(i).await,
                    Spliced::UseCopy => {}
                }
            }
            self.sync_tail();
            match self.copy_once(i) {
                Step::Empty => return,
                Step::Eof => return self.close(i).await,
                Step::Data { bytes, lines } => {
                    if let Some(console) = &self.console {
                        console.send(lines).await;
                    }
                    budget = budget.saturating_sub(bytes);
                    if budget == 0 {
                        return;
                    }
                }
            }
        }
    }

    /// Splices when only the file wants the bytes; `None` when it does not apply.
    fn try_splice(&mut self, i: usize, budget: usize) -> Option<Spliced> {
        if self.console.is_some() || self.ring.follower_count() > 0 {
            return None;
        }
        let file = self.file.as_mut()?;
        if !file.can_splice() {
            return None;
        }
        let outcome = file.splice_from(&self.sources[i].pipe, budget);
        if self.sync_at.is_none() {
            self.sync_at = Some(Instant::now() + TAIL_LAG);
        }
        Some(outcome)
    }

    /// Reads once from pipe `i` and writes to the file and the tail buffer;
    /// returns the console lines completed.
    fn copy_once(&mut self, i: usize) -> Step {
        let src = &mut self.sources[i];
        BUF.with_borrow_mut(
            |buf| match src.pipe.try_io(Interest::READABLE, |mut f| f.read(buf)) {
                Ok(0) => Step::Eof,
                Ok(n) => {
                    let data = &buf[..n];
                    if let Some(f) = &mut self.file {
                        f.write(data);
                    }
                    self.ring.push(data);
                    let mut lines = Vec::new();
                    if let Some(console) = &self.console {
                        lines.reserve(n + n / 4);
                        src.lines.feed(data, &console.prefix, &mut lines);
                    }
                    Step::Data { bytes: n, lines }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Step::Empty,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => Step::Data {
                    bytes: 0,
                    lines: Vec::new(),
                },
                Err(e) => {
                    tracing::error!(
                        "program \"{}\": cannot read its {} pipe: {e}",
                        self.program,
                        stream_name(self.stream)
                    );
                    Step::Eof
                }
            },
        )
    }

    /// Pipe `i` ended: show its unfinished last line and forget it.
    async fn close(&mut self, i: usize) {
        let mut src = self.sources.swap_remove(i);
        if let Some(console) = &self.console {
            let mut lines = Vec::new();
            src.lines.finish(&console.prefix, &mut lines);
            console.send(lines).await;
        }
        self.sync_tail();
    }

    /// Gives the tail buffer the bytes that were spliced past it.
    fn sync_tail(&mut self) {
        self.sync_at = None;
        if let Some((total, tail)) = self
            .file
            .as_mut()
            .and_then(|f| f.take_unseen(self.ring_capacity))
        {
            self.ring.push_tail(total, &tail);
        }
    }
}

/// `stdout` / `stderr`.
pub fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}
