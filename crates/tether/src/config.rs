//! [`Config`]: every setting of a host, with its default, in one place.
//!
//! The [`Host`](crate::Host) builder edits a `Config`; a session receives
//! one (shared, never changed once the script started) and reads its settings
//! from it alone (besides the settings, it is given the host's registry of
//! functions and its thread pool).

use std::path::PathBuf;
use std::time::Duration;

use crate::protocol::DEFAULT_MAX_FRAME;

/// Which wire protocol a host speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// JSON-RPC messages with typed values and bytes; scripts use
    /// `from tether import host` (see `docs/protocol.md`).
    #[default]
    Native,
    /// The seed's protocol, byte for byte: one string argument, one string
    /// result, `__BAD API__` for an unknown name, descriptors in
    /// `PY_READ_FD`/`PY_WRITE_FD`. Scripts use `tether.classic.call`, or
    /// their own seed-style code.
    Classic,
}

/// The settings a script runs with. Each field's meaning is documented on
/// the [`Host`](crate::Host) method that sets it.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The interpreter (`None`: `TETHER_PYTHON`, else `python3`).
    pub python: Option<PathBuf>,
    pub max_frame: u32,
    pub mode: Mode,
    pub exit_grace: Duration,
    pub serial: bool,
    pub forward_logs: bool,
    pub own_group: bool,
    pub max_in_flight: usize,
    pub capture_limit: usize,
    pub max_depth: usize,
    pub deadline: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// The longest a reader spins on an empty pipe (zero: never).
    pub spin: Duration,
    /// Bytes values at least this large travel in shared memory.
    pub shared_memory: Option<usize>,
    /// The sandbox every script runs in, unless it names its own.
    pub sandbox: Option<crate::sandbox::Sandbox>,
    /// Receives the scripts' forwarded log records (besides `tracing`).
    pub on_log: Option<LogCallback>,
    /// Threads that run host functions, for every script of the host.
    pub workers: usize,
    /// How long a call into the script waits for it to become ready.
    pub ready_timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            python: None,
            max_frame: DEFAULT_MAX_FRAME,
            mode: Mode::Native,
            exit_grace: Duration::from_secs(5),
            serial: false,
            forward_logs: false,
            own_group: true,
            max_in_flight: 1024,
            capture_limit: 16 * 1024 * 1024,
            max_depth: 128,
            deadline: None,
            idle_timeout: None,
            // Long enough to catch a quick answer, short next to the cost
            // of the wake-up it saves (see `spin.rs`).
            spin: Duration::from_micros(50),
            shared_memory: None,
            sandbox: None,
            on_log: None,
            workers: 8,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// The spin bound in force: the configured one, `TETHER_SPIN_US` over
    /// it, and zero with one usable core.
    pub fn spin_bound(&self) -> Duration {
        crate::spin::bound(self.spin)
    }
}

/// A function receiving the scripts' forwarded log records.
#[derive(Clone)]
pub(crate) struct LogCallback(pub std::sync::Arc<dyn Fn(&LogRecord<'_>) + Send + Sync>);

impl std::fmt::Debug for LogCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LogCallback")
    }
}

/// One `logging` record a script forwarded (see
/// [`Host::on_script_log`](crate::Host::on_script_log)).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct LogRecord<'a> {
    /// The script's process id.
    pub pid: u32,
    /// Python's level number: 10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR, 50 CRITICAL.
    pub level: i64,
    /// The logger's name (`root` for the root logger).
    pub logger: &'a str,
    /// The formatted message.
    pub message: &'a str,
}
