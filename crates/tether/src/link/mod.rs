//! [`Link`]: the host's end of one script's channel, shared by everyone who
//! writes to the script: the writer (behind a lock), the table of the
//! host's calls waiting for an answer, id allocation, the nesting depth of
//! calls made from host functions, and whether large values go in shared
//! memory.
//!
//! A call into the script goes through these steps ([`Link::call`]):
//!
//! ```text
//!   bound the nesting ─▶ enter the call in the table ─▶ send it
//!        ─▶ wait for the answer (the script's reader thread reads meanwhile)
//!        ─▶ (deadline passed) forget the call, send rpc.cancel
//! ```
//!
//! The reader delivers each reply to its entry ([`Link::deliver`]); when the
//! script ends, every entry left fails ([`Link::close`]). A host function
//! that runs on the script's reader thread is its own reader while it waits:
//! it reads the answer itself, and runs the calls the script makes within
//! the call on the same thread (a nested call crosses no thread).

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicUsize, Ordering};
mod future;
mod outbox;

use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::{Error, RemoteError, ValueError};
use crate::pool::{self, Inner as PoolInner};
use crate::protocol::message::{EncodeError, Encoded, Id, Message, Params, RpcError};
use crate::protocol::method;
use crate::scope;
use crate::stats::{Counters, Stats};
use crate::sync::lock;
use crate::trace::{CallSpan, Direction, Ended};
use crate::transport::{Broken, Writer};

use crate::value::Value;
use outbox::{Outbox, Unsent};

/// The host's end of one script's channel.
pub(crate) struct Link {
    pub pid: u32,
    /// The script's file name, for spans and messages.
    pub script: String,
    /// The value the host attached to the script when it spawned it.
    pub context: Option<Arc<dyn Any + Send + Sync>>,
    /// The largest frame the host sends the script: the host's own limit, or
    /// the client's when it announced a smaller one (protocol 5).
    max_frame: AtomicU32,
    pub counters: Arc<Counters>,
    /// The host has async functions, which run on the script's runtime.
    pub has_async: bool,
    /// Calls into the script made by host functions serving it, pending now.
    nested: AtomicUsize,
    max_depth: usize,
    /// The frames on their way to the script, and its pipe.
    outbox: Arc<Outbox>,
    /// Bytes values at least this large go in shared memory (`usize::MAX`:
    /// never; set once the client said it can take them).
    share_threshold: AtomicUsize,
    next_id: AtomicI64,
    pending: Mutex<Pending>,
    /// Calls made before the script said it serves wait on this.
    ready: Ready,
    /// Wakes a script busy in an export to read a cancellation or a stop
    /// (SIGURG, when the client said it handles it).
    interrupt: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
}

/// The host's calls waiting for an answer.
struct Pending {
    calls: HashMap<i64, Arc<Slot>>,
    /// Why no more calls can be made, once the script has ended.
    closed: Option<String>,
}

/// Whether the script serves yet (it said so with `rpc.ready`).
struct Ready {
    state: Mutex<ReadyState>,
    cv: Condvar,
    /// Async calls waiting for readiness.
    wakers: Mutex<Vec<Waker>>,
    timeout: Duration,
}

