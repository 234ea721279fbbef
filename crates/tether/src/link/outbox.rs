//! The frames on their way to one script, and who writes them.
//!
//! No thread waits for the script to read while it holds something another
//! sender needs, and no sender waits for its frame to be written. A sender
//! queues its frame; when nobody is writing, it writes the queue itself, as
//! far as the pipe takes it at once (the common case: a small frame into a
//! pipe with room, one `writev`, no other thread). What the pipe does not take
//! is finished by the script's own writer thread (`tether-writer-<pid>`),
//! started when needed and gone when the queue is empty: a script that stops
//! reading holds one thread of its own and nothing that other scripts or the
//! process share.
//!
//! A call waits for its answer, not for its frame: when it gives up, a frame
//! not begun is taken back ([`Outbox::take_back`]; the script never sees the
//! call), and one begun is finished, since a frame cannot be cut. The queue is
//! bounded: past [`QUEUE_LIMIT`] bytes, a blocking sender waits for the script
//! to read (the backpressure a script that floods calls and reads no answers
//! gets) and an async one is refused.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use crate::protocol::message::Encoded;
use crate::sync::lock;
use crate::transport::{Broken, Outgoing, Writer};

/// Past this many bytes queued for one script, senders wait or are refused.
pub(crate) const QUEUE_LIMIT: usize = 64 * 1024 * 1024;

/// Why a frame was not queued.
#[derive(Debug)]
pub(crate) enum Unsent {
    /// The channel is closed, or a write to it failed.
    Broken(Broken),
    /// [`QUEUE_LIMIT`] bytes wait for the script to read already.
    Full(usize),
}

/// One script's queue of frames and its pipe.
pub(crate) struct Outbox {
    state: Mutex<State>,
    /// The queue shrank, or the channel broke or closed.
    changed: Condvar,
    /// The pipe, locked only by whoever holds the writing role.
    pipe: Mutex<Writer>,
    pid: u32,
}

struct State {
    queue: VecDeque<Entry>,
    /// Someone holds the writing role: a sender, or the writer thread (which
    /// is started only by a role holder, and ends when it gives the role up).
    writing: bool,
    next_ticket: u64,
    queued_bytes: usize,
    /// A write failed, or the pipe was closed: nothing more goes out.
    broken: bool,
    /// Close the pipe once the queue is written; no frame may join it.
    closing: bool,
}

impl State {
    /// Whether frames may still join the queue.
    fn open(&self) -> bool {
        !self.broken && !self.closing
    }

    /// Takes the writing role if nobody holds it; whether it was taken.
    fn claim(&mut self) -> bool {
        !std::mem::replace(&mut self.writing, true)
    }

    /// Puts a frame at the end of the queue; its ticket.
    fn push(&mut self, enc: Encoded) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.queued_bytes += enc.len();
        self.queue.push_back(Entry {
            ticket,
            out: Outgoing::new(enc),
        });
        ticket
    }
}

struct Entry {
    ticket: u64,
    out: Outgoing,
}

