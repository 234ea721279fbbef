//! [`Host`]: the registry of host functions and how scripts are run.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use indexmap::IndexMap;
use rustix::process::Signal;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::child::Killer;
use crate::function::{Function, IntoFunction};
use crate::pool::Pool;
use crate::protocol::DEFAULT_MAX_FRAME;
use crate::pytypes::Types;
use crate::{session, Error, Peer, Script};

/// Default number of worker threads for host functions.
const DEFAULT_WORKERS: usize = 8;

/// Default bound on spinning: long enough to catch a quick answer, short
/// next to the cost of the wake-up it saves (see [`Host::spin`]).
const DEFAULT_SPIN: Duration = Duration::from_micros(50);

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

/// A set of functions a Python script may call, and the settings to run it.
///
/// Build one, then [`run`](Host::run) scripts with it (as many as you like):
///
/// ```no_run
/// let outcome = tether::Host::new()
///     .function("foo", |arg: tether::Value| format!("Foo was called with arg {arg}"))
///     .function("add(a, b)", |a: i64, b: i64| a + b)
///     .run("script.py")?;
/// println!("script ended: {}", outcome.status());
/// # Ok::<(), tether::Error>(())
/// ```
///
/// A function is registered under a *signature*: its name, optionally
/// followed by parameter names in parentheses (`"add(a, b)"`). With names,
/// the script may pass arguments by keyword (`host.add(a=1, b=2)`), and
/// error messages name the parameter that was wrong.
#[derive(Clone)]
pub struct Host {
    pub(crate) functions: Arc<IndexMap<String, Function>>,
    config_errors: Vec<String>,
    pub(crate) python: Option<PathBuf>,
    pub(crate) max_frame: u32,
    pub(crate) mode: Mode,
    pub(crate) exit_grace: Duration,
    pub(crate) serial: bool,
    pub(crate) forward_logs: bool,
    pub(crate) own_group: bool,
    pub(crate) max_in_flight: usize,
    pub(crate) capture_limit: usize,
    pub(crate) max_depth: usize,
    pub(crate) deadline: Option<Duration>,
    pub(crate) idle_timeout: Option<Duration>,
    /// The longest a reader spins on an empty pipe (zero: never).
    pub(crate) spin: Duration,
    /// Bytes values at least this large travel in shared memory.
    pub(crate) shared_memory: Option<usize>,
    workers: usize,
    /// The function registered last, which `doc` describes.
    last: Option<String>,
    /// Types described with `describe_type`, for return annotations.
    types: Arc<Types>,
    /// The worker pool, shared by every clone of this host and started on
    /// first use.
    pool: Arc<OnceLock<Arc<Pool>>>,
}

impl Default for Host {
    fn default() -> Host {
        Host::new()
    }
}

impl Host {
    /// A host with no functions, speaking the native protocol.
    pub fn new() -> Host {
        Host {
            functions: Arc::new(IndexMap::new()),
            config_errors: Vec::new(),
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
            spin: DEFAULT_SPIN,
            shared_memory: None,
            workers: DEFAULT_WORKERS,
            last: None,
            types: Arc::new(Types::default()),
            pool: Arc::new(OnceLock::new()),
        }
    }

    /// Registers a function whose return value (anything `Serialize`) is
    /// the result of the call.
    ///
    /// Each argument may be any `DeserializeOwned` type; the script's value
    /// is converted to it, and a value that does not fit is answered with
    /// `tether.InvalidParams`. Trailing `Option` arguments may be left out.
    ///
    /// A mistake in `signature` (not an identifier, a name count that does
    /// not match the closure) is reported by [`run`](Host::run) as
    /// [`Error::Config`].
    ///
    /// ```
    /// let host = tether::Host::new()
    ///     .function("greet(name, greeting)", |name: String, greeting: Option<String>| {
    ///         format!("{}, {name}!", greeting.as_deref().unwrap_or("Hello"))
    ///     });
    /// # let _ = host;
    /// ```
    pub fn function<F, A, R>(self, signature: &str, f: F) -> Host
    where
        F: IntoFunction<A, R>,
        R: Serialize + 'static,
    {
        self.register(Function::plain(signature, f))
    }

