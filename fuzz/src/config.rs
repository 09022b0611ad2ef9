//! One input as the files of one config load, for `config_toml` and
//! `config_ini`.
//!
//! An input is up to three files separated by a line `#---` (a comment in
//! both formats): the main config, a file it may include (`extra.toml` or
//! `extra.conf`) and an env file (`app.env`), all in one directory that the
//! target owns. The load sees a fixed environment ([`env`]) and host name.
//!
//! The loader reads every file a config names, so an input that names the
//! host's devices, `/proc`, or globs over the host's file system would make
//! the run read endlessly or slowly instead of testing the parser: such
//! inputs are skipped ([`stays_inside`]).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nsvisor::config::{Config, ConfigFormat, LoadOptions};
use nsvisor::fuzzing::{convert_config, load_config};

/// The line between the files of an input.
pub const SEPARATOR: &[u8] = b"\n#---\n";

/// The environment every load sees.
pub fn env(name: &str) -> Option<String> {
    let value = match name {
        "HOME" => "/nonexistent/home",
        "PORT" => "8080",
        "EMPTY" => "",
        "USER" => "app",
        "SUBNET" => "172.31.5.0/24",
        "ARGS" => "--verbose --port 8080",
        _ => return None,
    };
    Some(value.to_string())
}

/// The directory the input's files are written to, made once per process.
fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(temp_dir).path()
}

/// The directory a converted config is written to (not one an input's glob sees).
fn out_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(temp_dir).path()
}

/// A new temporary directory under `$TMPDIR` (never removed: libFuzzer
/// exits without dropping statics; `scripts/fuzz.sh` removes its `$TMPDIR`).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

/// True when `data` names nothing outside the target's directory that the
/// loader would read: no devices but the console, no `/proc` or `/sys`, no
/// `..`, no recursive glob, and no glob in an absolute path.
pub fn stays_inside(data: &[u8]) -> bool {
    const DENIED: [&[u8]; 4] = [b"/proc", b"/sys", b"..", b"**"];
    if DENIED.iter().any(|d| crate::find(data, d).is_some()) {
        return false;
    }
    let mut rest = data;
    while let Some(i) = crate::find(rest, b"/dev/") {
        let after = &rest[i + 5..];
        if !(after.starts_with(b"stdout") || after.starts_with(b"stderr")) {
            return false;
        }
        rest = after;
    }
    // Absolute paths with a glob character ("/etc/*", "/u?r").
    let is_break = |b: &u8| b" \t\r\n\"',=[]{}()".contains(b);
    !data
        .split(is_break)
        .any(|token| token.starts_with(b"/") && token.iter().any(|b| b"*?".contains(b)))
}

/// Writes `data`'s files and loads them as `format`; for INI, also checks
/// that `nsvisor convert` writes TOML that loads into the same config.
pub fn load(data: &[u8], format: ConfigFormat) {
    if !stays_inside(data) {
        return;
    }
    let (main_name, extra_name) = match format {
        ConfigFormat::Toml => ("nsvisor.toml", "extra.toml"),
        ConfigFormat::Ini => ("supervisord.conf", "extra.conf"),
    };
    let dir = dir();
    let parts = crate::split_parts(data, SEPARATOR, 3);
    let names = [main_name, extra_name, "app.env"];
    for (i, name) in names.iter().enumerate() {
        let path = dir.join(name);
        match parts.get(i) {
            Some(part) => std::fs::write(&path, part).expect("write an input file"),
            None => match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("cannot remove {}: {e}", path.display()),
            },
        }
    }
    let main = dir.join(main_name);
    let options = LoadOptions {
        format: Some(format),
        // Both ways of meeting [eventlistener:x]: refused, or skipped.
        skip_unsupported: data.len() % 2 == 1,
    };
    let loaded = match load_config(&main, &options, &env) {
        Ok(loaded) => loaded,
        Err(errors) => {
            // Every error renders (with its snippet) without panicking.
            let _ = errors.to_string();
            return;
        }
    };
    for finding in &loaded.findings {
        let _ = finding.at.to_string();
    }
    if format == ConfigFormat::Ini {
        converts_to_the_same_config(&main, &options, loaded.config);
    }
}

/// `nsvisor convert`'s promise: its TOML loads into the same config as the INI.
fn converts_to_the_same_config(main: &Path, options: &LoadOptions, from_ini: Config) {
    let toml = match convert_config(main, options, &env) {
        Ok(toml) => toml,
        Err(e) => panic!("a valid INI config does not convert:\n{e}"),
    };
    let path = out_dir().join("nsvisor.toml");
    std::fs::write(&path, &toml).expect("write the converted config");
    let toml_options = LoadOptions {
        format: Some(ConfigFormat::Toml),
        skip_unsupported: false,
    };
    match load_config(&path, &toml_options, &env) {
        Ok(loaded) => assert_eq!(
            placeless(loaded.config),
            placeless(from_ini),
            "the converted config differs; converted to:\n{toml}"
        ),
        Err(e) => panic!("the converted config does not load:\n{e}\nconverted to:\n{toml}"),
    }
}

/// A config without the paths of the files it came from.
fn placeless(mut config: Config) -> Config {
    config.path = PathBuf::new();
    for p in config.programs.values_mut() {
        p.source = PathBuf::new().into();
    }
    config
}
