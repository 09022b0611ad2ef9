//! What each `nsvisorctl` command does: which requests it sends, what it
//! prints (text via `render.rs`, or JSON), and which exit code it ends with.
//!
//! Requests are named by `nsvisor_proto`'s [`Route`], [`Verb`], [`StreamKind`]
//! and [`Query`], never by path strings, so the client builds exactly what the
//! daemon parses. Results go to stdout; failures to stderr as `nsvisorctl: <message>` (with
//! `--json`: one `{"error":{"kind","message"}}` line). When several things
//! happen (several targets), the most severe exit code wins. A closed stdout
//! (`| head`) ends the command quietly. Called once by `main.rs`.

use std::io::Write;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use nsvisor_proto::{
    ActionResult, ErrorKind, Health, Param, ProgramInfo, Query, ReloadResult, Route, State,
    StateEvent, StreamKind, Verb,
};
use serde::Serialize;

use crate::client::{Client, CtlError};
use crate::{render, Cli, Cmd, Exit, Targets, WaitFor};

/// Runs the command of `cli` against the daemon behind `client`.
pub async fn run(cli: Cli, client: Client) -> Exit {
    let ctx = Ctx {
        client,
        json: cli.json,
    };
    let result = match cli.command {
        Cmd::Status { names } => ctx.status(&names).await,
        Cmd::Start(t) => ctx.act(Verb::Start, &t).await,
        Cmd::Stop(t) => ctx.act(Verb::Stop, &t).await,
        Cmd::Restart(t) => ctx.act(Verb::Restart, &t).await,
        Cmd::Signal { signal, names } => ctx.signal(&signal, &names).await,
        Cmd::Tail {
            follow,
            lines,
            bytes,
            stderr,
            name,
        } => {
            let query = match bytes {
                Some(n) => Query::new().with(Param::Bytes, n),
                None => Query::new().with(Param::Lines, lines),
            };
            let query = if follow {
                query.with(Param::Follow, true)
            } else {
                query
            };
            let stream = if stderr {
                StreamKind::Stderr
            } else {
                StreamKind::Stdout
            };
            ctx.tail(&name, stream, &query).await
        }
        Cmd::Pid { name } => ctx.pid(name.as_deref()).await,
        Cmd::Reload => ctx.reload().await,
        Cmd::Shutdown => ctx.shutdown().await,
        Cmd::Health { ready } => ctx.health(ready).await,
        Cmd::Wait {
            names,
            condition,
            timeout,
        } => ctx.wait(&names, condition, timeout).await,
        Cmd::Events => ctx.events().await,
        Cmd::Version => ctx.version().await,
        // Run by main.rs through `exec.rs`: its exit code is the command's,
        // not an `Exit`, so it never comes here.
        Cmd::Exec(_) => Ok(Exit::Usage),
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "nsvisorctl", &mut std::io::stdout());
            Ok(Exit::Success)
        }
    };
    result.unwrap_or_else(|e| ctx.fail(&e))
}

struct Ctx {
    client: Client,
    json: bool,
}

/// stdout went away (`| head`): stop quietly.
struct Closed;

/// How a streamed answer ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The daemon ended the stream.
    ByDaemon,
    /// Our stdout was closed.
    ByReader,
}

impl Ctx {
    /// Reports a failure on stderr and gives its exit code.
    fn fail(&self, e: &CtlError) -> Exit {
        if self.json {
            let (kind, message) = match e {
                CtlError::Api(api) => (
                    serde_json::to_value(api.kind).unwrap_or_default(),
                    api.message.clone(),
                ),
                CtlError::Unreachable { .. } => ("unreachable".into(), e.to_string()),
                CtlError::Stopped { .. } => ("daemon_stopped".into(), e.to_string()),
                CtlError::Protocol { .. } => ("protocol".into(), e.to_string()),
            };
            eprintln!(
                "{}",
                serde_json::json!({"error": {"kind": kind, "message": message}})
            );
        } else {
            eprintln!("nsvisorctl: {e}");
        }
        exit_of(e)
    }