    /// Registers a function that returns `Result<T, E>`: `Ok` is the result,
    /// and `Err` reaches the script as `tether.RemoteError` with the error's
    /// message and a kind. The kind is the error type's name, or the one
    /// chosen with [`FunctionError`](crate::FunctionError).
    ///
    /// ```
    /// use tether::FunctionError;
    /// let host = tether::Host::new()
    ///     .try_function("parse(text)", |text: String| text.trim().parse::<i64>())
    ///     .try_function("lookup(key)", |key: String| -> Result<i64, FunctionError> {
    ///         Err(FunctionError::new("NotFound", format!("no entry {key:?}")))
    ///     });
    /// # let _ = host;
    /// ```
    pub fn try_function<F, A, T, E>(self, signature: &str, f: F) -> Host
    where
        F: IntoFunction<A, Result<T, E>>,
        T: Serialize + 'static,
        E: std::fmt::Display + 'static,
    {
        self.register(Function::fallible(signature, f))
    }

    /// Registers a function that takes any number of positional arguments
    /// as a list of [`Value`](crate::Value)s: for hosts whose functions are
    /// not typed Rust closures (bindings for other languages, proxies).
    ///
    /// ```
    /// use tether::{FunctionError, Value};
    /// let host = tether::Host::new().dynamic_function("count", |args: Vec<Value>| {
    ///     Ok::<_, FunctionError>(Value::from(args.len() as i64))
    /// });
    /// # let _ = host;
    /// ```
    pub fn dynamic_function<F>(self, name: &str, f: F) -> Host
    where
        F: Fn(Vec<crate::Value>) -> Result<crate::Value, crate::FunctionError>
            + Send
            + Sync
            + 'static,
    {
        self.register(Function::dynamic(name, f))
    }

    /// Documents the function registered last: the script sees the text in
    /// `help(host.NAME)`, in `host.NAME.__doc__` and in the type stubs.
    ///
    /// ```
    /// let host = tether::Host::new()
    ///     .function("add(a, b)", |a: i64, b: i64| a + b)
    ///     .doc("Adds two integers.");
    /// # let _ = host;
    /// ```
    pub fn doc(mut self, text: &str) -> Host {
        match self
            .last
            .as_ref()
            .and_then(|n| Arc::make_mut(&mut self.functions).get_mut(n))
        {
            Some(f) => f.doc = Some(text.to_owned()),
            None => self.config_errors.push(format!(
                "doc({text:?}) comes before any function it could describe"
            )),
        }
        self
    }

    /// Describes a serde type so that functions *returning* it are typed in
    /// `help()` and the stubs (argument types are described automatically).
    /// A struct becomes a `TypedDict` of its fields.
    pub fn describe_type<T: DeserializeOwned>(mut self) -> Host {
        let mut found = Types::default();
        if crate::pytypes::trace::<T>(&mut found).is_none() {
            tracing::debug!(
                "{} cannot be traced; it is typed as Any",
                std::any::type_name::<T>()
            );
        }
        Arc::make_mut(&mut self.types).extend(&found);
        self
    }

    /// Writes type stubs for this host's functions into `dir/tether/` (a copy
    /// of the client package plus `__init__.pyi` and `aio.pyi`) and returns
    /// that directory. Point a type checker at `dir` (`MYPYPATH=dir`) and it
    /// checks a script's calls to the host.
    ///
    /// # Errors
    ///
    /// When the files cannot be written.
    pub fn write_stubs(&self, dir: impl AsRef<std::path::Path>) -> std::io::Result<PathBuf> {
        crate::stubs::write(self, dir.as_ref())
    }

    /// Every struct and enum the functions' types use.
    pub(crate) fn type_registry(&self) -> Types {
        let mut known = (*self.types).clone();
        for f in self.functions.values() {
            known.extend(&f.types_used);
        }
        known
    }

    fn register(mut self, function: Result<Function, String>) -> Host {
        match function {
            Ok(f) => {
                if self.functions.contains_key(&f.name) {
                    self.config_errors
                        .push(format!("function {:?} is registered twice", f.name));
                } else {
                    self.last = Some(f.name.clone());
                    Arc::make_mut(&mut self.functions).insert(f.name.clone(), f);
                }
            }
            Err(e) => self.config_errors.push(e),
        }
        self
    }

    /// Runs this interpreter instead of `python3` from `PATH`. Without it,
    /// the `TETHER_PYTHON` environment variable is used when set.
    pub fn python(mut self, path: impl Into<PathBuf>) -> Host {
        self.python = Some(path.into());
        self
    }

    /// The largest frame either side may send, in bytes (default 64 MiB).
    /// A larger frame from the script is a protocol error, detected from its
    /// length prefix before anything is allocated; a result too large to
    /// send is answered with an error instead.
    pub fn max_frame_size(mut self, bytes: u32) -> Host {
        self.max_frame = bytes;
        self
    }

