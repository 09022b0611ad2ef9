//! How a config file is loaded: its format (recognised by content, or
//! forced), the load options, and what a load returns besides the
//! [`Config`]: the warnings about settings nsvisor drops or honours
//! differently (printed by `nsvisor check`, logged at start).
//!
//! Called by `main.rs` (start, `check`, `convert`) and through
//! [`Config::load`] by reload.

use std::path::Path;

use super::error::{Finding, Severity};
use super::{validate, Config, ConfigError, ConfigErrors};

/// The two config formats nsvisor reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigFormat {
    /// nsvisor's own TOML.
    Toml,
    /// supervisord's INI (`supervisord.conf`).
    Ini,
}

impl ConfigFormat {
    /// The format of a file's text: INI when it has a section header only
    /// supervisord's format uses (`[supervisord]`, `[program:x]`,
    /// `[group:x]`, `[include]`, …), else TOML.
    pub fn detect(text: &str) -> ConfigFormat {
        if super::ini::looks_like_ini(text) {
            ConfigFormat::Ini
        } else {
            ConfigFormat::Toml
        }
    }
}

/// Options of one load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Force a format instead of recognising it by content.
    pub format: Option<ConfigFormat>,
    /// supervisord's `[eventlistener:x]` and `[fcgi-program:x]`: skip them
    /// with a warning instead of refusing the config.
    pub skip_unsupported: bool,
}

/// A loaded config and what the load has to say about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// The format that was read.
    pub format: ConfigFormat,
    /// Warnings and notes, in file order.
    pub findings: Vec<Finding>,
}

impl Loaded {
    /// The warnings only (settings dropped or honoured differently).
    pub fn warnings(&self) -> impl Iterator<Item = &ConfigError> {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .map(|f| &f.at)
    }
}

/// What a load reads besides files: the environment and the host name.
pub(super) struct Inputs<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub host_node_name: String,
    pub options: LoadOptions,
}

impl Inputs<'_> {
    /// This process's environment and host name.
    pub fn of_process(options: &LoadOptions) -> Inputs<'static> {
        Inputs {
            env: &|name| std::env::var(name).ok(),
            host_node_name: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            options: options.clone(),
        }
    }
}

impl Config {
    /// Reads, parses and validates `path` (either format, recognised by
    /// content) and its includes. Every problem is reported, not just the first.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, &LoadOptions::default()).map(|l| l.config)
    }

    /// Like [`Config::load`], with options, returning the warnings too.
    pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Loaded, ConfigErrors> {
        validate::load(path, &Inputs::of_process(options)).map(|o| o.loaded)
    }

    /// Like [`Config::load`], with an explicit environment lookup (for tests).
    pub fn load_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let inputs = Inputs {
            env,
            host_node_name: "testhost".into(),
            options: LoadOptions::default(),
        };
        validate::load(path, &inputs).map(|o| o.loaded.config)
    }
}

/// [`Config::load_with`] with an explicit environment and host name: for the
/// fuzz targets (`fuzz/`), which must not depend on the process's own.
#[cfg(feature = "fuzzing")]
pub(crate) fn load_with_inputs(
    path: &Path,
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
    host_node_name: &str,
) -> Result<Loaded, ConfigErrors> {
    let inputs = Inputs {
        env,
        host_node_name: host_node_name.to_string(),
        options: options.clone(),
    };
    validate::load(path, &inputs).map(|o| o.loaded)
}

/// [`super::convert`] with an explicit environment and host name (as
/// [`load_with_inputs`]).
#[cfg(feature = "fuzzing")]
pub(crate) fn convert_with_inputs(
    path: &Path,
    options: &LoadOptions,
    env: &dyn Fn(&str) -> Option<String>,
    host_node_name: &str,
) -> Result<String, ConfigErrors> {
    let inputs = Inputs {
        env,
        host_node_name: host_node_name.to_string(),
        options: options.clone(),
    };
    super::convert::convert_with(path, &inputs)
}
