//! The paths of the control API: every endpoint as a [`Route`], its verbs,
//! streams, method and query parameters, built and parsed by one definition.
//!
//! The daemon parses request paths with [`Route::parse`] and queries with
//! [`Query::parse`] (`query.rs`); `nsvisorctl` builds them with [`Route::uri`]. Both sides
//! use the same segment names ([`Verb::segment`], [`StreamKind::as_str`]) and
//! the same percent-encoding of program names and targets
//! ([`encode_segment`]: `web:*` travels as `web:%2A`), so a path one side
//! builds is the route the other side reads (tested round-trip below).
//! Errors are the API's own: an unknown path is `not_found`, bad encoding or
//! an unknown query parameter `bad_request`.

use crate::query::{Param, Query};
use crate::{ApiError, ErrorKind, API_PREFIX};

/// What can be done to a target (a name, `GROUP:*` or `all`): the last path
/// segment of `POST /v1/programs/{target}/{verb}`.
///
/// `S` is what the signal verb carries: nothing on the wire path (the signal
/// travels in the request body, so a [`Route`] holds `Verb<()>`), the parsed
/// signal inside the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb<S = ()> {
    /// Start (answer once RUNNING, or failed).
    Start,
    /// Stop (answer once STOPPED).
    Stop,
    /// Stop then start.
    Restart,
    /// Send a signal to the process (group when `stopasgroup`).
    Signal(S),
}

impl<S> Verb<S> {
    /// The path segment: `start`, `stop`, `restart`, `signal`.
    pub fn segment(&self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Signal(_) => "signal",
        }
    }

    /// The same verb, with the signal's payload turned into another (or an error).
    pub fn try_map_signal<T, E>(self, f: impl FnOnce(S) -> Result<T, E>) -> Result<Verb<T>, E> {
        Ok(match self {
            Verb::Start => Verb::Start,
            Verb::Stop => Verb::Stop,
            Verb::Restart => Verb::Restart,
            Verb::Signal(s) => Verb::Signal(f(s)?),
        })
    }
}

impl Verb {
    /// Every verb, in the order the API documents them.
    pub const ALL: [Verb; 4] = [Verb::Start, Verb::Stop, Verb::Restart, Verb::Signal(())];

    /// The verb of a path segment.
    pub fn from_segment(segment: &str) -> Option<Verb> {
        Verb::ALL.into_iter().find(|v| v.segment() == segment)
    }
}

impl<S> std::fmt::Display for Verb<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.segment())
    }
}

/// One output stream of a program: the last path segment of
/// `GET /v1/programs/{name}/logs/{stream}`, and how the daemon's log code
/// names the stream a pump, sink or tail buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

impl StreamKind {
    /// Both streams.
    pub const ALL: [StreamKind; 2] = [StreamKind::Stdout, StreamKind::Stderr];

    /// `stdout` / `stderr` (the path segment, and the name in messages).
    pub fn as_str(self) -> &'static str {
        match self {
            StreamKind::Stdout => "stdout",
            StreamKind::Stderr => "stderr",
        }
    }

    /// The stream of a path segment.
    pub fn from_segment(segment: &str) -> Option<StreamKind> {
        StreamKind::ALL.into_iter().find(|s| s.as_str() == segment)
    }
}

impl std::fmt::Display for StreamKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The HTTP method an endpoint answers (exactly one per endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    /// `GET`: reads, streams.
    Get,
    /// `POST`: actions.
    Post,
}

impl HttpMethod {
    /// `GET` / `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
        }
    }
}

/// What a client may do on the control socket, granted per connection from
/// its peer credentials (`[supervisor] allowed_*` for [`Level::Control`],
/// `read_only_*` for [`Level::Read`]). Ordered: `Control` includes `Read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// See programs, their states and checks, the daemon's health, events
    /// and metrics. Never an action, never a program's output or anything
    /// run in its environment.
    Read,
    /// Everything.
    Control,
}

impl Level {
    /// `read-only` / `full control`, as messages and docs say it.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read-only",
            Level::Control => "full control",
        }
    }
}

