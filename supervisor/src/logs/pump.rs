//! The pump of one program stream: reads the program's pipe(s) and feeds the
//! file sink, the tail buffer and the console.
//!
//! One pump task per stream lives as long as the program's `ProgramLogs`
//! (across restarts): it owns the file sink, so rotation and reopening never
//! race. Each spawn hands it a new pipe through its [`Mailbox`]; an old pipe
//! stays until every writer has closed it (a grandchild may keep it open), so
//! several can be read at once, each with its own unfinished line. The pump
//! ends when its `ProgramLogs` is gone and every pipe has ended.
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
//!
//! Memory: a daemon may hold thousands of idle pumps, so an idle one is kept
//! small: [`Pump`] is itself the task's future (about 130 bytes), polling its
//! mailbox, timer, sinks and pipes in one function rather than a `select!`
//! that would store one future per branch; the file sink, the tail timer and
//! a console send that has to wait are boxed, and exist only while needed.

use std::cell::RefCell;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nsvisor_proto::StreamKind;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::time::Sleep;

use super::console::{ConsoleSink, ConsoleWait};
use super::file::{FileRegistry, FileSink, FileSpec, Spliced};
use super::idle::IdlePipes;
use super::lines::LineSplitter;
use super::log_watch::LogWatch;
use super::mailbox::Mailbox;
use super::ring::Ring;

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
    pub program: Arc<str>,
    /// Which stream (for messages).
    pub stream: StreamKind,
    /// File sink, if any.
    pub file: Option<FileSpec>,
    /// Console sink, if any.
    pub console: Option<ConsoleSink>,
    /// Tail buffer.
    pub ring: Arc<Ring>,
    /// Where its pipes and requests arrive.
    pub mailbox: Arc<Mailbox>,
    /// Where its pipes wait for their first byte.
    pub idle: Arc<IdlePipes>,
}

struct Source {
    pipe: Pipe,
    lines: LineSplitter,
    /// A `log` readiness check still waiting for its line (boxed: rare).
    watch: Option<Box<LogWatch>>,
}

enum Pipe {
    /// Nothing written yet: watched by [`IdlePipes`].
    Parked(File),
    /// Registered with tokio.
    Watched(AsyncFd<File>),
}

/// The state of one stream's pump, and its task's future.
pub struct Pump<G> {
    program: Arc<str>,
    stream: StreamKind,
    mailbox: Arc<Mailbox>,
    idle: Arc<IdlePipes>,
    file: Option<Box<FileSink>>,
    console: Option<ConsoleSink>,
    /// Lines the console could not take yet.
    console_wait: Option<ConsoleWait>,
    ring: Arc<Ring>,
    sources: Vec<Source>,
    /// Fires when spliced bytes must reach the tail buffer.
    sync_timer: Option<Pin<Box<Sleep>>>,
    /// Where the next readiness scan starts (fairness between pipes).
    next_first: u32,
    /// No more pipes will come.
    closed: bool,
    /// Dropped when the pump ends (the caller counts live pumps with it).
    _guard: G,
}

/// What the pump has to do next.
enum Work {
    /// Pipe `i` has data (or ended).
    Drain(usize),
    /// No pipes left and none to come.
    Done,
}

impl<G: Unpin> Future for Pump<G> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let pump = self.get_mut();
        // Ends: tokio's budget makes pipe readiness pending after a while.
        loop {
            match ready!(pump.poll_work(cx)) {
                Work::Drain(i) => pump.drain(i),
                Work::Done => {
                    pump.sync_tail();
                    return Poll::Ready(());
                }
            }
        }
    }
}

/// Outcome of one copy step.
enum Step {
    Data { bytes: usize, lines: Vec<u8> },
    Empty,
    Eof,
}

