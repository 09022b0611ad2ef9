//! supervisord's fault codes, and how nsvisor's API errors become faults.
//!
//! The codes are supervisord's (`supervisor/xmlrpc.py`), because clients
//! branch on them: supervisorctl prints "no such process" for `BAD_NAME`,
//! "already started" for `ALREADY_STARTED`, and sets its exit status from
//! them. A fault's string is the code's name, then `: ` and what it is about
//! (`BAD_NAME: web`), as supervisord writes it.

use nsvisor_proto::{ApiError, ErrorKind};

use super::codec::Value;

/// supervisord's fault codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// No such method.
    UnknownMethod = 1,
    /// Wrong number or types of parameters.
    IncorrectParameters = 2,
    /// Parameters of the right type but unusable values.
    BadArguments = 3,
    /// No signature or help for that method.
    SignatureUnsupported = 4,
    /// The daemon is shutting down.
    ShutdownState = 6,
    /// No such process or group.
    BadName = 10,
    /// No such signal.
    BadSignal = 11,
    /// No such file (command, log file, stdin).
    NoFile = 20,
    /// The command is not executable.
    NotExecutable = 21,
    /// The action failed.
    Failed = 30,
    /// The process exited before it was running.
    AbnormalTermination = 40,
    /// The process could not be spawned.
    SpawnError = 50,
    /// Start of a process that is already running.
    AlreadyStarted = 60,
    /// Stop or signal of a process that is not running.
    NotRunning = 70,
    /// Not a fault: the status of a success in group results.
    Success = 80,
    /// The group is already active.
    AlreadyAdded = 90,
    /// The group still has running processes.
    StillRunning = 91,
    /// The config file could not be read again.
    CantReread = 92,
}

impl Code {
    /// The name supervisord gives the code.
    pub fn name(self) -> &'static str {
        match self {
            Code::UnknownMethod => "UNKNOWN_METHOD",
            Code::IncorrectParameters => "INCORRECT_PARAMETERS",
            Code::BadArguments => "BAD_ARGUMENTS",
            Code::SignatureUnsupported => "SIGNATURE_UNSUPPORTED",
            Code::ShutdownState => "SHUTDOWN_STATE",
            Code::BadName => "BAD_NAME",
            Code::BadSignal => "BAD_SIGNAL",
            Code::NoFile => "NO_FILE",
            Code::NotExecutable => "NOT_EXECUTABLE",
            Code::Failed => "FAILED",
            Code::AbnormalTermination => "ABNORMAL_TERMINATION",
            Code::SpawnError => "SPAWN_ERROR",
            Code::AlreadyStarted => "ALREADY_STARTED",
            Code::NotRunning => "NOT_RUNNING",
            Code::Success => "SUCCESS",
            Code::AlreadyAdded => "ALREADY_ADDED",
            Code::StillRunning => "STILL_RUNNING",
            Code::CantReread => "CANT_REREAD",
        }
    }

    /// The number on the wire.
    pub fn number(self) -> i32 {
        self as i32
    }
}

/// An XML-RPC fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The code.
    pub code: Code,
    /// `NAME` or `NAME: detail`.
    pub text: String,
}

impl Fault {
    /// A fault with no detail.
    pub fn bare(code: Code) -> Fault {
        Fault {
            code,
            text: code.name().to_string(),
        }
    }

    /// A fault about something (`BAD_NAME: web`).
    pub fn new(code: Code, detail: impl std::fmt::Display) -> Fault {
        Fault {
            code,
            text: format!("{}: {detail}", code.name()),
        }
    }

    /// The `{faultCode, faultString}` struct `system.multicall` answers with.
    pub fn to_value(&self) -> Value {
        Value::strukt([
            ("faultCode", Value::Int(self.code.number().into())),
            ("faultString", Value::str(&self.text)),
        ])
    }
}

impl From<ApiError> for Fault {
    fn from(e: ApiError) -> Fault {
        let code = match e.kind {
            ErrorKind::NotFound => Code::BadName,
            ErrorKind::ShuttingDown => Code::ShutdownState,
            ErrorKind::BadRequest | ErrorKind::PayloadTooLarge => Code::BadArguments,
            ErrorKind::InvalidConfig => Code::CantReread,
            ErrorKind::WrongState
            | ErrorKind::Failed
            | ErrorKind::PermissionDenied
            | ErrorKind::MethodNotAllowed
            | ErrorKind::Unavailable => Code::Failed,
        };
        Fault::new(code, e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_supervisords() {
        let table = [
            (Code::UnknownMethod, 1),
            (Code::IncorrectParameters, 2),
            (Code::BadArguments, 3),
            (Code::SignatureUnsupported, 4),
            (Code::ShutdownState, 6),
            (Code::BadName, 10),
            (Code::BadSignal, 11),
            (Code::NoFile, 20),
            (Code::NotExecutable, 21),
            (Code::Failed, 30),
            (Code::AbnormalTermination, 40),
            (Code::SpawnError, 50),
            (Code::AlreadyStarted, 60),
            (Code::NotRunning, 70),
            (Code::Success, 80),
            (Code::AlreadyAdded, 90),
            (Code::StillRunning, 91),
            (Code::CantReread, 92),
        ];
        for (code, n) in table {
            assert_eq!(code.number(), n, "{}", code.name());
        }
    }

    #[test]
    fn texts_and_api_errors() {
        assert_eq!(Fault::new(Code::BadName, "web").text, "BAD_NAME: web");
        assert_eq!(Fault::bare(Code::ShutdownState).text, "SHUTDOWN_STATE");
        let cases = [
            (ErrorKind::NotFound, Code::BadName),
            (ErrorKind::ShuttingDown, Code::ShutdownState),
            (ErrorKind::BadRequest, Code::BadArguments),
            (ErrorKind::InvalidConfig, Code::CantReread),
            (ErrorKind::Failed, Code::Failed),
            (ErrorKind::WrongState, Code::Failed),
        ];
        for (kind, code) in cases {
            let f = Fault::from(ApiError::new(kind, "why"));
            assert_eq!(f.code, code);
            assert_eq!(f.text, format!("{}: why", code.name()));
        }
        assert_eq!(
            Fault::new(Code::NotRunning, "x").to_value(),
            Value::strukt([
                ("faultCode", Value::Int(70)),
                ("faultString", Value::str("NOT_RUNNING: x")),
            ])
        );
    }
}