impl Outbox {
    pub fn new(writer: Writer, pid: u32) -> Outbox {
        Outbox {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                writing: false,
                next_ticket: 0,
                queued_bytes: 0,
                broken: false,
                closing: false,
            }),
            changed: Condvar::new(),
            pipe: Mutex::new(writer),
            pid,
        }
    }

    /// Queues a call's frame and writes what the pipe takes now; its ticket,
    /// for [`take_back`](Outbox::take_back). Refused past [`QUEUE_LIMIT`].
    pub fn submit(self: &Arc<Self>, enc: Encoded) -> Result<u64, Unsent> {
        let (ticket, claimed) = self.queue(enc, true)?;
        self.write_if(claimed);
        Ok(ticket)
    }

    /// Queues `enc` and writes what the pipe takes now, first waiting while
    /// [`QUEUE_LIMIT`] bytes are queued (until the script reads, or ends).
    pub fn send(self: &Arc<Self>, enc: Encoded) -> Result<(), Unsent> {
        let claimed = {
            let mut state = lock(&self.state);
            while state.queued_bytes > QUEUE_LIMIT && state.open() {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if !state.open() {
                return Err(Unsent::Broken(Broken::Gone));
            }
            state.push(enc);
            state.claim()
        };
        self.write_if(claimed);
        Ok(())
    }

    /// Queues `enc` without ever waiting or being refused for room (from
    /// `Drop`, from an async caller's cleanup): the frames sent so are few and
    /// small (a cancellation per abandoned call, an error answer).
    pub fn send_soon(self: &Arc<Self>, enc: Encoded) {
        if let Ok((_, claimed)) = self.queue(enc, false) {
            self.write_if(claimed);
        }
    }

    /// Queues `enc` unless [`QUEUE_LIMIT`] bytes wait already (for async
    /// callers, which must not block).
    pub fn try_send(self: &Arc<Self>, enc: Encoded) -> Result<(), Unsent> {
        let (_, claimed) = self.queue(enc, true)?;
        self.write_if(claimed);
        Ok(())
    }

    /// Takes back the frame of `ticket` if none of it is written yet: `true`
    /// when the script will never see it.
    pub fn take_back(&self, ticket: u64) -> bool {
        let mut state = lock(&self.state);
        let Some(i) = state.queue.iter().position(|e| e.ticket == ticket) else {
            return false;
        };
        if state.queue[i].out.begun() {
            return false;
        }
        if let Some(e) = state.queue.remove(i) {
            state.queued_bytes -= e.out.len();
        }
        self.changed.notify_all();
        true
    }

    /// Closes the pipe once what is queued is written (the script reads end
    /// of file after it); frames sent later fail.
    pub fn close_after_queue(self: &Arc<Self>) {
        lock(&self.state).closing = true;
        self.drive();
    }

    /// Sends `last` (the stop) in place of everything not begun, then closes
    /// the pipe; never waits. A frame begun is finished first (by the writer
    /// thread, while the script lives).
    pub fn finish_with(self: &Arc<Self>, last: Encoded) {
        {
            let mut state = lock(&self.state);
            // A frame begun stays (it cannot be cut); the rest is dropped.
            let keep = usize::from(state.queue.front().is_some_and(|e| e.out.begun()));
            let dropped: usize = state.queue.drain(keep..).map(|e| e.out.len()).sum();
            state.queued_bytes -= dropped;
            if state.open() {
                state.push(last);
            }
            state.closing = true;
            self.changed.notify_all();
        }
        self.drive();
    }

    /// Puts a frame in the queue (`bounded`: refused past the limit): its
    /// ticket, and whether this thread took the writing role with it.
    fn queue(&self, enc: Encoded, bounded: bool) -> Result<(u64, bool), Unsent> {
        let mut state = lock(&self.state);
        if !state.open() {
            return Err(Unsent::Broken(Broken::Gone));
        }
        if bounded && state.queued_bytes > QUEUE_LIMIT {
            return Err(Unsent::Full(state.queued_bytes));
        }
        let ticket = state.push(enc);
        Ok((ticket, state.claim()))
    }

    /// Writes the queue if nobody else does: as far as the pipe takes it at
    /// once, the rest on the writer thread.
    fn drive(self: &Arc<Self>) {
        let claimed = lock(&self.state).claim();
        self.write_if(claimed);
    }

    /// With the writing role `claimed`: writes what the pipe takes at once,
    /// and hands the rest to the writer thread.
    fn write_if(self: &Arc<Self>, claimed: bool) {
        if claimed && !self.write_queue(false) {
            self.start_thread();
        }
    }

    /// With the writing role held: writes the queue in order. `false` when
    /// the pipe is full (and `block` is off): the role stays held, for the
    /// writer thread to take over. `true` once the role is given up: the
    /// queue is empty, or the channel is done.
    fn write_queue(&self, block: bool) -> bool {
        let mut pipe = lock(&self.pipe);
        loop {
            let mut entry = {
                let mut state = lock(&self.state);
                match state.queue.pop_front() {
                    Some(e) => e,
                    None => {
                        if state.closing {
                            pipe.close();
                            state.broken = true;
                        }
                        state.writing = false;
                        self.changed.notify_all();
                        return true;
                    }
                }
            };
            let result = pipe.advance(&mut entry.out, block);
            let mut state = lock(&self.state);
            match result {
                Ok(true) => {
                    state.queued_bytes -= entry.out.len();
                    self.changed.notify_all();
                }
                Ok(false) => {
                    // The pipe is full: the writer thread goes on from here.
                    state.queue.push_front(entry);
                    return false;
                }
                Err(e) => {
                    if !matches!(e, Broken::Gone) {
                        tracing::warn!(pid = self.pid, "cannot write to the script: {e:?}");
                    }
                    state.broken = true;
                    state.queue.clear();
                    state.queued_bytes = 0;
                    pipe.close();
                    state.writing = false;
                    self.changed.notify_all();
                    return true;
                }
            }
        }
    }

    /// Hands the writing role, which this thread holds, to the writer thread.
    fn start_thread(self: &Arc<Self>) {
        let outbox = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name(format!("tether-writer-{}", self.pid))
            .spawn(move || {
                outbox.write_queue(true);
            });
        if let Err(e) = started {
            // Without a thread the queue cannot be written: the channel is
            // broken, as if a write had failed.
            tracing::warn!(pid = self.pid, "cannot start a writer thread: {e}");
            lock(&self.pipe).close();
            let mut state = lock(&self.state);
            state.broken = true;
            state.queue.clear();
            state.queued_bytes = 0;
            state.writing = false;
            self.changed.notify_all();
        }
    }
}
