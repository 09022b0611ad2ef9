//! supervisord's INI loader: the lexer, `%(here)s`/`%(ENV_X)s` expansion,
//! `[include]`, merged sections, `environment`/env files and the mapping to
//! nsvisor's tables; a config that loads must convert (`nsvisor convert`) to
//! TOML that loads into the same config. Input: see `src/config.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nsvisor::config::ConfigFormat;

fuzz_target!(|data: &[u8]| {
    nsvisor_fuzz::config::load(data, ConfigFormat::Ini);
});
