//! Console line cutting (`LineSplitter`): program output in chunks, cut into
//! lines no longer than a bound, with `…` marking both sides of a cut.
//!
//! Input: byte 0 picks the bound (4 to 131 bytes, or the daemon's 16 KiB
//! when 255) and the prefix (`p | ` or none, raw mode); byte 1 the number of
//! chunk boundaries (0 to 15), the next bytes where they fall; the rest is
//! the output. Checked: the result does not depend on how the output was
//! chunked; every console line starts with the prefix and holds at most the
//! bound; and, when the output has no `…` of its own, removing prefixes and
//! marks gives back the output exactly (with a final newline added).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsvisor::fuzzing::{LineSplitter, MAX_LINE};

const MARK: &[u8] = "…".as_bytes();

fuzz_target!(|input: &[u8]| {
    let [b0, b1, rest @ ..] = input else {
        return;
    };
    let max = if *b0 == 255 {
        MAX_LINE
    } else {
        4 + usize::from(b0 >> 1)
    };
    let prefix: &[u8] = if b0 & 1 == 0 { b"p | " } else { b"" };
    let cuts = usize::from(b1 % 16).min(rest.len());
    let (cuts, data) = rest.split_at(cuts);
    let mut bounds: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) * data.len() / 256)
        .collect();
    bounds.sort_unstable();

    let mut chunked = Vec::new();
    let mut s = LineSplitter::new(max);
    let mut from = 0;
    for &to in bounds.iter().chain([data.len()].iter()) {
        s.feed(&data[from..to], prefix, &mut chunked);
        from = to;
    }
    s.finish(prefix, &mut chunked);

    let mut whole = Vec::new();
    let mut s = LineSplitter::new(max);
    s.feed(data, prefix, &mut whole);
    s.finish(prefix, &mut whole);
    assert_eq!(chunked, whole, "chunking changed the lines");

    check_lines(&whole, data, prefix, max);
});

fn check_lines(out: &[u8], data: &[u8], prefix: &[u8], max: usize) {
    assert!(
        out.is_empty() || out.ends_with(b"\n"),
        "a line without newline"
    );
    let ambiguous = data.windows(MARK.len()).any(|w| w == MARK);
    let mut rebuilt = Vec::new();
    let mut continues = false;
    for line in out
        .split(|&b| b == b'\n')
        .take(out.iter().filter(|&&b| b == b'\n').count())
    {
        let Some(mut text) = line.strip_prefix(prefix) else {
            panic!("line without prefix: {line:?}");
        };
        if ambiguous {
            let marks = 2 * MARK.len();
            assert!(text.len() <= max + marks, "line of {} bytes", text.len());
            continue;
        }
        if continues {
            text = text
                .strip_prefix(MARK)
                .unwrap_or_else(|| panic!("continued line without mark: {line:?}"));
        }
        let cut = text.ends_with(MARK);
        if cut {
            text = &text[..text.len() - MARK.len()];
            assert!(
                text.len() >= max.saturating_sub(3).max(1),
                "a cut after only {} bytes",
                text.len()
            );
        }
        assert!(text.len() <= max, "line of {} bytes", text.len());
        rebuilt.extend_from_slice(text);
        if !cut {
            rebuilt.push(b'\n');
        }
        continues = cut;
    }
    if ambiguous {
        return;
    }
    assert!(!continues, "the output ends in a cut");
    let mut expected = data.to_vec();
    if !expected.is_empty() && !expected.ends_with(b"\n") {
        expected.push(b'\n');
    }
    assert_eq!(rebuilt, expected, "the lines do not give back the output");
}
