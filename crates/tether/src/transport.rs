//! Frame I/O over the child's pipes that never outlives the child.
//!
//! Both pipe ends are non-blocking. Every wait polls the pipe *and* the
//! child's exit descriptor: a child that exits while a grandchild still holds
//! the pipe open would otherwise leave the host waiting for an end-of-file
//! that never comes. Once the child has exited, whatever is left in the pipe
//! is drained and decoded, and then the stream counts as ended.
//!
//! The [`Reader`] belongs to the one thread that reads; the [`Writer`] sits
//! behind a mutex and is shared by everyone who answers or calls.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::io::Errno;

use crate::error::Limit;
use crate::process::{self, Proc};
use crate::protocol::frame::FrameReader;
use crate::protocol::message::Encoded;
use crate::protocol::DecodeError;
use crate::shm::Inbox;
use crate::spin::Spin;

/// How often to check for exit on kernels without pidfd.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// A frame at least this large raises its pipe to [`LARGE_PIPE`].
const LARGE_FRAME: usize = 256 * 1024;

/// The pipe size for large values: they then move in fewer, larger steps
/// (Linux lets anyone raise a pipe to 1 MiB by default). Pipes start at the
/// default size and are raised only once a large frame uses them, because
/// the kernel counts a raised pipe against the user's pipe allowance
/// (`fs.pipe-user-pages-soft`) whether it holds data or not.
const LARGE_PIPE: usize = 1024 * 1024;

/// Raises `fd`'s pipe to [`LARGE_PIPE`] once; refused means it stays as it is.
fn raise_pipe(fd: &File, raised: &mut bool) {
    if !*raised {
        *raised = true;
        if let Err(e) = rustix::pipe::fcntl_setpipe_size(fd, LARGE_PIPE) {
            tracing::debug!("cannot raise a pipe to {LARGE_PIPE} bytes: {e}");
        }
    }
}

/// Knows whether the child has exited: through its pidfd, or through a flag
/// the reader sets (on kernels without pidfd).
#[derive(Clone)]
pub(crate) struct ExitWatch {
    pidfd: Option<Arc<OwnedFd>>,
    exited: Arc<AtomicBool>,
}

impl ExitWatch {
    pub fn new(proc: &Proc) -> ExitWatch {
        ExitWatch {
            pidfd: proc
                .exit_watch_fd()
                .and_then(|fd| fd.try_clone_to_owned().ok())
                .map(Arc::new),
            exited: Arc::new(AtomicBool::new(false)),
        }
    }

    fn mark_exited(&self) {
        self.exited.store(true, Ordering::Release);
    }

    fn has_exited(&self) -> bool {
        self.exited.load(Ordering::Acquire)
    }

    /// Waits until `fd` is ready or the child exits; returns whether it exited.
    fn wait(&self, fd: BorrowedFd<'_>, write: bool) -> io::Result<bool> {
        Ok(self.wait_ready(fd, write, None, None)?.exited)
    }

    /// Waits until `fd` is ready, the child exits, `also` is readable or
    /// `limit` passes; `exited` also says whether the child exited earlier.
    fn wait_ready(
        &self,
        fd: BorrowedFd<'_>,
        write: bool,
        also: Option<BorrowedFd<'_>>,
        limit: Option<Duration>,
    ) -> io::Result<process::Ready> {
        let pidfd = self.pidfd.as_deref().map(AsFd::as_fd);
        let timeout = match (pidfd.is_none().then_some(EXIT_POLL), limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut ready = process::wait(fd, write, pidfd, also, timeout)?;
        if ready.exited {
            self.mark_exited();
        }
        ready.exited |= self.has_exited();
        Ok(ready)
    }
}

/// What the next read produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One complete frame body.
    Frame(Bytes),
    /// The child closed its end of the channel (it may still be running).
    Closed,
    /// The child exited and everything it had written was read.
    Exited,
    /// A time limit ran out: which, and the message.
    Expired(crate::error::Limit, String),
    /// Nothing arrived before the time the caller gave.
    Waiting,
}

