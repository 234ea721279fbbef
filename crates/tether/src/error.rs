//! The crate's error types.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::value::Value;

/// Everything that can go wrong while running a script.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A sandbox could not be applied: the kernel lacks a part of the
    /// policy (with strict enforcement, the default), or preparing it
    /// failed. The message names what is missing.
    Sandbox(String),
    /// The interpreter could not be started (not found, not executable), or
    /// the script file does not exist.
    Spawn {
        /// What was being started.
        program: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// The host was configured in a way that cannot work (for instance two
    /// parameter names for a one-argument function).
    Config(String),
    /// An operating-system call failed on the host's side.
    Io {
        /// What the host was doing.
        context: String,
        /// The OS error.
        source: io::Error,
    },
    /// The script broke the protocol (garbage, a frame over the size limit,
    /// a frame cut short, a reply to a call never made) or closed its channel
    /// without exiting. The host stopped it.
    Protocol {
        /// What was wrong.
        detail: String,
        /// How the script ended, once it was stopped and reaped.
        status: Option<ExitStatus>,
        /// Why the host itself signalled it, when it had to (see
        /// [`Outcome::killed_by_host`](crate::Outcome::killed_by_host)).
        killed_by: Option<String>,
    },
    /// A call into the script failed there: the export raised, or there is
    /// no such export, or its arguments did not fit.
    Remote(Box<RemoteError>),
    /// A call into the script did not answer within its own time limit (the
    /// channel stays usable; a late answer is dropped).
    Timeout {
        /// The export that was called.
        method: String,
        /// The time limit.
        after: std::time::Duration,
    },
    /// The script did not say it serves (`rpc.ready`) in time: a wait for
    /// readiness, or a call that waited for it longer than the host's ready
    /// timeout (`Host::ready_timeout`).
    NotReady {
        /// How long it was waited for.
        waited: std::time::Duration,
        /// What waited, and what to do.
        detail: String,
    },
    /// The call cannot be made or answered: [`Closed`] says why (the script
    /// ended, the pool is shut down or gave up, no worker is alive now).
    Closed {
        /// Why, to match on.
        reason: Closed,
        /// What happened, for people (how the script ended, the pool's last
        /// deaths).
        detail: String,
    },
    /// Arguments could not be sent, or a result did not fit the type asked
    /// for.
    Value(ValueError),
    /// The script exited with an error code or was killed by a signal
    /// (from [`Outcome::check`](crate::Outcome::check)).
    ScriptFailed {
        /// How it ended.
        status: ExitStatus,
        /// Why the host itself signalled it, when it did (see
        /// [`Outcome::killed_by_host`](crate::Outcome::killed_by_host)).
        killed_by: Option<String>,
        /// What else is known: calls in flight, the last lines of stderr.
        report: String,
    },
    /// A limit of the host's refused a call or ended the run: [`Limit`] says
    /// which.
    Limit {
        /// Which limit, to match on.
        limit: Limit,
        /// What happened, for people.
        detail: String,
    },
    /// A blocking call was made on the thread of a current-thread tokio
    /// runtime whose script has async host functions: they need that very
    /// thread, so the call could never be answered. The message names the
    /// async form to use instead.
    Blocking(String),
    /// The script's `tether` client speaks another protocol version.
    VersionMismatch {
        /// The host's protocol version.
        host: u32,
        /// The client's protocol version.
        client: u32,
        /// The client's package version.
        client_version: String,
    },
}

impl Error {
    /// [`Error::Closed`]: the script ended; `detail` says how.
    pub(crate) fn gone(detail: impl Into<String>) -> Error {
        Error::Closed {
            reason: Closed::ScriptEnded,
            detail: detail.into(),
        }
    }

    /// [`Error::Closed`] for another `reason`.
    pub(crate) fn closed(reason: Closed, detail: impl Into<String>) -> Error {
        Error::Closed {
            reason,
            detail: detail.into(),
        }
    }

