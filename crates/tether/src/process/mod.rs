//! Spawning the interpreter and owning the child process: the one place that
//! knows about `Command`, pipes and descriptors.
//!
//! # The two pipe deadlocks
//!
//! A pipe reports end-of-file only when *every* copy of its write end is
//! closed. If the host kept the child's end open, or another child inherited
//! it, the host would wait forever for an end-of-file that cannot come: so
//! every pipe is created close-on-exec, the child keeps exactly its two ends,
//! and the host drops its copies of them right after spawning.
//!
//! A pipe holds about 64 KiB. A child that fills captured stdout while the
//! host is not reading it blocks, and if the host is in turn waiting for the
//! child, neither moves: so captured streams are drained by threads of their
//! own from the moment the child starts.

mod sandbox;
mod spec;
mod unix;
mod zygote;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub(crate) use unix::{set_nonblocking, wait, without_sigpipe, Killer, Ready};
pub(crate) use zygote::{Forker, Settings as ZygoteSettings, ZYGOTE_DIED};

use crate::error::Error;
use crate::sync::lock;
pub use spec::Stdio;
pub(crate) use spec::{LineCallback, Spec};

/// Names of the environment variables that carry the descriptor numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FdVars {
    pub read: &'static str,
    pub write: &'static str,
}

/// What to start.
pub(crate) struct Launch<'a> {
    pub python: &'a Path,
    /// Where `python` came from (for the message when it cannot start).
    pub python_from: Origin,
    pub script: &'a Spec,
    pub vars: FdVars,
    /// A directory to put first on `PYTHONPATH` (the bundled client).
    pub pythonpath: &'a Path,
    /// Ask the client to forward `logging` records (`TETHER_LOGS=1`).
    pub logs: bool,
    /// Run the script in a process group of its own, which is killed with it.
    pub own_group: bool,
    /// At most this many bytes of each captured stream are kept (the last).
    pub capture_limit: usize,
    /// How long the client may spin on an empty pipe (`TETHER_SPIN_US`).
    pub spin: Duration,
    /// Give the child a socket for passing shared memory (`TETHER_SHM_FD`).
    pub shared_memory: bool,
    /// Confine the script.
    pub sandbox: Option<&'a crate::sandbox::Sandbox>,
}

/// A running child and the host's ends of its channel.
pub(crate) struct Proc {
    leader: Leader,
    /// The pidfd of a spawned child (a forked one has its own exit fd).
    exit_fd: Option<OwnedFd>,
    status: Option<ExitStatus>,
    stdout: Option<Capture>,
    stderr: Option<Capture>,
    /// The script leads a process group of its own.
    own_group: bool,
    /// Shared with every [`Killer`]: whether the child was reaped, and why
    /// the host signalled it.
    fate: Arc<Mutex<Fate>>,
    /// A sandboxed script's private directory and cgroup, and its policy.
    jail: Option<sandbox::Jail>,
    enforcement: Option<crate::sandbox::Enforcement>,
    /// The last lines of a sandboxed script's inherited stderr (which then
    /// passes through the host), to tell which limit ended it.
    stderr_tail: Option<Arc<Mutex<std::collections::VecDeque<String>>>>,
    /// The CPU time the child used, read before it was reaped (a sandbox
    /// with a CPU limit).
    cpu_used: Option<Duration>,
}

/// The script's process: the host's own child, or a worker a zygote forked
/// (which the zygote reaps, and whose status it reports).
enum Leader {
    Spawned(Child),
    Forked(zygote::Forked),
}

/// What the host did to a child, shared between its owner and its killers.
///
/// The lock is held while the child is reaped and while it is signalled:
/// once the leader is reaped its pid, and with it the id of its process
/// group, may belong to a new process (in a busy host, to its next script),
/// so nothing may signal by that id after reaping.
#[derive(Debug, Default)]
pub(crate) struct Fate {
    reaped: bool,
    /// The latest signal the host sent the child, and why.
    killed_by: Option<(i32, String)>,
}