impl Ready {
    fn wake_all(&self) {
        self.cv.notify_all();
        for waker in std::mem::take(&mut *lock(&self.wakers)) {
            waker.wake();
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum ReadyState {
    /// Not yet: calls wait.
    Starting,
    /// The script serves these exports.
    Serving(Vec<String>),
    /// The script ended (or broke the protocol) before it was ready.
    Never(String),
}

/// Where the answer to one call lands.
struct Slot {
    answer: Mutex<Option<Result<Value, Error>>>,
    cv: Condvar,
    /// The task awaiting the answer, for an async call.
    waker: Mutex<Option<Waker>>,
    /// The pool whose worker waits here (it must be woken through the pool).
    pool: Option<Arc<PoolInner>>,
    /// The call's span: the script's log records made while it runs it
    /// belong there.
    span: tracing::Span,
}

impl Slot {
    fn fill(&self, answer: Result<Value, Error>) {
        *lock(&self.answer) = Some(answer);
        self.cv.notify_all();
        if let Some(waker) = lock(&self.waker).take() {
            waker.wake();
        }
        if let Some(pool) = &self.pool {
            pool.wake();
        }
    }

    fn is_filled(&self) -> bool {
        lock(&self.answer).is_some()
    }

    /// Waits for the answer until `deadline`; whether it came.
    fn wait(&self, deadline: Option<Instant>) -> bool {
        if let Some(pool) = &self.pool {
            // A pool worker lets queued host functions run while it waits:
            // the script's nested calls may be among them.
            return pool.help_until(&|| self.is_filled(), deadline);
        }
        let mut answer = lock(&self.answer);
        loop {
            if answer.is_some() {
                return true;
            }
            answer = match deadline {
                None => self.cv.wait(answer).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return false;
                    }
                    self.cv
                        .wait_timeout(answer, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    /// Ready once the answer is there (registering the task to wake).
    fn poll_filled(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_filled() {
            return Poll::Ready(());
        }
        *lock(&self.waker) = Some(cx.waker().clone());
        // The answer may have come between the look and the registration.
        if self.is_filled() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    fn take(&self) -> Result<Value, Error> {
        lock(&self.answer)
            .take()
            .unwrap_or_else(|| Err(Error::gone("the call was abandoned")))
    }
}

/// What a [`Link`] is made of, besides its writer.
pub(crate) struct LinkSetup {
    pub pid: u32,
    pub script: String,
    pub context: Option<Arc<dyn Any + Send + Sync>>,
    pub max_frame: u32,
    pub max_depth: usize,
    pub ready_timeout: Duration,
    pub counters: Arc<Counters>,
    pub has_async: bool,
}

impl Link {
    pub fn new(setup: LinkSetup, writer: Writer) -> Link {
        let LinkSetup {
            pid,
            script,
            context,
            max_frame,
            max_depth,
            ready_timeout,
            counters,
            has_async,
        } = setup;
        Link {
            pid,
            script,
            context,
            max_frame: AtomicU32::new(max_frame),
            counters,
            has_async,
            nested: AtomicUsize::new(0),
            max_depth,
            outbox: Arc::new(Outbox::new(writer, pid)),
            share_threshold: AtomicUsize::new(usize::MAX),
            next_id: AtomicI64::new(1),
            pending: Mutex::new(Pending {
                calls: HashMap::new(),
                closed: None,
            }),
            ready: Ready {
                state: Mutex::new(ReadyState::Starting),
                cv: Condvar::new(),
                wakers: Mutex::new(Vec::new()),
                timeout: ready_timeout,
            },
            interrupt: std::sync::OnceLock::new(),
        }
    }

    /// From now on, `wake` tells the script to look at its pipe after a
    /// cancellation or a stop was sent.
    pub fn set_interrupt(&self, wake: Box<dyn Fn() + Send + Sync>) {
        let _ = self.interrupt.set(wake);
    }

    /// Wakes the script to read what was just sent (if it asked for that).
    fn wake_script(&self) {
        if let Some(wake) = self.interrupt.get() {
            wake();
        }
    }

    /// Refuses to block the thread of a current-thread runtime that the
    /// script's async host functions need.
    /// `what` names the call for the error (made only when there is one).
    pub fn may_block(&self, what: impl FnOnce() -> String) -> Result<(), Error> {
        if self.has_async && crate::runtime::is_current_thread() {
            return Err(Error::Blocking(what()));
        }
        Ok(())
    }

    /// Whether the script has ended (no call can be made any more).
    pub fn is_closed(&self) -> bool {
        lock(&self.pending).closed.is_some()
    }

    /// What the channel has carried so far.
    pub fn stats(&self) -> Stats {
        self.counters.snapshot()
    }

    /// The span of the host's call `id` into the script, while it waits.
    pub fn span_of(&self, id: i64) -> Option<tracing::Span> {
        lock(&self.pending).calls.get(&id).map(|s| s.span.clone())
    }

    /// The largest frame the host may send the script now.
    pub fn max_frame(&self) -> u32 {
        self.max_frame.load(Ordering::Relaxed)
    }

    /// The client takes no frame larger than `max` (it said so in its hello):
    /// from now on the host sends none.
    pub fn limit_frames_to(&self, max: u32) {
        self.max_frame.fetch_min(max, Ordering::Relaxed);
    }

    /// From now on, sends bytes values of at least `threshold` bytes in
    /// shared memory.
    pub fn share_from(&self, threshold: usize) {
        self.share_threshold.store(threshold, Ordering::Release);
    }

    /// The script said it serves (`rpc.ready`), with these exports: calls
    /// waiting for that go ahead.
    pub fn set_ready(&self, exports: Vec<String>) {
        let mut state = lock(&self.ready.state);
        if *state == ReadyState::Starting {
            *state = ReadyState::Serving(exports);
        }
        drop(state);
        self.ready.wake_all();
    }

    /// Waits until the script serves, for at most `timeout`; its exports.
    ///
    /// # Errors
    ///
    /// [`Error::NotReady`] when it is not ready in time, [`Error::Closed`]
    /// when it ended first.
    pub fn wait_ready(&self, timeout: Duration) -> Result<Vec<String>, Error> {
        let deadline = crate::clock::deadline_in(timeout);
        let mut state = lock(&self.ready.state);
        loop {
            match &*state {
                ReadyState::Serving(exports) => return Ok(exports.clone()),
                ReadyState::Never(why) => return Err(Error::gone(why.clone())),
                ReadyState::Starting => {}
            }
            let left = crate::clock::left_until(deadline);
            if left.is_zero() {
                return Err(not_ready_in(self.pid, timeout));
            }
            state = self
                .ready
                .cv
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Encodes a message to send, large values in shared memory when that
    /// is on.
    pub fn encode(&self, msg: &Message, max: u32) -> Result<Encoded, EncodeError> {
        let threshold = self.share_threshold.load(Ordering::Acquire);
        if threshold == usize::MAX {
            return msg.encode(max);
        }
        let counters = Arc::clone(&self.counters);
        msg.encode_shared(
            max,
            Some(crate::protocol::Share {
                threshold,
                place: Box::new(move |bytes| {
                    Counters::add(&counters.bytes_to_script, bytes.len() as u64);
                    crate::shm::place(bytes)
                }),
            }),
        )
    }

    /// Sends one encoded message: queued, written by this thread as far as
    /// the pipe takes it now, the rest by the script's writer thread. Waits
    /// only while 64 MiB wait for the script to read already (backpressure).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the script is gone or the channel closed.
    pub fn send(&self, encoded: Encoded) -> Result<(), Error> {
        Counters::add(&self.counters.bytes_to_script, encoded.len() as u64);
        self.outbox.send(encoded).map_err(|u| self.unsent(u))
    }

    /// Queues a message without ever waiting (for cleanups, which must not block).
    pub fn send_soon(&self, encoded: Encoded) {
        Counters::add(&self.counters.bytes_to_script, encoded.len() as u64);
        self.outbox.send_soon(encoded);
    }

    /// Queues a message unless 64 MiB wait for the script already (for
    /// async callers, which must not block).
    pub fn try_send(&self, encoded: Encoded) -> Result<(), Error> {
        let len = encoded.len() as u64;
        self.outbox.try_send(encoded).map_err(|u| self.unsent(u))?;
        Counters::add(&self.counters.bytes_to_script, len);
        Ok(())
    }

    /// What a frame that could not be queued means to its sender.
    fn unsent(&self, unsent: Unsent) -> Error {
        match unsent {
            Unsent::Broken(b) => self.broken(b),
            Unsent::Full(bytes) => Error::limit(
                crate::error::Limit::Backlog,
                format!(
                "{bytes} bytes wait for script {} to read its pipe already (the limit is {} MiB)",
                self.pid,
                outbox::QUEUE_LIMIT >> 20
            ),
            ),
        }
    }

    /// What a broken channel means to whoever wrote to it.
    fn broken(&self, broken: Broken) -> Error {
        match broken {
            Broken::Gone | Broken::Decode(_) => Error::gone(format!("script {} is gone", self.pid)),
            Broken::Io(source) => Error::Io {
                context: format!("writing to script {}", self.pid),
                source,
            },
        }
    }

    /// Closes the host's end of the channel once what is queued is written
    /// (the script reads end of file after it); never waits.
    pub fn close_writer(&self) {
        self.outbox.close_after_queue();
    }

    /// Asks the script to stop and closes the host's end of the channel,
    /// never waiting for a script that does not read: what was queued and
    /// not begun is dropped, the stop goes next, and the channel closes
    /// after it (a shutdown goes on with signals meanwhile).
    pub fn stop_without_waiting(&self) {
        let stop = Message::Call {
            id: None,
            method: method::STOP.to_owned(),
            params: Params::Positional(Vec::new()),
            within: None,
        };
        match stop.encode(self.max_frame().max(4096)) {
            Ok(enc) => {
                Counters::add(&self.counters.bytes_to_script, enc.len() as u64);
                self.outbox.finish_with(enc);
                self.wake_script();
            }
            Err(_) => self.outbox.close_after_queue(),
        }
    }

    /// Delivers a reply from the script. `Err` when it answers a call the
    /// host never made (a late answer to a call that timed out is dropped).
    pub fn deliver(&self, id: Option<Id>, outcome: Result<Value, RpcError>) -> Result<(), String> {
        let n = match &id {
            Some(Id::Int(n)) => *n,
            _ => {
                let shown = id.map_or_else(|| "null".to_owned(), |id| id.to_string());
                return Err(format!("reply to a call the host never made (id {shown})"));
            }
        };
        let slot = lock(&self.pending).calls.remove(&n);
        match slot {
            Some(slot) => {
                slot.fill(outcome.map_err(|e| Error::Remote(Box::new(RemoteError::from_rpc(e)))));
                Ok(())
            }
            None if n >= 1 && n < self.next_id.load(Ordering::Acquire) => {
                tracing::debug!(pid = self.pid, id = n, "dropping a late answer");
                Ok(())
            }
            None => Err(format!("reply to a call the host never made (id {n})")),
        }
    }

    /// Fails every pending call, and every call made from now on: the script
    /// has ended. `never_ready` is what calls that waited for the script to
    /// become ready are told, when it never did.
    pub fn close(&self, why: String, never_ready: String) {
        let calls: Vec<Arc<Slot>> = {
            let mut pending = lock(&self.pending);
            pending.closed = Some(why.clone());
            pending.calls.drain().map(|(_, s)| s).collect()
        };
        for slot in calls {
            slot.fill(Err(Error::gone(why.clone())));
        }
        let mut state = lock(&self.ready.state);
        if *state == ReadyState::Starting {
            *state = ReadyState::Never(never_ready);
        }
        drop(state);
        self.ready.wake_all();
    }

    /// Calls the script's export `method` and waits for its answer, for at
    /// most `timeout`, inside the call's span.
    pub fn call(
        self: &Arc<Self>,
        method: &str,
        params: Params,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        let mut record = Record::new(self, method);
        let span = record.span.span.clone();
        let result = span.in_scope(|| self.call_in(method, params, timeout, &span));
        record.finish(&result);
        result
    }

    fn call_in(
        self: &Arc<Self>,
        method: &str,
        params: Params,
        timeout: Option<Duration>,
        span: &tracing::Span,
    ) -> Result<Value, Error> {
        self.may_block(|| format!("a blocking call of {method}()"))?;
        let deadline = timeout.and_then(crate::clock::deadline_in);
        let here = scope::within(self);
        let _depth = self.enter_nested(here.nested, method)?;
        self.until_ready(here.nested, method, deadline, timeout)?;
        let (id, slot) = self.enter_pending(span)?;
        let _waiting = Waiting::new(&self.counters.waiting_on_script);
        let ticket = match self.send_call(id, method, params) {
            Ok(ticket) => ticket,
            Err(e) => {
                lock(&self.pending).calls.remove(&id);
                return Err(e);
            }
        };
        let answered = match here.reader {
            // This thread reads the script's pipe: it reads the answer.
            Some(reader) => {
                reader.read_until(id, &|| slot.is_filled(), deadline);
                slot.is_filled()
            }
            None => slot.wait(deadline),
        };
        if !answered && self.abandon(id, Some(ticket)) {
            return Err(Error::Timeout {
                method: method.to_owned(),
                after: timeout.unwrap_or_default(),
            });
        }
        slot.take()
    }

    /// Sends a notification: the script runs `method` and does not answer.
    /// Like a call, it waits until the script is ready (unless it nests in
    /// one of the script's calls).
    pub fn notify(self: &Arc<Self>, method: &str, params: Params) -> Result<(), Error> {
        let mut record = Record::new(self, method);
        let result = record
            .span
            .span
            .in_scope(|| self.send_notification(method, params));
        record.finish(&result);
        result
    }

    fn send_notification(self: &Arc<Self>, method: &str, params: Params) -> Result<(), Error> {
        if let Some(why) = &lock(&self.pending).closed {
            return Err(Error::gone(why.clone()));
        }
        self.until_ready(scope::serves(self), method, None, None)?;
        let msg = Message::Call {
            id: None,
            method: method.to_owned(),
            params,
            within: None,
        };
        let enc = self.encode(&msg, self.max_frame()).map_err(encode_error)?;
        self.send(enc)
    }

    /// Counts a call made by a host function that serves this same script
    /// (it nests inside the script's call), refusing one too deep.
    fn enter_nested(self: &Arc<Self>, nested: bool, method: &str) -> Result<Option<Depth>, Error> {
        if !nested {
            return Ok(None);
        }
        let depth = self.nested.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = Depth(Arc::clone(self));
        if depth > self.max_depth {
            let what = format!(
                "calls between host and script nested deeper than {} levels; {method}() was refused",
                self.max_depth
            );
            tracing::warn!(target: "tether::limits", pid = self.pid, "{what}");
            return Err(Error::limit(crate::error::Limit::Nesting, what));
        }
        Ok(Some(guard))
    }

    /// Waits until the script serves (a call made while it still imports
    /// would find none of its exports), within the call's own deadline and
    /// the host's ready timeout. A call nested inside one of the script's
    /// own calls (`nested`) needs no wait: the script is running.
    fn until_ready(
        &self,
        nested: bool,
        method: &str,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        if nested {
            return Ok(());
        }
        {
            let state = lock(&self.ready.state);
            if matches!(*state, ReadyState::Serving(_)) {
                return Ok(());
            }
        }
        let wait = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(self.ready.timeout),
            None => self.ready.timeout,
        };
        match self.wait_ready(wait) {
            Ok(_) => Ok(()),
            Err(Error::NotReady { waited, .. }) => Err(self.not_ready(method, timeout, waited)),
            Err(e) => Err(e),
        }
    }

    /// Why a call that waited `waited` for the script to become ready was
    /// not sent: its own time limit ran out first, or the script never
    /// entered `tether.serve()` within the ready timeout.
    fn not_ready(&self, method: &str, timeout: Option<Duration>, waited: Duration) -> Error {
        match timeout {
            Some(t) if t <= self.ready.timeout => Error::Timeout {
                method: method.to_owned(),
                after: t,
            },
            _ => Error::NotReady {
                waited,
                detail: format!(
                    "script {} did not become ready within {waited:?} (it never entered \
                     tether.serve()); {method}() was not sent",
                    self.pid
                ),
            },
        }
    }

    /// Whether the script serves: its exports, the reason it never will, or
    /// (registering `cx` to be woken) not yet.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<Vec<String>, Error>> {
        let state = lock(&self.ready.state);
        match &*state {
            ReadyState::Serving(exports) => Poll::Ready(Ok(exports.clone())),
            ReadyState::Never(why) => Poll::Ready(Err(Error::gone(why.clone()))),
            ReadyState::Starting => {
                lock(&self.ready.wakers).push(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// A new call's id and the slot its answer lands in.
    fn enter_pending(&self, span: &tracing::Span) -> Result<(i64, Arc<Slot>), Error> {
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        let slot = Arc::new(Slot {
            answer: Mutex::new(None),
            cv: Condvar::new(),
            waker: Mutex::new(None),
            pool: pool::current(),
            span: span.clone(),
        });
        let mut pending = lock(&self.pending);
        if let Some(why) = &pending.closed {
            return Err(Error::gone(why.clone()));
        }
        pending.calls.insert(id, Arc::clone(&slot));
        Ok((id, slot))
    }

    /// Queues a call's frame (without waiting for it to be written: its
    /// caller waits for the answer); its ticket, to take it back unwritten.
    fn send_call(&self, id: i64, method: &str, params: Params) -> Result<u64, Error> {
        let msg = Message::Call {
            id: Some(Id::Int(id)),
            method: method.to_owned(),
            params,
            within: None,
        };
        let enc = self.encode(&msg, self.max_frame()).map_err(encode_error)?;
        let len = enc.len() as u64;
        let ticket = self.outbox.submit(enc).map_err(|u| self.unsent(u))?;
        Counters::add(&self.counters.bytes_to_script, len);
        Ok(ticket)
    }
}

/// Counts one call as waiting for the script's answer until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The span and counters of one call into the script; a call whose future
/// was dropped before it finished is recorded as cancelled.
struct Record {
    span: CallSpan,
    counters: Arc<Counters>,
    finished: bool,
}

impl Record {
    fn new(link: &Link, method: &str) -> Record {
        Counters::add(&link.counters.calls_to_script, 1);
        Record {
            span: CallSpan::new(Direction::ToScript, method, link.pid, &link.script),
            counters: Arc::clone(&link.counters),
            finished: false,
        }
    }

    fn finish<T>(&mut self, result: &Result<T, Error>) {
        self.finished = true;
        match result {
            Ok(_) => self.span.finish(Ended::Ok, None),
            Err(e) => {
                Counters::add(&self.counters.failed_to_script, 1);
                self.span.finish(ended(e), Some(&e.to_string()));
            }
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if !self.finished {
            Counters::add(&self.counters.failed_to_script, 1);
            self.span.finish(Ended::Cancelled, None);
        }
    }
}

/// How a failed call ended, for its span.
fn ended(e: &Error) -> Ended {
    match e {
        Error::Timeout { .. } => Ended::Timeout,
        Error::Closed { .. } => Ended::Gone,
        _ => Ended::Error,
    }
}

/// Counts one nested call as pending until dropped.
struct Depth(Arc<Link>);

impl Drop for Depth {
    fn drop(&mut self) {
        self.0.nested.fetch_sub(1, Ordering::AcqRel);
    }
}

fn encode_error(e: EncodeError) -> Error {
    Error::Value(ValueError(e.to_string()))
}

/// The error of a wait for readiness that ran out after `waited`.
fn not_ready_in(pid: u32, waited: Duration) -> Error {
    Error::NotReady {
        waited,
        detail: format!(
            "script {pid} did not become ready within {waited:?}: it has not entered \
             tether.serve() (or called tether.ready())"
        ),
    }
}
