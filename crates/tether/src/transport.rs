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
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustix::io::Errno;

use crate::child::{self, Proc};
use crate::protocol::frame::FrameReader;
use crate::protocol::DecodeError;

/// How often to check for exit on kernels without pidfd.
const EXIT_POLL: Duration = Duration::from_millis(20);

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
                .exit_fd()
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
    fn wait(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        write: bool,
        limit: Option<Duration>,
    ) -> io::Result<bool> {
        let pidfd = self.pidfd.as_deref().map(AsFd::as_fd);
        let timeout = match (pidfd.is_none().then_some(EXIT_POLL), limit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let ready = child::wait(fd, write, pidfd, timeout)?;
        if ready.exited {
            self.mark_exited();
        }
        Ok(ready.exited || self.has_exited())
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
    /// A time limit ran out (the message says which).
    Expired(String),
}

/// Time limits on reading.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    /// When the whole script must have ended.
    pub deadline: Option<(Instant, Duration)>,
    /// How long the script may stay silent.
    pub idle: Option<Duration>,
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The child's bytes do not form valid frames.
    Decode(DecodeError),
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
}

impl Reader {
    pub fn new(fd: File, max_frame: u32, watch: ExitWatch, limits: Limits) -> Reader {
        Reader {
            fd,
            frames: FrameReader::new(max_frame),
            watch,
            exited: false,
            drained: false,
            limits,
            last_heard: Instant::now(),
        }
    }

    /// The earliest time limit: when it falls, and what it is.
    fn next_limit(&self) -> Option<(Instant, String)> {
        let deadline = self
            .limits
            .deadline
            .map(|(at, d)| (at, format!("the script ran past its deadline of {d:?}")));
        let idle = self.limits.idle.map(|d| {
            (
                self.last_heard + d,
                format!("the script sent nothing for {d:?} (idle timeout)"),
            )
        });
        match (deadline, idle) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// The next frame, or how the stream ended.
    pub fn next(&mut self, proc: &mut Proc) -> Result<Incoming, ReadError> {
        loop {
            if let Some(frame) = self.frames.next_frame().map_err(ReadError::Decode)? {
                return Ok(Incoming::Frame(frame));
            }
            if self.drained && !self.exited {
                let limit = self.next_limit();
                if let Some((at, what)) = &limit {
                    if Instant::now() >= *at {
                        return Ok(Incoming::Expired(what.clone()));
                    }
                }
                self.wait(proc, limit.map(|(at, _)| at))
                    .map_err(ReadError::Io)?;
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
            }
            match read {
                Ok(0) => {
                    self.frames.finish().map_err(ReadError::Decode)?;
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
                    self.frames.finish().map_err(ReadError::Decode)?;
                    return Ok(Incoming::Exited);
                }
                Err(Errno::AGAIN) => self.drained = true,
                Err(e) => return Err(ReadError::Io(e.into())),
            }
        }
    }

    fn wait(&mut self, proc: &mut Proc, until: Option<Instant>) -> io::Result<()> {
        let timeout = until.map(|at| at.saturating_duration_since(Instant::now()));
        let exited = self.watch.wait(self.fd.as_fd(), false, timeout)?;
        if exited || (self.watch.pidfd.is_none() && proc.try_status()?.is_some()) {
            self.watch.mark_exited();
            self.exited = true;
        }
        Ok(())
    }
}

/// Writing found the child gone (it closed its read end, or exited).
#[derive(Debug)]
pub(crate) struct Gone;

/// The writing end: frames to the child.
pub(crate) struct Writer {
    fd: Option<File>,
    watch: ExitWatch,
}

impl Writer {
    pub fn new(fd: File, watch: ExitWatch) -> Writer {
        Writer {
            fd: Some(fd),
            watch,
        }
    }

    /// Closes the host's end: the child reads end-of-file after what was sent.
    pub fn close(&mut self) {
        self.fd = None;
    }

    /// Writes a small frame only if the pipe takes it at once, and then
    /// closes the host's end; never waits. Frames up to `PIPE_BUF` (4096
    /// bytes) are written whole or not at all, so the stream stays intact.
    pub fn send_now_and_close(&mut self, frame: &[u8]) {
        if let Some(fd) = &self.fd {
            if frame.len() <= 4096 {
                let _ = child::without_sigpipe(|| rustix::io::write(fd, frame));
            }
        }
        self.fd = None;
    }

    /// Writes `parts` as one contiguous stream of bytes.
    ///
    /// # Errors
    ///
    /// `Ok(Err(Gone))` when the child closed its end or exited, or the host
    /// closed its own; `Err` for a host-side OS error.
    pub fn send(&mut self, parts: &[&[u8]]) -> io::Result<Result<(), Gone>> {
        let Some(fd) = &self.fd else {
            return Ok(Err(Gone));
        };
        let mut index = 0;
        let mut offset = 0;
        while index < parts.len() {
            if offset == parts[index].len() {
                index += 1;
                offset = 0;
                continue;
            }
            let slices: Vec<io::IoSlice<'_>> = std::iter::once(&parts[index][offset..])
                .chain(parts[index + 1..].iter().copied())
                .map(io::IoSlice::new)
                .collect();
            match child::without_sigpipe(|| rustix::io::writev(fd, &slices)) {
                Ok(mut n) => {
                    while n > 0 && index < parts.len() {
                        let left = parts[index].len() - offset;
                        if n >= left {
                            n -= left;
                            index += 1;
                            offset = 0;
                        } else {
                            offset += n;
                            n = 0;
                        }
                    }
                }
                Err(Errno::INTR) => {}
                Err(Errno::PIPE) => return Ok(Err(Gone)),
                Err(Errno::AGAIN) => {
                    if self.watch.wait(fd.as_fd(), true, None)? {
                        return Ok(Err(Gone));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Ok(()))
    }
}