/// The host's ends of the channel.
pub(crate) struct Channel {
    /// The host writes requests and results here.
    pub to_child: File,
    /// The host reads the child's messages here.
    pub from_child: File,
    /// Memory files for shared values go both ways here (non-blocking).
    pub side: Option<OwnedFd>,
}

pub(crate) fn spawn(launch: &Launch<'_>) -> Result<(Proc, Channel), Error> {
    let script = launch.script;
    let path = std::path::absolute(&script.path).map_err(|source| Error::Spawn {
        program: script.path.clone(),
        source,
    })?;
    if !path.is_file() {
        let what = if path.is_dir() {
            "a directory, not a script file"
        } else {
            "no such script file"
        };
        return Err(Error::Spawn {
            program: path,
            source: io::Error::new(io::ErrorKind::NotFound, what),
        });
    }
    if script.stdin == Stdio::Capture {
        return Err(Error::Config(
            "stdin cannot be captured; use Stdio::Inherit or Stdio::Null".into(),
        ));
    }
    let (child_read, host_write) = pipe().map_err(io_err("creating the host-to-script pipe"))?;
    let (host_read, child_write) = pipe().map_err(io_err("creating the script-to-host pipe"))?;
    let side = if launch.shared_memory {
        Some(side_socket().map_err(io_err("creating the shared-memory socket"))?)
    } else {
        None
    };
    let venv = script.venv.as_deref().map(VirtualEnv::open).transpose()?;
    let mut env = environment(launch, venv.as_ref());
    let ends = ChildEnds {
        read: child_read,
        write: child_write,
        side: side.as_ref().map(|(_, child_side)| child_side),
    };
    let mut jail = None;
    let mut enforcement = None;
    let mut confinement = None;
    let mut stderr_tail = None;
    let mut python = venv
        .as_ref()
        .map_or(launch.python, |v| v.python.as_path())
        .to_owned();
    if let Some(policy) = launch.sandbox {
        if script.warm.is_some() {
            return Err(Error::Config(
                "a sandboxed script cannot start warm: the sandbox is applied before exec, and a                  warm script is forked from its zygote instead"
                    .into(),
            ));
        }
        let pythonpath = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PYTHONPATH")
            .and_then(|(_, v)| v.clone())
            .unwrap_or_default();
        let script_dir = path.parent().unwrap_or(Path::new("/"));
        let prepared = sandbox::prepare(
            policy,
            &python,
            &pythonpath,
            script_dir,
            launch.pythonpath,
            venv.as_ref().map(|v| v.dir.as_path()),
        )?;
        env.extend(prepared.env);
        python = prepared.python;
        if !prepared.enforcement.complete() {
            tracing::warn!(
                missing = ?prepared.enforcement.missing,
                "the sandbox is enforced in part (best effort)"
            );
        }
        jail = Some(prepared.jail);
        enforcement = Some(prepared.enforcement);
        confinement = Some(Arc::new(prepared.confinement));
        if script.stderr == Stdio::Inherit && script.stderr_lines.is_none() {
            stderr_tail = Some(Arc::default());
        }
    }
    let stderr_lines = match &stderr_tail {
        Some(tail) => Some(passing_through(Arc::clone(tail))),
        None => script.stderr_lines.clone(),
    };
    let (leader, streams) = match &script.warm {
        Some(zygote) => fork(launch, zygote, &path, env, venv.as_ref(), ends)?,
        None => exec(
            launch,
            &path,
            env,
            ends,
            Exec {
                python: &python,
                chosen: match venv {
                    Some(_) => "the virtual environment's interpreter",
                    None => launch.python_from.describe(),
                },
                confinement,
                stderr_lines: stderr_lines.is_some(),
            },
        )?,
    };
    let side = side.map(|(host_side, _child_side)| host_side);
    let exit_fd = match &leader {
        Leader::Spawned(child) => unix::exit_fd(child),
        Leader::Forked(_) => None,
    };
    let stdout = streams
        .stdout
        .map(|s| Capture::start(s, script.stdout_lines.clone(), launch.capture_limit));
    let stderr = streams
        .stderr
        .map(|s| Capture::start(s, stderr_lines, launch.capture_limit));
    let proc = Proc {
        leader,
        exit_fd,
        status: None,
        stdout,
        stderr,
        own_group: launch.own_group,
        fate: Arc::new(Mutex::new(Fate::default())),
        jail,
        enforcement,
        stderr_tail,
        cpu_used: None,
    };
    let channel = Channel {
        to_child: File::from(host_write),
        from_child: File::from(host_read),
        side,
    };
    if let Some(side) = &channel.side {
        set_nonblocking(side).map_err(io_err("configuring the shared-memory socket"))?;
    }
    set_nonblocking(&channel.to_child).map_err(io_err("configuring the channel"))?;
    set_nonblocking(&channel.from_child).map_err(io_err("configuring the channel"))?;
    Ok((proc, channel))
}

