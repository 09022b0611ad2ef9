//! Tail buffer: the last bytes of one program stream, kept in memory for `tail`.
//!
//! Owned by the program's log pump (writer) and shared read-only with the API
//! (readers) through `Arc<Ring>`. The lock guards only this byte buffer (not
//! program state) and is never held across I/O or `.await`. Followers get new
//! chunks through a broadcast channel; a lagging follower loses chunks, never
//! blocks the writer. The channel holds at most [`FOLLOW_QUEUE`] chunks of at
//! most [`FOLLOW_CHUNK`] bytes: what followers that do not read (a stuck
//! `tail -f`) make the daemon keep is bounded by their product, per stream.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::broadcast;

/// Capacity of the followers' channel, in chunks.
const FOLLOW_QUEUE: usize = 256;

/// Largest chunk sent to followers: a bigger push is sent in pieces, so a
/// full channel holds at most 4 MiB, not 256 reads of up to 128 KiB each.
const FOLLOW_CHUNK: usize = 16 << 10;

/// The last `capacity` bytes of a stream, plus live followers.
#[derive(Debug)]
pub struct Ring {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    buf: VecDeque<u8>,
    capacity: usize,
    /// Total bytes ever written (the offset just past the last byte).
    written: u64,
    /// Created on the first follower only: a broadcast channel preallocates
    /// its slots, which would cost ~20 KiB per stream of every program.
    followers: Option<broadcast::Sender<Bytes>>,
}

impl Ring {
    /// A ring keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Ring {
        Ring {
            inner: Mutex::new(Inner {
                buf: VecDeque::new(),
                capacity,
                written: 0,
                followers: None,
            }),
        }
    }

    /// Appends bytes and hands them to followers.
    pub fn push(&self, data: &[u8]) {
        self.push_tail(data.len() as u64, data);
    }

    /// Records that `total` bytes were appended to the stream, of which only the
    /// last ones, `tail`, are known here (the rest went straight from the pipe to
    /// the log file). Followers receive `tail`.
    pub fn push_tail(&self, total: u64, tail: &[u8]) {
        if total == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.written += total;
        let cap = inner.capacity;
        let keep = &tail[tail.len().saturating_sub(cap)..];
        if total > tail.len() as u64 {
            // A gap: what is kept would not be contiguous with `tail`.
            inner.buf.clear();
        }
        let len = inner.buf.len();
        let overflow = (len + keep.len()).saturating_sub(cap);
        inner.buf.drain(..overflow.min(len));
        inner.buf.extend(keep);
        // Sent under the lock (a broadcast send never blocks), so `follow`
        // sees every byte exactly once: either in its snapshot or as a chunk.
        if let Some(tx) = inner
            .followers
            .as_ref()
            .filter(|tx| tx.receiver_count() > 0)
        {
            for piece in tail.chunks(FOLLOW_CHUNK) {
                let _ = tx.send(Bytes::copy_from_slice(piece));
            }
        }
    }

    /// Forgets every byte kept and starts counting again from 0, as a
    /// truncated log file does (`clear NAME`). Followers stay subscribed.
    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.buf = VecDeque::new();
        inner.written = 0;
    }

    /// How many bytes this ring keeps at most.
    pub fn capacity(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .capacity
    }

    /// The last `max` bytes kept, and the total written so far.
    pub fn snapshot(&self, max: usize) -> (Vec<u8>, u64) {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let start = inner.buf.len().saturating_sub(max);
        (inner.buf.range(start..).copied().collect(), inner.written)
    }

    /// The last `n` lines kept (fewer if the buffer holds fewer).
    pub fn last_lines(&self, n: usize) -> Vec<u8> {
        let (data, _) = self.snapshot(usize::MAX);
        last_lines(&data, n).to_vec()
    }

    /// Everything kept so far plus a receiver of every chunk pushed after it,
    /// with no byte lost or repeated in between (for `tail -f`).
    pub fn follow(&self) -> (Vec<u8>, broadcast::Receiver<Bytes>) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let rx = inner.subscribe();
        (inner.buf.iter().copied().collect(), rx)
    }

    /// How many followers are subscribed right now.
    pub fn follower_count(&self) -> usize {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.followers.as_ref().map_or(0, |tx| tx.receiver_count())
    }

    /// A receiver of every chunk pushed from now on. It ends (RecvError::Closed)
    /// when the ring is dropped, i.e. when the program's stream is gone for good.
    pub fn subscribe(&self) -> broadcast::Receiver<Bytes> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .subscribe()
    }
}

impl Inner {
    fn subscribe(&mut self) -> broadcast::Receiver<Bytes> {
        self.followers
            .get_or_insert_with(|| broadcast::channel(FOLLOW_QUEUE).0)
            .subscribe()
    }
}

/// The last `n` lines of `data` (all of it if it holds fewer); a final line
/// without a newline counts as a line.
pub fn last_lines(data: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &[];
    }
    let mut seen = 0;
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &data[i + 1..];
            }
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_bytes() {
        let r = Ring::new(5);
        r.push(b"abc");
        r.push(b"defg");
        assert_eq!(r.snapshot(100), (b"cdefg".to_vec(), 7));
        r.push(b"0123456789");
        assert_eq!(r.snapshot(3), (b"789".to_vec(), 17));
    }

    #[test]
    fn push_tail_counts_bytes_it_did_not_see() {
        let r = Ring::new(4);
        r.push(b"ab");
        r.push_tail(3, b"cde");
        assert_eq!(r.snapshot(100), (b"bcde".to_vec(), 5));
        r.push_tail(1000, b"xyz");
        assert_eq!(r.snapshot(100), (b"xyz".to_vec(), 1005));
    }

    #[test]
    fn clear_forgets_everything_like_a_truncated_file() {
        let r = Ring::new(100);
        r.push(b"old\n");
        let mut rx = r.subscribe();
        r.clear();
        assert_eq!(r.snapshot(100), (Vec::new(), 0));
        r.push(b"new\n");
        assert_eq!(r.snapshot(100), (b"new\n".to_vec(), 4));
        assert_eq!(rx.try_recv().ok(), Some(Bytes::from_static(b"new\n")));
    }

    #[test]
    fn last_lines() {
        let r = Ring::new(100);
        r.push(b"a\nb\nc\n");
        assert_eq!(r.last_lines(2), b"b\nc\n".to_vec());
        assert_eq!(r.last_lines(10), b"a\nb\nc\n".to_vec());
        assert_eq!(super::last_lines(b"a\nb", 1), b"b");
        assert_eq!(super::last_lines(b"a\nb\n", 0), b"");
    }

    #[test]
    fn followers_get_big_pushes_in_bounded_pieces() {
        let r = Ring::new(8);
        let (_, mut rx) = r.follow();
        r.push(&vec![b'x'; FOLLOW_CHUNK * 2 + 1]);
        let sizes: Vec<usize> =
            std::iter::from_fn(|| rx.try_recv().ok().map(|b| b.len())).collect();
        assert_eq!(sizes, [FOLLOW_CHUNK, FOLLOW_CHUNK, 1]);
    }

    #[test]
    fn follow_sees_every_byte_once() {
        let r = Ring::new(100);
        r.push(b"old\n");
        let (kept, mut rx) = r.follow();
        r.push(b"new\n");
        assert_eq!(kept, b"old\n".to_vec());
        assert_eq!(rx.try_recv().ok(), Some(Bytes::from_static(b"new\n")));
    }
}
