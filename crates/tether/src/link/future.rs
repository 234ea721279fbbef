//! The async forms of a call and a notification: futures that need no
//! runtime (the reader thread wakes them when the answer comes, the timer
//! thread when a deadline passes), never block the thread that polls them
//! (a write that cannot finish at once goes to a helper thread), and
//! cancel the call when dropped before the answer came: the entry in the
//! table of pending calls goes, and `rpc.cancel` is queued without waiting.
//!
//! ```text
//!   wait until the script serves ─▶ enter the call in the table ─▶ send it
//!     (a small frame the pipe takes at once here, else on a helper thread)
//!   ─▶ await the answer ─▶ (deadline passed, or the future dropped)
//!      forget the call, queue rpc.cancel
//! ```

use std::borrow::Cow;
use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::{encode_error, Link, Record};
use crate::blocking;
use crate::error::Error;
use crate::protocol::message::{Encoded, Id, Message, Params};
use crate::protocol::method;
use crate::scope;
use crate::stats::Counters;
use crate::sync::lock;
use crate::timer::or_deadline;

use crate::value::{Map, Value};

/// Frames up to this size are written whole or not at all by one write to
/// a pipe (POSIX `PIPE_BUF`), so trying one costs nothing when it fails.
const PIPE_BUF: usize = 4096;

impl Link {
    /// The async form of [`Link::call`]. What can be done at once (the
    /// span, the nesting check, handing reading over) is done now.
    pub fn call_async(
        self: &Arc<Self>,
        method: &str,
        params: Params,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<Value, Error>> + Send + 'static {
        let link = Arc::clone(self);
        let method = method.to_owned();
        let record = Record::new(&link, &method);
        let here = scope::within(self);
        // A future is polled, not read for: another thread must read.
        if let Some(reader) = here.reader {
            reader.hand_over();
        }
        let nested = here.nested;
        let depth = self.enter_nested(nested, &method);
        let deadline = timeout.map(|t| Instant::now() + t);
        let span = record.span.span.clone();
        async move {
            let mut record = record;
            let result = match depth {
                Ok(_depth) => {
                    let steps = link.call_steps(&method, params, deadline, timeout, nested);
                    steps.await
                }
                Err(e) => Err(e),
            };
            record.finish(&result);
            result
        }
        .instrument(span)
    }