fn io_err(context: &str) -> impl FnOnce(io::Error) -> Error {
    let context = context.to_owned();
    move |source| Error::Io { context, source }
}

/// A line callback that passes a sandboxed script's stderr through to the
/// host's and keeps its last lines.
fn passing_through(tail: Arc<Mutex<std::collections::VecDeque<String>>>) -> LineCallback {
    const LINES: usize = 40;
    LineCallback(Arc::new(move |line: &str| {
        // A host whose stderr is closed loses the line, and nothing else.
        let _ = writeln!(io::stderr().lock(), "{line}");
        let mut tail = lock(&tail);
        if tail.len() == LINES {
            tail.pop_front();
        }
        tail.push_back(line.to_owned());
    }))
}

/// The child's ends of its channel, until it has them.
struct ChildEnds<'a> {
    read: OwnedFd,
    write: OwnedFd,
    side: Option<&'a OwnedFd>,
}

/// The host's ends of the streams it captures.
struct Streams {
    stdout: Option<Box<dyn Read + Send>>,
    stderr: Option<Box<dyn Read + Send>>,
}

/// What the script's environment changes, in order, on top of the host's:
/// unbuffered output, the host's settings, the script's own variables, the
/// virtual environment, and the bundled client first on `PYTHONPATH`.
fn environment(
    launch: &Launch<'_>,
    venv: Option<&VirtualEnv>,
) -> Vec<(OsString, Option<OsString>)> {
    let script = launch.script;
    let set = |k: &str, v: OsString| (OsString::from(k), Some(v));
    let mut env = vec![set("PYTHONUNBUFFERED", "1".into())];
    if launch.logs {
        env.push(set("TETHER_LOGS", "1".into()));
    }
    env.push(set(
        "TETHER_SPIN_US",
        launch.spin.as_micros().to_string().into(),
    ));
    env.extend(script.env.iter().cloned());
    if let Some(venv) = venv {
        env.extend(venv.activation(&script.env));
    }
    let existing = script
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PYTHONPATH")
        .map(|(_, v)| v.clone());
    env.push(set("PYTHONPATH", python_path(launch.pythonpath, existing)));
    env
}

/// `PYTHONPATH` with `first` in front of the script's own (`script`: as the
/// script sets it, `None` when it does not), else the host's.
fn python_path(first: &Path, script: Option<Option<OsString>>) -> OsString {
    let mut joined = first.as_os_str().to_owned();
    let existing = script.unwrap_or_else(|| std::env::var_os("PYTHONPATH"));
    if let Some(existing) = existing.filter(|e| !e.is_empty()) {
        joined.push(":");
        joined.push(existing);
    }
    joined
}

/// How to exec the interpreter.
struct Exec<'a> {
    python: &'a Path,
    /// Where the interpreter came from, for the message when it cannot start.
    chosen: &'static str,
    confinement: Option<Arc<unix::Confinement>>,
    /// The host reads stderr (line callbacks, or a sandbox's tail).
    stderr_lines: bool,
}

