//! Warm start: a preloaded interpreter (the zygote, `tether/_zygote.py`)
//! that forks workers on request.
//!
//! ```text
//!   host ── fork request + pipes (SCM_RIGHTS) ──▶ zygote ── fork ──▶ worker
//!        ◀── forked: pid + pidfd ─────────────────┘   │ (runs the script as __main__)
//!        ◀── exited: pid + raw wait status ───────────┘ (the zygote reaps it)
//! ```
//!
//! The zygote is a child of the host's spawner thread like any script, with
//! the parent-death signal; each worker gets the parent-death signal from
//! the zygote, so the chain dies with the host, also on SIGKILL. A worker is
//! not the host's child: the host signals it through the pidfd the zygote
//! passed (never by a pid that may have been reused), never waits on it, and
//! learns its wait status from the zygote, which reaps it after killing
//! what is left of its process group, as the host does for its own
//! children. A worker dies with its zygote, so a zygote stays up as long as
//! one of its workers runs.
//!
//! The zygote is supervised: when it dies (its reader sees the socket
//! close), it is reaped and started again after a backoff, unless nobody
//! holds its [`Forker`] any more.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde_json::{json, Value as Json};

use super::{unix, Fate, Origin, Proc};
use crate::error::Error;
use crate::sync::lock;

/// The most descriptors one message carries (pipes, side socket, streams).
const MAX_FDS: usize = 16;
/// The largest message: a fork request carries the whole environment.
const MAX_MESSAGE: usize = 1 << 20;
/// How long the zygote may take to import what it preloads.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a fork request may take.
const FORK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after a worker exited its zygote may take to report how.
const REPORT_GRACE: Duration = Duration::from_secs(5);
/// Restarting a zygote that keeps dying waits this long at first, doubling.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A zygote that lived this long before it died restarts at once.
const HEALTHY: Duration = Duration::from_secs(10);
/// After this many failed starts in a row the zygote is given up.
const MAX_FAILED_STARTS: u32 = 5;

/// What a zygote runs and imports.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub python: PathBuf,
    pub python_from: Origin,
    pub venv: Option<PathBuf>,
    pub client_dir: PathBuf,
    pub preload: Vec<String>,
    /// Set for the zygote on top of the host's environment.
    pub env: Vec<(OsString, OsString)>,
}

/// The host's handle on a supervised zygote; clones share it.
#[derive(Clone)]
pub(crate) struct Forker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Forker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forker")
            .field("preload", &self.inner.settings.preload)
            .field("pid", &self.pid())
            .finish()
    }
}

struct Inner {
    settings: Settings,
    state: Mutex<State>,
    changed: Condvar,
    forked: AtomicU64,
}

#[derive(Default)]
struct State {
    current: Option<Arc<Instance>>,
    /// Times a zygote was started again after it died.
    restarts: u64,
    /// Set when restarting failed too often: every fork fails with it.
    given_up: Option<String>,
    /// Threads per zygote after preloading, as it last reported.
    threads: usize,
}

/// One running zygote process. Dropping the last handle (the [`Forker`]'s
/// and those of the workers it forked) closes the socket, and the zygote
/// exits.
struct Instance {
    pid: u32,
    socket: OwnedFd,
    send: Mutex<()>,
    book: Arc<Book>,
    ids: AtomicU64,
}

impl Drop for Instance {
    fn drop(&mut self) {
        // The reader holds a copy of the socket: shutting it down is what
        // the zygote sees as the end.
        let _ = rustix::net::shutdown(&self.socket, rustix::net::Shutdown::Both);
    }
}

/// What the reader of one zygote's reports keeps: forks waiting for an
/// answer and the workers whose end it has not reported yet.
#[derive(Default)]
struct Book {
    pending: Mutex<HashMap<u64, Pending>>,
    /// Each worker's end, by its fork request's id: a pid can be reused once
    /// the zygote reaped a worker, and its end may not be collected yet.
    exits: Mutex<HashMap<u64, Exit>>,
    /// The fork id of each worker the zygote has not reported dead. The
    /// zygote reports a worker's end before it can fork another with the same
    /// pid, and reports come in order, so a pid maps to one live worker.
    live: Mutex<HashMap<u32, u64>>,
    alive: AtomicBool,
}

