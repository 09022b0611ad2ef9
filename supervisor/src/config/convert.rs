//! `nsvisor convert`: a supervisord INI config written out as the
//! equivalent nsvisor TOML, with a comment at each setting that was dropped
//! or translated into something else.
//!
//! The TOML is written from the very tables the INI was mapped to (the ones
//! validation reads), so loading it yields the same [`Config`] as loading
//! the INI (the tests check this on every fixture). Strings are escaped for
//! the TOML loader's `${VAR}` interpolation (`$` → `$$`). Called by `main.rs`.

use std::fmt::Write as _;
use std::path::Path;

use super::error::{Finding, Severity};
use super::load::Inputs;
use super::raw::{Table, Value};
use super::{validate, ConfigError, ConfigErrors, LoadOptions};

/// Converts the INI config at `path` (and its includes) to TOML text.
pub fn convert(path: &Path, options: &LoadOptions) -> Result<String, ConfigErrors> {
    convert_with(path, &Inputs::of_process(options))
}

/// [`convert`] with explicit inputs (for tests).
pub(super) fn convert_with(path: &Path, inputs: &Inputs) -> Result<String, ConfigErrors> {
    let outcome = validate::load(path, inputs)?;
    let config_path = &outcome.loaded.config.path;
    let Some((sup, programs)) = outcome.ini_tables else {
        let message = "is already an nsvisor TOML config (convert reads supervisord's INI format; use --config-format ini to force it)";
        return Err(ConfigErrors(vec![ConfigError::file(config_path, message)]));
    };
    let findings = &outcome.loaded.findings;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# nsvisor config converted from {} by `nsvisor convert`.",
        config_path.display()
    );
    let _ = writeln!(
        out,
        "# \"dropped\": a supervisord setting nsvisor does not have; \"changed\": one nsvisor expresses differently."
    );
    let _ = writeln!(out, "\n[supervisor]");
    comments(&mut out, findings, None);
    entries(&mut out, &sup);
    for def in &programs {
        let Value::Table(table) = &def.node.value else {
            continue;
        };
        let _ = writeln!(out, "\n[programs.{}]", key(&def.name));
        comments(&mut out, findings, Some(&def.name));
        entries(&mut out, table);
    }
    Ok(out)
}

/// The findings about one table (`None`: not about a program), as comments.
fn comments(out: &mut String, findings: &[Finding], program: Option<&str>) {
    for f in findings
        .iter()
        .filter(|f| f.at.program.as_deref() == program)
    {
        let what = match f.severity {
            Severity::Warning => "dropped",
            Severity::Note => "changed",
        };
        let mut at = f.at.clone();
        at.program = None;
        let _ = writeln!(out, "# {what}: {}", comment_text(&at.headline()));
    }
}

/// `text` for a TOML comment: one line, and no control character but tab
/// (TOML refuses them in comments; a message may quote one from the INI).
fn comment_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' => ' ',
            '\t' => c,
            c if c.is_control() => char::REPLACEMENT_CHARACTER,
            c => c,
        })
        .collect()
}

fn entries(out: &mut String, table: &Table) {
    for e in &table.entries {
        let _ = writeln!(out, "{} = {}", key(&e.key), value(&e.node.value));
    }
}

fn key(k: &str) -> String {
    toml_edit::Key::new(k).display_repr().into_owned()
}

/// A value in TOML syntax; strings escaped for `${VAR}` interpolation.
fn value(v: &Value) -> String {
    match v {
        Value::Str(s) => toml_edit::Value::from(s.replace('$', "$$")).to_string(),
        Value::Int { value, .. } => value.to_string(),
        Value::Float(f) => toml_edit::Value::from(*f).to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Datetime(d) => d.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(|n| value(&n.value)).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Table(t) => {
            let items: Vec<String> = t
                .entries
                .iter()
                .map(|e| format!("{} = {}", key(&e.key), value(&e.node.value)))
                .collect();
            if items.is_empty() {
                "{}".into()
            } else {
                format!("{{ {} }}", items.join(", "))
            }
        }
    }
}
