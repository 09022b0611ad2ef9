//! Config errors: each names the file, line and column, the program, and the cause.
//!
//! `ConfigErrors` collects every error of one load so `nsvisor check` can print
//! them all at once. `Diag` is the collector the loader threads through every
//! step: it owns the sources read so far and turns a [`Loc`] into a position
//! and a snippet of the offending line.

use std::path::{Path, PathBuf};

use super::raw::{FileId, Loc, Source};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// File the problem is in.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Program the problem belongs to, when any.
    pub program: Option<String>,
    /// What is wrong, lowercase, naming the key and the cause.
    pub message: String,
    /// The source line the problem is on, when known (shown under the message
    /// with a caret at the column).
    pub snippet: Option<String>,
}

impl ConfigError {
    /// An error about a whole file (unreadable, missing include...).
    pub fn file(file: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            program: None,
            message: message.into(),
            snippet: None,
        }
    }

    /// `file:line:col: program "p": message` without the snippet.
    pub fn headline(&self) -> String {
        let mut out = self.file.display().to_string();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(col) = self.column {
                out.push_str(&format!(":{col}"));
            }
        }
        out.push_str(": ");
        if let Some(p) = &self.program {
            out.push_str(&format!("program \"{p}\": "));
        }
        out.push_str(&self.message);
        out
    }

    fn render(&self) -> String {
        let mut out = self.headline();
        if let (Some(snippet), Some(line)) = (&self.snippet, self.line) {
            let number = line.to_string();
            let pad = " ".repeat(number.len());
            out.push_str(&format!("\n {number} | {snippet}"));
            if let Some(col) = self.column {
                let indent = " ".repeat(col.saturating_sub(1));
                out.push_str(&format!("\n {pad} | {indent}^"));
            }
        }
        out
    }
}

/// Every problem found in one load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// How much a finding that is not an error matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A setting nsvisor drops or honours differently: shown by `nsvisor
    /// check` and logged at start.
    Warning,
    /// A setting translated faithfully but into something else (only a
    /// comment in `nsvisor convert`'s output).
    Note,
}

/// A warning or note: where, and what was dropped or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Warning or note.
    pub severity: Severity,
    /// Position, program and message (rendered like an error).
    pub at: ConfigError,
}

/// Collects errors during one load, with the sources they point into.
#[derive(Debug, Default)]
pub(super) struct Diag {
    sources: Vec<Source>,
    errors: Vec<(Option<Loc>, ConfigError)>,
    findings: Vec<(Loc, Finding)>,
}

impl Diag {
    /// Registers a file's text; its id is what [`Loc::file`] refers to.
    pub fn add_source(&mut self, path: PathBuf, text: String) -> FileId {
        self.sources.push(Source::new(path, text));
        self.sources.len() - 1
    }

    /// Path of a registered file.
    pub fn path(&self, file: FileId) -> &Path {
        &self.sources[file].path
    }

    /// Reports a problem at `loc`.
    pub fn error(&mut self, loc: Loc, program: Option<&str>, message: impl Into<String>) {
        let err = self.located(loc, program, message.into());
        if !self.errors.iter().any(|(_, e)| *e == err) {
            self.errors.push((Some(loc), err));
        }
    }

    /// Reports a setting that is dropped or honoured differently.
    pub fn warn(&mut self, loc: Loc, program: Option<&str>, message: impl Into<String>) {
        self.finding(Severity::Warning, loc, program, message.into());
    }

    /// Records a faithful translation worth a comment in `convert`'s output.
    pub fn note(&mut self, loc: Loc, program: Option<&str>, message: impl Into<String>) {
        self.finding(Severity::Note, loc, program, message.into());
    }

    fn finding(&mut self, severity: Severity, loc: Loc, program: Option<&str>, message: String) {
        let at = self.located(loc, program, message);
        if !self.findings.iter().any(|(_, f)| f.at == at) {
            self.findings.push((loc, Finding { severity, at }));
        }
    }

    /// Warnings and notes so far, ordered by file (in reading order) and position.
    pub fn findings(&self) -> Vec<Finding> {
        let mut all = self.findings.clone();
        all.sort_by_key(|(loc, _)| *loc);
        all.into_iter().map(|(_, f)| f).collect()
    }

    fn located(&self, loc: Loc, program: Option<&str>, message: String) -> ConfigError {
        let source = &self.sources[loc.file];
        let (line, column) = source.line_col(loc.offset);
        let snippet = source.line_text(line).replace('\t', " ");
        ConfigError {
            file: source.path.clone(),
            line: Some(line),
            column: Some(column),
            program: program.map(str::to_string),
            message,
            snippet: Some(snippet),
        }
    }

    /// Reports a problem without a position.
    pub fn push(&mut self, err: ConfigError) {
        self.errors.push((None, err));
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// The errors, ordered by file (in reading order) and position.
    pub fn into_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|(loc, _)| *loc);
        ConfigErrors(self.errors.into_iter().map(|(_, e)| e).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_position_program_and_snippet() {
        let mut diag = Diag::default();
        let f = diag.add_source(
            "/c/n.toml".into(),
            "[programs.web]\n\tautorestrt = 1\n".into(),
        );
        diag.error(
            Loc {
                file: f,
                offset: 16,
            },
            Some("web"),
            "unknown key \"autorestrt\"",
        );
        let errs = diag.into_errors();
        assert_eq!(
            errs.to_string(),
            "/c/n.toml:2:2: program \"web\": unknown key \"autorestrt\"\n 2 |  autorestrt = 1\n   |  ^"
        );
    }
}