/// Time limits on reading.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    /// When the whole script must have ended.
    pub deadline: Option<(Instant, Duration)>,
    /// How long the script may stay silent.
    pub idle: Option<Duration>,
}

/// Why the channel to the script broke.
#[derive(Debug)]
pub(crate) enum Broken {
    /// The script's bytes do not form valid frames (reading).
    Decode(DecodeError),
    /// The script closed its end or exited, or the host closed its own
    /// (writing).
    Gone,
    /// An OS error on the host's side.
    Io(io::Error),
}

/// The reading end: frames from the child.
pub(crate) struct Reader {
    fd: File,
    frames: FrameReader,
    watch: ExitWatch,
    exited: bool,
    /// The last read returned less than it asked for, so the pipe is most
    /// likely empty: wait before reading instead of paying for a read that
    /// fails with EAGAIN (one system call less per message).
    drained: bool,
    limits: Limits,
    /// When bytes last arrived.
    last_heard: Instant,
    spin: Spin,
    /// The pipe was raised for large frames.
    raised: bool,
    /// Descriptors of shared values (shared memory on).
    inbox: Option<Inbox>,
}

impl Reader {
    pub fn new(
        fd: File,
        max_frame: u32,
        watch: ExitWatch,
        limits: Limits,
        spin: Spin,
        side: Option<Arc<OwnedFd>>,
    ) -> Reader {
        Reader {
            inbox: side.map(Inbox::new),
            spin,
            raised: false,
            fd,
            frames: FrameReader::new(max_frame),
            watch,
            exited: false,
            drained: false,
            limits,
            last_heard: Instant::now(),
        }
    }

    /// The script's deadline, when it has one: when it falls, and its length.
    pub fn deadline(&self) -> Option<(Instant, Duration)> {
        self.limits.deadline
    }