    /// Speaks the seed's classic protocol instead of the native one.
    ///
    /// Every function is then called with the request's argument as one
    /// string, and its result is sent as Python's `str()` of the value.
    pub fn classic(mut self) -> Host {
        self.mode = Mode::Classic;
        self
    }

    /// How long a script that closed its end of the channel may take to exit
    /// before it is killed and reported (default 5 s).
    pub fn exit_grace(mut self, grace: Duration) -> Host {
        self.exit_grace = grace;
        self
    }

    /// How many threads run host functions at once, for all the scripts this
    /// host serves (default 8). A host function that calls back into its
    /// script lends its thread to the script's nested calls while it waits,
    /// so nesting never runs out of threads.
    pub fn workers(mut self, workers: usize) -> Host {
        self.workers = workers.max(1);
        self
    }

    /// How long a reader may spin on an empty pipe before it sleeps (default
    /// 50 µs; `Duration::ZERO` switches spinning off), on both sides: the
    /// host's reader and the script's client.
    ///
    /// Waking a sleeping process on another core costs tens of microseconds,
    /// most of a small call's round trip; a reader that keeps looking for a
    /// while catches a quick answer in a few. Spinning is bounded by this
    /// value and adapts: it backs off when answers take longer than it
    /// waits (a slow function, or more busy processes than cores), gives
    /// the core away to anything else that wants to run while it spins, and
    /// is off when the process may use only one core. The
    /// `TETHER_SPIN_US` environment variable of the host process overrides
    /// this value.
    pub fn spin(mut self, max: Duration) -> Host {
        self.spin = max;
        self
    }

    /// Sends bytes values of at least `threshold` bytes (in both
    /// directions) through shared memory instead of the pipe: the sender
    /// writes the value into a sealed memory file, and the receiver maps it
    /// (Python gets a read-only `memoryview`, a host function a
    /// [`Value::Bytes`](crate::Value) over the mapped pages) without
    /// copying it. A value that arrived this way and is sent back (an echo)
    /// passes the same file again, without writing it at all.
    ///
    /// The script then inherits one more descriptor, a Unix socket the
    /// memory files are passed over (`TETHER_SHM_FD`). A single shared value
    /// is still limited to [`max_frame_size`](Host::max_frame_size).
    /// Linux only; off by default.
    ///
    /// ```
    /// let host = tether::Host::new().shared_memory(1 << 20);
    /// # let _ = host;
    /// ```
    pub fn shared_memory(mut self, threshold: usize) -> Host {
        self.shared_memory = Some(threshold.max(1));
        self
    }

