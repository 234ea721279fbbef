//! [`Peer`]: the public handle on one running script, for calling its
//! exports and sending it notifications, from any thread. A thin face on
//! the script's [`Link`](crate::link::Link).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::error::ValueError;
use crate::link::Link;
use crate::protocol::message::Params;
use crate::scope;
use crate::stats::Stats;
use crate::value::shape::{shape, Shape};
use crate::value::{from_value, to_value, Value};

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
    pub(crate) link: Arc<Link>,
}

impl Peer {
    /// The script whose call the current thread is serving, inside a host
    /// function; `None` elsewhere.
    pub fn current() -> Option<Peer> {
        scope::current::<Link>().map(|link| Peer { link })
    }

    /// The script's process id.
    pub fn id(&self) -> u32 {
        self.link.pid
    }

    /// The value the host attached to the script with
    /// [`Script::context`](crate::Script::context), when it is a `T`.
    pub fn context<T: std::any::Any>(&self) -> Option<&T> {
        self.link.context.as_deref()?.downcast_ref::<T>()
    }

    /// What the script's channel has carried so far: calls each way, how
    /// many failed, bytes, and what is in flight now.
    pub fn stats(&self) -> Stats {
        self.link.stats()
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
        let (params, shape) = params(&args)?;
        let value = hinted(self.link.call(method, params, None), method, shape)?;
        result(method, value)
    }

    /// Like [`call`](Peer::call), but gives up after `timeout`: the result is
    /// then [`Error::Timeout`], the script is told the call is no longer
    /// wanted (an `async def` export is cancelled; a plain one is interrupted
    /// with `tether.Cancelled`, unless it is shielded or saw
    /// `tether.cancelled()` return true), and a late answer is dropped. The
    /// channel stays usable.
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
        let (params, shape) = params(&args)?;
        let value = hinted(self.link.call(method, params, Some(timeout)), method, shape)?;
        result(method, value)
    }

    /// Sends a notification: the script runs its export `method` and sends
    /// no answer.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when the script has ended, [`Error::Value`] when the
    /// arguments cannot be sent.
    pub fn notify(&self, method: &str, args: impl Serialize) -> Result<(), Error> {
        self.link.notify(method, params(&args)?.0)
    }
}

/// The async forms. Each returns a future that is `Send` and `'static`,
/// needs no particular runtime (the thread that reads the script's answer
/// wakes it), and never blocks the thread that polls it. Many calls may be
/// in flight at once, from any number of tasks.
///
/// **Dropping a call's future before it completes cancels the call**: a
/// lost `select!` branch, a `tokio::time::timeout` or an aborted task sends
/// the script `rpc.cancel` (queued without waiting), and the late answer is
/// dropped.
///
/// ```no_run
/// # async fn example() -> Result<(), tether::Error> {
/// let child = tether::Host::new().spawn("plugin.py")?;
/// let peer = child.peer();
/// let square: i64 = peer.call_async("square", (7,)).await?;
/// // Gives up after 100 ms: the script is told, and its answer is dropped.
/// let slow = peer.call_timeout_async::<i64>("slow", (), std::time::Duration::from_millis(100));
/// assert!(matches!(slow.await, Err(tether::Error::Timeout { .. })));
/// # let _ = square;
/// # Ok(())
/// # }
/// ```
impl Peer {
    /// The async form of [`call`](Peer::call).
    pub fn call_async<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> impl Future<Output = Result<R, Error>> + Send + 'static {
        self.call_async_in(method, args, None)
    }

    /// The async form of [`call_timeout`](Peer::call_timeout): past
    /// `timeout` the result is [`Error::Timeout`] and the script is told.
    pub fn call_timeout_async<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: impl Serialize,
        timeout: Duration,
    ) -> impl Future<Output = Result<R, Error>> + Send + 'static {
        self.call_async_in(method, args, Some(timeout))
    }

    fn call_async_in<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: impl Serialize,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Result<R, Error>> + Send + 'static {
        let prepared = params(&args)
            .map(|(params, shape)| (self.link.call_async(method, params, timeout), shape));
        let method = method.to_owned();
        async move {
            let (call, shape) = prepared?;
            let value = hinted(call.await, &method, shape)?;
            result(&method, value)
        }
    }

    /// Checks that the script still gets to its calls: it answers
    /// `rpc.ping` in turn with its other calls, so a script stuck in an
    /// export does not answer within `timeout`.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it did not answer in time, [`Error::Closed`]
    /// when it has ended.
    pub fn ping(&self, timeout: Duration) -> Result<(), Error> {
        let answer = self.link.call(
            crate::protocol::method::PING,
            Params::Positional(Vec::new()),
            Some(timeout),
        )?;
        match answer {
            Value::Bool(true) => Ok(()),
            other => Err(Error::Value(ValueError::new(format!(
                "the script answered rpc.ping with {other}"
            )))),
        }
    }

    /// The async form of [`wait_ready`](Peer::wait_ready).
    pub fn wait_ready_async(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Vec<String>, Error>> + Send + 'static {
        self.link.wait_ready_async(timeout)
    }

    /// The async form of [`notify`](Peer::notify).
    pub fn notify_async(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> impl Future<Output = Result<(), Error>> + Send + 'static {
        let prepared = params(&args).map(|(params, _)| self.link.notify_async(method, params));
        async move { prepared?.await }
    }
}

