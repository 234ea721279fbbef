//! The async forms of a call and a notification: futures that need no
//! runtime (the reader thread wakes them when the answer comes, the timer
//! thread when a deadline passes), never block the thread that polls them
//! (a frame the pipe does not take at once is finished by the script's own
//! writer thread, see `outbox.rs`), and cancel the call when dropped before
//! the answer came: the entry in the table of pending calls goes, a frame
//! not begun is taken back, and `rpc.cancel` is queued without waiting.
//!
//! ```text
//!   wait until the script serves ─▶ enter the call in the table ─▶ queue it
//!   ─▶ await the answer ─▶ (deadline passed, or the future dropped)
//!      forget the call; take its frame back, or queue rpc.cancel
//! ```

use std::future::{poll_fn, Future};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Instrument;

use super::{encode_error, Link, Record};
use crate::error::Error;
use crate::protocol::message::{Message, Params};
use crate::protocol::method;
use crate::scope;
use crate::stats::Counters;
use crate::sync::lock;
use crate::timer::or_deadline;

use crate::value::{Map, Value};

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
        let deadline = timeout.and_then(crate::clock::deadline_in);
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
        let ticket = self.send_call(id, method, params)?;
        pending.state = PendingState::Sent(ticket);
        let answered = or_deadline(poll_fn(|cx| slot.poll_filled(cx)), deadline).await;
        pending.state = PendingState::Settled;
        if answered.is_none() && self.abandon(id, Some(ticket)) {
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
                    return Err(Error::gone(why.clone()));
                }
                link.ready_async(serves, &method, None, None).await?;
                let msg = Message::Call {
                    id: None,
                    method: method.clone(),
                    params,
                    within: None,
                };
                let enc = link.encode(&msg, link.max_frame()).map_err(encode_error)?;
                link.try_send(enc)
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
            let deadline = crate::clock::deadline_in(timeout);
            let waited = or_deadline(poll_fn(|cx| link.poll_ready(cx)), deadline).await;
            waited.unwrap_or_else(|| Err(super::not_ready_in(link.pid, timeout)))
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
        let ready_by = crate::clock::deadline_in(self.ready.timeout);
        let until = match (deadline, ready_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let started = Instant::now();
        match or_deadline(poll_fn(|cx| self.poll_ready(cx)), until).await {
            Some(ready) => ready.map(drop),
            None => Err(self.not_ready(method, timeout, started.elapsed())),
        }
    }

    /// Forgets a call whose caller gave up, so a late answer is dropped
    /// instead of reaching anyone, and, unless its frame (`ticket`) could be
    /// taken back unwritten, queues `rpc.cancel` for it without waiting.
    /// `false` when its answer arrived meanwhile.
    pub(super) fn abandon(&self, id: i64, ticket: Option<u64>) -> bool {
        let removed = lock(&self.pending).calls.remove(&id).is_some();
        if removed && !ticket.is_some_and(|t| self.outbox.take_back(t)) {
            let msg = Message::Call {
                id: None,
                method: method::CANCEL.to_owned(),
                params: Params::Named(Map::from_iter([("id".to_owned(), Value::Int(id))])),
                within: None,
            };
            if let Ok(enc) = msg.encode(self.max_frame()) {
                self.send_soon(enc);
                self.wake_script();
            }
        }
        removed
    }
}

/// Where an async call is in the table of pending calls, so that dropping
/// its future cleans up.
enum PendingState {
    /// In the table, not sent: dropping removes it.
    Entered,
    /// Queued with this ticket: dropping removes it and takes it back or
    /// cancels it.
    Sent(u64),
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
            PendingState::Sent(ticket) => {
                self.link.abandon(self.id, Some(ticket));
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