    /// The spin bound in force: the builder's, `TETHER_SPIN_US` over it,
    /// and zero with one usable core.
    pub(crate) fn spin_bound(&self) -> Duration {
        let max = std::env::var("TETHER_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(self.spin, Duration::from_micros);
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        if cores < 2 {
            Duration::ZERO
        } else {
            max
        }
    }

    /// Runs each script's calls one at a time, in the order they arrive
    /// (calls nested inside a running one still run, on its thread).
    pub fn serial(mut self) -> Host {
        self.serial = true;
        self
    }

    /// Forwards the script's `logging` records and warnings to the host as
    /// `tracing` events (target `tether::script`, with the level, the
    /// logger's name and the message).
    pub fn forward_logs(mut self) -> Host {
        self.forward_logs = true;
        self
    }

    /// How much captured output to keep per stream (default 16 MiB): a
    /// script that writes more keeps only its last `bytes` bytes in
    /// [`Outcome::stdout`] / [`Outcome::stderr`], and the host's memory stays
    /// bounded however much it writes.
    pub fn capture_limit(mut self, bytes: usize) -> Host {
        self.capture_limit = bytes;
        self
    }

    /// How many of one script's calls may run on the host at once (default
    /// 1024). A call beyond it is answered at once with an error of kind
    /// `Limit` (a notification is dropped), and a `tracing` warning is
    /// emitted (target `tether::limits`); the script is not stopped.
    pub fn max_in_flight(mut self, calls: usize) -> Host {
        self.max_in_flight = calls.max(1);
        self
    }

    /// How many calls from host functions into a script may be pending at
    /// once, which bounds how deep host and script calls nest (default 128).
    /// A call beyond it fails with [`Error::Limit`] in the host function,
    /// which the script sees as that function's error.
    pub fn max_depth(mut self, depth: usize) -> Host {
        self.max_depth = depth.max(1);
        self
    }

    /// Stops a script that runs longer than `deadline` in all: it is killed
    /// and the run ends with [`Error::Limit`].
    pub fn deadline(mut self, deadline: Duration) -> Host {
        self.deadline = Some(deadline);
        self
    }

    /// Stops a script that sends nothing for `idle`: it is killed and the
    /// run ends with [`Error::Limit`]. Off by default (a script may compute
    /// quietly for as long as it likes).
    pub fn idle_timeout(mut self, idle: Duration) -> Host {
        self.idle_timeout = Some(idle);
        self
    }

    /// Whether each script runs in a process group of its own (default
    /// true). Its children then end with it: when it is stopped, killed or
    /// dropped, and when it exits while they still run (nothing a script
    /// started outlives its run). Turn this off for scripts that must leave
    /// daemons behind, or that expect terminal signals (Ctrl-C) directly.
    pub fn process_group(mut self, own_group: bool) -> Host {
        self.own_group = own_group;
        self
    }

    pub(crate) fn pool(&self) -> std::io::Result<Arc<Pool>> {
        if let Some(pool) = self.pool.get() {
            return Ok(Arc::clone(pool));
        }
        let pool = Arc::new(Pool::new(self.workers, "tether-worker")?);
        Ok(Arc::clone(self.pool.get_or_init(|| pool)))
    }

    /// Runs `script` and serves its calls until it exits.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] when the interpreter or the script cannot be
    /// started, [`Error::Config`] for a mistake in the registrations,
    /// [`Error::Protocol`] when the script broke the protocol (it is killed
    /// and reaped), [`Error::VersionMismatch`] when its client speaks another
    /// protocol version, and [`Error::Io`] for host-side OS failures. A
    /// script that exits with an error code or dies of a signal is *not* an
    /// error: look at [`Outcome::status`].
    pub fn run(&self, script: impl Into<Script>) -> Result<Outcome, Error> {
        self.spawn(script)?.wait()
    }

    /// Starts `script` and serves its calls on a thread of its own; the
    /// returned handle waits for it or stops it. Dropping the handle kills
    /// the script and reaps it.
    ///
    /// ```no_run
    /// let host = tether::Host::new().function("ping", || "pong");
    /// let child = host.spawn("plugin.py")?;
    /// let n: i64 = child.call("square", (7,))?;
    /// let outcome = child.shutdown(std::time::Duration::from_secs(2))?;
    /// # Ok::<(), tether::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`run`](Host::run), for what can go wrong while starting; what
    /// goes wrong later is returned by [`Child::wait`].
    pub fn spawn(&self, script: impl Into<Script>) -> Result<Child, Error> {
        if let Some(first) = self.config_errors.first() {
            return Err(Error::Config(first.clone()));
        }
        session::start(self, &script.into())
    }

    /// Names of the registered functions, in registration order.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }
}

/// A script started with [`Host::spawn`], served by threads of its own.
///
/// Call its exports with [`call`](Child::call), wait for it, or stop it.
/// Dropping it kills the script (if it still runs) and reaps it: no script
/// outlives its handle.
pub struct Child {
    peer: Peer,
    killer: Killer,
    done: mpsc::Receiver<Result<Outcome, Error>>,
    thread: Option<JoinHandle<()>>,
    /// The outcome has been sent.
    finished: Arc<AtomicBool>,
    /// Odd while the serving thread runs one of the script's calls.
    busy: Arc<AtomicU64>,
}

impl Child {
    pub(crate) fn new(
        peer: Peer,
        killer: Killer,
        done: mpsc::Receiver<Result<Outcome, Error>>,
        thread: JoinHandle<()>,
        finished: Arc<AtomicBool>,
        busy: Arc<AtomicU64>,
    ) -> Child {
        Child {
            peer,
            killer,
            done,
            thread: Some(thread),
            finished,
            busy,
        }
    }

    /// The script's process id.
    pub fn id(&self) -> u32 {
        self.peer.id()
    }

    /// A handle for calling the script from other threads.
    pub fn peer(&self) -> Peer {
        self.peer.clone()
    }

    /// Calls the script's export `method`; see [`Peer::call`].
    ///
    /// # Errors
    ///
    /// As for [`Peer::call`].
    pub fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        self.peer.call(method, args)
    }

