//! The TOML config loader: parsing with spans, `${VAR}` expansion, includes,
//! `environment_file`, validation and the rendering of every error. Input:
//! the main file, an included file and an env file (see `src/config.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsvisor::config::ConfigFormat;

fuzz_target!(|data: &[u8]| {
    nsvisor_fuzz::config::load(data, ConfigFormat::Toml);
});