impl Peer {
    /// Waits until the script serves (it entered `tether.serve()`, or
    /// called `tether.ready()`) and returns the names of its exports.
    ///
    /// Calls made before that wait for it on their own (for at most the
    /// host's [`ready_timeout`](crate::Host::ready_timeout)), so a script
    /// that calls the host while it imports still finds its exports
    /// defined when the host calls it.
    ///
    /// ```no_run
    /// let child = tether::Host::new().spawn("plugin.py")?;
    /// let exports = child.peer().wait_ready(std::time::Duration::from_secs(5))?;
    /// println!("the plugin exports {exports:?}");
    /// # Ok::<(), tether::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when it is not ready within `timeout`,
    /// [`Error::Closed`] when it ended without ever becoming ready (the
    /// message says so).
    pub fn wait_ready(&self, timeout: Duration) -> Result<Vec<String>, Error> {
        self.link.wait_ready(timeout)
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer").field("pid", &self.link.pid).finish()
    }
}

/// Arguments as JSON-RPC params, and the shape they had.
fn params(args: &impl Serialize) -> Result<(Params, Shape), Error> {
    let params = match to_value(args).map_err(Error::Value)? {
        Value::Null => Params::Positional(Vec::new()),
        Value::List(items) => Params::Positional(items),
        Value::Map(map) => Params::Named(map),
        other => Params::Positional(vec![other]),
    };
    Ok((params, shape(args)))
}

/// When the script says the arguments do not fit and they were a sequence
/// or a struct that got spread into arguments, says so: passing a `Vec` or
/// a struct as the one argument needs a tuple around it.
fn hinted(result: Result<Value, Error>, method: &str, shape: Shape) -> Result<Value, Error> {
    let Err(Error::Remote(mut remote)) = result else {
        return result;
    };
    if remote.kind() == "InvalidParams" {
        let hint = match shape {
            Shape::Seq => Some(format!(
                "the host passed a sequence (a Vec or slice), which is spread into positional \
                 arguments, one per item; to pass it as one argument, put it in a tuple: \
                 call(\"{method}\", (items,))"
            )),
            Shape::Struct(name) => Some(format!(
                "the host passed a struct {name}, whose fields are spread into keyword arguments; \
                 to pass it as one argument (a dict), put it in a tuple: call(\"{method}\", (value,))"
            )),
            Shape::Map => Some(format!(
                "the host passed a map, whose entries are spread into keyword arguments; to pass \
                 it as one argument (a dict), put it in a tuple: call(\"{method}\", (map,))"
            )),
            _ => None,
        };
        if let Some(hint) = hint {
            remote.add_hint(&hint);
        }
    }
    Err(Error::Remote(remote))
}

/// The script's answer as the caller's type; a value that does not fit
/// says which export returned it and what it was.
fn result<R: DeserializeOwned>(method: &str, value: Value) -> Result<R, Error> {
    let what = python_type(&value);
    from_value(value).map_err(|e| {
        Error::Value(ValueError::new(format!(
            "the script's {method}() returned {what}, which does not fit {}: {e}",
            crate::pytypes::short_type_name(std::any::type_name::<R>())
        )))
    })
}

/// How Python names the type of a value.
fn python_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "None",
        Value::Bool(_) => "a bool",
        Value::Int(_) | Value::UInt(_) => "an int",
        Value::Float(_) => "a float",
        Value::Str(_) => "a str",
        Value::Bytes(_) => "bytes",
        Value::List(_) => "a list",
        Value::Map(_) => "a dict",
    }
}