    /// [`Error::Limit`].
    pub(crate) fn limit(limit: Limit, detail: impl Into<String>) -> Error {
        Error::Limit {
            limit,
            detail: detail.into(),
        }
    }
}

/// Why a call could not be made or answered ([`Error::Closed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Closed {
    /// The script ended, or closed its channel (the detail says how).
    ScriptEnded,
    /// The pool was shut down.
    PoolShutDown,
    /// The pool stopped serving after too many of its workers died (see
    /// `PoolBuilder::give_up_after`).
    PoolGaveUp,
    /// No worker of the pool is alive at this moment (a replacement is on
    /// its way): worth trying again.
    NoWorker,
}

/// Which of the host's limits refused a call or ended a run ([`Error::Limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// The run's deadline (`Host::deadline`).
    Deadline,
    /// The run's idle timeout (`Host::idle_timeout`).
    IdleTimeout,
    /// Calls between host and script nested deeper than `Host::max_depth`.
    Nesting,
    /// The script had `Host::max_in_flight` calls running on the host.
    InFlight,
    /// 64 MiB already wait for the script to read its pipe.
    Backlog,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spawn { program, source } => {
                write!(f, "cannot start {}: {source}", program.display())
            }
            Error::Config(m) => write!(f, "invalid host configuration: {m}"),
            Error::Sandbox(m) => write!(f, "cannot sandbox the script: {m}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Protocol {
                detail,
                status,
                killed_by,
            } => {
                write!(f, "script broke the protocol: {detail}")?;
                if let Some(status) = status {
                    let how = describe_status(status, killed_by.as_deref());
                    write!(f, " (script stopped: {how})")?;
                }
                Ok(())
            }
            Error::ScriptFailed {
                status,
                killed_by,
                report,
            } => {
                let how = describe_status(status, killed_by.as_deref());
                write!(f, "the script failed: {how}{report}")
            }
            Error::Remote(e) => write!(f, "the script's {e}"),
            Error::Timeout { method, after } => {
                write!(f, "the script did not answer {method}() within {after:?}")
            }
            Error::NotReady { detail, .. } => f.write_str(detail),
            Error::Closed {
                reason: Closed::ScriptEnded,
                detail,
            } => write!(f, "the script is gone: {detail}"),
            Error::Closed { detail, .. } => f.write_str(detail),
            Error::Value(e) => write!(f, "{e}"),
            Error::Limit { detail, .. } => write!(f, "limit reached: {detail}"),
            Error::Blocking(what) => write!(
                f,
                "{what} would block the current-thread tokio runtime that the script's async \
                 host functions run on, so it could never be answered; await its async form"
            ),
            Error::VersionMismatch {
                host,
                client,
                client_version,
            } => write!(
                f,
                "protocol version mismatch: the host speaks {host}, the script's tether \
                 client {client_version} speaks {client}; use the client the host bundles \
                 (remove other tether installs from the script's path)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } | Error::Io { source, .. } => Some(source),
            Error::Remote(e) => Some(&**e),
            Error::Value(e) => Some(e),
            _ => None,
        }
    }
}

/// An error the script answered a call with.
///
/// For an exception raised by a Python export, [`kind`](RemoteError::kind) is
/// the exception's type name and [`traceback`](RemoteError::traceback) its
/// formatted traceback.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteError {
    code: i64,
    kind: String,
    message: String,
    traceback: Option<String>,
    data: Option<Value>,
}