/// Starts the interpreter on the script (fork and exec on the spawner thread).
fn exec(
    launch: &Launch<'_>,
    path: &Path,
    env: Vec<(OsString, Option<OsString>)>,
    ends: ChildEnds<'_>,
    how: Exec<'_>,
) -> Result<(Leader, Streams), Error> {
    let script = launch.script;
    let Exec {
        python,
        chosen,
        confinement,
        stderr_lines,
    } = how;
    let mut cmd = Command::new(python);
    cmd.arg(path).args(&script.args);
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.env(launch.vars.read, ends.read.as_raw_fd().to_string());
    cmd.env(launch.vars.write, ends.write.as_raw_fd().to_string());
    if let Some(child_side) = ends.side {
        cmd.env("TETHER_SHM_FD", child_side.as_raw_fd().to_string());
    }
    if let Some(dir) = &script.cwd {
        cmd.current_dir(dir);
    }
    cmd.stdin(std_stdio(script.stdin));
    let piped = |mode: Stdio, lines: bool| {
        if lines {
            std::process::Stdio::piped()
        } else {
            std_stdio(mode)
        }
    };
    cmd.stdout(piped(script.stdout, script.stdout_lines.is_some()));
    cmd.stderr(piped(script.stderr, stderr_lines));
    let mut keep = vec![ends.read.as_raw_fd(), ends.write.as_raw_fd()];
    keep.extend(ends.side.map(|child_side| child_side.as_raw_fd()));
    let sandboxed = confinement.is_some();
    unix::prepare(&mut cmd, &keep, launch.own_group, confinement);

    let mut child = unix::spawn(cmd).map_err(|source| {
        if sandboxed && source.kind() == io::ErrorKind::PermissionDenied {
            return Error::Sandbox(format!(
                "the sandbox did not let {} start: {source} (the interpreter or a library it \
                 loads is outside the readable paths)",
                python.display()
            ));
        }
        Error::Spawn {
            program: python.to_owned(),
            source: io::Error::new(source.kind(), format!("{source} ({chosen})")),
        }
    })?;
    // The child has its copies now; ours must go, or we would never see EOF.
    drop(ends);
    let streams = Streams {
        stdout: child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        stderr: child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    };
    Ok((Leader::Spawned(child), streams))
}

/// Has the zygote fork a worker for the script.
fn fork(
    launch: &Launch<'_>,
    zygote: &Forker,
    path: &Path,
    changes: Vec<(OsString, Option<OsString>)>,
    venv: Option<&VirtualEnv>,
    ends: ChildEnds<'_>,
) -> Result<(Leader, Streams), Error> {
    let script = launch.script;
    if venv.map(|v| v.dir.as_path()) != zygote.venv() {
        return Err(Error::Config(format!(
            "a warm script runs in its zygote's interpreter: start the zygote with the same \
             virtual environment as the script ({} here, {} for the zygote)",
            venv.map_or_else(|| "none".into(), |v| v.dir.display().to_string()),
            zygote
                .venv()
                .map_or_else(|| "none".into(), |d| d.display().to_string()),
        )));
    }
    let mut env: indexmap::IndexMap<OsString, OsString> = std::env::vars_os().collect();
    for var in [
        "TETHER_READ_FD",
        "TETHER_WRITE_FD",
        "TETHER_SHM_FD",
        "PY_READ_FD",
        "PY_WRITE_FD",
    ] {
        env.shift_remove(OsStr::new(var));
    }
    for (key, value) in changes {
        match value {
            Some(v) => {
                env.insert(key, v);
            }
            None => {
                env.shift_remove(&key);
            }
        }
    }
    type Stream = (Option<Option<OwnedFd>>, Option<Box<dyn Read + Send>>);
    let stream = |mode: Stdio, lines: bool| -> Result<Stream, Error> {
        if lines || mode == Stdio::Capture {
            let (read, write) =
                pipe().map_err(io_err("creating a pipe for the script's output"))?;
            Ok((
                Some(Some(write)),
                Some(Box::new(File::from(read)) as Box<dyn Read + Send>),
            ))
        } else if mode == Stdio::Null {
            Ok((Some(None), None))
        } else {
            Ok((None, None))
        }
    };
    let (stdout, stdout_read) = stream(script.stdout, script.stdout_lines.is_some())?;
    let (stderr, stderr_read) = stream(script.stderr, script.stderr_lines.is_some())?;
    let side = ends
        .side
        .map(|s| s.try_clone())
        .transpose()
        .map_err(io_err("copying the shared-memory socket"))?;
    let forked = zygote.fork(zygote::Request {
        path,
        args: &script.args,
        env: env.into_iter().collect(),
        cwd: script.cwd.as_deref(),
        own_group: launch.own_group,
        vars: launch.vars,
        read: ends.read,
        write: ends.write,
        side,
        stdin_null: script.stdin == Stdio::Null,
        stdout,
        stderr,
    })?;
    Ok((
        Leader::Forked(forked),
        Streams {
            stdout: stdout_read,
            stderr: stderr_read,
        },
    ))
}

