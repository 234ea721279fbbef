//! [`Zygote`]: warm start, a preloaded interpreter that forks scripts.
//!
//! The mechanics (the zygote process, its socket, reaping and reporting)
//! are [`process`](crate::process)'s; this is the handle users hold.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use crate::error::Error;
use crate::process::{self, Forker, ZygoteSettings};

/// A Python process started once, with tether and the modules you name
/// already imported, that forks a new process for each warm script: the
/// script then starts in a few milliseconds instead of paying for the
/// interpreter's start and its imports, and shares the preloaded memory
/// copy-on-write with the zygote and its other workers.
///
/// ```no_run
/// use tether::{Host, Script};
///
/// let host = Host::new();
/// let zygote = host.zygote().preload(["json", "decimal"]).start()?;
/// let child = host.spawn(Script::new("job.py").arg("--fast").warm(&zygote))?;
/// let answer: i64 = child.call("work", (1,))?;
/// # let _ = answer;
/// # Ok::<(), tether::Error>(())
/// ```
///
/// A warm script runs as `__main__` with its own arguments, environment,
/// working directory, standard streams and process group, sees only
/// descriptors 0, 1, 2 and its own channel, and ends as a spawned script
/// does: [`Outcome::status`](crate::Outcome::status) is its exit code or
/// signal. What differs: the interpreter and its start-up options are the
/// zygote's (set when the zygote starts: `PYTHONHASHSEED`,
/// `PYTHONDONTWRITEBYTECODE`, `-X` options), modules imported by the
/// zygote are not imported again (a script that changes `sys.path` to
/// import another copy of one gets the preloaded one), and a preloaded
/// module's state is what its import left.
///
/// The zygote is supervised: if it dies, it is started again (after a
/// backoff while it keeps dying), and the scripts it forked die with it
/// (they could not otherwise be sure to die with the host). It stops once
/// the last `Zygote` handle and the last script it forked are gone. Clones
/// share one zygote. Linux with pidfds (5.3 or later) only.
#[derive(Debug, Clone)]
pub struct Zygote {
    forker: Forker,
}

/// Settings for a [`Zygote`], from [`Host::zygote`](crate::Host::zygote).
#[derive(Debug)]
#[must_use = "a builder does nothing until it is started"]
pub struct ZygoteBuilder {
    python: Option<PathBuf>,
    venv: Option<PathBuf>,
    preload: Vec<String>,
    env: Vec<(OsString, OsString)>,
}

impl ZygoteBuilder {
    pub(crate) fn new(python: Option<PathBuf>) -> ZygoteBuilder {
        ZygoteBuilder {
            python,
            venv: None,
            preload: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Modules the zygote imports before it forks anything (for example
    /// `numpy`), in order. tether's client is always imported.
    pub fn preload<I, S>(mut self, modules: I) -> ZygoteBuilder
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.preload
            .extend(modules.into_iter().map(|m| m.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the zygote, on top of the host's:
    /// what the interpreter and the preloaded modules read when they start
    /// (`PYTHONPATH` to find them, `OPENBLAS_NUM_THREADS`, `PYTHONHASHSEED`).
    /// Each script still gets its own environment.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> ZygoteBuilder {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs the zygote (and so every script it forks) in the virtual
    /// environment `dir`; scripts given [`Script::venv`](crate::Script::venv)
    /// must name the same one.
    pub fn venv(mut self, dir: impl Into<PathBuf>) -> ZygoteBuilder {
        self.venv = Some(dir.into());
        self
    }

    /// Starts the zygote and waits until it has imported the preloaded
    /// modules.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] when the interpreter cannot start or a module
    /// cannot be imported (the message carries Python's error).
    pub fn start(self) -> Result<Zygote, Error> {
        let (python, python_from) = process::interpreter(self.python.as_deref());
        let client_dir = crate::bundle::client_dir().map_err(|source| Error::Io {
            context: "writing the bundled tether client to the cache directory".into(),
            source,
        })?;
        let venv = self
            .venv
            .map(|dir| std::path::absolute(&dir).unwrap_or(dir));
        let forker = Forker::start(ZygoteSettings {
            python,
            python_from,
            venv,
            client_dir,
            preload: self.preload,
            env: self.env,
        })?;
        Ok(Zygote { forker })
    }
}

impl Zygote {
    /// The running zygote's process id (`None` while it restarts).
    pub fn id(&self) -> Option<u32> {
        self.forker.pid()
    }

    /// How many times the zygote died and was started again.
    pub fn restarts(&self) -> u64 {
        self.forker.restarts()
    }

    /// How many scripts it forked.
    pub fn forked(&self) -> u64 {
        self.forker.forked()
    }

    /// The modules it preloads.
    pub fn preloaded(&self) -> &[String] {
        self.forker.preload()
    }

    /// How many threads the zygote runs after preloading: 1, unless a
    /// preloaded module started threads of its own (numpy's OpenBLAS does,
    /// unless `OPENBLAS_NUM_THREADS=1`); forking a threaded process can
    /// leave a lock held in the new one, and a warning is logged.
    pub fn threads(&self) -> usize {
        self.forker.threads()
    }

    pub(crate) fn forker(&self) -> &Forker {
        &self.forker
    }
}
