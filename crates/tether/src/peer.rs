//! [`Peer`]: the host's handle on one running script, for calling its
//! exports and sending it notifications, from any thread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::LocalKey;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::RemoteError;
use crate::pool::{self, Inner as PoolInner};
use crate::protocol::message::{EncodeError, Encoded, Id, Message, Params, RpcError};
use crate::transport::Writer;
use crate::value::{Map, Value};
use crate::{from_value, lock, to_value, Error};

/// The method of a cancellation notice (both directions).
pub(crate) const CANCEL: &str = "rpc.cancel";
/// The method of the host's request that the script stop.
pub(crate) const STOP: &str = "rpc.stop";

/// A handle on a running script: call the functions it exports, send it
/// notifications. Cheap to clone, usable from any thread.
///
/// Inside a host function, [`Peer::current`] is the script that made the
/// call, so a host function can call back into it while its own call is
/// still pending, to any depth:
///
/// ```no_run
/// use tether::{Peer, Value};
/// let host = tether::Host::new().try_function(
///     "map_with(name, values)",
///     |name: String, values: Vec<Value>| -> Result<Vec<Value>, tether::Error> {
///         let script = Peer::current().expect("called by a script");
///         values.into_iter().map(|v| script.call(&name, (v,))).collect()
///     },
/// );
/// # let _ = host;
/// ```
#[derive(Clone)]
pub struct Peer {
    pub(crate) shared: Arc<Shared>,
}

thread_local! {
    static CURRENT: RefCell<Option<Peer>> = const { RefCell::new(None) };
    /// Set while a script's reader thread runs one of the script's calls
    /// itself: which script, and how to get another thread to read for it
    /// (a call back into the script waits for an answer only a reader can
    /// bring).
    static READING_FOR: RefCell<Option<ReaderHook>> = const { RefCell::new(None) };
}

/// A script (by the address of its [`Shared`]) and how to get another thread
/// to read for it.
type ReaderHook = (usize, Rc<dyn Fn()>);

/// Runs `f` on the reader thread of the script `shared`: a call from `f`
/// into that script first calls `hand_over`.
pub(crate) fn as_reader<T>(
    shared: &Arc<Shared>,
    hand_over: &Rc<dyn Fn()>,
    f: impl FnOnce() -> T,
) -> T {
    let key = Arc::as_ptr(shared) as usize;
    scoped(&READING_FOR, (key, Rc::clone(hand_over)), f)
}

/// Runs `f` with `value` in the thread-local `slot`, then puts back what was
/// there before (also when `f` panics).
fn scoped<V: 'static, T>(
    slot: &'static LocalKey<RefCell<Option<V>>>,
    value: V,
    f: impl FnOnce() -> T,
) -> T {
    struct Restore<V: 'static>(&'static LocalKey<RefCell<Option<V>>>, Option<V>);
    impl<V: 'static> Drop for Restore<V> {
        fn drop(&mut self) {
            let previous = self.1.take();
            self.0.with(|c| *c.borrow_mut() = previous);
        }
    }
    let previous = slot.with(|c| c.borrow_mut().replace(value));
    let _restore = Restore(slot, previous);
    f()
}

/// If this thread is `shared`'s reader, gets another thread to read.
fn hand_over_reading(shared: &Arc<Shared>) {
    let key = Arc::as_ptr(shared) as usize;
    let hook = READING_FOR.with(|r| {
        r.borrow()
            .as_ref()
            .filter(|(k, _)| *k == key)
            .map(|(_, hook)| Rc::clone(hook))
    });
    if let Some(hook) = hook {
        hook();
    }
}

pub(crate) struct Shared {
    pub pid: u32,
    pub max_frame: u32,
    /// Calls into the script made by host functions serving it, pending now.
    nested: AtomicUsize,
    max_depth: usize,
    writer: Mutex<Writer>,
    /// Bytes values at least this large go in shared memory (`usize::MAX`:
    /// never; set once the client said it can take them).
    share_threshold: AtomicUsize,
    next_id: AtomicI64,
    pending: Mutex<Pending>,
}

struct Pending {
    calls: HashMap<i64, Arc<Slot>>,
    /// Why no more calls can be made, once the script has ended.
    closed: Option<String>,
}

/// Where the answer to one call lands.
struct Slot {
    answer: Mutex<Option<Result<Value, Error>>>,
    cv: Condvar,
    /// The pool whose worker waits here (it must be woken through the pool).
    pool: Option<Arc<PoolInner>>,
}

impl Slot {
    fn fill(&self, answer: Result<Value, Error>) {
        *lock(&self.answer) = Some(answer);
        self.cv.notify_all();
        if let Some(pool) = &self.pool {
            pool.wake();
        }
    }