/// A virtual environment a script runs in.
struct VirtualEnv {
    dir: PathBuf,
    python: PathBuf,
}

impl VirtualEnv {
    /// Checks that `dir` is a virtual environment (`pyvenv.cfg` and
    /// `bin/python`, as `python3 -m venv` makes them).
    fn open(dir: &Path) -> Result<VirtualEnv, Error> {
        let not_a_venv = |what: &str| Error::Spawn {
            program: dir.to_owned(),
            source: io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "not a virtual environment ({what}); make one with `python3 -m venv {}`",
                    dir.display()
                ),
            ),
        };
        let dir = std::path::absolute(dir).map_err(|source| Error::Spawn {
            program: dir.to_owned(),
            source,
        })?;
        if !dir.join("pyvenv.cfg").is_file() {
            return Err(not_a_venv("it has no pyvenv.cfg"));
        }
        let python = dir.join("bin").join("python");
        if !python.exists() {
            return Err(not_a_venv("it has no bin/python"));
        }
        Ok(VirtualEnv { dir, python })
    }

    /// What activation does: `VIRTUAL_ENV`, the venv's `bin` first on `PATH`
    /// (the script's own `PATH` from `script_env`, else the host's), no
    /// `PYTHONHOME`.
    fn activation(
        &self,
        script_env: &[(OsString, Option<OsString>)],
    ) -> Vec<(OsString, Option<OsString>)> {
        let path = script_env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| std::env::var_os("PATH"));
        let mut joined = self.dir.join("bin").into_os_string();
        if let Some(path) = path.filter(|p| !p.is_empty()) {
            joined.push(":");
            joined.push(path);
        }
        vec![
            (
                "VIRTUAL_ENV".into(),
                Some(self.dir.clone().into_os_string()),
            ),
            ("PATH".into(), Some(joined)),
            ("PYTHONHOME".into(), None),
        ]
    }
}

/// A connected pair of Unix stream sockets, close-on-exec: the host's end
/// and the child's.
fn side_socket() -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
    let (host, child) = socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    Ok((unix::above_stdio(host)?, unix::above_stdio(child)?))
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = io::pipe()?;
    Ok((
        unix::above_stdio(OwnedFd::from(r))?,
        unix::above_stdio(OwnedFd::from(w))?,
    ))
}

fn std_stdio(s: Stdio) -> std::process::Stdio {
    match s {
        Stdio::Inherit => std::process::Stdio::inherit(),
        Stdio::Null => std::process::Stdio::null(),
        Stdio::Capture => std::process::Stdio::piped(),
    }
}

impl Proc {
    /// A child the host spawned itself (without captured streams).
    fn spawned(child: Child, own_group: bool) -> Proc {
        let exit_fd = unix::exit_fd(&child);
        Proc {
            leader: Leader::Spawned(child),
            exit_fd,
            status: None,
            stdout: None,
            stderr: None,
            own_group,
            fate: Arc::new(Mutex::new(Fate::default())),
            jail: None,
            enforcement: None,
            stderr_tail: None,
            cpu_used: None,
        }
    }

    /// What the kernel enforces of the script's sandbox, if it has one.
    pub fn enforcement(&self) -> Option<&crate::sandbox::Enforcement> {
        self.enforcement.as_ref()
    }