/// Every endpoint of the API. Names and targets are held decoded (`web:*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    /// `GET /v1/programs`: every program.
    Programs,
    /// `GET /v1/programs/{name}`: one program.
    Program(String),
    /// `POST /v1/programs/{target}/{verb}`: an action on a name, `GROUP:*` or `all`.
    Act(String, Verb),
    /// `GET /v1/programs/{name}/logs/{stream}`: the tail of a stream (and what follows).
    Logs(String, StreamKind),
    /// `POST /v1/programs/{name}/exec`: run a command in the program's
    /// sandbox; the answer streams its output and its exit (`exec.rs`).
    Exec(String),
    /// `POST /v1/exec/{id}/signal`: send a signal to a running exec
    /// command's process group (Ctrl-C in `nsvisorctl exec`).
    ExecSignal(u64),
    /// `POST /v1/reload`: re-read the configuration.
    Reload,
    /// `POST /v1/shutdown`: graceful shutdown.
    Shutdown,
    /// `GET /v1/events`: state changes as newline-delimited JSON.
    Events,
    /// `GET /v1/health`: daemon health (503 when unhealthy).
    Health,
    /// `GET /metrics`: Prometheus text (outside `/v1`, where scrapers look).
    Metrics,
}

/// Path segment of the program endpoints.
const PROGRAMS: &str = "programs";
/// Path segment before the stream of the logs endpoint.
const LOGS: &str = "logs";
/// Path segment of the exec endpoints.
const EXEC: &str = "exec";
/// Path segment of the signal endpoint of an exec session.
const SIGNAL: &str = "signal";
/// Path of the metrics endpoint.
const METRICS: &str = "/metrics";

impl Route {
    /// The route of a request path: `not_found` for a path that is no
    /// endpoint, `bad_request` for bad percent-encoding or an empty name.
    /// One trailing `/` is ignored.
    pub fn parse(path: &str) -> Result<Route, ApiError> {
        let not_found = || ApiError::new(ErrorKind::NotFound, format!("no such endpoint: {path}"));
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        if path == METRICS {
            return Ok(Route::Metrics);
        }
        let rest = path
            .strip_prefix(API_PREFIX)
            .and_then(|p| p.strip_prefix('/'))
            .ok_or_else(not_found)?;
        let segs = rest
            .split('/')
            .map(percent_decode)
            .collect::<Result<Vec<_>, _>>()?;
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let route = match segs.as_slice() {
            [PROGRAMS] => Some(Route::Programs),
            [PROGRAMS, name] => Some(Route::Program(name.to_string())),
            [PROGRAMS, name, EXEC] => Some(Route::Exec(name.to_string())),
            [EXEC, id, SIGNAL] => Some(Route::ExecSignal(id.parse().map_err(|_| {
                ApiError::new(
                    ErrorKind::BadRequest,
                    format!("bad exec session id {id:?} in the path"),
                )
            })?)),
            [PROGRAMS, target, verb] => {
                Verb::from_segment(verb).map(|verb| Route::Act(target.to_string(), verb))
            }
            [PROGRAMS, name, LOGS, stream] => {
                StreamKind::from_segment(stream).map(|s| Route::Logs(name.to_string(), s))
            }
            [other] => [Route::Reload, Route::Shutdown, Route::Events, Route::Health]
                .into_iter()
                .find(|r| r.top_segment() == Some(*other)),
            _ => None,
        };
        let route = route.ok_or_else(not_found)?;
        match route.name() {
            Some("") => Err(ApiError::new(
                ErrorKind::BadRequest,
                "empty program name in the path",
            )),
            _ => Ok(route),
        }
    }

    /// The request path, the name or target percent-encoded
    /// (`/v1/programs/web:%2A/stop`).
    pub fn path(&self) -> String {
        let program = |name: &str| format!("{API_PREFIX}/{PROGRAMS}/{}", encode_segment(name));
        match self {
            Route::Programs => format!("{API_PREFIX}/{PROGRAMS}"),
            Route::Program(name) => program(name),
            Route::Act(target, verb) => format!("{}/{verb}", program(target)),
            Route::Logs(name, stream) => format!("{}/{LOGS}/{stream}", program(name)),
            Route::Exec(name) => format!("{}/{EXEC}", program(name)),
            Route::ExecSignal(id) => format!("{API_PREFIX}/{EXEC}/{id}/{SIGNAL}"),
            Route::Metrics => METRICS.to_string(),
            top => format!("{API_PREFIX}/{}", top.top_segment().unwrap_or_default()),
        }
    }

    /// The path and, when `query` has parameters, `?` and the query.
    pub fn uri(&self, query: &Query) -> String {
        let mut uri = self.path();
        let query = query.encode();
        if !query.is_empty() {
            uri.push('?');
            uri.push_str(&query);
        }
        uri
    }

