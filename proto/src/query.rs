//! The query string of an API request: the parameters ([`Param`]) an
//! endpoint takes, parsed by the daemon and built by `nsvisorctl` with the
//! same names and encoding (values percent-encoded like path segments).
//!
//! Which endpoint takes which parameter is [`Route::params`](crate::Route::params); what values
//! mean (booleans, numbers) is read here, with `bad_request` errors that name
//! the parameter and the value.

use crate::route::{encode_segment, percent_decode};
use crate::{ApiError, ErrorKind};

/// A query parameter (each endpoint takes the ones [`Route::params`](crate::Route::params) lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    /// `wait=false`: answer an action at once instead of at its outcome.
    Wait,
    /// `lines=N`: the last N lines of a log.
    Lines,
    /// `bytes=N`: the last N bytes of a log.
    Bytes,
    /// `follow=true`: keep a log answer open for new output.
    Follow,
}

impl Param {
    /// Every parameter.
    pub const ALL: [Param; 4] = [Param::Wait, Param::Lines, Param::Bytes, Param::Follow];

    /// The name in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            Param::Wait => "wait",
            Param::Lines => "lines",
            Param::Bytes => "bytes",
            Param::Follow => "follow",
        }
    }
}

impl std::fmt::Display for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The query parameters of a request, in order (the last of a repeated one wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query(Vec<(Param, String)>);

impl Query {
    /// No parameters.
    pub fn new() -> Query {
        Query::default()
    }

    /// This query with `param=value` added.
    pub fn with(mut self, param: Param, value: impl std::fmt::Display) -> Query {
        self.0.push((param, value.to_string()));
        self
    }

    /// Parses a query string (without `?`), accepting only the parameters in
    /// `known`: anything else is `bad_request`, naming what the endpoint takes.
    pub fn parse(query: Option<&str>, known: &[Param]) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let (k, v) = (percent_decode(k)?, percent_decode(&v.replace('+', " "))?);
            let Some(param) = known.iter().copied().find(|p| p.as_str() == k) else {
                let expected = match known {
                    [] => "none".to_string(),
                    _ => known
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                return Err(ApiError::new(
                    ErrorKind::BadRequest,
                    format!("unknown query parameter {k:?} (this endpoint takes: {expected})"),
                ));
            };
            pairs.push((param, v));
        }
        Ok(Query(pairs))
    }

    /// The query string (without `?`): `lines=10&follow=true`, values encoded.
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_segment(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The value of `param` (the last one given).
    pub fn get(&self, param: Param) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| *k == param)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter: absent is `default`; empty, `true`, `1`, `yes`
    /// are true; `false`, `0`, `no` false; anything else `bad_request`.
    pub fn flag(&self, param: Param, default: bool) -> Result<bool, ApiError> {
        match self.get(param) {
            None => Ok(default),
            Some("" | "true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(v) => Err(ApiError::new(
                ErrorKind::BadRequest,
                format!("query parameter {param}={v:?}: expected true or false"),
            )),
        }
    }

    /// A non-negative number parameter, if given.
    pub fn number(&self, param: Param) -> Result<Option<usize>, ApiError> {
        self.get(param)
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    ApiError::new(
                        ErrorKind::BadRequest,
                        format!("query parameter {param}={v:?}: expected a non-negative number"),
                    )
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Route, StreamKind, Verb};

    #[test]
    fn every_query_built_then_parsed_is_the_same_query() {
        let query = Query::new()
            .with(Param::Lines, 10)
            .with(Param::Bytes, "a b+&=%")
            .with(Param::Follow, true)
            .with(Param::Wait, false);
        let parsed = Query::parse(Some(&query.encode()), &Param::ALL);
        assert_eq!(parsed.ok(), Some(query));
        assert_eq!(
            Route::Logs("w:*".into(), StreamKind::Stdout)
                .uri(&Query::new().with(Param::Lines, 5).with(Param::Follow, true)),
            "/v1/programs/w:%2A/logs/stdout?lines=5&follow=true"
        );
        assert_eq!(Route::Health.uri(&Query::new()), "/v1/health");
    }

    #[test]
    fn queries_accept_only_what_the_endpoint_takes() {
        let q = Query::parse(Some("wait=false"), &[Param::Wait]).expect("valid");
        assert_eq!(q.flag(Param::Wait, true).ok(), Some(false));
        let empty = Query::parse(None, &[Param::Wait]).expect("empty");
        assert_eq!(empty.flag(Param::Wait, true).ok(), Some(true));
        let last = Query::parse(Some("lines=1&lines=2+"), &[Param::Lines]).expect("valid");
        assert_eq!(last.get(Param::Lines), Some("2 "));
        let unknown = Query::parse(Some("wiat=false"), &[Param::Wait]).err();
        assert_eq!(
            unknown.map(|e| e.message),
            Some("unknown query parameter \"wiat\" (this endpoint takes: wait)".to_string())
        );
        let none = Query::parse(
            Some("wait=1"),
            Route::Act("a".into(), Verb::Signal(())).params(),
        );
        assert_eq!(
            none.err().map(|e| e.message),
            Some("unknown query parameter \"wait\" (this endpoint takes: none)".to_string())
        );
        assert!(Query::parse(Some("wait=maybe"), &[Param::Wait])
            .expect("parses")
            .flag(Param::Wait, true)
            .is_err());
        assert!(Query::parse(Some("lines=-1"), &[Param::Lines])
            .expect("parses")
            .number(Param::Lines)
            .is_err());
    }
}