    /// Prints `value` as JSON, or `text`.
    fn print<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) {
        let out = if self.json {
            let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
            s.push('\n');
            s
        } else {
            text()
        };
        let _ = write_out(out.as_bytes());
    }

    async fn programs(&self) -> Result<Vec<ProgramInfo>, CtlError> {
        self.client
            .call(&Route::Programs, &Query::new(), None, &[])
            .await
    }

    /// Asks for the programs every 100 ms until each named one meets
    /// `condition` (exit 0), one can no longer meet it (exit 1), or
    /// `timeout` passes (exit 6).
    async fn wait(
        &self,
        names: &[String],
        condition: WaitFor,
        timeout: Option<f64>,
    ) -> Result<Exit, CtlError> {
        let deadline = timeout
            .map(|t| std::time::Instant::now() + std::time::Duration::from_secs_f64(t.max(0.0)));
        loop {
            let programs = self.programs().await?;
            let (chosen, missing) = choose(&programs, names);
            if let Some(name) = missing.first() {
                let e = CtlError::Api(nsvisor_proto::ApiError::new(
                    ErrorKind::NotFound,
                    format!("no such program: \"{name}\""),
                ));
                return Ok(self.fail(&e));
            }
            let verdicts: Vec<(&ProgramInfo, Verdict)> =
                chosen.iter().map(|p| (*p, verdict(p, condition))).collect();
            if let Some((p, Verdict::Never(why))) = verdicts
                .iter()
                .find(|(_, v)| matches!(v, Verdict::Never(_)))
            {
                let _ = write_out(format!("{}: ERROR ({why})\n", p.name).as_bytes());
                return Ok(Exit::Failed);
            }
            if verdicts.iter().all(|(_, v)| *v == Verdict::Met) {
                let what = render::wait_condition(condition);
                let text: String = chosen
                    .iter()
                    .map(|p| format!("{}: {what}\n", p.name))
                    .collect();
                let _ = write_out(text.as_bytes());
                return Ok(Exit::Success);
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                let what = render::wait_condition(condition);
                let text: String = verdicts
                    .iter()
                    .filter(|(_, v)| *v != Verdict::Met)
                    .map(|(p, _)| {
                        format!("{}: not {what} ({} {})\n", p.name, p.state, p.description)
                    })
                    .collect();
                let _ = write_out(text.as_bytes());
                return Ok(Exit::TimedOut);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// The table (or with `--json`, every field) of the programs `names`
    /// select, all without names. The table decodes only the fields it
    /// shows ([`render::StatusRow`]).
    async fn status(&self, names: &[String]) -> Result<Exit, CtlError> {
        let (route, query) = (Route::Programs, Query::new());
        let data = self.client.fetch(&route, &query).await?;
        let (states, missing) = if self.json {
            let programs: Vec<ProgramInfo> = self.client.decode(&route, &query, &data)?;
            let (shown, missing) = choose(&programs, names);
            self.print(&shown, String::new);
            (shown.iter().map(|p| p.state).collect::<Vec<_>>(), missing)
        } else {
            let rows: Vec<render::StatusRow> = self.client.decode(&route, &query, &data)?;
            let (shown, missing) = choose(&rows, names);
            let _ = write_out(render::status_table(&shown).as_bytes());
            (shown.iter().map(|p| p.state).collect(), missing)
        };
        let mut exit = Exit::Success;
        if !names.is_empty() && states.iter().any(|s| *s != State::Running) {
            exit = Exit::NotRunning;
        }
        for name in missing {
            let e = CtlError::Api(nsvisor_proto::ApiError::new(
                ErrorKind::NotFound,
                format!("no such program: \"{name}\""),
            ));
            exit = exit.max(self.fail(&e));
        }
        Ok(exit)
    }

    /// Sends `verb` to each target and prints every result.
    async fn each_target(
        &self,
        names: &[String],
        verb: Verb,
        query: &Query,
        body: Option<Vec<u8>>,
    ) -> Exit {
        let mut exit = Exit::Success;
        let mut all: Vec<ActionResult> = Vec::new();
        for name in names {
            let route = Route::Act(name.clone(), verb);
            match self
                .client
                .call::<Vec<ActionResult>>(&route, query, body.clone(), &[])
                .await
            {
                Ok(results) => {
                    if results.iter().any(|r| !r.ok) {
                        exit = exit.max(Exit::Failed);
                    }
                    if !self.json {
                        let text: String = results
                            .iter()
                            .map(|r| render::action_line(r) + "\n")
                            .collect();
                        if write_out(text.as_bytes()).is_err() {
                            return exit;
                        }
                    }
                    all.extend(results);
                }
                Err(e) => {
                    exit = exit.max(self.fail(&e));
                    if exit == Exit::Unreachable {
                        return exit;
                    }
                }
            }
        }
        if self.json {
            self.print(&all, String::new);
        }
        exit
    }

    async fn act(&self, verb: Verb, t: &Targets) -> Result<Exit, CtlError> {
        let query = if t.no_wait {
            Query::new().with(Param::Wait, false)
        } else {
            Query::new()
        };
        Ok(self.each_target(&t.names, verb, &query, None).await)
    }

    async fn signal(&self, signal: &str, names: &[String]) -> Result<Exit, CtlError> {
        let body = serde_json::to_vec(&serde_json::json!({ "signal": signal })).unwrap_or_default();
        Ok(self
            .each_target(names, Verb::Signal(()), &Query::new(), Some(body))
            .await)
    }

    async fn tail(&self, name: &str, stream: StreamKind, query: &Query) -> Result<Exit, CtlError> {
        let route = Route::Logs(name.to_string(), stream);
        let json = self.json;
        let follow = query.flag(Param::Follow, false).unwrap_or(false);
        let ended = self
            .stream(&route, query, |chunk: Bytes| {
                if json {
                    let data = String::from_utf8_lossy(&chunk);
                    let line =
                        serde_json::json!({ "name": name, "stream": stream.as_str(), "data": data });
                    write_out(format!("{line}\n").as_bytes())
                } else {
                    write_out(&chunk)
                }
            })
            .await?;
        if follow && ended == Ended::ByDaemon {
            self.check_daemon_goes_on(&format!("{name:?}'s {}", stream.as_str()))
                .await?;
        }
        Ok(Exit::Success)
    }

    /// After a followed stream ended: fine when the daemon goes on (the
    /// program's output ended for good: removed by a reload, or its logging
    /// changed); an error when the daemon stopped or is stopping, so a script
    /// following output learns that it was cut short.
    async fn check_daemon_goes_on(&self, following: &str) -> Result<(), CtlError> {
        let stopped = || CtlError::Stopped {
            socket: self.client.socket().to_owned(),
            following: following.to_string(),
        };
        match self.health_of_daemon().await {
            Ok(h) if !h.shutting_down => Ok(()),
            Ok(_) | Err(CtlError::Unreachable { .. }) => Err(stopped()),
            Err(CtlError::Api(e)) if e.kind == ErrorKind::ShuttingDown => Err(stopped()),
            Err(e) => Err(e),
        }
    }

    async fn events(&self) -> Result<Exit, CtlError> {
        let json = self.json;
        let mut pending = BytesMut::new();
        self.stream(&Route::Events, &Query::new(), |chunk: Bytes| {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line = pending.split_to(end + 1);
                if json {
                    write_out(&line)?;
                } else if let Ok(event) = serde_json::from_slice::<StateEvent>(&line) {
                    write_out(render::event_line(&event).as_bytes())?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(Exit::Success)
    }

    /// GETs a streamed answer and hands each chunk to `sink` until it ends.
    async fn stream(
        &self,
        route: &Route,
        query: &Query,
        mut sink: impl FnMut(Bytes) -> Result<(), Closed>,
    ) -> Result<Ended, CtlError> {
        let res = self.client.send(route, query, None).await?;
        if !res.status().is_success() {
            let status = res.status().as_u16();
            let data = self.client.read_all(res).await?;
            return Err(self.client.api_error(status, &data));
        }
        let mut body = res.into_body();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if sink(data).is_err() {
                            return Ok(Ended::ByReader);
                        }
                    }
                }
                Err(e) => {
                    return Err(CtlError::Unreachable {
                        socket: self.client.socket().to_owned(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            format!("the daemon went away in the middle of the answer: {e}"),
                        ),
                    })
                }
            }
        }
        Ok(Ended::ByDaemon)
    }

    async fn health_of_daemon(&self) -> Result<Health, CtlError> {
        self.client
            .call(&Route::Health, &Query::new(), None, &[503])
            .await
    }

    async fn pid(&self, name: Option<&str>) -> Result<Exit, CtlError> {
        let Some(name) = name else {
            let h = self.health_of_daemon().await?;
            self.print(&serde_json::json!({ "pid": h.pid }), || {
                format!("{}\n", h.pid)
            });
            return Ok(Exit::Success);
        };
        let route = Route::Program(name.to_string());
        let p: ProgramInfo = self.client.call(&route, &Query::new(), None, &[]).await?;
        let pid = p.pid.unwrap_or(0);
        self.print(&serde_json::json!({ "name": p.name, "pid": pid }), || {
            format!("{pid}\n")
        });
        Ok(if p.state == State::Running {
            Exit::Success
        } else {
            Exit::NotRunning
        })
    }

    async fn reload(&self) -> Result<Exit, CtlError> {
        let r: ReloadResult = self
            .client
            .call(&Route::Reload, &Query::new(), None, &[])
            .await?;
        self.print(&r, || render::reload_text(&r));
        Ok(Exit::Success)
    }

    async fn shutdown(&self) -> Result<Exit, CtlError> {
        let r: serde_json::Value = self
            .client
            .call(&Route::Shutdown, &Query::new(), None, &[])
            .await?;
        self.print(&r, || "shutting down\n".to_string());
        Ok(Exit::Success)
    }

    async fn health(&self, ready: bool) -> Result<Exit, CtlError> {
        let h = self.health_of_daemon().await?;
        if ready {
            self.print(&h, || render::readiness_text(&h));
        } else {
            self.print(&h, || render::health_text(&h));
        }
        Ok(if (ready && h.ready) || (!ready && h.healthy) {
            Exit::Success
        } else {
            Exit::NotRunning
        })
    }

    /// The client's version and commit, then the daemon's with its pid (a
    /// daemon from before commits were reported shows none).
    async fn version(&self) -> Result<Exit, CtlError> {
        let client = env!("CARGO_PKG_VERSION");
        let client_commit = env!("NSVISOR_COMMIT");
        let daemon = self.health_of_daemon().await;
        let h = daemon.as_ref().ok();
        self.print(
            &serde_json::json!({
                "client": client,
                "client_commit": client_commit,
                "daemon": h.map(|h| &h.version),
                "daemon_commit": h.and_then(|h| h.commit.as_ref()),
            }),
            || {
                let mut out = format!("nsvisorctl {client} (commit {client_commit})\n");
                if let Some(h) = h {
                    let commit = h
                        .commit
                        .as_ref()
                        .map(|c| format!("commit {c}, "))
                        .unwrap_or_default();
                    out.push_str(&format!("nsvisor {} ({commit}pid {})\n", h.version, h.pid));
                }
                out
            },
        );
        daemon.map(|_| Exit::Success)
    }
}

/// A program as the daemon lists it, whole or only what a table shows.
trait Listed {
    fn name(&self) -> &str;
    fn group(&self) -> &str;
}

impl Listed for ProgramInfo {
    fn name(&self) -> &str {
        &self.name
    }
    fn group(&self) -> &str {
        &self.group
    }
}

impl Listed for render::StatusRow<'_> {
    fn name(&self) -> &str {
        &self.name
    }
    fn group(&self) -> &str {
        &self.group
    }
}