    /// Which limit of the script's sandbox, if any, explains how it ended;
    /// `stderr` is its captured stderr, if it was captured. Call after it
    /// was reaped.
    pub fn limit(&self, stderr: Option<&[u8]>) -> Option<String> {
        let policy = &self.jail.as_ref()?.policy;
        let status = self.status?;
        let text = match (&self.stderr_tail, stderr) {
            (Some(tail), _) => lock(tail).iter().cloned().collect::<Vec<_>>().join("\n"),
            (None, Some(bytes)) => {
                let text = String::from_utf8_lossy(bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            }
            (None, None) => String::new(),
        };
        // The host's own kill is not a limit.
        let signal = status.signal().filter(|_| self.killed_by().is_none());
        policy.explain(signal, status.code(), self.cpu_used, &text)
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        match &self.leader {
            Leader::Spawned(child) => child.id(),
            Leader::Forked(forked) => forked.pid(),
        }
    }

    /// Whether a zygote forked the script (warm start).
    pub fn is_warm(&self) -> bool {
        matches!(self.leader, Leader::Forked(_))
    }

    /// A handle that can kill the child from another thread.
    pub fn killer(&self) -> Killer {
        let (pidfd, forked) = match &self.leader {
            Leader::Spawned(_) => (self.exit_fd.as_ref(), false),
            Leader::Forked(forked) => (Some(forked.pidfd()), true),
        };
        Killer::new(
            self.id(),
            pidfd,
            self.own_group,
            forked,
            Arc::clone(&self.fate),
        )
    }

    /// Whether the host signalled the script on purpose: then a frame cut
    /// short by its death is the host's doing, not a protocol violation.
    pub fn signalled_by_host(&self) -> bool {
        lock(&self.fate).killed_by.is_some()
    }

    /// Why the host signalled the script, when it did and that signal is
    /// what ended it (a script that crashed while the host was stopping it
    /// died of its own signal).
    pub fn killed_by(&self) -> Option<String> {
        use std::os::unix::process::ExitStatusExt;
        let ended_by = self.status.and_then(|s| s.signal())?;
        match &lock(&self.fate).killed_by {
            Some((signal, why)) if *signal == ended_by => Some(why.clone()),
            _ => None,
        }
    }

    /// A descriptor that becomes readable when the child exits, if the
    /// kernel has pidfds: what the reader polls beside the pipe.
    pub fn exit_watch_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match &self.leader {
            Leader::Spawned(_) => self.exit_fd.as_ref().map(|fd| fd.as_fd()),
            // The worker's own pidfd: readable once it exits, even while its
            // zygote (stopped, stuck) neither reaps nor reports it; then
            // `try_status` gives up on the report after a grace.
            Leader::Forked(forked) => Some(forked.pidfd().as_fd()),
        }
    }

