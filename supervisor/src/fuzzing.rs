//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`,
//! which nothing else enables): the parsers and the arithmetic that take
//! outside input, reached without making them public for anyone else.
//!
//! - [`load_config`]: the whole config loader (TOML or INI, includes,
//!   `${VAR}` and `%(ENV_X)s` expansion, `environment_file`, validation)
//!   with a fixed environment and host name; [`convert_config`]: INI to TOML.
//! - [`parse_env_file`]: the `environment_file` (dotenv) parser alone.
//! - [`HttpHarness`]: raw bytes to the control API's connection handler.
//! - [`LineSplitter`]: console line cutting; [`rotation_plan`] and
//!   [`FileSink`]: log file rotation, pure and with real files.
//!
//! Nothing here is a stable interface: it follows the code it exposes.

use std::path::Path;

pub use crate::api::fuzz_harness::HttpHarness;
use crate::config::{ConfigErrors, LoadOptions, Loaded};
pub use crate::logs::{
    backup_path, rotation_plan, FileRegistry, FileSink, FileSpec, LineSplitter, Plan, MAX_LINE,
    OVERSHOOT,
};

/// Loads the config file at `path` (and what it includes) as the daemon
/// does at start, with `env` as the environment and `fuzzhost` as the host name.
pub fn load_config(
    path: &Path,
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    crate::config::load_with_inputs(path, options, env, "fuzzhost")
}

/// Converts the INI config at `path` to nsvisor TOML (`nsvisor convert`),
/// with the same environment and host name as [`load_config`].
pub fn convert_config(
    path: &Path,
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigErrors> {
    crate::config::convert_with_inputs(path, options, env, "fuzzhost")
}

/// Parses the text of an `environment_file` into `(key, value)` pairs, in
/// file order; an error is the byte offset of the bad line and the message.
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    crate::config::parse_env_file(text).map_err(|e| (e.offset, e.message))
}