/// Whether `name` (a name, `GROUP:*` or `all`) selects `p`.
fn selects(name: &str, p: &impl Listed) -> bool {
    name == "all" || p.name() == name || name.strip_suffix(":*").is_some_and(|g| g == p.group())
}

/// The programs `names` select (all when there are none), and the names
/// that select nothing.
fn choose<'p, 'n, P: Listed>(
    programs: &'p [P],
    names: &'n [String],
) -> (Vec<&'p P>, Vec<&'n String>) {
    if names.is_empty() {
        return (programs.iter().collect(), Vec::new());
    }
    let shown = programs
        .iter()
        .filter(|p| names.iter().any(|n| selects(n, *p)))
        .collect();
    let missing = names
        .iter()
        .filter(|n| !programs.iter().any(|p| selects(n, p)))
        .collect();
    (shown, missing)
}

fn exit_of(e: &CtlError) -> Exit {
    match e {
        CtlError::Unreachable { .. } | CtlError::Stopped { .. } => Exit::Unreachable,
        CtlError::Api(api) => match api.kind {
            ErrorKind::NotFound => Exit::NoSuchProgram,
            ErrorKind::PermissionDenied => Exit::Unreachable,
            ErrorKind::BadRequest => Exit::Usage,
            _ => Exit::Failed,
        },
        CtlError::Protocol { .. } => Exit::Failed,
    }
}