    fn is_filled(&self) -> bool {
        lock(&self.answer).is_some()
    }
}

impl Shared {
    pub fn new(pid: u32, max_frame: u32, max_depth: usize, writer: Writer) -> Shared {
        Shared {
            pid,
            max_frame,
            nested: AtomicUsize::new(0),
            max_depth,
            writer: Mutex::new(writer),
            share_threshold: AtomicUsize::new(usize::MAX),
            next_id: AtomicI64::new(1),
            pending: Mutex::new(Pending {
                calls: HashMap::new(),
                closed: None,
            }),
        }
    }

    /// From now on, sends bytes values of at least `threshold` bytes in
    /// shared memory.
    pub fn share_from(&self, threshold: usize) {
        self.share_threshold.store(threshold, Ordering::Release);
    }

    /// Encodes a message to send, large values in shared memory when that
    /// is on.
    pub fn encode(&self, msg: &Message, max: u32) -> Result<Encoded, EncodeError> {
        let threshold = self.share_threshold.load(Ordering::Acquire);
        if threshold == usize::MAX {
            return msg.encode(max);
        }
        msg.encode_shared(
            max,
            Some(crate::protocol::Share {
                threshold,
                place: Box::new(crate::shm::place),
            }),
        )
    }

    /// Sends one encoded message; `false` when the script is gone.
    pub fn send(&self, encoded: &Encoded) -> Result<bool, Error> {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + encoded.attachments.len());
        parts.push(&encoded.head);
        parts.extend(encoded.attachments.iter().map(|b| &b[..]));
        match lock(&self.writer).send(&parts, &encoded.shared) {
            Ok(Ok(())) => Ok(true),
            Ok(Err(_gone)) => Ok(false),
            Err(source) => Err(Error::Io {
                context: format!("writing to script {}", self.pid),
                source,
            }),
        }
    }

    /// Closes the host's end of the channel.
    pub fn close_writer(&self) {
        lock(&self.writer).close();
    }

    /// Asks the script to stop and closes the host's end of the channel, but
    /// only if that needs no waiting: a writer blocked on a script that does
    /// not read must not hold up a shutdown, which goes on with signals.
    pub fn stop_without_waiting(&self) {
        let Ok(mut writer) = self.writer.try_lock() else {
            return;
        };
        let stop = Message::Call {
            id: None,
            method: STOP.to_owned(),
            params: Params::Positional(Vec::new()),
        };
        if let Ok(enc) = stop.encode(self.max_frame) {
            writer.send_now_and_close(&enc.to_vec());
        } else {
            writer.close();
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

    /// Fails every pending call: the script has ended.
    pub fn close(&self, why: String) {
        let calls: Vec<Arc<Slot>> = {
            let mut pending = lock(&self.pending);
            pending.closed = Some(why.clone());
            pending.calls.drain().map(|(_, s)| s).collect()
        };
        for slot in calls {
            slot.fill(Err(Error::Closed(why.clone())));
        }
    }

    fn call(
        self: &Arc<Self>,
        method: &str,
        params: Params,
        timeout: Option<Duration>,
    ) -> Result<Value, Error> {
        // A call made by a host function that serves this same script nests
        // inside the script's call; bound how deep that goes.
        let nested = Peer::current().is_some_and(|p| Arc::ptr_eq(&p.shared, self));
        let _depth = if nested {
            let depth = self.nested.fetch_add(1, Ordering::AcqRel) + 1;
            let guard = Depth(&self.nested);
            if depth > self.max_depth {
                let what = format!(
                    "calls between host and script nested deeper than {} levels; {method}() was refused",
                    self.max_depth
                );
                tracing::warn!(target: "tether::limits", pid = self.pid, "{what}");
                return Err(Error::Limit(what));
            }
            Some(guard)
        } else {
            None
        };
        // Called from the thread that reads this script's pipe: someone else
        // must read the answer.
        hand_over_reading(self);
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        let pool = pool::current();
        let slot = Arc::new(Slot {
            answer: Mutex::new(None),
            cv: Condvar::new(),
            pool: pool.clone(),
        });
        {
            let mut pending = lock(&self.pending);
            if let Some(why) = &pending.closed {
                return Err(Error::Closed(why.clone()));
            }
            pending.calls.insert(id, Arc::clone(&slot));
        }
        let msg = Message::Call {
            id: Some(Id::Int(id)),
            method: method.to_owned(),
            params,
        };
        let sent = self
            .encode(&msg, self.max_frame)
            .map_err(encode_error)
            .and_then(|enc| self.send(&enc));
        match sent {
            Ok(true) => {}
            Ok(false) => {
                lock(&self.pending).calls.remove(&id);
                return Err(Error::Closed(format!("script {} is gone", self.pid)));
            }
            Err(e) => {
                lock(&self.pending).calls.remove(&id);
                return Err(e);
            }
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let answered = match &pool {
            // A pool worker runs queued host functions while it waits: the
            // script's nested calls may be among them.
            Some(pool) => pool.help_until(&|| slot.is_filled(), deadline),
            None => {
                let mut answer = lock(&slot.answer);
                loop {
                    if answer.is_some() {
                        break true;
                    }
                    answer = match deadline {
                        None => slot.cv.wait(answer).unwrap_or_else(|e| e.into_inner()),
                        Some(d) => {
                            let left = d.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                break false;
                            }
                            slot.cv
                                .wait_timeout(answer, left)
                                .unwrap_or_else(|e| e.into_inner())
                                .0
                        }
                    };
                }
            }
        };
        if !answered {
            // Forget the call, so a late answer is dropped instead of
            // reaching anyone, and tell the script it is no longer wanted.
            let removed = lock(&self.pending).calls.remove(&id).is_some();
            if removed {
                let _ = self.notify_value(
                    CANCEL,
                    Params::Named(Map::from_iter([("id".to_owned(), Value::Int(id))])),
                );
                return Err(Error::Timeout {
                    method: method.to_owned(),
                    after: timeout.unwrap_or_default(),
                });
            }
        }
        let answer = lock(&slot.answer).take();
        answer.unwrap_or_else(|| Err(Error::Closed("the call was abandoned".into())))
    }

    fn notify_value(&self, method: &str, params: Params) -> Result<(), Error> {
        if let Some(why) = &lock(&self.pending).closed {
            return Err(Error::Closed(why.clone()));
        }
        let msg = Message::Call {
            id: None,
            method: method.to_owned(),
            params,
        };
        let enc = self.encode(&msg, self.max_frame).map_err(encode_error)?;
        if self.send(&enc)? {
            Ok(())
        } else {
            Err(Error::Closed(format!("script {} is gone", self.pid)))
        }
    }
}

/// Counts one nested call as pending until dropped.
struct Depth<'a>(&'a AtomicUsize);