    /// The one method this endpoint answers.
    pub fn method(&self) -> HttpMethod {
        match self {
            Route::Act(..)
            | Route::Reload
            | Route::Shutdown
            | Route::Exec(_)
            | Route::ExecSignal(_) => HttpMethod::Post,
            _ => HttpMethod::Get,
        }
    }

    /// The access level this endpoint needs. Output (logs) and `exec`
    /// (which runs in the program's environment and shows its output) need
    /// [`Level::Control`] like every action.
    pub fn level(&self) -> Level {
        match self {
            Route::Programs
            | Route::Program(_)
            | Route::Events
            | Route::Health
            | Route::Metrics => Level::Read,
            Route::Act(..)
            | Route::Logs(..)
            | Route::Exec(_)
            | Route::ExecSignal(_)
            | Route::Reload
            | Route::Shutdown => Level::Control,
        }
    }

    /// One route of each kind for the program `name` (every verb, every
    /// stream) and the exec session `exec_id`: the whole endpoint table, for
    /// tests and documentation that must cover every endpoint.
    pub fn every(name: &str, exec_id: u64) -> Vec<Route> {
        let mut routes = vec![
            Route::Programs,
            Route::Program(name.into()),
            Route::Exec(name.into()),
            Route::ExecSignal(exec_id),
            Route::Reload,
            Route::Shutdown,
            Route::Events,
            Route::Health,
            Route::Metrics,
        ];
        routes.extend(Verb::ALL.map(|v| Route::Act(name.into(), v)));
        routes.extend(StreamKind::ALL.map(|s| Route::Logs(name.into(), s)));
        // A new variant must be added above: this match has no wildcard.
        for route in &routes {
            match route {
                Route::Programs
                | Route::Program(_)
                | Route::Act(..)
                | Route::Logs(..)
                | Route::Exec(_)
                | Route::ExecSignal(_)
                | Route::Reload
                | Route::Shutdown
                | Route::Events
                | Route::Health
                | Route::Metrics => {}
            }
        }
        routes
    }

    /// The query parameters this endpoint takes.
    pub fn params(&self) -> &'static [Param] {
        match self {
            Route::Act(_, Verb::Signal(())) => &[],
            Route::Act(..) => &[Param::Wait],
            Route::Logs(..) => &[Param::Lines, Param::Bytes, Param::Follow],
            _ => &[],
        }
    }

    /// The program name or target in the path, if the endpoint has one.
    pub fn name(&self) -> Option<&str> {
        match self {
            Route::Program(n) | Route::Act(n, _) | Route::Logs(n, _) | Route::Exec(n) => Some(n),
            _ => None,
        }
    }

    /// The one segment after `/v1` of the endpoints that have no more.
    fn top_segment(&self) -> Option<&'static str> {
        match self {
            Route::Reload => Some("reload"),
            Route::Shutdown => Some("shutdown"),
            Route::Events => Some("events"),
            Route::Health => Some("health"),
            _ => None,
        }
    }
}

