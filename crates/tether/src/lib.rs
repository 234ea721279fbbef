#![doc = include_str!("../../../README.md")]
//!
//! # In scope, out of scope
//!
//! tether spawns the interpreter, wires two pipes into it, serves the
//! script's calls and reports how the script ended. It does not sandbox the
//! script (the script runs with the host's privileges) and does not embed
//! Python: no Python/C API, no linking against libpython.
//!
//! # Modules
//!
//! [`protocol`] is the wire format without any I/O, usable on its own (for
//! fuzzing, or for writing another client). Everything else is the host.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod bundle;
mod child;
mod error;
mod function;
mod host;
mod peer;
mod pool;
pub mod protocol;
mod pytypes;
mod script;
mod session;
mod shm;
mod stubs;
mod transport;
mod value;
mod watchdog;

pub use bytes::Bytes;
pub use error::{Error, FunctionError, RemoteError, ValueError};
pub use function::IntoFunction;
pub use host::{Child, Host, Mode, Outcome};
pub use peer::Peer;
pub use protocol::PROTOCOL_VERSION;
pub use script::{Script, Stdio};
pub use value::{from_value, to_value, Map, Value};

/// Implementation details that public traits mention; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::pytypes::Types;
}

/// The version of this crate, which is also the version of the Python client
/// it bundles.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Locks `m`, also when a thread panicked while holding it: tether's locks
/// guard state that stays consistent between statements, so a poisoned lock
/// is still usable.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
