//! [`Host`]: the builder of a host's settings and the registry of its
//! functions. Running a script is [`session`](crate::session)'s job; the
//! running script is a [`Child`].

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::child::Child;
use crate::config::{Config, Mode};
use crate::error::{Error, FunctionError};
use crate::function::{Function, IntoFunction, Registry};
use crate::outcome::Outcome;
use crate::pool::Pool;
use crate::pytypes::Types;
use crate::script::Script;
use crate::session;
use crate::value::Value;

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
    config: Arc<Config>,
    registry: Arc<Registry>,
    config_errors: Vec<String>,
    /// The function registered last, which `doc` describes.
    last: Option<String>,
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
            config: Arc::new(Config::default()),
            registry: Arc::new(Registry::default()),
            config_errors: Vec::new(),
            last: None,
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

    /// Registers an async function (an async closure, or an `async fn`),
    /// with typed arguments, parameter names, docs and stubs as for
    /// [`function`](Host::function). It runs on the tokio runtime the script
    /// was spawned from ([`Host::spawn`] inside a runtime, or
    /// [`Host::spawn_async`]), concurrently with the script's other calls,
    /// holding no thread while it awaits. When the script cancels the call
    /// (an asyncio task timed out or was cancelled) or ends, the future is
    /// dropped. Inside it, [`Peer::current`](crate::Peer::current) is the
    /// calling script, which it may call back and await.
    ///
    /// ```
    /// use std::time::Duration;
    /// let host = tether::Host::new()
    ///     .async_function("sleep(seconds)", |seconds: f64| async move {
    ///         tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    ///     })
    ///     .doc("Sleeps without holding a thread.");
    /// # let _ = host;
    /// ```
    #[cfg(feature = "tokio")]
    pub fn async_function<F, A, Fut, R>(self, signature: &str, f: F) -> Host
    where
        F: IntoFunction<A, Fut>,
        Fut: std::future::Future<Output = R> + Send + 'static,
        R: Serialize + 'static,
    {
        self.register(Function::asynchronous(signature, f))
    }

    /// Registers an async function whose output is a `Result`, as
    /// [`try_function`](Host::try_function) does for a sync one.
    ///
    /// ```
    /// use tether::FunctionError;
    /// let host = tether::Host::new().try_async_function("lookup(key)", |key: String| async move {
    ///     Err::<i64, _>(FunctionError::new("NotFound", format!("no entry {key:?}")))
    /// });
    /// # let _ = host;
    /// ```
    #[cfg(feature = "tokio")]
    pub fn try_async_function<F, A, Fut, T, E>(self, signature: &str, f: F) -> Host
    where
        F: IntoFunction<A, Fut>,
        Fut: std::future::Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize + 'static,
        E: std::fmt::Display + 'static,
    {
        self.register(Function::asynchronous_fallible(signature, f))
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
        F: Fn(Vec<Value>) -> Result<Value, FunctionError> + Send + Sync + 'static,
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
            .and_then(|n| Arc::make_mut(&mut self.registry).functions.get_mut(n))
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
        Arc::make_mut(&mut self.registry).described.extend(&found);
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
        crate::stubs::write(&self.registry, dir.as_ref())
    }

    fn register(mut self, function: Result<Function, String>) -> Host {
        match function {
            Ok(f) => {
                if self.registry.functions.contains_key(&f.name) {
                    self.config_errors
                        .push(format!("function {:?} is registered twice", f.name));
                } else {
                    self.last = Some(f.name.clone());
                    Arc::make_mut(&mut self.registry)
                        .functions
                        .insert(f.name.clone(), f);
                }
            }
            Err(e) => self.config_errors.push(e),
        }
        self
    }

    /// Runs this interpreter instead of `python3` from `PATH`. Without it,
    /// the `TETHER_PYTHON` environment variable is used when set.
    pub fn python(mut self, path: impl Into<PathBuf>) -> Host {
        self.config_mut().python = Some(path.into());
        self
    }

    /// The largest frame either side may send, in bytes (default 64 MiB).
    /// A larger frame from the script is a protocol error, detected from its
    /// length prefix before anything is allocated; a result too large to
    /// send is answered with an error instead.
    pub fn max_frame_size(mut self, bytes: u32) -> Host {
        self.config_mut().max_frame = bytes;
        self
    }

    /// Speaks the seed's classic protocol instead of the native one.
    ///
    /// Every function is then called with the request's argument as one
    /// string, and its result is sent as Python's `str()` of the value.
    pub fn classic(mut self) -> Host {
        self.config_mut().mode = Mode::Classic;
        self
    }

    /// How long a script the host stops on its own may take to exit before it
    /// is killed (default 5 s): one whose protocol version the host refused, or
    /// whose runtime shut down. A script that closes its end of the channel
    /// is not stopped: that is a clean end, and the host waits for its exit as
    /// for any script (its [`deadline`](Host::deadline), when set, still applies).
    pub fn exit_grace(mut self, grace: Duration) -> Host {
        self.config_mut().exit_grace = grace;
        self
    }

    /// How many pool threads run host functions at once, for all the scripts
    /// this host serves (default 8). A quick function runs on the thread that
    /// read its call instead (the script's reader), until it once blocks; a
    /// host function that calls back into its script lends its thread to the
    /// script's nested calls while it waits, so nesting never runs out of
    /// threads.
    pub fn workers(mut self, workers: usize) -> Host {
        self.config_mut().workers = workers.max(1);
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
        self.config_mut().spin = max;
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
        self.config_mut().shared_memory = Some(threshold.max(1));
        self
    }

    /// Runs each script's calls one at a time, in the order they arrive
    /// (calls nested inside a running one still run, on its thread).
    pub fn serial(mut self) -> Host {
        self.config_mut().serial = true;
        self
    }

    /// Forwards the script's `logging` records and warnings to the host as
    /// `tracing` events (target `tether::script`, with the level, the
    /// logger's name and the message).
    pub fn forward_logs(mut self) -> Host {
        self.config_mut().forward_logs = true;
        self
    }

    /// Hands every `logging` record the scripts forward to `f` as well as to
    /// `tracing` (and turns forwarding on, as [`forward_logs`](Host::forward_logs)
    /// does). `f` runs on the thread that reads the script: keep it short.
    ///
    /// ```no_run
    /// let host = tether::Host::new().on_script_log(|r| {
    ///     eprintln!("[script {} {}] {}: {}", r.pid, r.level, r.logger, r.message)
    /// });
    /// # let _ = host;
    /// ```
    pub fn on_script_log(
        mut self,
        f: impl Fn(&crate::config::LogRecord<'_>) + Send + Sync + 'static,
    ) -> Host {
        let config = self.config_mut();
        config.forward_logs = true;
        config.on_log = Some(crate::config::LogCallback(Arc::new(f)));
        self
    }

    /// How much captured output to keep per stream (default 16 MiB): a
    /// script that writes more keeps only its last `bytes` bytes in
    /// [`Outcome::stdout`] / [`Outcome::stderr`], and the host's memory stays
    /// bounded however much it writes.
    pub fn capture_limit(mut self, bytes: usize) -> Host {
        self.config_mut().capture_limit = bytes;
        self
    }

    /// How many of one script's calls may run on the host at once (default
    /// 1024). A call beyond it is answered at once with an error of kind
    /// `Limit` (a notification is dropped), and a `tracing` warning is
    /// emitted (target `tether::limits`); the script is not stopped.
    pub fn max_in_flight(mut self, calls: usize) -> Host {
        self.config_mut().max_in_flight = calls.max(1);
        self
    }

    /// How many calls from host functions into a script may be pending at
    /// once, which bounds how deep host and script calls nest (default 128).
    /// A call beyond it fails with [`Error::Limit`] in the host function,
    /// which the script sees as that function's error.
    pub fn max_depth(mut self, depth: usize) -> Host {
        self.config_mut().max_depth = depth.max(1);
        self
    }

    /// Stops a script that runs longer than `deadline` in all: it is killed
    /// and the run ends with [`Error::Limit`].
    pub fn deadline(mut self, deadline: Duration) -> Host {
        self.config_mut().deadline = Some(deadline);
        self
    }

    /// Stops a script that sends nothing for `idle`: it is killed and the
    /// run ends with [`Error::Limit`]. Off by default (a script may compute
    /// quietly for as long as it likes).
    pub fn idle_timeout(mut self, idle: Duration) -> Host {
        self.config_mut().idle_timeout = Some(idle);
        self
    }

    /// Whether each script runs in a process group of its own (default
    /// true). Its children then end with it: when it is stopped, killed or
    /// dropped, and when it exits while they still run (nothing a script
    /// started outlives its run). Turn this off for scripts that must leave
    /// daemons behind, or that expect terminal signals (Ctrl-C) directly.
    pub fn process_group(mut self, own_group: bool) -> Host {
        self.config_mut().own_group = own_group;
        self
    }

    /// How long a call into a script waits for the script to become ready
    /// (to enter `tether.serve()`) before it fails (default 30 s). A call
    /// made while the script still imports waits instead of finding none
    /// of its exports; see [`Peer::wait_ready`](crate::Peer::wait_ready).
    pub fn ready_timeout(mut self, timeout: Duration) -> Host {
        self.config_mut().ready_timeout = timeout;
        self
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The host's shared pool, started on first use.
    fn thread_pool(&self) -> std::io::Result<Arc<Pool>> {
        if let Some(pool) = self.pool.get() {
            return Ok(Arc::clone(pool));
        }
        let pool = Arc::new(Pool::new(self.config.workers, "tether-worker")?);
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
        self.spawn_on(script.into(), crate::runtime::current())
    }

    /// Starts `script`, whose async host functions run on `runtime`.
    fn spawn_on(
        &self,
        script: Script,
        runtime: Option<crate::runtime::Runtime>,
    ) -> Result<Child, Error> {
        if let Some(first) = self.config_errors.first() {
            return Err(Error::Config(first.clone()));
        }
        session::start(
            Arc::clone(&self.config),
            Arc::clone(&self.registry),
            || self.thread_pool(),
            &script,
            runtime,
        )
    }

    /// The async form of [`spawn`](Host::spawn): the spawn runs on a helper
    /// thread, so the task awaiting it never blocks its runtime's thread.
    /// The script's async host functions run on the runtime that polls the
    /// future.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), tether::Error> {
    /// let host = tether::Host::new();
    /// let child = host.spawn_async("plugin.py").await?;
    /// let n: i64 = child.call_async("square", (7,)).await?;
    /// child.shutdown_async(std::time::Duration::from_secs(2)).await?;
    /// # let _ = n;
    /// # Ok(())
    /// # }
    /// ```
    pub fn spawn_async(
        &self,
        script: impl Into<Script>,
    ) -> impl std::future::Future<Output = Result<Child, Error>> + Send + 'static {
        let host = self.clone();
        let script = script.into();
        async move {
            // The runtime is the one that polls this (not the helper
            // thread's, nor wherever the future was made).
            let runtime = crate::runtime::current();
            let spawned = crate::blocking::run(move || host.spawn_on(script, runtime));
            spawned.await.unwrap_or_else(|_| {
                Err(Error::Io {
                    context: "spawning the script".into(),
                    source: std::io::Error::other("the spawning thread ended without an answer"),
                })
            })
        }
    }

    /// The async form of [`run`](Host::run).
    pub fn run_async(
        &self,
        script: impl Into<Script>,
    ) -> impl std::future::Future<Output = Result<Outcome, Error>> + Send + 'static {
        let spawned = self.spawn_async(script);
        async move { spawned.await?.wait_async().await }
    }

    /// Runs every script in `policy`'s sandbox (a script's own
    /// [`Script::sandbox`] takes its place). See [`Sandbox`](crate::Sandbox).
    ///
    /// ```no_run
    /// let host = tether::Host::new().sandbox(tether::Sandbox::new().memory(256 << 20));
    /// let outcome = host.run("untrusted.py")?;
    /// # Ok::<(), tether::Error>(())
    /// ```
    pub fn sandbox(mut self, policy: crate::sandbox::Sandbox) -> Host {
        Arc::make_mut(&mut self.config).sandbox = Some(policy);
        self
    }

    /// A [`Zygote`](crate::Zygote) for warm start, using this host's
    /// interpreter ([`python`](Host::python), else `TETHER_PYTHON`, else
    /// `python3`).
    ///
    /// ```no_run
    /// let host = tether::Host::new();
    /// let zygote = host.zygote().preload(["numpy"]).start()?;
    /// # let _ = zygote;
    /// # Ok::<(), tether::Error>(())
    /// ```
    pub fn zygote(&self) -> crate::warm::ZygoteBuilder {
        crate::warm::ZygoteBuilder::new(self.config.python.clone())
    }

    /// The exit grace the host was given.
    pub(crate) fn exit_grace_setting(&self) -> Duration {
        self.config.exit_grace
    }

    /// The first mistake in the registrations so far (a malformed
    /// signature, parameter names that do not fit the function), which
    /// starting a script would report as [`Error::Config`].
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with that mistake.
    pub fn check(&self) -> Result<(), Error> {
        match self.config_errors.first() {
            Some(first) => Err(Error::Config(first.clone())),
            None => Ok(()),
        }
    }

    /// Names of the registered functions, in registration order.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.registry.names()
    }
}
