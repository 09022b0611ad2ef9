//! supervisord's XML-RPC interface at `/RPC2`, so supervisorctl, Ansible's
//! supervisorctl module and dashboards drive nsvisor unchanged (DESIGN §6:
//! a front end, never a second core).
//!
//! A request is checked ([`auth`]: HTTP basic auth when `[unix_http_server]`
//! or `[inet_http_server]` set a username), decoded ([`codec`], shared with `nsvisorctl`), and its
//! method called: `supervisor.*` methods become the same [`Handle`] commands
//! the JSON API sends ([`process`]: state and control; [`logs`]: program
//! output and log files; [`mainlog`]: the daemon's own log; [`reread`]: `reloadConfig`, `addProcessGroup`,
//! `removeProcessGroup`), and `system.*` are answered from the method table
//! ([`system`]). Names and process info follow supervisord ([`info`]),
//! errors are faults with supervisord's codes ([`fault`]). The peer-credential
//! check of the socket has already run when a request gets here and granted a
//! level: a read-only client may call only the methods that report state
//! ([`system::METHODS`] says which); any other method is a `FAILED` fault, and
//! `/logtail` a 403. On TCP ([`inet`]) basic auth is the only gate, and
//! grants full control. Called by `routes.rs` for `/RPC2`,
//! `/logtail/…` and `/mainlogtail`, and by `inet.rs`.

mod auth;
pub mod fault;
pub mod inet;
mod info;
mod logs;
mod mainlog;
mod params;
mod process;
mod reread;
mod system;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, StatusCode};
use nsvisor_proto::{Level, ProgramInfo};
use tokio::sync::watch;

pub use nsvisor_proto::xmlrpc as codec;

use self::codec::Value;
use self::fault::{Code, Fault};
use super::reply::{self, Reply};
use crate::config::{Credentials, LoadOptions, ProgramConfig};
use crate::supervisor::handle::Handle;

/// What the XML-RPC front end needs to know beyond the [`Handle`].
#[derive(Debug, Clone, Default)]
pub struct Setup {
    /// The config file, read again by `reloadConfig` (empty: none).
    pub config_path: PathBuf,
    /// How it is read.
    pub load_options: LoadOptions,
    /// The daemon's own log file (`readLog`, `clearLog`, `maintail`).
    pub daemon_log: Option<PathBuf>,
    /// The daemon's own log kept in memory: read when there is no file, and
    /// the wake-up of `maintail -f`.
    pub daemon_tail: Option<crate::daemon_log::DaemonLogTail>,
    /// Basic-auth credentials required on the unix socket.
    pub auth: Option<Credentials>,
}

/// The XML-RPC front end: shared by every connection of the control socket
/// and of the TCP listener.
#[derive(Debug)]
pub struct Rpc {
    handle: Handle,
    setup: Setup,
    /// Programs whose process `update` or `restart` replaced, and when.
    resets: Resets,
    reread: reread::Pending,
}

/// The paths this front end answers on.
pub fn owns_path(path: &str) -> bool {
    path == "/RPC2"
        || path.starts_with("/RPC2/")
        || path.starts_with("/logtail/")
        || path == "/mainlogtail"
}

impl Rpc {
    /// The front end.
    pub fn new(handle: Handle, setup: Setup) -> Arc<Rpc> {
        Arc::new(Rpc {
            handle,
            setup,
            resets: Resets::default(),
            reread: reread::Pending::default(),
        })
    }

    /// The credentials required on the unix socket, if any.
    pub fn socket_auth(&self) -> Option<&Credentials> {
        self.setup.auth.as_ref()
    }

