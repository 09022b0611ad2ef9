//! What the fuzz targets in `fuzz_targets/` share: turning one input into
//! the config files of a load, and the few helpers the others use.
//!
//! The targets themselves are one file each; `scripts/fuzz.sh` runs them all
//! (docs/reliability.md, "Fuzzing").

pub mod config;

/// Splits `data` at each `sep`, into at most `n` parts (the last keeps the rest).
pub fn split_parts<'a>(data: &'a [u8], sep: &[u8], n: usize) -> Vec<&'a [u8]> {
    let mut parts = Vec::with_capacity(n);
    let mut rest = data;
    while parts.len() + 1 < n {
        match find(rest, sep) {
            Some(i) => {
                parts.push(&rest[..i]);
                rest = &rest[i + sep.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// The first position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writing to a socket whose peer has gone must be an error, not SIGPIPE:
/// libFuzzer's `main` does not ignore the signal the way a Rust `main` does.
pub fn ignore_sigpipe() {
    // SAFETY: SIG_IGN installs no handler code; this runs once, before any thread.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
