//! The `system.` namespace: the method table (`listMethods`, `methodHelp`,
//! `methodSignature`) and `multicall`.
//!
//! [`METHODS`] lists every method served, with supervisord's signature
//! (return type first), a help text that says what nsvisor does where it
//! differs, and the access level a client needs to call it (a read-only
//! client of the control socket may only call the methods that report state). `multicall` runs its calls in order and answers each with a
//! one-item array or a fault struct, as supervisord does; a nested
//! `system.multicall` is refused.

use nsvisor_proto::Level;

use super::codec::Value;
use super::fault::{Code, Fault};
use super::params::Params;
use super::Rpc;

/// One method served.
#[derive(Debug)]
pub struct Method {
    /// Full name.
    pub name: &'static str,
    /// Return type, then parameter types.
    pub signature: &'static [&'static str],
    /// What it does.
    pub help: &'static str,
    /// The access level a client of the control socket needs to call it.
    pub level: Level,
}

/// A method that needs full control: it acts, or reads output or log files.
const fn m(name: &'static str, signature: &'static [&'static str], help: &'static str) -> Method {
    Method {
        name,
        signature,
        help,
        level: Level::Control,
    }
}

/// A method a read-only client may call: it only reports state.
const fn ro(name: &'static str, signature: &'static [&'static str], help: &'static str) -> Method {
    Method {
        level: Level::Read,
        ..m(name, signature, help)
    }
}

/// Every method served, in name order.
pub const METHODS: &[Method] = &[
    m("supervisor.addProcessGroup", &["boolean", "string"], "Activate a group added to the config file (after reloadConfig). nsvisor applies the whole reread configuration at the first addProcessGroup or removeProcessGroup, then starts the group's autostart programs."),
    m("supervisor.clearAllProcessLogs", &["array"], "Clear the log files of every process; an array of result structs."),
    m("supervisor.clearLog", &["boolean"], "Clear the daemon's log file ([supervisor] logfile). NO_FILE when there is none."),
    m("supervisor.clearProcessLog", &["boolean", "string"], "Alias of clearProcessLogs."),
    m("supervisor.clearProcessLogs", &["boolean", "string"], "Truncate a process's stdout and stderr log files. The in-memory tail buffer is kept."),
    ro("supervisor.getAPIVersion", &["string"], "The version of the RPC API (3.0, as supervisord 3 and 4)."),
    ro("supervisor.getAllConfigInfo", &["array"], "The configuration of every process (of the last reloadConfig, if any), as structs."),
    ro("supervisor.getAllProcessInfo", &["array"], "getProcessInfo for every process, in group and name order."),
    ro("supervisor.getIdentification", &["string"], "The daemon's identifier (always \"supervisor\")."),
    ro("supervisor.getPID", &["int"], "The pid of the daemon."),
    ro("supervisor.getProcessInfo", &["struct", "string"], "Process info: name, group, description, start, stop, now, state, statename, spawnerr, exitstatus, logfile, stdout_logfile, stderr_logfile, pid."),
    ro("supervisor.getState", &["struct"], "The daemon's state: statecode 1 (RUNNING) or -1 (SHUTDOWN), and statename."),
    ro("supervisor.getSupervisorVersion", &["string"], "The version of nsvisor."),
    ro("supervisor.getVersion", &["string"], "Alias of getAPIVersion."),
    m("supervisor.readLog", &["string", "int", "int"], "Read length bytes of the daemon's log from offset (a negative offset reads from the end, length 0 to the end)."),
    m("supervisor.readMainLog", &["string", "int", "int"], "Alias of readLog."),
    m("supervisor.readProcessLog", &["string", "string", "int", "int"], "Alias of readProcessStdoutLog."),
    m("supervisor.readProcessStderrLog", &["string", "string", "int", "int"], "Read a process's stderr, like readProcessStdoutLog."),
    m("supervisor.readProcessStdoutLog", &["string", "string", "int", "int"], "Read length bytes of a process's stdout from offset (negative: from the end). Served from the program's tail buffer: offsets count every byte it ever wrote; bytes older than the buffer are gone."),
    m("supervisor.reloadConfig", &["array"], "Read the config file again and answer [[added, changed, removed]] group names; nothing is applied until addProcessGroup or removeProcessGroup."),
    m("supervisor.removeProcessGroup", &["boolean", "string"], "Remove a stopped group that is gone from the config file (after reloadConfig). STILL_RUNNING while any of its processes runs."),
    m("supervisor.restart", &["boolean"], "Stop every program, read the config file again, and start the autostart programs (the daemon itself keeps running)."),
    m("supervisor.sendProcessStdin", &["boolean", "string", "string"], "Always a fault: nsvisor gives programs /dev/null as stdin (NOT_RUNNING when the process is not running, else NO_FILE)."),
    m("supervisor.sendRemoteCommEvent", &["boolean", "string", "string"], "Always a FAILED fault: nsvisor has no event listeners."),
    m("supervisor.shutdown", &["boolean"], "Shut the daemon down gracefully."),
    m("supervisor.signalAllProcesses", &["array", "string"], "Send a signal (name or number) to every running process; an array of result structs."),
    m("supervisor.signalProcess", &["boolean", "string", "string"], "Send a signal (name or number) to a process (or a group, with group:*)."),
    m("supervisor.signalProcessGroup", &["array", "string", "string"], "Send a signal to every running process of a group; an array of result structs."),
    m("supervisor.startAllProcesses", &["array", "boolean"], "Start every process that is not running; an array of result structs."),
    m("supervisor.startProcess", &["boolean", "string", "boolean"], "Start a process (or a group, with group:*); with wait, answer once it is RUNNING or has failed."),
    m("supervisor.startProcessGroup", &["array", "string", "boolean"], "Start every process of a group that is not running; an array of result structs."),
    m("supervisor.stopAllProcesses", &["array", "boolean"], "Stop every running process (dependants first); an array of result structs."),
    m("supervisor.stopProcess", &["boolean", "string", "boolean"], "Stop a process (or a group, with group:*); with wait, answer once it has stopped."),
    m("supervisor.stopProcessGroup", &["array", "string", "boolean"], "Stop every running process of a group; an array of result structs."),
    m("supervisor.tailProcessLog", &["array", "string", "int", "int"], "Alias of tailProcessStdoutLog."),
    m("supervisor.tailProcessStderrLog", &["array", "string", "int", "int"], "Tail a process's stderr, like tailProcessStdoutLog."),
    m("supervisor.tailProcessStdoutLog", &["array", "string", "int", "int"], "[bytes, offset, overflow]: up to length bytes of stdout from offset; when more was written, the last length bytes and overflow true. The next offset is the total written."),
    ro("system.listMethods", &["array"], "The names of every method served."),
    ro("system.methodHelp", &["string", "string"], "The help text of a method."),
    ro("system.methodSignature", &["array", "string"], "The types of a method: [return type, parameter types...]."),
    ro("system.multicall", &["array", "array"], "Run an array of {methodName, params} structs in order; each result is a one-item array or a fault struct."),
];

/// The level `method` needs (`None`: no such method; calling it faults anyway).
pub fn level(method: &str) -> Option<Level> {
    METHODS.iter().find(|m| m.name == method).map(|m| m.level)
}

fn find(name: &str) -> Result<&'static Method, Fault> {
    METHODS
        .iter()
        .find(|m| m.name == name)
        .ok_or_else(|| Fault::bare(Code::SignatureUnsupported))
}

/// `system.listMethods`.
pub fn list_methods(p: Params) -> Result<Value, Fault> {
    p.none()?;
    Ok(Value::Array(
        METHODS.iter().map(|m| Value::str(m.name)).collect(),
    ))
}

/// `system.methodHelp`.
pub fn method_help(p: Params) -> Result<Value, Fault> {
    Ok(Value::str(find(&p.one_str()?)?.help))
}

/// `system.methodSignature`.
pub fn method_signature(p: Params) -> Result<Value, Fault> {
    let m = find(&p.one_str()?)?;
    Ok(Value::Array(
        m.signature.iter().map(|t| Value::str(*t)).collect(),
    ))
}

/// `system.multicall`: each call is checked against the client's `level`.
pub async fn multicall(rpc: &Rpc, level: Level, params: Vec<Value>) -> Result<Value, Fault> {
    let mut it = params.into_iter();
    let (Some(Value::Array(calls)), None) = (it.next(), it.next()) else {
        return Err(Fault::new(
            Code::IncorrectParameters,
            "system.multicall takes one array of {methodName, params} structs",
        ));
    };
    let mut results = Vec::with_capacity(calls.len());
    for call in calls {
        let method = match call.member("methodName") {
            Some(Value::Str(m)) => m.clone(),
            _ => {
                results.push(Fault::new(Code::IncorrectParameters, "No methodName").to_value());
                continue;
            }
        };
        let params = match call.member("params") {
            Some(Value::Array(p)) => p.clone(),
            None => Vec::new(),
            Some(other) => {
                let f = Fault::new(
                    Code::IncorrectParameters,
                    format!("params must be an array, not {}", other.type_name()),
                );
                results.push(f.to_value());
                continue;
            }
        };
        results.push(match rpc.dispatch(level, &method, params).await {
            Ok(v) => Value::Array(vec![v]),
            Err(f) => f.to_value(),
        });
    }
    Ok(Value::Array(results))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_typed() {
        let names: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for m in METHODS {
            assert!(!m.signature.is_empty(), "{}", m.name);
            assert!(!m.help.is_empty(), "{}", m.name);
        }
        let sig = method_signature(Params::new(vec![Value::str("supervisor.startProcess")]));
        assert_eq!(
            sig.ok(),
            Some(Value::Array(vec![
                Value::str("boolean"),
                Value::str("string"),
                Value::str("boolean")
            ]))
        );
        let read: Vec<&str> = METHODS
            .iter()
            .filter(|m| m.level == Level::Read)
            .map(|m| m.name)
            .collect();
        assert_eq!(
            read,
            [
                "supervisor.getAPIVersion",
                "supervisor.getAllConfigInfo",
                "supervisor.getAllProcessInfo",
                "supervisor.getIdentification",
                "supervisor.getPID",
                "supervisor.getProcessInfo",
                "supervisor.getState",
                "supervisor.getSupervisorVersion",
                "supervisor.getVersion",
                "system.listMethods",
                "system.methodHelp",
                "system.methodSignature",
                "system.multicall",
            ],
            "only methods that report state are read-only: no action, no output, no log"
        );
        assert_eq!(level("supervisor.readLog"), Some(Level::Control));
        assert_eq!(level("supervisor.nope"), None);
        let unknown = method_help(Params::new(vec![Value::str("supervisor.nope")]));
        assert_eq!(
            unknown.err().map(|f| f.code),
            Some(Code::SignatureUnsupported)
        );
    }
}
