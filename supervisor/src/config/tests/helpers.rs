//! Shared helpers for the loader tests: write a config into a temp dir and
//! load it with a fixed environment.

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, ConfigErrors};

/// The environment every test load sees.
pub fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/u".into()),
        "PORT" => Some("8080".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// A temp dir holding `nsvisor.toml` and any other files a test writes.
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(main: &str) -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write("nsvisor.toml", main);
        f
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("nsvisor.toml")
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn load(&self) -> Result<Config, ConfigErrors> {
        Config::load_with_env(&self.path(), &env)
    }
}

/// Loads `text`, which must be valid.
pub fn ok(text: &str) -> Config {
    let f = Fixture::new(text);
    match f.load() {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// Loads `text`, which must be invalid; returns every error.
pub fn errors(text: &str) -> Vec<ConfigError> {
    match Fixture::new(text).load() {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.0,
    }
}

/// Loads `text`, which must have exactly one error; returns it.
pub fn error(text: &str) -> ConfigError {
    let mut errs = errors(text);
    assert_eq!(
        errs.len(),
        1,
        "expected one error, got:\n{}",
        ConfigErrors(errs.clone())
    );
    errs.remove(0)
}

/// Asserts an error's position and that its message contains `needle`.
#[track_caller]
pub fn assert_at(err: &ConfigError, line: usize, column: usize, needle: &str) {
    assert_eq!(
        (err.line, err.column),
        (Some(line), Some(column)),
        "wrong position for: {err}"
    );
    assert!(
        err.message.contains(needle),
        "{:?} does not contain {needle:?}",
        err.message
    );
}