    async fn call_steps(
        self: &Arc<Self>,
        method: &str,
        params: Params,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
        nested: bool,
    ) -> Result<Value, Error> {
        let timed_out = || Error::Timeout {
            method: method.to_owned(),
            after: timeout.unwrap_or_default(),
        };
        self.ready_async(nested, method, deadline, timeout).await?;
        let span = tracing::Span::current();
        let (id, slot) = self.enter_pending(&span)?;
        let _waiting = Waiting::new(&self.counters);
        let mut pending = Pending {
            link: Arc::clone(self),
            id,
            state: PendingState::Entered,
        };
        let msg = Message::Call {
            id: Some(Id::Int(id)),
            method: method.to_owned(),
            params,
            within: None,
        };
        let enc = self.encode(&msg, self.max_frame()).map_err(encode_error)?;
        pending.state = PendingState::Sent;
        match or_deadline(self.send_async(enc), deadline).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                pending.state = PendingState::Entered;
                return Err(e);
            }
            None => return Err(timed_out()),
        }
        let answered = or_deadline(poll_fn(|cx| slot.poll_filled(cx)), deadline).await;
        pending.state = PendingState::Settled;
        if answered.is_none() && self.abandon_soon(id) {
            return Err(timed_out());
        }
        slot.take()
    }

    /// The async form of [`Link::notify`].
    pub fn notify_async(
        self: &Arc<Self>,
        method: &str,
        params: Params,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let link = Arc::clone(self);
        let method = method.to_owned();
        let record = Record::new(&link, &method);
        let serves = scope::serves(self);
        let span = record.span.span.clone();
        async move {
            let mut record = record;
            let result = async {
                if let Some(why) = &lock(&link.pending).closed {
                    return Err(Error::Closed(why.clone()));
                }
                link.ready_async(serves, &method, None, None).await?;
                let msg = Message::Call {
                    id: None,
                    method: method.clone(),
                    params,
                    within: None,
                };
                let enc = link.encode(&msg, link.max_frame()).map_err(encode_error)?;
                link.send_async(enc).await
            }
            .await;
            record.finish(&result);
            result
        }
        .instrument(span)
    }

    /// The async form of [`Link::wait_ready`].
    pub fn wait_ready_async(
        self: &Arc<Self>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send + 'static {
        let link = Arc::clone(self);
        async move {
            let deadline = Instant::now() + timeout;
            let waited = or_deadline(poll_fn(|cx| link.poll_ready(cx)), Some(deadline)).await;
            waited.unwrap_or_else(|| {
                Err(Error::Timeout {
                    method: "the script to become ready".into(),
                    after: timeout,
                })
            })
        }
    }

    /// Waits until the script serves, as [`Link::until_ready`] does, without
    /// blocking.
    async fn ready_async(
        &self,
        nested: bool,
        method: &str,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), Error> {
        if nested {
            return Ok(());
        }
        let ready_by = Instant::now() + self.ready.timeout;
        let until = deadline.map_or(ready_by, |d| d.min(ready_by));
        let started = Instant::now();
        match or_deadline(poll_fn(|cx| self.poll_ready(cx)), Some(until)).await {
            Some(ready) => ready.map(drop),
            None => Err(self.not_ready(method, timeout, started.elapsed())),
        }
    }

    /// Sends without blocking the caller: at once when the pipe takes the
    /// frame whole, else on a helper thread.
    pub(crate) async fn send_async(self: &Arc<Self>, enc: Encoded) -> Result<(), Error> {
        if let Some(sent) = self.try_send_now(&enc) {
            return sent;
        }
        let link = Arc::clone(self);
        match blocking::run(move || link.send(&enc)).await {
            Ok(sent) => sent,
            Err(_) => Err(Error::Closed(format!("script {} is gone", self.pid))),
        }
    }

    /// Sends without waiting and without a result: at once when the pipe
    /// takes the frame whole, else on a helper thread (from `Drop`).
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn send_soon(self: &Arc<Self>, enc: Encoded) {
        if self.try_send_now(&enc).is_none() {
            let link = Arc::clone(self);
            blocking::detach(move || {
                let _ = link.send(&enc);
            });
        }
    }

    /// Writes a small frame if the writer is free and the pipe takes it
    /// whole now; `None` when that would mean waiting.
    fn try_send_now(&self, enc: &Encoded) -> Option<Result<(), Error>> {
        if !enc.shared_files.is_empty() || enc.len() > PIPE_BUF {
            return None;
        }
        let mut writer = self.writer.try_lock().ok()?;
        let frame: Cow<'_, [u8]> = if enc.attachments.is_empty() {
            Cow::Borrowed(&enc.head)
        } else {
            Cow::Owned(enc.to_vec())
        };
        let sent = writer.try_send_small(&frame)?;
        Counters::add(&self.counters.bytes_to_script, frame.len() as u64);
        Some(sent.map_err(|b| self.broken(b)))
    }

    /// Forgets a call whose caller gave up and queues `rpc.cancel` for it,
    /// without waiting; `false` when its answer arrived meanwhile.
    pub(super) fn abandon_soon(self: &Arc<Self>, id: i64) -> bool {
        let removed = lock(&self.pending).calls.remove(&id).is_some();
        if removed {
            self.cancel_soon(id);
        }
        removed
    }

    fn cancel_soon(self: &Arc<Self>, id: i64) {
        let msg = Message::Call {
            id: None,
            method: method::CANCEL.to_owned(),
            params: Params::Named(Map::from_iter([("id".to_owned(), Value::Int(id))])),
            within: None,
        };
        let Ok(enc) = msg.encode(self.max_frame()) else {
            return;
        };
        match self.try_send_now(&enc) {
            Some(Ok(())) => self.wake_script(),
            Some(Err(_)) => {}
            None => {
                let link = Arc::clone(self);
                blocking::detach(move || {
                    if link.send(&enc).is_ok() {
                        link.wake_script();
                    }
                });
            }
        }
    }
}

/// Where an async call is in the table of pending calls, so that dropping
/// its future cleans up.
enum PendingState {
    /// In the table, not sent: dropping removes it.
    Entered,
    /// Sent (or being sent): dropping removes it and cancels it.
    Sent,
    /// Answered or given up: nothing left to do.
    Settled,
}

struct Pending {
    link: Arc<Link>,
    id: i64,
    state: PendingState,
}

impl Drop for Pending {
    fn drop(&mut self) {
        match self.state {
            PendingState::Entered => {
                lock(&self.link.pending).calls.remove(&self.id);
            }
            PendingState::Sent => {
                self.link.abandon_soon(self.id);
            }
            PendingState::Settled => {}
        }
    }
}

/// Counts one async call as waiting for the script's answer until dropped.
struct Waiting(Arc<Counters>);

impl Waiting {
    fn new(counters: &Arc<Counters>) -> Waiting {
        counters
            .waiting_on_script
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(Arc::clone(counters))
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0
            .waiting_on_script
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}
