//! Cutting one program stream into console lines.
//!
//! The console shows whole lines only, so lines of different programs never mix.
//! A [`LineSplitter`] belongs to one pipe: it keeps the unfinished last line
//! between reads, cuts a line longer than its bound into marked pieces (so a
//! program that never writes a newline cannot make the daemon hold its output
//! forever), and gives back the unfinished line when the pipe ends.
//!
//! Format (documented in docs/logging.md): `PREFIX TEXT\n` for a whole line,
//! where PREFIX is `name | ` or empty (raw mode). A cut piece ends with `…` and
//! the piece that continues it starts with `…`. Bytes are copied unchanged; a
//! cut never splits a UTF-8 character when the text is UTF-8.
//!
//! Used by the pump (`pump.rs`) only; pure code, no I/O.

/// Longest piece shown as one console line, in bytes (like Docker's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// Marks both sides of a cut.
const CUT_MARK: &[u8] = "…".as_bytes();

/// The unfinished line of one pipe.
#[derive(Debug)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// The bytes in `partial` continue a piece that was already cut.
    continues: bool,
    max: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter cutting lines longer than `max` bytes.
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            partial: Vec::new(),
            continues: false,
            max: max.max(4),
        }
    }

    /// Appends the console lines completed by `data` to `out`, each starting with `prefix`.
    pub fn feed(&mut self, mut data: &[u8], prefix: &[u8], out: &mut Vec<u8>) {
        while let Some(i) = memchr::memchr(b'\n', data) {
            if self.partial.is_empty() {
                self.emit(&data[..i], prefix, out);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&data[..i]);
                self.emit(&line, prefix, out);
                line.clear();
                self.partial = line;
            }
            data = &data[i + 1..];
        }
        if data.is_empty() {
            return;
        }
        let mut rest = std::mem::take(&mut self.partial);
        rest.extend_from_slice(data);
        let mut start = 0;
        while rest.len() - start > self.max {
            let cut = start + utf8_cut(&rest[start..], self.max);
            self.piece(&rest[start..cut], prefix, true, out);
            start = cut;
        }
        rest.drain(..start);
        if rest.capacity() > 2 * self.max {
            // A long line grew it: keep no more than a line's worth while idle.
            rest.shrink_to(self.max);
        }
        self.partial = rest;
    }

    /// The pipe ended: the unfinished line, if any, as a console line (a newline is added).
    pub fn finish(&mut self, prefix: &[u8], out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, prefix, out);
        }
        self.continues = false;
    }

    /// A complete line (without its newline), cut into pieces when too long.
    fn emit(&mut self, mut line: &[u8], prefix: &[u8], out: &mut Vec<u8>) {
        while line.len() > self.max {
            let cut = utf8_cut(line, self.max);
            self.piece(&line[..cut], prefix, true, out);
            line = &line[cut..];
        }
        self.piece(line, prefix, false, out);
    }

    fn piece(&mut self, text: &[u8], prefix: &[u8], cut: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(prefix);
        if self.continues {
            out.extend_from_slice(CUT_MARK);
        }
        out.extend_from_slice(text);
        if cut {
            out.extend_from_slice(CUT_MARK);
        }
        out.push(b'\n');
        self.continues = cut;
    }
}

/// Where to cut `text` (longer than `max`): at `max`, moved back by up to three
/// bytes so that a UTF-8 character is not split.
fn utf8_cut(text: &[u8], max: usize) -> usize {
    let is_continuation = |b: u8| b & 0xC0 == 0x80;
    (max.saturating_sub(3).max(1)..=max)
        .rev()
        .find(|&i| !is_continuation(text[i]))
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(max: usize, chunks: &[&[u8]], finish: bool) -> String {
        let mut s = LineSplitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, b"p | ", &mut out);
        }
        if finish {
            s.finish(b"p | ", &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn whole_lines_across_reads() {
        assert_eq!(
            run(100, &[b"one\ntw", b"o\nthr", b"ee", b"\n"], false),
            "p | one\np | two\np | three\n"
        );
    }

    #[test]
    fn empty_lines_and_crlf_are_kept() {
        assert_eq!(
            run(100, &[b"\n\r\na\r\n"], false),
            "p | \np | \r\np | a\r\n"
        );
    }

    #[test]
    fn unfinished_line_is_held_until_finish() {
        assert_eq!(run(100, &[b"a\nno newline"], false), "p | a\n");
        assert_eq!(
            run(100, &[b"a\nno newline"], true),
            "p | a\np | no newline\n"
        );
        assert_eq!(run(100, &[b"done\n"], true), "p | done\n");
    }

    #[test]
    fn long_line_is_cut_into_marked_pieces() {
        assert_eq!(
            run(4, &[b"abcdefghij\nk\n"], false),
            "p | abcd…\np | …efgh…\np | …ij\np | k\n"
        );
    }

    #[test]
    fn long_unfinished_line_is_not_held_forever() {
        // No newline at all: everything beyond the bound is shown at once.
        assert_eq!(run(4, &[b"abcdefghi"], false), "p | abcd…\np | …efgh…\n");
        assert_eq!(
            run(4, &[b"abc", b"def", b"ghi"], true),
            "p | abcd…\np | …efgh…\np | …i\n"
        );
    }

    #[test]
    fn a_long_line_leaves_no_big_buffer_behind() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.feed(&[b'x'; 100_050], b"", &mut out);
        assert_eq!(s.partial.len(), 50);
        assert!(s.partial.capacity() <= 200, "{}", s.partial.capacity());
    }

    #[test]
    fn exactly_max_is_not_cut() {
        assert_eq!(run(4, &[b"abcd", b"\n"], false), "p | abcd\n");
    }

    #[test]
    fn cut_does_not_split_utf8() {
        // é is 2 bytes (4 and 5): a cut after 4 bytes would split it.
        let out = run(4, &["abcédefg\n".as_bytes()], false);
        assert_eq!(out, "p | abc…\np | …éde…\np | …fg\n");
    }

    #[test]
    fn raw_prefix_and_binary_bytes() {
        let mut s = LineSplitter::new(100);
        let mut out = Vec::new();
        s.feed(b"\xff\x00x\n", b"", &mut out);
        assert_eq!(out, b"\xff\x00x\n");
    }
}
