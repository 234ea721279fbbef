//! The script's calls of async host functions: each runs as a task on the
//! tokio runtime the script was spawned from, concurrently with the others
//! and without holding a thread while it awaits. A task's future is
//! dropped when the script cancels the call (`rpc.cancel`) or ends; a task
//! dropped before it answered (also by a runtime shutting down) answers
//! the script with an error of kind `Cancelled`, without waiting.
//!
//! A runtime that shuts down while the script runs stops it: a sentinel
//! task, dropped with the runtime, starts the graceful stop.

use std::sync::Arc;

use super::{read, Core, InFlight};
use crate::function::Function;
use crate::protocol::message::{code, Id, RpcError};
use crate::stats::Counters;
use crate::trace::{CallSpan, Direction, Ended};
use crate::value::{Map, Value};

/// The async calls running now, by the script's request id, to abort.
#[derive(Default)]
pub(crate) struct Tasks {
    #[cfg(feature = "tokio")]
    running: std::sync::Mutex<std::collections::HashMap<String, tokio::task::AbortHandle>>,
}

impl Tasks {
    /// Drops the future of the script's call `id`, if it runs.
    pub fn cancel(&self, id: &Id) {
        #[cfg(feature = "tokio")]
        if let Some(task) = crate::sync::lock(&self.running).remove(&id.to_string()) {
            task.abort();
        }
        #[cfg(not(feature = "tokio"))]
        let _ = id;
    }

    /// Drops every running future: the script has ended.
    pub fn abort_all(&self) {
        #[cfg(feature = "tokio")]
        for (_, task) in crate::sync::lock(&self.running).drain() {
            task.abort();
        }
    }
}

impl Core {
    /// Starts one of the script's calls of an async host function.
    #[cfg_attr(not(feature = "tokio"), allow(unreachable_code))]
    pub(super) fn run_async(
        self: &Arc<Core>,
        function: &Function,
        id: Option<Id>,
        method: String,
        params: crate::protocol::message::Params,
        running: InFlight,
    ) {
        let span = CallSpan::new(Direction::ToHost, &method, self.link.pid, &self.link.script);
        let started = match (function.start(params), &self.runtime) {
            (Ok(future), Some(runtime)) => Ok((future, runtime.clone())),
            (Ok(_), None) => Err(no_runtime(&method)),
            (Err(e), _) => Err(e),
        };
        let (future, runtime) = match started {
            Ok(started) => started,
            Err(e) => {
                Counters::add(&self.link.counters.failed_from_script, 1);
                span.finish(Ended::Error, Some(&e.message));
                if let Some(id) = id {
                    if let Err(e) = read::reply(&self.link, id, Err(e)) {
                        tracing::warn!(pid = self.link.pid, "cannot answer the script: {e}");
                    }
                }
                return;
            }
        };
        spawn(self, runtime, future, id, running, span);
    }
}

