#![doc = include_str!("../README.md")]
//!
//! # In scope, out of scope
//!
//! tether spawns the interpreter, wires two pipes into it, serves the
//! script's calls and reports how the script ended. A script runs with the
//! host's rights unless it is given a [`Sandbox`] (Linux: Landlock, seccomp,
//! rlimits, a pids cgroup; see `docs/guarantees.md` for what that stops and
//! what it does not). tether does not embed Python: no Python/C API, no
//! linking against libpython.
//!
//! # Modules
//!
//! [`protocol`] is the wire format without any I/O, usable on its own (for
//! fuzzing, or for writing another client). Everything else is the host.
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod blocking;
mod bundle;
mod child;
mod clock;
mod config;
mod error;
mod function;
mod host;
mod link;
mod oneshot;
mod outcome;
mod peer;
mod pool;
mod process;
pub mod protocol;
mod pytypes;
mod runtime;
mod sandbox;
mod scope;
mod script;
mod session;
mod shm;
mod spin;
mod stats;
mod stop;
mod stubs;
mod sync;
#[cfg(test)]
mod test_support;
mod timer;
mod trace;
mod transport;
mod value;
mod warm;
mod watchdog;
mod workers;

pub use bundle::VERSION;
pub use bytes::Bytes;
pub use child::Child;
pub use config::{LogRecord, Mode};
pub use error::{Closed, Error, FunctionError, Limit, RemoteError, ValueError};
pub use function::IntoFunction;
pub use host::Host;
pub use outcome::Outcome;
pub use peer::Peer;
pub use protocol::PROTOCOL_VERSION;
pub use sandbox::{Enforcement, Sandbox};
pub use script::{Script, Stdio};
pub use stats::Stats;
pub use stop::{stop_all, stop_on_signals, StopSignals};
pub use value::{from_value, to_value, Map, Value};
pub use warm::{Zygote, ZygoteBuilder};
pub use workers::{Pool, PoolBuilder, PoolStats};

/// Implementation details that public traits mention; not part of the API.
#[doc(hidden)]
pub mod __private {
    pub use crate::pytypes::Types;
}