/// Why a fork did not happen.
enum Refusal {
    /// The zygote died first (or its socket broke): asking the next one is
    /// safe, since no worker was reported.
    Died,
    /// The zygote refused, or the request could not be made.
    Other(String),
}

struct Pending {
    reply: mpsc::Sender<Result<(u32, OwnedFd), Refusal>>,
    /// Dropped when the worker's end is known: its exit descriptor is the
    /// other end of this pipe.
    notify: OwnedFd,
}

struct Exit {
    /// The raw wait status the zygote reported.
    status: Option<i32>,
    /// The zygote died before it reported this worker's end.
    lost: bool,
    notify: Option<OwnedFd>,
    /// Nobody waits for this worker (its fork request was abandoned).
    unwanted: bool,
}

/// A worker forked by a zygote, as [`Proc`] holds it.
pub(crate) struct Forked {
    pid: u32,
    /// Its fork request's id: its key in the book.
    id: u64,
    pidfd: OwnedFd,
    /// Readable once the zygote reported the worker's end (or died).
    exit_fd: OwnedFd,
    book: Arc<Book>,
    /// Keeps the zygote running while the worker does (it dies with it).
    _instance: Arc<Instance>,
    /// When the pidfd first showed the worker gone without a report.
    unreported_since: Option<Instant>,
}

/// Why the host counts a worker as killed when its zygote died first.
pub(crate) const ZYGOTE_DIED: &str = "its zygote died, and the workers it forked with it";

/// How a forked worker ended, as far as the host can know.
pub(crate) enum Ending {
    /// The raw wait status, as the zygote reaped it.
    Status(i32),
    /// Its zygote died (killing it) before reporting, or never reported.
    Lost(&'static str),
}

impl Forked {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn pidfd(&self) -> &OwnedFd {
        &self.pidfd
    }

    pub fn exit_fd(&self) -> &OwnedFd {
        &self.exit_fd
    }

    /// How the worker ended, once the host can know; it is then forgotten.
    pub fn ending(&mut self) -> Option<Ending> {
        {
            let mut exits = lock(&self.book.exits);
            match exits.get(&self.id) {
                Some(Exit {
                    status: Some(raw), ..
                }) => {
                    let raw = *raw;
                    exits.remove(&self.id);
                    return Some(Ending::Status(raw));
                }
                Some(Exit { lost: true, .. }) | None => {
                    exits.remove(&self.id);
                    drop(exits);
                    // Its zygote's death is known before the kernel is done
                    // killing it: wait (a little) until it is gone.
                    let _ = unix::wait(self.pidfd.as_fd(), false, None, None, Some(REPORT_GRACE));
                    return Some(Ending::Lost(ZYGOTE_DIED));
                }
                Some(_) => {}
            }
        }
        // A zygote that is stopped or stuck never reports: the pidfd says
        // the worker is gone, and after a grace the host stops waiting.
        let gone = unix::wait(self.pidfd.as_fd(), false, None, None, Some(Duration::ZERO))
            .is_ok_and(|r| r.ready);
        if !gone {
            self.unreported_since = None;
            return None;
        }
        let since = *self.unreported_since.get_or_insert_with(Instant::now);
        if since.elapsed() < REPORT_GRACE {
            return None;
        }
        lock(&self.book.exits).remove(&self.id);
        Some(Ending::Lost(
            "its zygote did not report how the worker ended",
        ))
    }
}

/// The descriptors and settings of one worker to fork.
pub(crate) struct Request<'a> {
    pub path: &'a std::path::Path,
    pub args: &'a [OsString],
    /// The worker's whole environment.
    pub env: Vec<(OsString, OsString)>,
    pub cwd: Option<&'a std::path::Path>,
    pub own_group: bool,
    /// Environment variables that receive the channel's descriptor numbers.
    pub vars: super::FdVars,
    pub read: OwnedFd,
    pub write: OwnedFd,
    pub side: Option<OwnedFd>,
    /// `None`: inherit the zygote's (the host's); `Some(None)`: /dev/null;
    /// `Some(Some(fd))`: this pipe.
    pub stdin_null: bool,
    pub stdout: Option<Option<OwnedFd>>,
    pub stderr: Option<Option<OwnedFd>>,
}