#[cfg(feature = "tokio")]
fn spawn(
    core: &Arc<Core>,
    runtime: crate::runtime::Runtime,
    future: crate::function::Started,
    id: Option<Id>,
    running: InFlight,
    span: CallSpan,
) {
    use tracing::Instrument;

    let link = Arc::clone(&core.link);
    let key = id.as_ref().map(Id::to_string);
    let unanswered = Unanswered {
        link: Arc::clone(&link),
        id: id.clone(),
    };
    let owner = Arc::clone(core);
    let inner = span.span.clone();
    let task_key = key.clone();
    let task = async move {
        let mut unanswered = unanswered;
        let _running = running;
        let handle = Arc::clone(&link) as crate::scope::Handle;
        let outcome = crate::scope::in_task(handle, future).await;
        match &outcome {
            Ok(_) => span.finish(Ended::Ok, None),
            Err(e) => {
                Counters::add(&link.counters.failed_from_script, 1);
                span.finish(Ended::Error, Some(&e.message));
            }
        }
        unanswered.id = None;
        if let Some(id) = id {
            match read::reply_frame(&link, id, outcome) {
                // Queued without waiting: answers are bounded by the calls in flight.
                Ok(frame) => link.send_soon(frame),
                Err(e) => tracing::warn!(pid = link.pid, "cannot answer the script: {e}"),
            }
        }
        if let Some(key) = task_key {
            crate::sync::lock(&owner.tasks.running).remove(&key);
        }
    }
    .instrument(inner);
    // Polled once here first, inside the runtime's context: a function that
    // does not wait (the common small call) answers without a hop to a
    // runtime thread, which costs a wake-up. One that waits is handed to the
    // runtime as it stands (boxed, so it does not move).
    let mut task: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = Box::pin(task);
    let first = {
        let _inside = runtime.enter();
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        task.as_mut().poll(&mut cx)
    };
    if first.is_ready() {
        return;
    }
    let handle = runtime.spawn(task);
    if let Some(key) = key {
        let mut running = crate::sync::lock(&core.tasks.running);
        if !handle.is_finished() {
            running.insert(key, handle.abort_handle());
        }
    }
}

#[cfg(not(feature = "tokio"))]
fn spawn(
    _: &Arc<Core>,
    runtime: crate::runtime::Runtime,
    _: crate::function::Started,
    _: Option<Id>,
    _: InFlight,
    _: CallSpan,
) {
    match runtime {}
}

/// Answers the script's call with an error if its task is dropped before it
/// answered (cancelled, the script ended, the runtime shut down).
#[cfg(feature = "tokio")]
struct Unanswered {
    link: Arc<crate::link::Link>,
    id: Option<Id>,
}

#[cfg(feature = "tokio")]
impl Drop for Unanswered {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let mut data = Map::new();
        data.insert("kind".into(), Value::from("Cancelled"));
        let refusal = Err(RpcError {
            code: code::FUNCTION_ERROR,
            message: "the host function's task was dropped before it answered (the call was \
                      cancelled, or the host's runtime shut down)"
                .into(),
            data: Some(Value::Map(data)),
        });
        if let Ok(frame) = read::reply_frame(&self.link, id, refusal) {
            self.link.send_soon(frame);
        }
    }
}

/// Stops the script gracefully if `runtime` shuts down while it runs.
#[cfg(feature = "tokio")]
pub(super) fn watch_runtime(
    core: &Core,
    runtime: &crate::runtime::Runtime,
    target: Arc<crate::stop::Target>,
) {
    struct StopOnDrop(Option<Arc<crate::stop::Target>>, std::time::Duration);
    impl StopOnDrop {
        fn disarm(&mut self) {
            self.0 = None;
        }
    }
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            if let Some(target) = self.0.take() {
                tracing::debug!(
                    pid = target.link.pid,
                    "the runtime shuts down: stopping the script"
                );
                crate::stop::stop_one(target, self.1);
            }
        }
    }
    let (tx, rx) = crate::oneshot::channel::<()>();
    *crate::sync::lock(&core.ended_signal) = Some(tx);
    let guard = StopOnDrop(Some(target), core.config.exit_grace);
    runtime.spawn(async move {
        let mut guard = guard;
        let _ = rx.await;
        guard.disarm();
    });
}

#[cfg(not(feature = "tokio"))]
pub(super) fn watch_runtime(
    _: &Core,
    runtime: &crate::runtime::Runtime,
    _: Arc<crate::stop::Target>,
) {
    match *runtime {}
}

fn no_runtime(method: &str) -> RpcError {
    let mut data = Map::new();
    data.insert("kind".into(), Value::from("NoRuntime"));
    data.insert("function".into(), Value::from(method));
    RpcError {
        code: code::INTERNAL_ERROR,
        message: format!(
            "{method}() is an async host function, but the script was not spawned from inside a \
             tokio runtime (spawn it from async code, or with Host::spawn_async)"
        ),
        data: Some(Value::Map(data)),
    }
}