    /// The earliest time limit: when it falls, and what it is.
    fn next_limit(&self) -> Option<(Instant, Limit, String)> {
        let deadline = self.limits.deadline.map(|(at, d)| {
            (
                at,
                Limit::Deadline,
                format!("the script ran past its deadline of {d:?}"),
            )
        });
        let idle = self.limits.idle.and_then(|d| {
            let at = self.last_heard.checked_add(d)?;
            Some((
                at,
                Limit::IdleTimeout,
                format!("the script sent nothing for {d:?} (idle timeout)"),
            ))
        });
        match (deadline, idle) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The next descriptor of a shared value the script passed.
    ///
    /// # Errors
    ///
    /// When none was passed, or shared memory is off.
    pub fn next_shared_fd(&mut self) -> Result<OwnedFd, String> {
        match &mut self.inbox {
            Some(inbox) => inbox.next(),
            None => Err("a shared-memory reference, but shared memory is off".into()),
        }
    }

    /// The next frame, or how the stream ended; [`Incoming::Waiting`] when
    /// nothing arrived by `until`.
    ///
    /// The deadline is checked on every step, also while frames keep
    /// arriving: a script that keeps the pipe full cannot outrun it.
    ///
    /// When the pipe is empty it first spins (retrying the read, yielding
    /// the core in between) for as long as [`Spin`] judges worth it, then
    /// sleeps in poll.
    pub fn next(&mut self, proc: &mut Proc, until: Option<Instant>) -> Result<Incoming, Broken> {
        // When this wait for bytes began, while it spins.
        let mut spinning: Option<Instant> = None;
        loop {
            if let Some((at, d)) = self.limits.deadline {
                if !self.exited && Instant::now() >= at {
                    return Ok(Incoming::Expired(
                        Limit::Deadline,
                        format!("the script ran past its deadline of {d:?}"),
                    ));
                }
            }
            if let Some(frame) = self.frames.next_frame().map_err(Broken::Decode)? {
                return Ok(Incoming::Frame(frame));
            }
            if self.drained && !self.exited {
                let limit = self.next_limit();
                if let Some((at, which, what)) = &limit {
                    if Instant::now() >= *at {
                        return Ok(Incoming::Expired(*which, what.clone()));
                    }
                }
                let now = Instant::now();
                if until.is_some_and(|u| now >= u) {
                    return Ok(Incoming::Waiting);
                }
                let started = *spinning.get_or_insert(now);
                if now.duration_since(started) < self.spin.budget(now) {
                    // Give the core away if something else wants it:
                    // spinning must not starve the process it waits for.
                    std::thread::yield_now();
                } else {
                    spinning = None;
                    let wake = match (limit.map(|(at, _, _)| at), until) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    let ready = self.wait(proc, wake)?;
                    self.spin.record(started.elapsed(), false);
                    if !ready {
                        // A limit or `until` fell due, or a signal came.
                        continue;
                    }
                }
            }
            if !self.raised && self.frames.pending_len().is_some_and(|n| n >= LARGE_FRAME) {
                raise_pipe(&self.fd, &mut self.raised);
            }
            let fd = &self.fd;
            let mut short = false;
            let read = self.frames.read_with(|buf| {
                let n = rustix::io::read(fd, &mut *buf)?;
                short = n < buf.len();
                Ok(n)
            });
            self.drained = short;
            if matches!(read, Ok(n) if n > 0) {
                self.last_heard = Instant::now();
                if let Some(started) = spinning.take() {
                    self.spin.record(started.elapsed(), true);
                }
            }
            match read {
                Ok(0) => {
                    self.frames.finish().map_err(Broken::Decode)?;
                    return Ok(if self.exited {
                        Incoming::Exited
                    } else {
                        Incoming::Closed
                    });
                }
                Ok(_) | Err(Errno::INTR) => {}
                Err(Errno::AGAIN) if self.exited => {
                    // Drained; a grandchild may still hold the pipe, but the
                    // child is gone and nothing more belongs to it.
                    self.frames.finish().map_err(Broken::Decode)?;
                    return Ok(Incoming::Exited);
                }
                Err(Errno::AGAIN) => self.drained = true,
                Err(e) => return Err(Broken::Io(e.into())),
            }
        }
    }

    /// Waits in poll; `false` when `until` passed with nothing to read.
    /// Descriptors of shared values that arrive meanwhile are taken off
    /// their socket, so the script never waits on a full socket while the
    /// host waits for the frame behind them.
    /// A script that breaks the rules of the side socket (a message without
    /// a descriptor, more descriptors waiting than the host holds) is a
    /// protocol violation.
    fn wait(&mut self, proc: &mut Proc, until: Option<Instant>) -> Result<bool, Broken> {
        let timeout = until.map(|at| at.saturating_duration_since(Instant::now()));
        let side = self.inbox.as_ref().map(|i| i.socket().as_fd());
        let ready = self
            .watch
            .wait_ready(self.fd.as_fd(), false, side, timeout)
            .map_err(Broken::Io)?;
        if ready.also {
            if let Some(inbox) = &mut self.inbox {
                inbox
                    .drain()
                    .map_err(|e| Broken::Decode(DecodeError::Invalid(e)))?;
            }
        }
        if ready.exited
            || (self.watch.pidfd.is_none() && proc.try_status().map_err(Broken::Io)?.is_some())
        {
            self.watch.mark_exited();
            self.exited = true;
            return Ok(true);
        }
        Ok(ready.ready)
    }
}

/// The writing end: frames to the child.
pub(crate) struct Writer {
    fd: Option<File>,
    watch: ExitWatch,
    /// The socket memory files for shared values are passed over.
    side: Option<Arc<OwnedFd>>,
    /// The pipe was raised for large frames.
    raised: bool,
}

impl Writer {
    pub fn new(fd: File, watch: ExitWatch, side: Option<Arc<OwnedFd>>) -> Writer {
        Writer {
            fd: Some(fd),
            watch,
            side,
            raised: false,
        }
    }

    /// Closes the host's end: the child reads end-of-file after what was sent.
    pub fn close(&mut self) {
        self.fd = None;
    }