impl Forker {
    /// Starts a zygote and waits until it has imported what it preloads.
    pub fn start(settings: Settings) -> Result<Forker, Error> {
        let inner = Arc::new(Inner {
            settings,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            forked: AtomicU64::new(0),
        });
        let (instance, reader) = Instance::start(&inner.settings)?;
        {
            let mut state = lock(&inner.state);
            state.threads = reader.threads;
            state.current = Some(Arc::clone(&instance));
        }
        reader.run_in_background(Arc::downgrade(&inner), instance.book.clone())?;
        Ok(Forker { inner })
    }

    /// The running zygote's pid (none while it restarts).
    pub fn pid(&self) -> Option<u32> {
        lock(&self.inner.state).current.as_ref().map(|i| i.pid)
    }

    /// Times the zygote was started again after it died.
    pub fn restarts(&self) -> u64 {
        lock(&self.inner.state).restarts
    }

    /// Workers forked so far.
    pub fn forked(&self) -> u64 {
        self.inner.forked.load(Ordering::Relaxed)
    }

    /// The modules the zygote imports first.
    pub fn preload(&self) -> &[String] {
        &self.inner.settings.preload
    }

    /// The virtual environment the zygote runs in, if any.
    pub fn venv(&self) -> Option<&std::path::Path> {
        self.inner.settings.venv.as_deref()
    }

    /// Threads in the zygote after preloading (1 unless a preloaded module
    /// started some).
    pub fn threads(&self) -> usize {
        lock(&self.inner.state).threads
    }

    /// Forks a worker; returns its handle for [`Proc`]. A zygote that dies
    /// before it answered is asked again once it is back (a few times).
    pub fn fork(&self, request: Request<'_>) -> Result<Forked, Error> {
        const ATTEMPTS: usize = 3;
        let mut attempt = 0;
        let why = loop {
            attempt += 1;
            let instance = self.inner.instance()?;
            match instance.fork(&request) {
                Ok(forked) => {
                    self.inner.forked.fetch_add(1, Ordering::Relaxed);
                    return Ok(forked);
                }
                Err(Refusal::Died) if attempt < ATTEMPTS => {
                    tracing::debug!(target: "tether::zygote", attempt, "the zygote died during a fork; asking the next one");
                }
                Err(Refusal::Died) => {
                    break format!("the zygote died {ATTEMPTS} times while asked")
                }
                Err(Refusal::Other(why)) => break why,
            }
        };
        Err(Error::Spawn {
            program: self.inner.settings.python.clone(),
            source: io::Error::other(format!("the zygote could not start the worker: {why}")),
        })
    }
}