/// Writes to stdout at once (streams must not sit in a buffer).
fn write_out(data: &[u8]) -> Result<(), Closed> {
    let mut out = std::io::stdout().lock();
    out.write_all(data)
        .and_then(|()| out.flush())
        .map_err(|_| Closed)
}

/// Where a program stands against a `wait` condition.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Met,
    Waiting,
    /// It can no longer get there by itself (why, in words).
    Never(String),
}

fn verdict(p: &ProgramInfo, condition: WaitFor) -> Verdict {
    let fatal = || Verdict::Never(format!("it is FATAL: {}", p.description));
    match (condition, p.state) {
        (WaitFor::Ready, State::Running) if p.ready => Verdict::Met,
        (WaitFor::Running, State::Running) => Verdict::Met,
        (WaitFor::Stopped, State::Stopped | State::Exited | State::Fatal) => Verdict::Met,
        (WaitFor::Exited, State::Exited) => Verdict::Met,
        (WaitFor::Completed, State::Exited) => match p.exit_status {
            Some(nsvisor_proto::ExitStatus::Code(0)) => Verdict::Met,
            Some(status) => Verdict::Never(format!("it exited with {status}")),
            None => Verdict::Waiting,
        },
        (WaitFor::Stopped, _) => Verdict::Waiting,
        (_, State::Fatal) => fatal(),
        _ => Verdict::Waiting,
    }
}
