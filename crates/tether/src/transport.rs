//! Blocking frame I/O over the child's pipes that never outlives the child.
//!
//! Both pipe ends are non-blocking. Reading waits in `poll` on the pipe *and*
//! on the child's exit descriptor: a child that exits while a grandchild
//! still holds the pipe open would otherwise leave the host waiting for an
//! end-of-file that never comes. Once the child has exited, whatever is left
//! in the pipe is drained and decoded, and then the stream counts as ended.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use bytes::Bytes;
use rustix::io::Errno;

use crate::child::{self, Channel, Proc};
use crate::protocol::frame::FrameReader;
use crate::protocol::DecodeError;

/// How often to check for exit on kernels without pidfd.
const EXIT_POLL: Duration = Duration::from_millis(20);

/// What the next read produced.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One complete frame body.
    Frame(Bytes),
    /// The child closed its end of the channel (it may still be running).
    Closed,
    /// The child exited and everything it had written was read.
    Exited,
}

/// Why reading or writing stopped.
#[derive(Debug)]
pub(crate) enum TransportError {
    /// The child's bytes do not form valid frames.
    Decode(DecodeError),
    /// An OS error on the host's side.
    Io(io::Error),
}

/// Writing found the child gone (it closed its read end or exited).
#[derive(Debug)]
pub(crate) struct Gone;

pub(crate) struct Transport {
    channel: Channel,
    reader: FrameReader,
    /// The child has exited; reads now drain what is left without waiting.
    exited: bool,
    /// The last read returned less than it asked for, so the pipe is most
    /// likely empty: wait before reading instead of paying for a read that
    /// fails with EAGAIN (one system call less per message).
    drained: bool,
}

impl Transport {
    pub fn new(channel: Channel, max_frame: u32) -> Transport {
        Transport {
            channel,
            reader: FrameReader::new(max_frame),
            exited: false,
            drained: false,
        }
    }

    /// The next frame, or how the stream ended.
    pub fn next(&mut self, proc: &mut Proc) -> Result<Incoming, TransportError> {
        loop {
            if let Some(frame) = self.reader.next_frame().map_err(TransportError::Decode)? {
                return Ok(Incoming::Frame(frame));
            }
            if self.drained && !self.exited {
                self.wait(false, proc).map_err(TransportError::Io)?;
            }
            let fd = &self.channel.from_child;
            let mut short = false;
            let read = self.reader.read_with(|buf| {
                let n = rustix::io::read(fd, &mut *buf)?;
                short = n < buf.len();
                Ok(n)
            });
            self.drained = short;
            match read {
                Ok(0) => {
                    self.reader.finish().map_err(TransportError::Decode)?;
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
                    self.reader.finish().map_err(TransportError::Decode)?;
                    return Ok(Incoming::Exited);
                }
                Err(Errno::AGAIN) => self.drained = true,
                Err(e) => return Err(TransportError::Io(e.into())),
            }
        }
    }

    /// Writes `parts` as one contiguous stream of bytes.
    ///
    /// # Errors
    ///
    /// `Ok(Err(Gone))` when the child closed its end or exited; `Err` for a
    /// host-side OS error.
    pub fn send(
        &mut self,
        parts: &[&[u8]],
        proc: &mut Proc,
    ) -> Result<Result<(), Gone>, io::Error> {
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
            match rustix::io::writev(&self.channel.to_child, &slices) {
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
                    if self.exited {
                        return Ok(Err(Gone));
                    }
                    self.wait(true, proc)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Ok(()))
    }

    /// Waits until the pipe is ready or the child exits.
    fn wait(&mut self, write: bool, proc: &mut Proc) -> io::Result<()> {
        let fd = if write {
            self.channel.to_child.as_fd()
        } else {
            self.channel.from_child.as_fd()
        };
        let exit_fd = proc.exit_fd();
        let timeout = exit_fd.is_none().then_some(EXIT_POLL);
        let ready = child::wait(fd, write, exit_fd, timeout)?;
        if ready.exited || (!ready.io && proc.try_status()?.is_some()) {
            self.exited = true;
        }
        Ok(())
    }
}