    /// Writes what the pipe takes of `out`, passing its memory files first:
    /// `Ok(true)` once all of it is written, `Ok(false)` when the pipe (or the
    /// side socket) is full and `block` is false. With `block` it waits for
    /// room, for as long as the script lives (its exit ends the wait with
    /// [`Broken::Gone`]): only a script's own writer thread blocks so.
    ///
    /// A frame of at most `PIPE_BUF` (4096) bytes is written whole or not at
    /// all; a larger one may be left part-way, to be resumed by the next
    /// call: a frame is never cut.
    ///
    /// # Errors
    ///
    /// [`Broken::Gone`] when the child closed its end or exited, or the host
    /// closed its own; [`Broken::Io`] for a host-side OS error.
    pub fn advance(&mut self, out: &mut Outgoing, block: bool) -> Result<bool, Broken> {
        let Some(fd) = &self.fd else {
            return Err(Broken::Gone);
        };
        while out.fds_sent < out.enc.shared_files.len() {
            let Some(side) = &self.side else {
                return Err(Broken::Io(io::Error::other(
                    "a shared value, but shared memory is off",
                )));
            };
            let (sent, result) =
                crate::shm::send_fds(&**side, &out.enc.shared_files[out.fds_sent..]);
            out.fds_sent += sent;
            match result {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !block {
                        return Ok(false);
                    }
                    if self.watch.wait(side.as_fd(), true).map_err(Broken::Io)? {
                        return Err(Broken::Gone);
                    }
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => {
                    return Err(Broken::Gone)
                }
                Err(e) => return Err(Broken::Io(e)),
            }
        }
        if !self.raised && out.len() >= LARGE_FRAME {
            raise_pipe(fd, &mut self.raised);
        }
        let pieces = 1 + out.enc.attachments.len();
        while out.index < pieces {
            if out.offset == out.piece(out.index).len() {
                out.index += 1;
                out.offset = 0;
                continue;
            }
            let slices: Vec<io::IoSlice<'_>> = std::iter::once(&out.piece(out.index)[out.offset..])
                .chain((out.index + 1..pieces).map(|i| out.piece(i)))
                .map(io::IoSlice::new)
                .collect();
            match process::without_sigpipe(|| rustix::io::writev(fd, &slices)) {
                Ok(mut n) => {
                    while n > 0 && out.index < pieces {
                        let left = out.piece(out.index).len() - out.offset;
                        if n >= left {
                            n -= left;
                            out.index += 1;
                            out.offset = 0;
                        } else {
                            out.offset += n;
                            n = 0;
                        }
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::PIPE) => return Err(Broken::Gone),
                Err(Errno::AGAIN) => {
                    if !block {
                        return Ok(false);
                    }
                    if self.watch.wait(fd.as_fd(), true).map_err(Broken::Io)? {
                        return Err(Broken::Gone);
                    }
                }
                Err(e) => return Err(Broken::Io(e.into())),
            }
        }
        Ok(true)
    }
}

/// A frame on its way into the pipe, with how much of it is written: the
/// pipe may take it in several steps, by several threads in turn.
pub(crate) struct Outgoing {
    enc: Encoded,
    /// Memory files passed so far.
    fds_sent: usize,
    /// The piece being written (0: the head, then the attachments) and how
    /// many of its bytes are written.
    index: usize,
    offset: usize,
}

impl Outgoing {
    pub fn new(enc: Encoded) -> Outgoing {
        Outgoing {
            enc,
            fds_sent: 0,
            index: 0,
            offset: 0,
        }
    }

    /// Whether any of it reached the script (it can no longer be taken back).
    pub fn begun(&self) -> bool {
        self.fds_sent > 0 || self.index > 0 || self.offset > 0
    }

    /// Its size on the wire.
    pub fn len(&self) -> usize {
        self.enc.len()
    }

    fn piece(&self, i: usize) -> &[u8] {
        if i == 0 {
            &self.enc.head
        } else {
            &self.enc.attachments[i - 1]
        }
    }
}