impl Inner {
    /// The running zygote, waiting while it restarts.
    fn instance(&self) -> Result<Arc<Instance>, Error> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut state = lock(&self.state);
        loop {
            if let Some(why) = &state.given_up {
                return Err(Error::Spawn {
                    program: self.settings.python.clone(),
                    source: io::Error::other(format!("the zygote was given up: {why}")),
                });
            }
            if let Some(current) = &state.current {
                if current.book.alive.load(Ordering::Acquire) {
                    return Ok(Arc::clone(current));
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Spawn {
                    program: self.settings.python.clone(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the zygote did not come back in time",
                    ),
                });
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A started zygote's reading side, before its thread runs.
struct Reader {
    socket: OwnedFd,
    proc: Proc,
    threads: usize,
    started: Instant,
}

impl Instance {
    /// Starts a zygote process and waits for its `ready`.
    fn start(settings: &Settings) -> Result<(Arc<Instance>, Reader), Error> {
        let io_err = |context: &str| {
            let context = context.to_owned();
            move |source| Error::Io { context, source }
        };
        let (host_end, zygote_end) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| io_err("creating the zygote's socket")(e.into()))?;
        let host_end =
            unix::above_stdio(host_end).map_err(io_err("creating the zygote's socket"))?;
        let zygote_end =
            unix::above_stdio(zygote_end).map_err(io_err("creating the zygote's socket"))?;

        let venv = settings
            .venv
            .as_deref()
            .map(super::VirtualEnv::open)
            .transpose()?;
        let python = venv
            .as_ref()
            .map_or(settings.python.as_path(), |v| v.python.as_path());
        let own_pythonpath = settings
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PYTHONPATH")
            .map(|(_, v)| Some(v.clone()));
        let mut cmd = Command::new(python);
        cmd.envs(settings.env.iter().map(|(k, v)| (k, v)));
        cmd.arg("-c")
            .arg("from tether._zygote import main; main()")
            .env("PYTHONUNBUFFERED", "1")
            .env(
                "PYTHONPATH",
                super::python_path(&settings.client_dir, own_pythonpath),
            )
            .env("TETHER_ZYGOTE_FD", zygote_end.as_raw_fd().to_string())
            .env(
                "TETHER_PRELOAD",
                serde_json::to_string(&settings.preload).unwrap_or_else(|_| "[]".into()),
            );
        for var in [
            "TETHER_READ_FD",
            "TETHER_WRITE_FD",
            "TETHER_SHM_FD",
            "PY_READ_FD",
            "PY_WRITE_FD",
        ] {
            cmd.env_remove(var);
        }
        if let Some(venv) = &venv {
            for (key, value) in venv.activation(&[]) {
                match value {
                    Some(v) => cmd.env(key, v),
                    None => cmd.env_remove(key),
                };
            }
        }
        unix::prepare(&mut cmd, &[zygote_end.as_raw_fd()], true, None);
        let child = unix::spawn(cmd).map_err(|source| Error::Spawn {
            program: python.to_owned(),
            source: io::Error::new(
                source.kind(),
                format!(
                    "{source} (the zygote's interpreter, {})",
                    settings.python_from.describe()
                ),
            ),
        })?;
        drop(zygote_end);
        let mut proc = Proc::spawned(child, true);
        let started = Instant::now();
        let ready = wait_ready(&host_end, &mut proc);
        let ready = match ready {
            Ok(ready) => ready,
            Err(why) => {
                let status = proc.kill("the zygote did not start").ok();
                let how = status.map_or_else(String::new, |s| format!(" ({s})"));
                return Err(Error::Spawn {
                    program: python.to_owned(),
                    source: io::Error::other(format!("the zygote did not start: {why}{how}")),
                });
            }
        };
        let pid = proc.id();
        let threads = ready
            .get("threads")
            .and_then(Json::as_u64)
            .unwrap_or(1)
            .try_into()
            .unwrap_or(usize::MAX);
        tracing::info!(
            target: "tether::zygote",
            pid,
            preload = ?settings.preload,
            threads,
            millis = started.elapsed().as_millis() as u64,
            "zygote ready"
        );
        if threads > 1 {
            tracing::warn!(
                target: "tether::zygote",
                pid,
                threads,
                "the zygote runs {threads} threads after preloading {:?}: forking a threaded \
                 process can deadlock a worker in a lock another thread held (for numpy's \
                 OpenBLAS, set OPENBLAS_NUM_THREADS=1 in the host's environment)",
                settings.preload
            );
        }
        let reader_socket = host_end
            .try_clone()
            .map_err(io_err("copying the zygote's socket"))?;
        let book = Arc::new(Book::default());
        book.alive.store(true, Ordering::Release);
        let instance = Arc::new(Instance {
            pid,
            socket: host_end,
            send: Mutex::new(()),
            book,
            ids: AtomicU64::new(1),
        });
        Ok((
            instance,
            Reader {
                socket: reader_socket,
                proc,
                threads,
                started,
            },
        ))
    }

    /// Sends one fork request and waits for its answer.
    fn fork(self: &Arc<Self>, request: &Request<'_>) -> Result<Forked, Refusal> {
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let (notify_read, notify) = super::pipe().map_err(|e| Refusal::Other(e.to_string()))?;
        let mut names = vec!["read", "write"];
        let mut fds = vec![request.read.as_fd(), request.write.as_fd()];
        if let Some(side) = &request.side {
            names.push("side");
            fds.push(side.as_fd());
        }
        let mut streams = ["inherit"; 2];
        for (how, (name, stream)) in streams
            .iter_mut()
            .zip([("stdout", &request.stdout), ("stderr", &request.stderr)])
        {
            *how = match stream {
                None => "inherit",
                Some(None) => "null",
                Some(Some(fd)) => {
                    names.push(name);
                    fds.push(fd.as_fd());
                    "pipe"
                }
            };
        }
        let [stdout, stderr] = streams;
        let message = json!({
            "op": "fork",
            "id": id,
            "path": os_json(request.path.as_os_str()),
            "args": request.args.iter().map(|a| os_json(a)).collect::<Vec<_>>(),
            "env": request.env.iter().map(|(k, v)| [os_json(k), os_json(v)]).collect::<Vec<_>>(),
            "cwd": request.cwd.map(|c| os_json(c.as_os_str())),
            "group": request.own_group,
            "fds": names,
            "vars": {"read": request.vars.read, "write": request.vars.write, "side": "TETHER_SHM_FD"},
            "stdin": if request.stdin_null { "null" } else { "inherit" },
            "stdout": stdout,
            "stderr": stderr,
        });
        let bytes = serde_json::to_vec(&message).map_err(|e| Refusal::Other(e.to_string()))?;
        if bytes.len() > MAX_MESSAGE {
            return Err(Refusal::Other(format!(
                "the fork request is {} bytes (arguments and environment), more than the {MAX_MESSAGE} a zygote takes",
                bytes.len()
            )));
        }
        let (reply, answer) = mpsc::channel();
        lock(&self.book.pending).insert(id, Pending { reply, notify });
        let sent = {
            let _turn = lock(&self.send);
            send(&self.socket, &bytes, &fds)
        };
        if let Err(e) = sent {
            lock(&self.book.pending).remove(&id);
            return Err(match e.raw_os_error() {
                Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN) => Refusal::Died,
                _ => Refusal::Other(format!("cannot send the fork request: {e}")),
            });
        }
        let answered = answer.recv_timeout(FORK_TIMEOUT);
        let (pid, pidfd) = match answered {
            Ok(result) => result?,
            Err(_) => {
                // Abandoned: if the worker comes after all, the reader kills it.
                lock(&self.book.pending).remove(&id);
                return Err(Refusal::Other(format!(
                    "the zygote (pid {}) did not answer within {FORK_TIMEOUT:?}",
                    self.pid
                )));
            }
        };
        Ok(Forked {
            pid,
            id,
            pidfd,
            exit_fd: notify_read,
            book: Arc::clone(&self.book),
            _instance: Arc::clone(self),
            unreported_since: None,
        })
    }
}

/// Waits for the zygote's first message: `ready`, or why it could not.
fn wait_ready(socket: &OwnedFd, proc: &mut Proc) -> Result<Json, String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "it did not finish preloading within {READY_TIMEOUT:?}"
            ));
        }
        let ready = unix::wait(socket.as_fd(), false, proc.exit_fd(), None, Some(left))
            .map_err(|e| e.to_string())?;
        if ready.ready {
            return match receive(socket) {
                Ok(Some((message, _))) => match message.get("op").and_then(Json::as_str) {
                    Some("ready") => Ok(message),
                    Some("failed") => Err(message
                        .get("error")
                        .and_then(Json::as_str)
                        .unwrap_or("it failed")
                        .to_owned()),
                    _ => Err(format!("it sent {message} instead of ready")),
                },
                Ok(None) => Err("it exited before it was ready".into()),
                Err(e) => Err(e.to_string()),
            };
        }
        if ready.exited {
            return Err("it exited before it was ready".into());
        }
    }
}