    /// Calls the script's export `method` with a time limit; see
    /// [`Peer::call_timeout`].
    ///
    /// # Errors
    ///
    /// As for [`Peer::call_timeout`].
    pub fn call_timeout<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
        timeout: Duration,
    ) -> Result<R, Error> {
        self.peer.call_timeout(method, args, timeout)
    }

    /// Sends the script a notification; see [`Peer::notify`].
    ///
    /// # Errors
    ///
    /// As for [`Peer::notify`].
    pub fn notify(&self, method: &str, args: impl Serialize) -> Result<(), Error> {
        self.peer.notify(method, args)
    }

    /// Whether the script has ended and its outcome is ready.
    pub fn is_finished(&self) -> bool {
        self.thread.is_none() || self.finished.load(Ordering::Acquire)
    }

    /// Kills the script with SIGKILL; [`wait`](Child::wait) then reports it
    /// as killed by signal 9. Killing a script that already ended does
    /// nothing.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent for a reason other than the script
    /// being gone.
    pub fn kill(&self) -> Result<(), Error> {
        self.signal(Signal::KILL)
    }

    fn signal(&self, signal: Signal) -> Result<(), Error> {
        if self.is_finished() {
            return Ok(());
        }
        self.killer.signal(signal).map_err(|source| Error::Io {
            context: format!("signalling script {}", self.id()),
            source,
        })
    }

    /// Waits for the script to end and says how it ended, as
    /// [`Host::run`] does.
    ///
    /// # Errors
    ///
    /// As for [`Host::run`].
    pub fn wait(mut self) -> Result<Outcome, Error> {
        self.join()
    }

    /// Stops the script: asks it to stop (`tether.serve()` returns and the
    /// channel closes), sends SIGTERM when it has not ended after half of
    /// `grace`, and SIGKILL when `grace` has run out. Returns how it ended.
    ///
    /// # Errors
    ///
    /// As for [`Host::run`].
    pub fn shutdown(mut self, grace: Duration) -> Result<Outcome, Error> {
        self.peer.shared.stop_without_waiting();
        let half = grace / 2;
        if let Some(result) = self.try_join(half) {
            return result;
        }
        let _ = self.signal(Signal::TERM);
        if let Some(result) = self.try_join(grace - half) {
            return result;
        }
        let _ = self.signal(Signal::KILL);
        self.join()
    }

    fn try_join(&mut self, timeout: Duration) -> Option<Result<Outcome, Error>> {
        match self.done.recv_timeout(timeout) {
            Ok(result) => {
                self.join_thread();
                Some(result)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => Some(self.join()),
        }
    }

    fn join(&mut self) -> Result<Outcome, Error> {
        let result = self.done.recv().unwrap_or_else(|_| {
            Err(Error::Io {
                context: "serving the script".into(),
                source: std::io::Error::other("the serving thread ended without an outcome"),
            })
        });
        self.join_thread();
        result
    }

    /// Joins the serving thread, unless it is inside a host function that
    /// has not returned (it then ends on its own when the function returns:
    /// host functions cannot be interrupted, and the outcome is already
    /// known).
    fn join_thread(&mut self) {
        if let Some(thread) = self.thread.take() {
            if self.busy.load(Ordering::SeqCst).is_multiple_of(2) || thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child").field("pid", &self.id()).finish()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.kill();
            let _ = self.join();
        }
    }
}

/// How a script run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: Option<Vec<u8>>,
    pub(crate) stderr: Option<Vec<u8>>,
    pub(crate) calls: u64,
    /// The script's calls that were running on the host when it ended.
    pub(crate) in_flight: Vec<String>,
}

impl Outcome {
    /// The script's exit status (`Display` says "exit status: 1" or
    /// "signal: 9 (SIGKILL)").
    pub fn status(&self) -> ExitStatus {
        self.status
    }

    /// Whether the script exited with code 0.
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code, or `None` when a signal ended the script.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The signal that ended the script, if one did.
    pub fn signal(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(&self.status)
    }

    /// What the script wrote to stdout, when it was captured.
    pub fn stdout(&self) -> Option<&[u8]> {
        self.stdout.as_deref()
    }

    /// What the script wrote to stderr, when it was captured.
    pub fn stderr(&self) -> Option<&[u8]> {
        self.stderr.as_deref()
    }

    /// How many calls the script made to the host.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The script's calls that were still running on the host when it ended
    /// (a script that dies mid-call leaves them behind).
    pub fn calls_in_flight(&self) -> &[String] {
        &self.in_flight
    }

    /// `Ok(self)` when the script exited with code 0, else
    /// [`Error::ScriptFailed`] saying how it ended (with a hint for SIGKILL
    /// and SIGSEGV), which calls were in flight, and the last lines of stderr
    /// when it was captured.
    ///
    /// # Errors
    ///
    /// [`Error::ScriptFailed`] when the script did not succeed.
    pub fn check(self) -> Result<Outcome, Error> {
        if self.success() {
            return Ok(self);
        }
        Err(Error::ScriptFailed {
            status: self.status,
            report: crate::session::report(&self.in_flight, self.stderr.as_deref()),
        })
    }
}
