//! [`Host`]: the registry of host functions and how scripts are run.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use crate::function::{Function, IntoFunction};
use crate::protocol::DEFAULT_MAX_FRAME;
use crate::{session, Error, Script};

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
    pub(crate) functions: IndexMap<String, Function>,
    config_errors: Vec<String>,
    pub(crate) python: Option<PathBuf>,
    pub(crate) max_frame: u32,
    pub(crate) mode: Mode,
    pub(crate) exit_grace: Duration,
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
            functions: IndexMap::new(),
            config_errors: Vec::new(),
            python: None,
            max_frame: DEFAULT_MAX_FRAME,
            mode: Mode::Native,
            exit_grace: Duration::from_secs(5),
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
        R: Serialize,
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
        T: Serialize,
        E: std::fmt::Display + 'static,
    {
        self.register(Function::fallible(signature, f))
    }

    fn register(mut self, function: Result<Function, String>) -> Host {
        match function {
            Ok(f) => {
                if self.functions.contains_key(&f.name) {
                    self.config_errors
                        .push(format!("function {:?} is registered twice", f.name));
                } else {
                    self.functions.insert(f.name.clone(), f);
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
        if let Some(first) = self.config_errors.first() {
            return Err(Error::Config(first.clone()));
        }
        session::run(self, &script.into())
    }

    /// Starts `script` and serves its calls on a thread of its own; the
    /// returned handle waits for it or stops it. Dropping the handle kills
    /// the script and reaps it.
    ///
    /// ```no_run
    /// let host = tether::Host::new().function("ping", || "pong");
    /// let running = host.spawn("worker.py")?;
    /// println!("worker pid {}", running.id());
    /// let outcome = running.wait()?;
    /// # Ok::<(), tether::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`run`](Host::run), for what can go wrong while starting; what
    /// goes wrong later is returned by [`Running::wait`].
    pub fn spawn(&self, script: impl Into<Script>) -> Result<Running, Error> {
        if let Some(first) = self.config_errors.first() {
            return Err(Error::Config(first.clone()));
        }
        let (proc, channel) = session::start(self, &script.into())?;
        let pid = proc.id();
        let killer = proc.killer();
        let host = self.clone();
        let thread = std::thread::Builder::new()
            .name(format!("tether-serve-{pid}"))
            .spawn(move || session::serve(&host, proc, channel))
            .map_err(|source| Error::Io {
                context: "starting the thread that serves the script".into(),
                source,
            })?;
        Ok(Running {
            pid,
            killer,
            thread: Some(thread),
        })
    }

    /// Names of the registered functions, in registration order.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }
}

/// A script started with [`Host::spawn`], served on a thread of its own.
///
/// Dropping it kills the script (if it still runs), waits for the serving
/// thread and reaps the process: no script outlives its handle.
#[derive(Debug)]
pub struct Running {
    pid: u32,
    killer: crate::child::Killer,
    thread: Option<std::thread::JoinHandle<Result<Outcome, Error>>>,
}

impl Running {
    /// The script's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Whether the script has ended and its outcome is ready.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Kills the script with SIGKILL; [`wait`](Running::wait) then reports
    /// it as killed by signal 9. Killing a script that already ended does
    /// nothing.
    ///
    /// # Errors
    ///
    /// When the signal cannot be sent for a reason other than the script
    /// being gone.
    pub fn kill(&self) -> Result<(), Error> {
        if self.is_finished() {
            return Ok(());
        }
        self.killer.kill().map_err(|source| Error::Io {
            context: format!("killing script {}", self.pid),
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

    fn join(&mut self) -> Result<Outcome, Error> {
        let thread = self
            .thread
            .take()
            .ok_or_else(|| Error::Config("the script was already waited for".into()))?;
        thread.join().unwrap_or_else(|_| {
            Err(Error::Io {
                context: "serving the script".into(),
                source: std::io::Error::other("the serving thread panicked"),
            })
        })
    }
}

impl Drop for Running {
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
}