impl Reader {
    fn run_in_background(self, inner: Weak<Inner>, book: Arc<Book>) -> Result<(), Error> {
        thread::Builder::new()
            .name("tether-zygote".into())
            .spawn(move || supervise(self, book, inner))
            .map(drop)
            .map_err(|source| Error::Io {
                context: "starting the zygote's reader thread".into(),
                source,
            })
    }

    /// Reads the zygote's reports until it goes away.
    fn read(&mut self, book: &Book) {
        loop {
            let (message, mut fds) = match receive(&self.socket) {
                Ok(Some(got)) => got,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(target: "tether::zygote", "reading the zygote's reports failed: {e}");
                    return;
                }
            };
            match message.get("op").and_then(Json::as_str) {
                Some("forked") => {
                    let id = message.get("id").and_then(Json::as_u64).unwrap_or(0);
                    let pid = message.get("pid").and_then(Json::as_u64).unwrap_or(0) as u32;
                    let Some(pending) = lock(&book.pending).remove(&id) else {
                        if let Some(pidfd) = fds.pop() {
                            let _ = rustix::process::pidfd_send_signal(
                                &pidfd,
                                rustix::process::Signal::KILL,
                            );
                        }
                        lock(&book.live).insert(pid, id);
                        lock(&book.exits).insert(
                            id,
                            Exit {
                                status: None,
                                lost: false,
                                notify: None,
                                unwanted: true,
                            },
                        );
                        continue;
                    };
                    let Some(pidfd) = fds.pop() else {
                        let _ = pending
                            .reply
                            .send(Err(Refusal::Other("the zygote passed no pidfd".into())));
                        continue;
                    };
                    lock(&book.live).insert(pid, id);
                    lock(&book.exits).insert(
                        id,
                        Exit {
                            status: None,
                            lost: false,
                            notify: Some(pending.notify),
                            unwanted: false,
                        },
                    );
                    if let Err(mpsc::SendError(Ok((_, pidfd)))) =
                        pending.reply.send(Ok((pid, pidfd)))
                    {
                        let _ = rustix::process::pidfd_send_signal(
                            &pidfd,
                            rustix::process::Signal::KILL,
                        );
                        if let Some(exit) = lock(&book.exits).get_mut(&id) {
                            exit.unwanted = true;
                        }
                    }
                }
                Some("refused") => {
                    let id = message.get("id").and_then(Json::as_u64).unwrap_or(0);
                    let error = message
                        .get("error")
                        .and_then(Json::as_str)
                        .unwrap_or("refused");
                    if let Some(pending) = lock(&book.pending).remove(&id) {
                        let _ = pending.reply.send(Err(Refusal::Other(error.to_owned())));
                    }
                }
                Some("exited") => {
                    let pid = message.get("pid").and_then(Json::as_u64).unwrap_or(0) as u32;
                    let status = message.get("status").and_then(Json::as_i64).unwrap_or(0) as i32;
                    let Some(id) = lock(&book.live).remove(&pid) else {
                        continue;
                    };
                    let mut exits = lock(&book.exits);
                    match exits.get_mut(&id) {
                        Some(exit) if exit.unwanted => {
                            exits.remove(&id);
                        }
                        Some(exit) => {
                            exit.status = Some(status);
                            exit.notify = None;
                        }
                        None => {}
                    }
                }
                other => {
                    tracing::warn!(target: "tether::zygote", "the zygote sent an unknown report {other:?}");
                }
            }
        }
    }
}