impl Drop for Depth<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Peer {
    /// The script whose call the current thread is serving, inside a host
    /// function; `None` elsewhere.
    pub fn current() -> Option<Peer> {
        CURRENT.with(|c| c.borrow().clone())
    }

    /// Runs `f` with `peer` as [`Peer::current`].
    pub(crate) fn scope<T>(peer: &Peer, f: impl FnOnce() -> T) -> T {
        scoped(&CURRENT, peer.clone(), f)
    }

    /// The script's process id.
    pub fn id(&self) -> u32 {
        self.shared.pid
    }

    /// Calls the script's export `method` and converts its result to `R`.
    ///
    /// `args` is a tuple or list (positional arguments: `(x,)` for one), a
    /// struct or map (arguments by name), or `()` for none; any other value
    /// is passed as the single argument.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] when the export raised (with the Python exception's
    /// type, message and traceback) or does not exist, [`Error::Closed`]
    /// when the script has ended, [`Error::Value`] when the arguments cannot
    /// be sent or the result does not fit `R`.
    pub fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        let value = self.shared.call(method, params(args)?, None)?;
        from_value(value).map_err(Error::Value)
    }

    /// Like [`call`](Peer::call), but gives up after `timeout`: the result is
    /// then [`Error::Timeout`], the script is told the call is no longer
    /// wanted (an `async def` export is cancelled; a plain one can check
    /// `tether.cancelled()`), and a late answer is dropped. The channel stays
    /// usable.
    ///
    /// # Errors
    ///
    /// As for [`call`](Peer::call), plus [`Error::Timeout`].
    pub fn call_timeout<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
        timeout: Duration,
    ) -> Result<R, Error> {
        let value = self.shared.call(method, params(args)?, Some(timeout))?;
        from_value(value).map_err(Error::Value)
    }

    /// Sends a notification: the script runs its export `method` and sends
    /// no answer.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the script has ended, [`Error::Value`] when the
    /// arguments cannot be sent.
    pub fn notify(&self, method: &str, args: impl Serialize) -> Result<(), Error> {
        self.shared.notify_value(method, params(args)?)
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("pid", &self.shared.pid)
            .finish()
    }
}

/// Arguments as JSON-RPC params.
fn params(args: impl Serialize) -> Result<Params, Error> {
    Ok(match to_value(&args).map_err(Error::Value)? {
        Value::Null => Params::Positional(Vec::new()),
        Value::List(items) => Params::Positional(items),
        Value::Map(map) => Params::Named(map),
        other => Params::Positional(vec![other]),
    })
}

fn encode_error(e: EncodeError) -> Error {
    Error::Value(crate::ValueError(e.to_string()))
}
