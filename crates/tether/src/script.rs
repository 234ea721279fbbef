//! [`Script`]: which Python file to run, and how.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

pub use crate::process::Stdio;
use crate::process::{LineCallback, Spec};

/// A script to run: its path, arguments, environment, working directory and
/// standard streams. A path converts into a `Script` directly, so
/// `host.run("script.py")` works; build one for the rest:
///
/// ```
/// use tether::{Script, Stdio};
/// let script = Script::new("tool.py")
///     .arg("--verbose")
///     .env("MODE", "fast")
///     .current_dir("/tmp")
///     .stdout(Stdio::Capture);
/// # let _ = script;
/// ```
#[derive(Debug, Clone)]
pub struct Script {
    /// What spawning it needs, as plain data.
    pub(crate) spec: Spec,
    pub(crate) context: Option<Context>,
}

/// The value a host attached to a script (see [`Script::context`]).
#[derive(Clone)]
pub(crate) struct Context(pub std::sync::Arc<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Context")
    }
}

impl Script {
    /// The script at `path`. A relative path is taken relative to the host's
    /// working directory, also when [`current_dir`](Self::current_dir) is set.
    pub fn new(path: impl Into<PathBuf>) -> Script {
        Script {
            spec: Spec {
                path: path.into(),
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
                stdin: Stdio::Inherit,
                stdout: Stdio::Inherit,
                stderr: Stdio::Inherit,
                stdout_lines: None,
                stderr_lines: None,
                venv: None,
                warm: None,
                sandbox: None,
            },
            context: None,
        }
    }

    /// Attaches a value to the script: host functions serving it read it
    /// with [`Peer::context`](crate::Peer::context), so one function serving
    /// many scripts knows which one calls (a plugin's name, its settings,
    /// its own state behind a lock).
    ///
    /// ```no_run
    /// use tether::{Host, Peer, Script};
    ///
    /// struct Plugin { name: String }
    ///
    /// let host = Host::new().function("whoami()", || -> String {
    ///     let caller = Peer::current().expect("called by a script");
    ///     caller.context::<Plugin>().map_or("unknown".into(), |p| p.name.clone())
    /// });
    /// let child = host.spawn(Script::new("a.py").context(Plugin { name: "a".into() }))?;
    /// # Ok::<(), tether::Error>(())
    /// ```
    pub fn context<T: std::any::Any + Send + Sync>(mut self, value: T) -> Script {
        self.context = Some(Context(std::sync::Arc::new(value)));
        self
    }

    /// Runs the script in the virtual environment `dir`: with the venv's
    /// interpreter (over [`Host::python`](crate::Host::python) and
    /// `TETHER_PYTHON`), `VIRTUAL_ENV` set and the venv's `bin` first on
    /// `PATH`, as activation would, so the script's own subprocesses use it
    /// too. The bundled client is still on the path.
    ///
    /// ```no_run
    /// let outcome = tether::Host::new().run(tether::Script::new("plugin.py").venv(".venv"))?;
    /// # Ok::<(), tether::Error>(())
    /// ```
    ///
    /// Starting fails with [`Error::Spawn`](crate::Error::Spawn) when `dir`
    /// is not a virtual environment (no `pyvenv.cfg`, or no `bin/python`).
    pub fn venv(mut self, dir: impl Into<PathBuf>) -> Script {
        self.spec.venv = Some(dir.into());
        self
    }

    /// Starts the script warm: forked by `zygote`, with what it preloaded
    /// already imported, instead of in an interpreter of its own. See
    /// [`Zygote`](crate::Zygote) for what differs.
    ///
    /// ```no_run
    /// let host = tether::Host::new();
    /// let zygote = host.zygote().preload(["numpy"]).start()?;
    /// let outcome = host.run(tether::Script::new("analyse.py").warm(&zygote))?;
    /// # Ok::<(), tether::Error>(())
    /// ```
    pub fn warm(mut self, zygote: &crate::Zygote) -> Script {
        self.spec.warm = Some(zygote.forker().clone());
        self
    }

    /// Runs the script in `policy`'s sandbox (over the host's, if it has
    /// one): what it may read, write and connect to, and how much memory,
    /// CPU and processes it may use. See [`Sandbox`](crate::Sandbox).
    ///
    /// ```no_run
    /// use tether::{Host, Sandbox, Script};
    /// let script = Script::new("plugin.py").sandbox(Sandbox::new().max_processes(16));
    /// let child = Host::new().spawn(script)?;
    /// println!("{:?}", child.sandbox());
    /// # Ok::<(), tether::Error>(())
    /// ```
    pub fn sandbox(mut self, policy: crate::sandbox::Sandbox) -> Script {
        self.spec.sandbox = Some(policy);
        self
    }

    /// Adds one argument (the script sees it in `sys.argv[1:]`).
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Script {
        self.spec.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Script
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spec
            .args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the script (on top of the host's).
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Script {
        self.spec
            .env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an environment variable the script would inherit.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Script {
        self.spec.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Runs the script in `dir` instead of the host's working directory.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Script {
        self.spec.cwd = Some(dir.into());
        self
    }

    /// Where the script's stdin comes from: [`Stdio::Inherit`] (default) or
    /// [`Stdio::Null`].
    pub fn stdin(mut self, stdin: Stdio) -> Script {
        self.spec.stdin = stdin;
        self
    }

    /// Where the script's stdout goes.
    pub fn stdout(mut self, stdout: Stdio) -> Script {
        self.spec.stdout = stdout;
        self
    }

    /// Where the script's stderr goes.
    pub fn stderr(mut self, stderr: Stdio) -> Script {
        self.spec.stderr = stderr;
        self
    }

    /// Hands the script's stdout to `f` line by line (without the line
    /// ending) as it is written, instead of [`stdout`](Script::stdout). A
    /// thread of its own calls `f`; an unfinished last line is delivered when
    /// the script ends. A line longer than 64 KiB is handed over in pieces of
    /// 64 KiB: the host never holds more of a line than that, whatever the
    /// script writes.
    ///
    /// ```
    /// let script = tether::Script::new("job.py").on_stdout_line(|line| println!("[job] {line}"));
    /// # let _ = script;
    /// ```
    pub fn on_stdout_line(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Script {
        self.spec.stdout_lines = Some(LineCallback(std::sync::Arc::new(f)));
        self
    }

    /// Hands the script's stderr to `f` line by line, as
    /// [`on_stdout_line`](Script::on_stdout_line) does for stdout.
    pub fn on_stderr_line(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> Script {
        self.spec.stderr_lines = Some(LineCallback(std::sync::Arc::new(f)));
        self
    }

    /// The script's path as given.
    pub fn path(&self) -> &Path {
        &self.spec.path
    }

    /// The script's file name, as spans and messages name it.
    pub(crate) fn name(&self) -> String {
        self.spec.path.file_name().map_or_else(
            || self.spec.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

impl From<&str> for Script {
    fn from(path: &str) -> Script {
        Script::new(path)
    }
}

impl From<String> for Script {
    fn from(path: String) -> Script {
        Script::new(path)
    }
}

impl From<&Path> for Script {
    fn from(path: &Path) -> Script {
        Script::new(path)
    }
}

impl From<PathBuf> for Script {
    fn from(path: PathBuf) -> Script {
        Script::new(path)
    }
}
