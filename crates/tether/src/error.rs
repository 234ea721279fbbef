//! The crate's error types.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::Value;

/// Everything that can go wrong while running a script.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
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
    },
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Spawn { program, source } => {
                write!(f, "cannot start {}: {source}", program.display())
            }
            Error::Config(m) => write!(f, "invalid host configuration: {m}"),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Protocol { detail, status } => {
                write!(f, "script broke the protocol: {detail}")?;
                if let Some(status) = status {
                    write!(f, " (script stopped, {status})")?;
                }
                Ok(())
            }
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
            _ => None,
        }
    }
}

/// A value could not be converted to or from [`Value`](crate::Value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub(crate) String);

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

    /// Attaches structured detail the script can read as `err.data`.
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