    /// Answers one HTTP request on one of [`owns_path`]'s paths; `auth` is
    /// the listener's credentials, `level` what the client was granted.
    pub async fn serve(
        &self,
        req: Request<Incoming>,
        auth: Option<&Credentials>,
        level: Level,
        stopped: watch::Receiver<bool>,
    ) -> Reply {
        if let Some(creds) = auth {
            if !auth::allowed(req.headers(), creds) {
                // Read the request first: a client still sending its body
                // would otherwise see a broken pipe instead of the 401.
                let _ = super::routes::read_body(req.into_body()).await;
                return auth::challenge();
            }
        }
        let path = req.uri().path().to_string();
        if path.starts_with("/logtail/") || path == "/mainlogtail" {
            if req.method() != Method::GET {
                return plain(StatusCode::BAD_REQUEST, "logtail answers GET only\n");
            }
            if level < Level::Control {
                let message = super::peer::too_low(&format!("GET {path}"), Level::Control);
                return plain(StatusCode::FORBIDDEN, &format!("{message}\n"));
            }
            let client = super::stream::Client::of_request(&req);
            return logs::logtail(self, &path, stopped, client).await;
        }
        if req.method() != Method::POST {
            let mut res = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "XML-RPC: POST a methodCall to /RPC2\n",
            );
            res.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return res;
        }
        let body = match super::routes::read_body(req.into_body()).await {
            Ok(body) => body,
            Err(e) => return reply::error(&e),
        };
        let call = match codec::parse_call(&body) {
            Ok(call) => call,
            Err(e) => {
                tracing::warn!("XML-RPC: refused a request: {e}");
                return plain(StatusCode::BAD_REQUEST, &format!("{e}\n"));
            }
        };
        tracing::debug!(method = %call.method, "XML-RPC call");
        let xml = match self.call(level, &call.method, call.params).await {
            Ok(value) => codec::response(&value),
            Err(f) => codec::fault(f.code.number(), &f.text),
        };
        reply::with_body(StatusCode::OK, "text/xml", reply::full(xml))
    }

    /// Calls a method, `system.multicall` included, for a client granted `level`.
    pub async fn call(
        &self,
        level: Level,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, Fault> {
        if method == "system.multicall" {
            return system::multicall(self, level, params).await;
        }
        self.dispatch(level, method, params).await
    }

    /// Calls any method but `system.multicall`; a method above the client's
    /// `level` is a `FAILED` fault (supervisord has no code for it: it
    /// answers any refusal it has no code for with `FAILED`).
    async fn dispatch(
        &self,
        level: Level,
        method: &str,
        params: Vec<Value>,
    ) -> Result<Value, Fault> {
        if let Some(needs) = system::level(method).filter(|needs| *needs > level) {
            return Err(Fault::new(
                Code::Failed,
                super::peer::too_low(method, needs),
            ));
        }
        let p = params::Params::new(params);
        match method {
            "system.listMethods" => system::list_methods(p),
            "system.methodHelp" => system::method_help(p),
            "system.methodSignature" => system::method_signature(p),
            "system.multicall" => Err(Fault::new(
                Code::IncorrectParameters,
                "Recursive system.multicall forbidden",
            )),
            _ => match method.strip_prefix("supervisor.") {
                Some(name) => self.supervisor(name, p).await,
                None => Err(Fault::bare(Code::UnknownMethod)),
            },
        }
    }

    /// The `supervisor.` namespace.
    async fn supervisor(&self, name: &str, p: params::Params) -> Result<Value, Fault> {
        match name {
            "getAPIVersion" | "getVersion" => p.none().map(|()| Value::str(API_VERSION)),
            "getSupervisorVersion" => p.none().map(|()| Value::str(env!("CARGO_PKG_VERSION"))),
            "getIdentification" => p.none().map(|()| Value::str("supervisor")),
            "getPID" => p.none().map(|()| Value::Int(std::process::id().into())),
            "getState" => {
                p.none()?;
                process::get_state(self).await
            }
            "getProcessInfo" => process::get_process_info(self, p.one_str()?).await,
            "getAllProcessInfo" => {
                p.none()?;
                process::get_all_process_info(self).await
            }
            "startProcess" => {
                let (name, wait) = p.str_and_wait()?;
                process::start_process(self, &name, wait).await
            }
            "startProcessGroup" => {
                let (name, wait) = p.str_and_wait()?;
                process::start_group(self, Some(&name), wait).await
            }
            "startAllProcesses" => process::start_group(self, None, p.wait_only()?).await,
            "stopProcess" => {
                let (name, wait) = p.str_and_wait()?;
                process::stop_process(self, &name, wait).await
            }
            "stopProcessGroup" => {
                let (name, wait) = p.str_and_wait()?;
                process::stop_group(self, Some(&name), wait).await
            }
            "stopAllProcesses" => process::stop_group(self, None, p.wait_only()?).await,
            "signalProcess" => {
                let (name, sig) = p.two_str()?;
                process::signal_process(self, &name, &sig).await
            }
            "signalProcessGroup" => {
                let (name, sig) = p.two_str()?;
                process::signal_group(self, Some(&name), &sig).await
            }
            "signalAllProcesses" => process::signal_group(self, None, &p.one_str()?).await,
            "shutdown" => {
                p.none()?;
                process::shutdown(self).await
            }
            "restart" => {
                p.none()?;
                process::restart(self).await
            }
            "sendProcessStdin" => {
                let (name, _chars) = p.two_str()?;
                process::send_stdin(self, &name).await
            }
            "sendRemoteCommEvent" => {
                p.two_any()?;
                Err(Fault::new(
                    Code::Failed,
                    "nsvisor has no event listeners to send a remote communication event to",
                ))
            }
            "readLog" | "readMainLog" => {
                let (offset, length) = p.two_int()?;
                mainlog::read_main(self, offset, length)
            }
            "clearLog" => {
                p.none()?;
                mainlog::clear_main(self)
            }
            "readProcessStdoutLog" | "readProcessLog" | "readProcessStderrLog" => {
                let (prog, offset, length) = p.str_and_two_int()?;
                let stderr = name == "readProcessStderrLog";
                logs::read(self, &prog, offset, length, stderr).await
            }
            "tailProcessStdoutLog" | "tailProcessLog" | "tailProcessStderrLog" => {
                let (prog, offset, length) = p.str_and_two_int()?;
                let stderr = name == "tailProcessStderrLog";
                logs::tail(self, &prog, offset, length, stderr).await
            }
            "clearProcessLogs" | "clearProcessLog" => logs::clear(self, &p.one_str()?).await,
            "clearAllProcessLogs" => {
                p.none()?;
                logs::clear_all(self).await
            }
            "getAllConfigInfo" => {
                p.none()?;
                reread::all_config_info(self).await
            }
            "reloadConfig" => {
                p.none()?;
                reread::reload_config(self).await
            }
            "addProcessGroup" => reread::add_group(self, &p.one_str()?).await,
            "removeProcessGroup" => reread::remove_group(self, &p.one_str()?).await,
            _ => Err(Fault::bare(Code::UnknownMethod)),
        }
    }

    /// Every program and the configuration of each.
    async fn snapshot(&self) -> Result<(Vec<ProgramInfo>, Vec<ProgramConfig>), Fault> {
        let list = self.handle.list().await?;
        let configs = self.handle.configs().await?;
        Ok((list, configs))
    }

    /// When `p` last stopped (unix seconds, 0: never), and now.
    fn times(&self, p: &ProgramInfo) -> info::Times {
        info::Times {
            stop: p.stopped_at.unwrap_or(0),
            now: unix_now(),
            fresh: self.resets.is_fresh(&p.name, p.started_at_ms),
        }
    }

    /// Records that `update` replaced these programs at `at_ms` (taken
    /// before it applied the config, so starts it made count): supervisord
    /// reports them as never started until they start again.
    fn replaced<'a>(&self, names: impl Iterator<Item = &'a str>, at_ms: u64) {
        self.resets.mark(names, at_ms);
    }
}

