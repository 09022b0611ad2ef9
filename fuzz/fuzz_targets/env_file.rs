//! The `environment_file` (dotenv) parser. What it accepts must survive a
//! round trip: each pair written back as `KEY="value"` (escaped) parses to
//! the same pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsvisor::fuzzing::parse_env_file;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_env_file(text) {
        Ok(pairs) => {
            let written: String = pairs
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"\n", escape(v)))
                .collect();
            assert_eq!(
                parse_env_file(&written),
                Ok(pairs),
                "written back as:\n{written}"
            );
        }
        Err((offset, _)) => assert!(offset <= text.len(), "error offset {offset} past the end"),
    }
});

/// A value for a double-quoted string.
fn escape(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