/// Serves one zygote after another: reads its reports, and when it dies,
/// reaps it and starts the next (after a backoff that doubles while starts
/// keep failing or zygotes keep dying young), until nobody holds the
/// [`Forker`].
fn supervise(mut reader: Reader, mut book: Arc<Book>, inner: Weak<Inner>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        reader.read(&book);
        book.alive.store(false, Ordering::Release);
        for (_, pending) in lock(&book.pending).drain() {
            let _ = pending.reply.send(Err(Refusal::Died));
        }
        lock(&book.live).clear();
        for exit in lock(&book.exits).values_mut() {
            if exit.status.is_none() {
                exit.lost = true;
                exit.notify = None;
            }
        }
        let pid = reader.proc.id();
        let lived = reader.started.elapsed();
        let status = match reader.proc.wait_timeout(Duration::from_millis(200)) {
            Ok(Some(status)) => Some(status),
            _ => reader.proc.kill("its socket closed").ok(),
        };
        let Some(strong) = inner.upgrade() else {
            tracing::debug!(target: "tether::zygote", pid, "zygote stopped");
            return;
        };
        tracing::warn!(
            target: "tether::zygote",
            pid,
            status = %status.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
            "zygote died; the workers it forked died with it"
        );
        lock(&strong.state).current = None;
        strong.changed.notify_all();
        let settings = strong.settings.clone();
        // Not held while waiting: dropping the last Forker ends the restarts.
        drop(strong);
        if lived >= HEALTHY {
            backoff = BACKOFF_MIN;
        }
        let mut failed = 0;
        let (instance, next) = loop {
            thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
            if inner.strong_count() == 0 {
                return;
            }
            match Instance::start(&settings) {
                Ok(started) => break started,
                Err(e) => {
                    failed += 1;
                    tracing::warn!(target: "tether::zygote", attempt = failed, "restarting the zygote failed: {e}");
                    if failed >= MAX_FAILED_STARTS {
                        if let Some(strong) = inner.upgrade() {
                            lock(&strong.state).given_up = Some(format!(
                                "it died and {failed} restarts in a row failed, the last with: {e}"
                            ));
                            strong.changed.notify_all();
                        }
                        tracing::error!(target: "tether::zygote", "zygote given up after {failed} failed restarts");
                        return;
                    }
                }
            }
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        {
            let mut state = lock(&strong.state);
            state.restarts += 1;
            state.threads = next.threads;
            state.current = Some(Arc::clone(&instance));
        }
        strong.changed.notify_all();
        tracing::info!(target: "tether::zygote", pid = instance.pid, "zygote restarted");
        book = Arc::clone(&instance.book);
        reader = next;
    }
}

