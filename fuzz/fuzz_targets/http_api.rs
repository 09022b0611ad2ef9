//! The control API: one client's raw bytes (request line, headers, query,
//! JSON or XML-RPC body; several requests when pipelined) to the daemon's real
//! connection handler, against a fake supervisor (see
//! `supervisor/src/api/fuzz_harness.rs`). Whatever comes in, the answer must
//! be HTTP: a server that says anything starts with a status line.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nsvisor::fuzzing::HttpHarness;

fn harness() -> &'static HttpHarness {
    static HARNESS: OnceLock<HttpHarness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        nsvisor_fuzz::ignore_sigpipe();
        HttpHarness::new()
    })
}

fuzz_target!(|data: &[u8]| {
    let answer = harness().serve(data);
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 ") || answer.starts_with(b"HTTP/1.0 "),
        "not an HTTP answer: {:?}",
        String::from_utf8_lossy(&answer)
    );
});
