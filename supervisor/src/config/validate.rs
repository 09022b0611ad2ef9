//! Raw tables → validated [`super::Config`], collecting every error.

use std::path::Path;

use super::{Config, ConfigError, ConfigErrors};

/// Loads and validates a config file (stub until the config loader lands).
pub(super) fn load(
    path: &Path,
    _env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    Err(ConfigErrors(vec![ConfigError {
        file: path.to_path_buf(),
        line: None,
        column: None,
        program: None,
        message: "config loading is not implemented yet".into(),
    }]))
}