/// Escapes a program name or target for a path segment (`web:*` → `web:%2A`):
/// everything but ASCII letters, digits and `-._~:@` becomes `%XX`.
pub fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes of a path segment or query part (`bad_request` for a
/// malformed escape or bytes that are not UTF-8).
pub fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bad = || {
        ApiError::new(
            ErrorKind::BadRequest,
            format!("bad percent-encoding in {s:?}"),
        )
    };
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes
                .next()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or_else(bad)?;
            let lo = bytes
                .next()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or_else(bad)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route, with names that need escaping.
    fn every_route() -> Vec<Route> {
        let names = [
            "web", "web:0", "worker:*", "all", "a b/c", "100%", "ü", "logs",
        ];
        names
            .into_iter()
            .flat_map(|name| Route::every(name, 42))
            .collect()
    }

    #[test]
    fn reads_need_read_and_everything_else_control() {
        let read: Vec<String> = Route::every("web", 1)
            .into_iter()
            .filter(|r| r.level() == Level::Read)
            .map(|r| r.path())
            .collect();
        assert_eq!(
            read,
            [
                "/v1/programs",
                "/v1/programs/web",
                "/v1/events",
                "/v1/health",
                "/metrics"
            ]
        );
        assert!(Level::Control > Level::Read);
        for route in Route::every("web", 1) {
            if route.method() == HttpMethod::Post {
                assert_eq!(route.level(), Level::Control, "{route:?}");
            }
        }
    }

    #[test]
    fn every_route_built_then_parsed_is_the_same_route() {
        for route in every_route() {
            let path = route.path();
            assert_eq!(Route::parse(&path).ok(), Some(route.clone()), "{path}");
            assert_eq!(
                Route::parse(&format!("{path}/")).ok(),
                Some(route),
                "{path}/"
            );
        }
    }

    #[test]
    fn paths_are_the_documented_ones() {
        let act = |v| Route::Act("worker:*".into(), v);
        assert_eq!(Route::Programs.path(), "/v1/programs");
        assert_eq!(Route::Program("web:0".into()).path(), "/v1/programs/web:0");
        assert_eq!(act(Verb::Start).path(), "/v1/programs/worker:%2A/start");
        assert_eq!(act(Verb::Stop).path(), "/v1/programs/worker:%2A/stop");
        assert_eq!(act(Verb::Restart).path(), "/v1/programs/worker:%2A/restart");
        assert_eq!(
            act(Verb::Signal(())).path(),
            "/v1/programs/worker:%2A/signal"
        );
        assert_eq!(
            Route::Logs("web".into(), StreamKind::Stderr).path(),
            "/v1/programs/web/logs/stderr"
        );
        assert_eq!(Route::Reload.path(), "/v1/reload");
        assert_eq!(Route::Shutdown.path(), "/v1/shutdown");
        assert_eq!(Route::Events.path(), "/v1/events");
        assert_eq!(Route::Health.path(), "/v1/health");
        assert_eq!(Route::Metrics.path(), "/metrics");
        assert_eq!(
            Route::Exec("web:0".into()).path(),
            "/v1/programs/web:0/exec"
        );
        assert_eq!(Route::ExecSignal(7).path(), "/v1/exec/7/signal");
    }

    #[test]
    fn parse_accepts_any_escaping_and_refuses_what_is_no_endpoint() {
        assert_eq!(
            Route::parse("/v1/programs/db%3A%2A/restart").ok(),
            Some(Route::Act("db:*".into(), Verb::Restart))
        );
        assert_eq!(
            Route::parse("/v1/programs/web:1/logs/stderr").ok(),
            Some(Route::Logs("web:1".into(), StreamKind::Stderr))
        );
        for bad in [
            "/",
            "",
            "/v2/programs",
            "/v1programs",
            "/v1/programs/a/b",
            "/v1/programs/a/logs",
            "/v1/programs/a/logs/x",
            "/v1/programs/a/logs/stdout/x",
            "/v1/metrics",
            "/v1",
            "/v1/",
            "/v1/nope",
        ] {
            assert_eq!(
                Route::parse(bad).err().map(|e| e.kind),
                Some(ErrorKind::NotFound),
                "{bad}"
            );
        }
        for bad in [
            "/v1/programs/%zz",
            "/v1/programs/%2",
            "/v1/programs/%FF",
            "/v1/programs//start",
            "/v1/programs//logs/stdout",
            "/v1/programs//exec",
            "/v1/exec/x/signal",
        ] {
            assert_eq!(
                Route::parse(bad).err().map(|e| e.kind),
                Some(ErrorKind::BadRequest),
                "{bad}"
            );
        }
    }

    #[test]
    fn actions_are_posts_and_reads_are_gets() {
        for route in every_route() {
            let post = matches!(
                route,
                Route::Act(..)
                    | Route::Reload
                    | Route::Shutdown
                    | Route::Exec(_)
                    | Route::ExecSignal(_)
            );
            let expected = if post {
                HttpMethod::Post
            } else {
                HttpMethod::Get
            };
            assert_eq!(route.method(), expected, "{route:?}");
        }
    }

    #[test]
    fn segments_are_escaped() {
        assert_eq!(encode_segment("web:*"), "web:%2A");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_segment("web:0"), "web:0");
        assert_eq!(encode_segment("ü"), "%C3%BC");
        assert_eq!(percent_decode("%c3%BC").ok().as_deref(), Some("ü"));
    }

    #[test]
    fn verbs_and_streams_have_one_segment_each() {
        for verb in Verb::ALL {
            assert_eq!(Verb::from_segment(verb.segment()), Some(verb));
        }
        for stream in StreamKind::ALL {
            assert_eq!(StreamKind::from_segment(stream.as_str()), Some(stream));
        }
        assert_eq!(Verb::from_segment("logs"), None);
        assert_eq!(StreamKind::from_segment("stdin"), None);
        let parsed: Result<Verb<i32>, ()> = Verb::Signal(()).try_map_signal(|()| Ok(15));
        assert_eq!(parsed, Ok(Verb::Signal(15)));
    }
}
