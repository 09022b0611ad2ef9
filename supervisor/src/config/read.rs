//! Reading one table's keys: rejects unknown keys (with a suggestion),
//! converts each value with a `units` function and reports failures at the
//! value, prefixed with the key.
//!
//! Used by the `[supervisor]`, `[programs.*]` and `[networks.*]` readers.

use super::error::Diag;
use super::raw::{Loc, Node, Table};
use super::suggest::did_you_mean;
use super::units::Conv;

/// supervisord options nsvisor does not have, with what to do instead.
const SUPERVISORD: &[(&str, &str)] = &[
    ("stdout_capture_maxbytes", "there is no capture mode"),
    ("stderr_capture_maxbytes", "there is no capture mode"),
    (
        "stdout_events_enabled",
        "there are no event listeners (see GET /v1/events)",
    ),
    (
        "stderr_events_enabled",
        "there are no event listeners (see GET /v1/events)",
    ),
    ("stdout_syslog", "use the console or log files"),
    ("stderr_syslog", "use the console or log files"),
    ("serverurl", "programs do not talk to the daemon"),
    ("nodaemon", "nsvisor always runs in the foreground"),
    ("childlogdir", "use log_dir"),
    ("loglevel", "use log_level"),
    ("user", "start nsvisor as that user instead"),
];

/// A table being read, with the errors collector.
pub(super) struct Reader<'d, 't> {
    pub diag: &'d mut Diag,
    pub table: &'t Table,
    pub program: Option<&'t str>,
}

impl<'d, 't> Reader<'d, 't> {
    /// Starts reading `table` (called `section` in messages, e.g.
    /// `[programs.web]`), reporting every key not in `known`.
    pub fn new(
        diag: &'d mut Diag,
        table: &'t Table,
        section: &str,
        known: &[&str],
        program: Option<&'t str>,
    ) -> Self {
        for entry in &table.entries {
            let key = entry.key.as_str();
            if known.contains(&key) {
                continue;
            }
            let why = match SUPERVISORD.iter().find(|(k, _)| *k == key) {
                Some((_, hint)) => format!(": supervisord's {key} is not supported; {hint}"),
                None => did_you_mean(key, known),
            };
            diag.error(
                entry.key_loc,
                program,
                format!("unknown key \"{key}\" in {section}{why}"),
            );
        }
        Reader {
            diag,
            table,
            program,
        }
    }

    /// The value of `key`, if present.
    pub fn node(&self, key: &str) -> Option<&'t Node> {
        self.table.get(key).map(|e| &e.node)
    }

    /// Converts `key`'s value; `None` when absent or invalid (then reported).
    pub fn get<T>(&mut self, key: &str, conv: impl FnOnce(&Node) -> Conv<T>) -> Option<T> {
        let node = self.node(key)?;
        self.check(key, node, conv(node))
    }

    /// Reports `result`'s error (if any) at `node`, prefixed with `key`.
    pub fn check<T>(&mut self, key: &str, node: &Node, result: Conv<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(msg) => {
                self.error(node.loc, format!("{key}: {msg}"));
                None
            }
        }
    }

    /// Reports a message at `loc` for this table's program.
    pub fn error(&mut self, loc: Loc, message: String) {
        self.diag.error(loc, self.program, message);
    }
}
