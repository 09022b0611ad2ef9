//! Reloads on the supervisor's side: the config file is read and checked
//! on a blocking thread, the way it was read at start, and comes back to the
//! planner as [`Event::Reloaded`].

use nsvisor_proto::{ApiError, ErrorKind};

use super::Supervisor;
use crate::config::Config;
use crate::supervisor::planner::{ClientId, Event};

impl Supervisor {
    /// Reads the config file again on a blocking thread; the result comes
    /// back as [`Event::Reloaded`].
    pub(super) fn load_config(&mut self, client: Option<ClientId>) {
        let refuse = |kind, message: &str| Event::Reloaded {
            client,
            config: Err(ApiError::new(kind, message)),
        };
        if self.planner.shutting_down() {
            return self.handle(refuse(
                ErrorKind::ShuttingDown,
                "the daemon is shutting down",
            ));
        }
        if self.config_path.as_os_str().is_empty() {
            return self.handle(refuse(
                ErrorKind::BadRequest,
                "no config file to reload (started without -c)",
            ));
        }
        let path = self.config_path.clone();
        let jobs = self.jobs.clone();
        let options = self.load_options.clone();
        tokio::task::spawn_blocking(move || {
            let config = read_config(&path, &options);
            let _ = jobs.send(Event::Reloaded { client, config });
        });
    }
}

/// Reads and checks the config file for a reload (on a blocking thread),
/// the way it was read at start; logs its warnings.
fn read_config(
    path: &std::path::Path,
    options: &crate::config::LoadOptions,
) -> Result<Box<Config>, ApiError> {
    let invalid = |e: &dyn std::fmt::Display| {
        ApiError::new(
            ErrorKind::InvalidConfig,
            format!("configuration not reloaded:\n{e}"),
        )
    };
    let loaded = Config::load_with(path, options).map_err(|e| invalid(&e))?;
    for warning in loaded.warnings() {
        tracing::warn!("{}", warning.headline());
    }
    let config = loaded.config;
    crate::net::check_privileges(&config).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidConfig,
            format!("configuration not reloaded: {e}"),
        )
    })?;
    Ok(Box::new(config))
}