impl<G> Pump<G> {
    /// A pump for `spec`; `guard` is dropped when it ends. Spawn it: it is
    /// the future that runs until its mailbox is closed and every pipe it
    /// received has ended.
    pub fn new(spec: PumpSpec, registry: FileRegistry, guard: G) -> Pump<G> {
        Pump {
            file: spec
                .file
                .map(|f| Box::new(FileSink::new(&spec.program, f, registry))),
            program: spec.program,
            stream: spec.stream,
            mailbox: spec.mailbox,
            idle: spec.idle,
            console: spec.console,
            console_wait: None,
            ring: spec.ring,
            sources: Vec::new(),
            sync_timer: None,
            next_first: 0,
            closed: false,
            _guard: guard,
        }
    }

    /// Does the quick work (mail, timer, a slow sink taking more) and says
    /// what is next; registers for every wake-up that can change that.
    fn poll_work(&mut self, cx: &mut Context<'_>) -> Poll<Work> {
        let mail = self.mailbox.take(cx.waker());
        for (fd, watch) in mail.pipes {
            self.add(fd, watch);
        }
        if mail.unpark {
            self.unpark();
        }
        if mail.reopen {
            self.reopen();
        }
        self.closed |= mail.closed;
        if let Some(timer) = &mut self.sync_timer {
            if timer.as_mut().poll(cx).is_ready() {
                self.sync_tail();
            }
        }
        // While a sink is behind, pipes are not read: the program waits.
        if let Some(wait) = &mut self.console_wait {
            ready!(Pin::new(wait).poll(cx));
            self.console_wait = None;
        }
        if let Some(f) = &mut self.file {
            while f.blocked() {
                ready!(f.poll_writable(cx));
                f.flush_pending();
            }
        }
        if self.closed && self.sources.is_empty() {
            return Poll::Ready(Work::Done);
        }
        let n = self.sources.len();
        for k in 0..n {
            let i = (self.next_first as usize + k) % n;
            if let Pipe::Watched(pipe) = &self.sources[i].pipe {
                if pipe.poll_read_ready(cx).is_ready() {
                    return Poll::Ready(Work::Drain(i));
                }
            }
        }
        Poll::Pending
    }

    fn add(&mut self, fd: OwnedFd, watch: Option<LogWatch>) {
        let file = File::from(fd);
        let pipe = match self.idle.park(&file, &self.mailbox) {
            Ok(()) => Some(Pipe::Parked(file)),
            Err(_) => self.watch(file),
        };
        if let Some(pipe) = pipe {
            // Usually one pipe at a time: no room for more until needed.
            self.sources.reserve_exact(1);
            self.sources.push(Source {
                pipe,
                lines: LineSplitter::default(),
                watch: watch.map(Box::new),
            });
        }
        if let Some(f) = &mut self.file {
            // Open at program start, so a bad path is reported at once.
            f.ensure_open();
        }
    }

    /// Registers `pipe` with tokio; `None` (reported) if that fails.
    fn watch(&self, pipe: File) -> Option<Pipe> {
        match crate::sys::register_async(pipe, Interest::READABLE) {
            Ok(pipe) => Some(Pipe::Watched(pipe)),
            Err(e) => {
                tracing::error!(
                    "program \"{}\": cannot watch its {} pipe: {e}",
                    self.program,
                    self.stream.as_str()
                );
                None
            }
        }
    }

    /// A parked pipe became readable: watch every parked pipe from now on.
    /// One that ended without a byte written (the usual end of a quiet
    /// stream) is closed at once, without going through tokio's reactor:
    /// when thousands of programs stop together, that is most of the pipes.
    fn unpark(&mut self) {
        let mut kept = Vec::with_capacity(self.sources.len());
        for mut src in std::mem::take(&mut self.sources) {
            let pipe = match src.pipe {
                Pipe::Parked(file) => {
                    if crate::sys::pipe_ended_empty(file.as_fd()) {
                        self.idle.forget(&file);
                        // Parked pipes never had data: no line to finish.
                        if let Some(watch) = &mut src.watch {
                            watch.finish();
                        }
                        continue;
                    }
                    self.idle.unpark(&file);
                    match self.watch(file) {
                        Some(pipe) => pipe,
                        None => continue,
                    }
                }
                watched => watched,
            };
            kept.push(Source { pipe, ..src });
        }
        self.sources = kept;
    }