/// Sends one message with `fds` passed alongside it.
fn send(socket: &OwnedFd, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors for one message"));
    }
    loop {
        match sendmsg(
            socket,
            &[IoSlice::new(bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Err(Errno::INTR) => continue,
            Ok(_) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The next message and the descriptors passed with it; `None` at the end.
fn receive(socket: &OwnedFd) -> io::Result<Option<(Json, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match recvmsg(
            socket,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Err(Errno::INTR) => continue,
            other => break other,
        }
    };
    let got = match got {
        Ok(got) => got,
        Err(Errno::CONNRESET) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(passed) = message {
            fds.extend(passed);
        }
    }
    if got.bytes == 0 {
        return Ok(None);
    }
    if got
        .flags
        .intersects(rustix::net::ReturnFlags::TRUNC | rustix::net::ReturnFlags::CTRUNC)
    {
        return Err(io::Error::other("a message from the zygote was cut short"));
    }
    let message = serde_json::from_slice(&buf[..got.bytes]).map_err(|e| {
        io::Error::other(format!("the zygote sent a message that is not JSON: {e}"))
    })?;
    Ok(Some((message, fds)))
}

/// An OS string as the zygote reads it: text, or `{"hex": ...}` for bytes
/// that are not UTF-8.
fn os_json(s: &OsStr) -> Json {
    match s.to_str() {
        Some(text) => Json::String(text.to_owned()),
        None => {
            let hex: String = s.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
            json!({ "hex": hex })
        }
    }
}

/// Applies `Fate` to a worker the zygote reported gone without a status.
pub(crate) fn lost(fate: &Mutex<Fate>, why: &str) {
    lock(fate).killed_by = Some((rustix::process::Signal::KILL.as_raw(), why.to_owned()));
}