/// Programs replaced by a new process of supervisord's (by `update` or
/// `restart`), with when (unix milliseconds): supervisord reports a replaced
/// program as never started until it starts again, which the program's own
/// last start time (`started_at_ms`, kept by the supervisor) tells. Shared
/// with the task of a `restart`.
#[derive(Debug, Clone, Default)]
struct Resets(Arc<Mutex<HashMap<String, u64>>>);

impl Resets {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// These programs were replaced at `at_ms`.
    fn mark<'a>(&self, names: impl Iterator<Item = &'a str>, at_ms: u64) {
        let mut replaced = self.lock();
        for name in names {
            replaced.insert(name.to_string(), at_ms);
        }
    }

    /// Whether `name` was replaced and has not started since: its last
    /// start (`started_at_ms`) is older than the replacement, or none.
    fn is_fresh(&self, name: &str, started_at_ms: Option<u64>) -> bool {
        self.lock()
            .get(name)
            .is_some_and(|&at| started_at_ms.is_none_or(|started| started < at))
    }
}

/// The API version supervisorctl checks for.
pub const API_VERSION: &str = "3.0";

fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A plain-text answer (for what is not an XML-RPC call).
fn plain(status: StatusCode, text: &str) -> Reply {
    reply::with_body(status, "text/plain", reply::full(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::Resets;

    #[test]
    fn a_replaced_program_is_fresh_until_it_starts_again() {
        let resets = Resets::default();
        assert!(!resets.is_fresh("web", None), "never replaced");
        resets.mark(["web"].into_iter(), 10_000);
        assert!(resets.is_fresh("web", None), "replaced, never started");
        assert!(resets.is_fresh("web", Some(9_999)), "started before");
        assert!(!resets.is_fresh("web", Some(10_000)), "started at the mark");
        assert!(
            !resets.is_fresh("web", Some(10_500)),
            "started since, same second"
        );
        assert!(!resets.is_fresh("api", None), "another program");
    }
}