    fn reopen(&mut self) {
        self.sync_tail();
        if let Some(f) = &mut self.file {
            f.reopen();
        }
    }

    /// Moves what pipe `i` holds now (up to a budget) to the sinks; stops
    /// early when a sink is behind.
    fn drain(&mut self, i: usize) {
        self.next_first = u32::try_from(i + 1).unwrap_or(0);
        let mut budget = DRAIN_BUDGET;
        loop {
            let (lines, go_on) = self.drain_step(i, &mut budget);
            if let Some(console) = &self.console {
                self.console_wait = console.send(lines);
                if self.console_wait.is_some() {
                    return;
                }
            }
            if !go_on {
                return;
            }
        }
    }

    /// One step of [`Pump::drain`]: the console lines it completed, and
    /// whether to go on. Pipe `i` is gone once it has ended.
    fn drain_step(&mut self, i: usize, budget: &mut usize) -> (Vec<u8>, bool) {
        if self.file.as_ref().is_some_and(|f| f.blocked()) {
            return (Vec::new(), false);
        }
        if let Some(outcome) = self.try_splice(i, *budget) {
            match outcome {
                Spliced::Drained | Spliced::Budget => return (Vec::new(), false),
                Spliced::Eof => return (self.close(i), false),
                Spliced::UseCopy => {}
            }
        }
        self.sync_tail();
        match self.copy_once(i) {
            Step::Empty => (Vec::new(), false),
            Step::Eof => (self.close(i), false),
            Step::Data { bytes, lines } => {
                *budget = budget.saturating_sub(bytes);
                (lines, *budget > 0)
            }
        }
    }

    /// Splices when only the file wants the bytes; `None` when it does not apply.
    fn try_splice(&mut self, i: usize, budget: usize) -> Option<Spliced> {
        if self.console.is_some()
            || self.ring.follower_count() > 0
            || self.sources[i].watch.is_some()
        {
            return None;
        }
        let file = self.file.as_mut()?;
        if !file.can_splice() {
            return None;
        }
        let Pipe::Watched(pipe) = &self.sources[i].pipe else {
            return Some(Spliced::Drained);
        };
        let outcome = file.splice_from(pipe, budget);
        if self.sync_timer.is_none() {
            self.sync_timer = Some(Box::pin(tokio::time::sleep(TAIL_LAG)));
        }
        Some(outcome)
    }

    /// Reads once from pipe `i` and writes to the file and the tail buffer;
    /// returns the console lines completed.
    fn copy_once(&mut self, i: usize) -> Step {
        let src = &mut self.sources[i];
        let Pipe::Watched(pipe) = &src.pipe else {
            return Step::Empty;
        };
        BUF.with_borrow_mut(
            |buf| match pipe.try_io(Interest::READABLE, |mut f| f.read(buf)) {
                Ok(0) => Step::Eof,
                Ok(n) => {
                    let data = &buf[..n];
                    if let Some(f) = &mut self.file {
                        f.write(data);
                    }
                    self.ring.push(data);
                    if src.watch.as_mut().is_some_and(|w| w.feed(data)) {
                        src.watch = None;
                    }
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
                        self.stream.as_str()
                    );
                    Step::Eof
                }
            },
        )
    }

    /// Pipe `i` ended: forget it; returns its unfinished last line for the console.
    fn close(&mut self, i: usize) -> Vec<u8> {
        let mut src = self.sources.swap_remove(i);
        if let Pipe::Parked(file) = &src.pipe {
            self.idle.unpark(file);
        }
        if let Some(watch) = &mut src.watch {
            watch.finish();
        }
        let mut lines = Vec::new();
        if let Some(console) = &self.console {
            src.lines.finish(&console.prefix, &mut lines);
        }
        self.sync_tail();
        lines
    }

    /// Gives the tail buffer the bytes that were spliced past it.
    fn sync_tail(&mut self) {
        self.sync_timer = None;
        if let Some(f) = &mut self.file {
            if let Some((total, tail)) = f.take_unseen(|| self.ring.capacity()) {
                self.ring.push_tail(total, &tail);
            }
        }
    }
}