    /// What waiting for the exit status polls: a spawned child's pidfd; for
    /// a forked worker, the pipe its zygote's report of the end closes.
    pub fn exit_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match &self.leader {
            Leader::Spawned(_) => self.exit_fd.as_ref().map(|fd| fd.as_fd()),
            Leader::Forked(forked) => Some(forked.exit_fd().as_fd()),
        }
    }

    /// The exit status if the child has exited, without waiting: then what
    /// is left of its process group (the processes it started) is killed
    /// first, while the exited leader still holds the group's id, and the
    /// child is reaped after.
    pub fn try_status(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_some() {
            return Ok(self.status);
        }
        let child = match &mut self.leader {
            Leader::Spawned(child) => child,
            Leader::Forked(forked) => {
                // The zygote killed the group and reaped the worker.
                let Some(ending) = forked.ending() else {
                    return Ok(None);
                };
                let raw = match ending {
                    zygote::Ending::Status(raw) => raw,
                    zygote::Ending::Lost(why) => {
                        zygote::lost(&self.fate, why);
                        rustix::process::Signal::KILL.as_raw()
                    }
                };
                lock(&self.fate).reaped = true;
                self.status = Some(ExitStatus::from_raw(raw));
                return Ok(self.status);
            }
        };
        if !unix::has_exited(child, self.exit_fd.as_ref())? {
            return Ok(None);
        }
        if self.jail.as_ref().is_some_and(|j| j.policy.cpu.is_some()) {
            // Still a zombie: its CPU time is there to read.
            self.cpu_used = sandbox::cpu_used(child.id());
        }
        let mut fate = lock(&self.fate);
        if self.own_group {
            unix::kill_group(child.id(), rustix::process::Signal::KILL);
        }
        self.status = child.try_wait()?;
        fate.reaped = self.status.is_some();
        Ok(self.status)
    }

    /// Waits for the child to exit for at most `timeout`, and reaps it (see
    /// [`try_status`](Proc::try_status)).
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(status) = self.try_status()? {
                return Ok(Some(status));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return Ok(None);
            }
            // A forked worker's zygote may never report (stopped, stuck):
            // look again now and then.
            let cap =
                |left: Option<Duration>, most: Duration| Some(left.map_or(most, |l| l.min(most)));
            match (self.exit_fd(), self.is_warm()) {
                (Some(fd), false) => {
                    unix::wait(fd, false, None, None, left)?;
                }
                (Some(fd), true) => {
                    unix::wait(fd, false, None, None, cap(left, Duration::from_millis(100)))?;
                }
                (None, _) => {
                    thread::sleep(cap(left, Duration::from_millis(10)).unwrap_or_default())
                }
            }
        }
    }

    /// Kills the child (if it still runs) and its process group, and reaps
    /// it; `why` is recorded as the reason when the signal was needed.
    pub fn kill(&mut self, why: &str) -> io::Result<ExitStatus> {
        if let Some(status) = self.try_status()? {
            return Ok(status);
        }
        self.killer().signal(rustix::process::Signal::KILL, why)?;
        // Waits without reaping, so the group's id stays the script's until
        // its last member is signalled.
        self.wait_timeout(Duration::MAX)?;
        self.status
            .ok_or_else(|| io::Error::other("the killed script was not reaped"))
    }

    /// What the captured streams collected, waiting at most `grace` for the
    /// drain threads (a grandchild may keep a stream open after the child
    /// exited; what arrived so far is returned then).
    pub fn take_output(&mut self, grace: Duration) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
        let deadline = crate::clock::deadline_in(grace);
        let out = self.stdout.take().and_then(|c| c.finish(deadline));
        let err = self.stderr.take().and_then(|c| c.finish(deadline));
        (out, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Never leave a running or unreaped child behind.
        if self.status.is_none() {
            let _ = self.kill("its handle was dropped");
        }
    }
}

/// A thread draining one captured stream, into a buffer or line by line
/// into a callback.
struct Capture {
    data: Arc<Mutex<Vec<u8>>>,
    lines: bool,
    limit: usize,
    done: mpsc::Receiver<()>,
}

impl Capture {
    fn start(
        stream: impl Read + Send + 'static,
        lines: Option<LineCallback>,
        limit: usize,
    ) -> Capture {
        let data = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = mpsc::channel();
        let sink = Arc::clone(&data);
        let line_mode = lines.is_some();
        thread::Builder::new()
            .name("tether-capture".into())
            .spawn(move || {
                match lines {
                    Some(callback) => deliver_lines(stream, &callback),
                    None => collect(stream, &sink, limit),
                }
                let _ = tx.send(());
            })
            .map(drop)
            .unwrap_or_else(|e| tracing::warn!("cannot start a capture thread: {e}"));
        Capture {
            data,
            lines: line_mode,
            limit,
            done,
        }
    }

    /// What was collected (`None` in line mode), after the stream ended or
    /// the deadline passed.
    fn finish(self, deadline: Option<Instant>) -> Option<Vec<u8>> {
        let left = crate::clock::left_until(deadline);
        let _ = self.done.recv_timeout(left);
        (!self.lines).then(|| {
            let mut data = std::mem::take(&mut *lock(&self.data));
            if data.len() > self.limit {
                data.drain(..data.len() - self.limit);
            }
            data
        })
    }
}