impl RemoteError {
    pub(crate) fn from_rpc(e: crate::protocol::message::RpcError) -> RemoteError {
        let field = |name: &str| match &e.data {
            Some(Value::Map(m)) => m.get(name).and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        RemoteError {
            code: e.code,
            kind: field("kind").unwrap_or_else(|| "Error".to_owned()),
            traceback: field("traceback"),
            message: e.message,
            data: e.data,
        }
    }

    /// Adds to the message what the host knows about the mistake.
    pub(crate) fn add_hint(&mut self, hint: &str) {
        self.message.push_str("; ");
        self.message.push_str(hint);
    }

    /// The JSON-RPC error code (see `docs/protocol.md`).
    pub fn code(&self) -> i64 {
        self.code
    }

    /// What kind of error: the Python exception's type name (`ValueError`),
    /// or `MethodNotFound`, `InvalidParams`.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The message (`str()` of the Python exception).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The Python traceback, when an export raised.
    pub fn traceback(&self) -> Option<&str> {
        self.traceback.as_deref()
    }

    /// The error's structured detail as the script sent it.
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for RemoteError {}

/// A value could not be converted to or from [`Value`](crate::Value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub(crate) String);

impl ValueError {
    /// A value error with this message, for bindings that convert values
    /// of their own.
    ///
    /// ```
    /// let e = tether::ValueError::new("NaN cannot be sent");
    /// assert_eq!(e.to_string(), "NaN cannot be sent");
    /// ```
    pub fn new(message: impl Into<String>) -> ValueError {
        ValueError(message.into())
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

/// An error a host function returns on purpose, with a kind the script can
/// tell apart (`err.kind` on `tether.RemoteError`).
///
/// Functions registered with [`Host::try_function`](crate::Host::try_function)
/// may fail with any `Display` error type; its kind is then the type's name.
/// Return a `FunctionError` to choose the kind yourself:
///
/// ```
/// use tether::FunctionError;
/// let err = FunctionError::new("NotFound", "no user named bob");
/// assert_eq!(err.to_string(), "no user named bob");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionError {
    pub(crate) kind: String,
    pub(crate) message: String,
    pub(crate) data: Option<Value>,
}

impl FunctionError {
    /// An error of the given kind with the given message.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> FunctionError {
        FunctionError {
            kind: kind.into(),
            message: message.into(),
            data: None,
        }
    }

    /// Attaches structured detail. The script's `tether.RemoteError` carries
    /// the whole error detail in `err.data`, a dict with the `kind`, the
    /// `function` and this value as `data`:
    ///
    /// ```
    /// use tether::FunctionError;
    /// let err = FunctionError::new("NotFound", "no user named bob").with_data(404);
    /// // In the script:
    /// //   except tether.RemoteError as err:
    /// //       err.kind == "NotFound"
    /// //       err.data == {"kind": "NotFound", "function": "get_user", "data": 404}
    /// //       err.data["data"] == 404
    /// # let _ = err;
    /// ```
    pub fn with_data(mut self, data: impl Into<Value>) -> FunctionError {
        self.data = Some(data.into());
        self
    }

    /// The kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FunctionError {}

/// How a script ended, in words: who sent the signal when the host did
/// (`killed_by`), else a hint where the cause is usually somewhere else:
/// SIGKILL (the out-of-memory killer) and SIGSEGV (a crash in native code).
pub(crate) fn describe_status(status: &ExitStatus, killed_by: Option<&str>) -> String {
    use std::os::unix::process::ExitStatusExt;
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    if let (Some(sig), Some(why)) = (status.signal(), killed_by) {
        let name = match sig {
            9 => " (SIGKILL)",
            15 => " (SIGTERM)",
            _ => "",
        };
        return format!("killed by signal {sig}{name}, sent by the host: {why}");
    }
    match status.signal() {
        Some(9) => "killed by signal 9 (SIGKILL); if nobody killed it on purpose, it was most \
                    likely the kernel's out-of-memory killer (see `dmesg` or `journalctl -k`)"
            .to_owned(),
        Some(11) => "killed by signal 11 (SIGSEGV): the interpreter crashed, usually in a C \
                     extension module; run the script alone with `python3 -X faulthandler` to see where"
            .to_owned(),
        Some(6) => "killed by signal 6 (SIGABRT): the interpreter or an extension aborted".to_owned(),
        Some(15) => "killed by signal 15 (SIGTERM)".to_owned(),
        Some(sig) => format!("killed by signal {sig}"),
        None => status.to_string(),
    }
}