/// Drains `stream` into `sink`, keeping only its last `limit` bytes, so a
/// script that writes gigabytes cannot exhaust the host's memory.
fn collect(mut stream: impl Read, sink: &Mutex<Vec<u8>>, limit: usize) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut data = lock(sink);
                data.extend_from_slice(&buf[..n]);
                // Trim in batches: memory stays under twice the limit.
                if data.len() > limit.saturating_mul(2).max(limit + buf.len()) {
                    let excess = data.len() - limit;
                    data.drain(..excess);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// The longest line a line callback is handed: a longer one comes in pieces of
/// this length, so a script that writes without newlines cannot make the host
/// buffer without bound.
pub(crate) const MAX_LINE: usize = 64 * 1024;

fn deliver_lines(stream: impl Read, callback: &LineCallback) {
    let mut reader = io::BufReader::with_capacity(64 * 1024, stream);
    let mut line: Vec<u8> = Vec::new();
    let deliver = |line: &[u8]| {
        let text = line.strip_suffix(b"\r").unwrap_or(line);
        let text = String::from_utf8_lossy(text);
        let call = std::panic::AssertUnwindSafe(|| (callback.0)(&text));
        if std::panic::catch_unwind(call).is_err() {
            tracing::warn!("a line callback panicked; later lines are still delivered");
        }
    };
    loop {
        let available = match io::BufRead::fill_buf(&mut reader) {
            Ok([]) => break,
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let room = MAX_LINE - line.len();
        let (take, ends) = match available.iter().position(|&b| b == b'\n') {
            Some(i) if i <= room => (i + 1, true),
            _ => (available.len().min(room), false),
        };
        if ends {
            line.extend_from_slice(&available[..take - 1]);
        } else {
            line.extend_from_slice(&available[..take]);
        }
        io::BufRead::consume(&mut reader, take);
        if ends || line.len() == MAX_LINE {
            deliver(&line);
            line.clear();
        }
    }
    if !line.is_empty() {
        deliver(&line);
    }
}

/// Where the interpreter to run came from, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// `Host::python`.
    Host,
    /// The `TETHER_PYTHON` environment variable.
    Variable,
    /// `python3` from `PATH`.
    Default,
}

impl Origin {
    /// Where the interpreter came from, for a message that it cannot start.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Origin::Host => "chosen with Host::python",
            Origin::Variable => "chosen by the TETHER_PYTHON environment variable",
            Origin::Default => {
                "python3 from PATH; install Python 3.8 or later, or choose an interpreter \
                 with Host::python or the TETHER_PYTHON environment variable"
            }
        }
    }
}

/// Returns the `python` to run, and where it came from: the builder's
/// choice, else `TETHER_PYTHON`, else `python3` from `PATH`.
pub(crate) fn interpreter(configured: Option<&Path>) -> (PathBuf, Origin) {
    if let Some(p) = configured {
        return (p.to_owned(), Origin::Host);
    }
    match std::env::var_os("TETHER_PYTHON") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), Origin::Variable),
        _ => (PathBuf::from("python3"), Origin::Default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell command run as a script would be: in a group of its own.
    fn start(command: &str) -> Proc {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(command);
        unix::prepare(&mut cmd, &[], true, None);
        Proc::spawned(unix::spawn(cmd).unwrap(), true)
    }

    fn gone(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, s)| s.starts_with('Z'))
        })
    }

    #[test]
    fn the_group_is_killed_before_its_leader_is_reaped_and_never_signalled_after() {
        let dir = std::env::temp_dir().join(format!("tether-reap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("member");
        // The leader leaves a member of its group behind and exits.
        let mut proc = start(&format!("sleep 30 & echo $! > {}; exit 0", file.display()));
        let killer = proc.killer();
        let status = proc.wait_timeout(Duration::from_secs(20)).unwrap();
        assert!(status.is_some_and(|s| s.success()));
        let member = std::fs::read_to_string(&file).unwrap().trim().to_owned();
        std::fs::remove_dir_all(&dir).unwrap();
        // Killed while the exited leader still held the group's id.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !gone(&member) {
            assert!(
                Instant::now() < deadline,
                "the group member {member} lives on"
            );
            thread::sleep(Duration::from_millis(10));
        }
        // Reaped: its ids may be someone else's now, so nothing is sent.
        killer
            .signal(rustix::process::Signal::KILL, "too late")
            .unwrap();
        assert!(!proc.signalled_by_host());
        assert_eq!(proc.killed_by(), None);
    }
}
