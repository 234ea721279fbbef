//! [`Pool`]: several workers started from one script, served by one host,
//! that survives its workers: a worker that dies is replaced (with
//! exponential backoff, and a give-up after too many deaths in a window),
//! and a call in flight on it fails with an error that names the worker,
//! how it ended and its last lines of stderr.
//!
//! Each worker is a [`Child`] watched by a supervisor thread of its own,
//! which reaps it, records how it ended and starts its replacement. Calls
//! go to the live worker with the fewest calls in flight.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::child::Child;
use crate::error::{Closed, Error};
use crate::host::Host;
use crate::outcome::{report, Outcome};
use crate::peer::Peer;
use crate::process::LineCallback;
use crate::script::Script;
use crate::sync::lock;
use crate::value::{from_value, Value};

/// How many lines of a worker's stderr are kept for the report of its end.
const STDERR_LINES: usize = 20;

/// Builds a [`Pool`]; from [`Host::pool`].
pub struct PoolBuilder {
    host: Host,
    script: Script,
    workers: usize,
    backoff: (Duration, Duration),
    give_up: (usize, Duration),
    recycle: Recycle,
}

/// When workers are replaced although they did not die.
#[derive(Clone, Copy, Default)]
struct Recycle {
    after_calls: Option<u64>,
    above_bytes: Option<u64>,
    health: Option<(Duration, Duration)>,
}

// Here rather than in host.rs: the pool builds on the host, not the host on
// the pool (so host.rs does not import this module).
impl Host {
    /// A pool of workers started from `script`, served by this host: calls
    /// go to the least busy one, and a worker that dies is replaced. See
    /// [`Pool`](crate::Pool).
    ///
    /// ```no_run
    /// let host = tether::Host::new().function("log(line)", |line: String| println!("{line}"));
    /// let pool = host.pool("worker.py").workers(4).start()?;
    /// let n: i64 = pool.call("work", (1,))?;
    /// # let _ = n;
    /// # Ok::<(), tether::Error>(())
    /// ```
    pub fn pool(&self, script: impl Into<Script>) -> PoolBuilder {
        PoolBuilder::new(self.clone(), script.into())
    }
}

impl PoolBuilder {
    pub(crate) fn new(host: Host, script: Script) -> PoolBuilder {
        PoolBuilder {
            host,
            script,
            workers: 2,
            backoff: (Duration::from_millis(100), Duration::from_secs(10)),
            give_up: (5, Duration::from_secs(60)),
            recycle: Recycle::default(),
        }
    }

    /// Replaces a worker once it has answered `calls` calls through the
    /// pool (after its calls in flight finished: none is cut off).
    pub fn recycle_after(mut self, calls: u64) -> PoolBuilder {
        self.recycle.after_calls = Some(calls.max(1));
        self
    }

    /// Replaces a worker whose resident memory passes `bytes` (checked
    /// every 100 ms; after its calls in flight finished).
    pub fn recycle_above(mut self, bytes: u64) -> PoolBuilder {
        self.recycle.above_bytes = Some(bytes);
        self
    }

    /// Pings every worker every `interval` ([`Peer::ping`]); one that does
    /// not answer within `timeout` (stuck in an export, ignoring SIGTERM) is
    /// killed and replaced.
    pub fn health_check(mut self, interval: Duration, timeout: Duration) -> PoolBuilder {
        self.recycle.health = Some((interval, timeout));
        self
    }

    /// Starts the workers warm, forked by `zygote` (see
    /// [`Zygote`](crate::Zygote)): a worker then starts in milliseconds
    /// with what the zygote preloaded already imported, which makes
    /// replacing a dead or recycled worker cheap. When the zygote dies, its
    /// workers die with it and are replaced once it is back; those deaths
    /// do not count towards [`give_up_after`](PoolBuilder::give_up_after).
    ///
    /// ```no_run
    /// let host = tether::Host::new();
    /// let zygote = host.zygote().preload(["numpy"]).start()?;
    /// let pool = host.pool("worker.py").workers(8).warm(&zygote).start()?;
    /// # let _ = pool;
    /// # Ok::<(), tether::Error>(())
    /// ```
    pub fn warm(mut self, zygote: &crate::Zygote) -> PoolBuilder {
        self.script = self.script.warm(zygote);
        self
    }

    /// How many workers (default 2).
    pub fn workers(mut self, n: usize) -> PoolBuilder {
        self.workers = n;
        self
    }

    /// The wait before restarting a worker that died: `min` after one
    /// death, doubling with each further death in the give-up window, at
    /// most `max` (default 100 ms to 10 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> PoolBuilder {
        self.backoff = (min, max.max(min));
        self
    }

    /// Gives up when `deaths` workers died within `window` (default 5 in
    /// 60 s): no more restarts, and every call fails at once with the last
    /// exit statuses and stderr lines.
    pub fn give_up_after(mut self, deaths: usize, window: Duration) -> PoolBuilder {
        self.give_up = (deaths.max(1), window);
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// When a worker cannot be started at all (the interpreter or the
    /// script is missing: [`Error::Spawn`]).
    pub fn start(self) -> Result<Pool, Error> {
        let inner = Arc::new(Inner {
            host: self.host,
            script: self.script,
            backoff: self.backoff,
            give_up: self.give_up,
            recycle: self.recycle,
            state: Mutex::new(State {
                workers: Vec::new(),
                target: self.workers,
                deaths: VecDeque::new(),
                gave_up: None,
                closed: false,
            }),
            changed: Condvar::new(),
            next_id: AtomicU64::new(1),
            started: AtomicU64::new(0),
            exited: AtomicU64::new(0),
            restarted: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            health_kills: AtomicU64::new(0),
        });
        for _ in 0..self.workers {
            Inner::start_worker(&inner, false)?;
        }
        Ok(Pool { inner })
    }
}

/// Workers started from one script, calls spread over them, dead ones
/// replaced. Cheap to share between threads (`&Pool` is enough to call).
///
/// ```no_run
/// let pool = tether::Host::new().pool("worker.py").workers(4).start()?;
/// let n: i64 = pool.call("work", (7,))?;
/// let answers = pool.broadcast("reload", ());
/// println!("{} workers reloaded", answers.iter().filter(|(_, a)| a.is_ok()).count());
/// pool.shutdown(std::time::Duration::from_secs(5));
/// # let _ = n;
/// # Ok::<(), tether::Error>(())
/// ```
pub struct Pool {
    inner: Arc<Inner>,
}

/// What a pool has done so far (see [`Pool::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Workers serving now.
    pub live: usize,
    /// Workers started, replacements included.
    pub started: u64,
    /// Workers that ended (died, or were stopped).
    pub exited: u64,
    /// Workers started to replace one that died.
    pub restarts: u64,
    /// Calls made through the pool, and how many of them failed.
    pub calls: u64,
    /// Of those, the failed ones.
    pub failed: u64,
    /// Workers replaced by recycling (by calls or by memory).
    pub recycled: u64,
    /// Workers killed because they did not answer the health check.
    pub health_kills: u64,
    /// Why the pool gave up restarting, once it has.
    pub gave_up: Option<String>,
    /// Times the zygote of a warm pool died and was started again.
    pub zygote_restarts: u64,
}

struct Inner {
    host: Host,
    script: Script,
    backoff: (Duration, Duration),
    give_up: (usize, Duration),
    recycle: Recycle,
    state: Mutex<State>,
    changed: Condvar,
    next_id: AtomicU64,
    started: AtomicU64,
    exited: AtomicU64,
    restarted: AtomicU64,
    calls: AtomicU64,
    failed: AtomicU64,
    recycled: AtomicU64,
    health_kills: AtomicU64,
}

struct State {
    workers: Vec<Arc<Worker>>,
    /// How many workers the pool keeps.
    target: usize,
    /// Recent deaths: when, and how each worker ended.
    deaths: VecDeque<(Instant, String)>,
    gave_up: Option<String>,
    closed: bool,
}

/// One live worker.
struct Worker {
    id: u64,
    peer: Peer,
    in_flight: AtomicUsize,
    /// How it ended, once its supervisor knows.
    ended: Mutex<Option<String>>,
    ended_cv: Condvar,
    /// Asked to stop (shutdown or shrink): its end is not a death.
    retiring: AtomicBool,
    /// Stop it now, calls in flight or not (the shutdown's grace ran out).
    stop_now: AtomicBool,
    /// Calls it answered through the pool.
    served: AtomicU64,
    /// Why the pool killed it, when it did.
    killed_for: Mutex<Option<String>>,
}

impl Inner {
    /// Starts one worker and its supervisor thread.
    fn start_worker(inner: &Arc<Inner>, replacing: bool) -> Result<(), Error> {
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let lines = Arc::clone(&tail);
        let theirs = inner.script.spec.stderr_lines.clone();
        let mut script = inner.script.clone();
        script.spec.stderr_lines = Some(LineCallback(Arc::new(move |line: &str| {
            {
                let mut tail = lock(&lines);
                if tail.len() == STDERR_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.to_owned());
            }
            match &theirs {
                Some(f) => (f.0)(line),
                None => eprintln!("{line}"),
            }
        })));
        let child = inner.host.spawn(script)?;
        let worker = Arc::new(Worker {
            id,
            peer: child.peer(),
            in_flight: AtomicUsize::new(0),
            ended: Mutex::new(None),
            ended_cv: Condvar::new(),
            retiring: AtomicBool::new(false),
            stop_now: AtomicBool::new(false),
            served: AtomicU64::new(0),
            killed_for: Mutex::new(None),
        });
        inner.started.fetch_add(1, Ordering::Relaxed);
        if replacing {
            inner.restarted.fetch_add(1, Ordering::Relaxed);
        }
        {
            let mut state = lock(&inner.state);
            if state.closed {
                // Shut down while it started (a warm worker waits for its
                // zygote to come back): it must not outlive the pool.
                drop(state);
                tracing::info!(target: "tether::pool", worker = id, "worker started after the pool shut down: stopped");
                let _ = child.shutdown(inner.host_grace());
                return Ok(());
            }
            tracing::info!(target: "tether::pool", worker = id, pid = child.id(), replacing, "worker started");
            state.workers.push(Arc::clone(&worker));
        }
        inner.changed.notify_all();
        let supervisor = Arc::clone(inner);
        std::thread::Builder::new()
            .name(format!("tether-worker-{id}"))
            .spawn(move || supervisor.supervise(child, worker, tail))
            .map_err(|source| Error::Io {
                context: "starting a worker's supervisor thread".into(),
                source,
            })?;
        Ok(())
    }

    /// Waits for the worker to end, records how, and replaces it if it died.
    fn supervise(
        self: Arc<Self>,
        mut child: Child,
        worker: Arc<Worker>,
        tail: Arc<Mutex<VecDeque<String>>>,
    ) {
        let mut next_ping = self
            .recycle
            .health
            .and_then(|(every, _)| crate::clock::deadline_in(every));
        let outcome = loop {
            if let Some(outcome) = child.try_join(Duration::from_millis(100)) {
                break outcome;
            }
            if let (Some(limit), false) = (
                self.recycle.above_bytes,
                worker.retiring.load(Ordering::Acquire),
            ) {
                if resident(child.id()).is_some_and(|rss| rss > limit) {
                    tracing::info!(target: "tether::pool", worker = worker.id, limit, "worker recycled: memory");
                    self.recycle_worker(&worker);
                }
            }
            if let (Some((every, timeout)), Some(at)) = (self.recycle.health, next_ping) {
                if Instant::now() >= at && !worker.retiring.load(Ordering::Acquire) {
                    if let Err(Error::Timeout { .. }) = worker.peer.ping(timeout) {
                        tracing::warn!(target: "tether::pool", worker = worker.id, ?timeout, "worker killed: no answer to the health check");
                        self.health_kills.fetch_add(1, Ordering::Relaxed);
                        *lock(&worker.killed_for) = Some(format!(
                            "it did not answer the health check within {timeout:?}"
                        ));
                        let _ = child.kill();
                    }
                    next_ping = crate::clock::deadline_in(every);
                }
            }
            let idle = worker.in_flight.load(Ordering::Acquire) == 0;
            if worker.stop_now.load(Ordering::Acquire)
                || (worker.retiring.load(Ordering::Acquire) && idle)
            {
                break child.shutdown(self.host_grace());
            }
        };
        let retired = worker.retiring.load(Ordering::Acquire);
        let stderr: Vec<String> = lock(&tail).iter().cloned().collect();
        let mut how = describe(&outcome, worker.id, worker.peer.id(), &stderr);
        if let Some(why) = lock(&worker.killed_for).take() {
            how = format!("{how} (killed by the pool: {why})");
        }
        *lock(&worker.ended) = Some(how.clone());
        worker.ended_cv.notify_all();
        self.exited.fetch_add(1, Ordering::Relaxed);
        let mut state = lock(&self.state);
        state.workers.retain(|w| w.id != worker.id);
        self.changed.notify_all();
        if retired || state.closed {
            tracing::info!(target: "tether::pool", worker = worker.id, "worker stopped");
            return;
        }
        tracing::warn!(target: "tether::pool", worker = worker.id, "worker died: {how}");
        let now = Instant::now();
        // Killed because its zygote died: the zygote's own supervision
        // counts that death, once, not once for each of its workers.
        let with_zygote = outcome
            .as_ref()
            .is_ok_and(|o| o.killed_by_host() == Some(crate::process::ZYGOTE_DIED));
        if !with_zygote {
            state.deaths.push_back((now, how));
        }
        let window = self.give_up.1;
        while state
            .deaths
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            state.deaths.pop_front();
        }
        if state.deaths.len() >= self.give_up.0 {
            let why = format!(
                "the pool gave up: {} workers died within {:?}; the last: {}",
                state.deaths.len(),
                window,
                state
                    .deaths
                    .iter()
                    .rev()
                    .take(3)
                    .map(|(_, h)| h.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            tracing::error!(target: "tether::pool", "{why}");
            state.gave_up = Some(why);
            self.changed.notify_all();
            return;
        }
        // Exponential backoff over the deaths in the window.
        let (min, max) = self.backoff;
        let doublings = u32::try_from(state.deaths.len().saturating_sub(1))
            .unwrap_or(u32::MAX)
            .min(20);
        let wait = min.saturating_mul(1 << doublings).min(max);
        let until = crate::clock::deadline_in(wait);
        while !state.closed && state.gave_up.is_none() {
            let left = crate::clock::left_until(until);
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        if state.closed || state.workers.len() >= state.target {
            return;
        }
        drop(state);
        tracing::info!(target: "tether::pool", after = ?wait, "restarting a worker");
        if let Err(e) = Inner::start_worker(&self, true) {
            let why = format!("the pool cannot restart a worker: {e}");
            tracing::error!(target: "tether::pool", "{why}");
            lock(&self.state).gave_up = Some(why);
            self.changed.notify_all();
        }
    }

    /// Counts a call `worker` answered, recycling it after the number of
    /// calls the pool allows.
    fn answered(self: &Arc<Self>, worker: &Worker) {
        let served = worker.served.fetch_add(1, Ordering::AcqRel) + 1;
        if self.recycle.after_calls.is_some_and(|m| served >= m) {
            tracing::info!(target: "tether::pool", worker = worker.id, served, "worker recycled: calls");
            self.recycle_worker(worker);
        }
    }

    /// Retires `worker` (it stops once idle) and starts its replacement.
    fn recycle_worker(self: &Arc<Self>, worker: &Worker) {
        if worker.retiring.swap(true, Ordering::AcqRel) {
            return;
        }
        self.recycled.fetch_add(1, Ordering::Relaxed);
        if lock(&self.state).closed {
            return;
        }
        if let Err(e) = Inner::start_worker(self, false) {
            tracing::error!(target: "tether::pool", "cannot start a worker to replace a recycled one: {e}");
        }
    }

    fn host_grace(&self) -> Duration {
        self.host.exit_grace_setting()
    }

    /// The live worker with the fewest calls in flight, skipping `avoid`;
    /// waits (at most `patience`) while a replacement is on its way.
    fn pick(&self, avoid: &[u64], patience: Duration) -> Result<Arc<Worker>, Error> {
        let until = crate::clock::deadline_in(patience);
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return Err(Error::closed(Closed::PoolShutDown, "the pool is shut down"));
            }
            if let Some(why) = &state.gave_up {
                return Err(Error::closed(Closed::PoolGaveUp, why.clone()));
            }
            let best = state
                .workers
                .iter()
                .filter(|w| {
                    !avoid.contains(&w.id)
                        && !w.retiring.load(Ordering::Acquire)
                        && !w.peer.link.is_closed()
                })
                .min_by_key(|w| w.in_flight.load(Ordering::Acquire));
            if let Some(w) = best {
                return Ok(Arc::clone(w));
            }
            let left = crate::clock::left_until(until);
            if left.is_zero() {
                return Err(Error::closed(
                    Closed::NoWorker,
                    "the pool has no live worker",
                ));
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A process's resident memory in bytes, from `/proc`.
fn resident(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

/// How a worker ended, for errors and events.
fn describe(outcome: &Result<Outcome, Error>, id: u64, pid: u32, stderr: &[String]) -> String {
    let how = match outcome {
        Ok(o) => o.status().to_string(),
        Err(e) => e.to_string(),
    };
    let tail = report(&[], Some(stderr.join("\n").as_bytes()));
    format!("worker {id} (pid {pid}) ended: {how}{tail}")
}

impl Worker {
    /// The error for a call that was on this worker when it died, from how
    /// it ended (`None`: not known yet).
    fn died(&self, method: &str, how: Option<String>) -> Error {
        let how =
            how.unwrap_or_else(|| format!("worker {} (pid {}) is gone", self.id, self.peer.id()));
        Error::gone(format!("{method}() failed: {how}"))
    }

    /// How it ended, waiting up to `patience` for its supervisor to know.
    fn ending(&self, patience: Duration) -> Option<String> {
        let until = crate::clock::deadline_in(patience);
        let mut ended = lock(&self.ended);
        while ended.is_none() {
            let left = crate::clock::left_until(until);
            if left.is_zero() {
                return None;
            }
            ended = self
                .ended_cv
                .wait_timeout(ended, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        ended.clone()
    }
}

/// Counts a call as in flight on its worker until dropped (also when an
/// async call's future is dropped before the answer).
struct Busy(Arc<Worker>);

impl Busy {
    fn new(worker: &Arc<Worker>) -> Busy {
        worker.in_flight.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(worker))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How long a call waits for a worker while a replacement starts.
const PATIENCE: Duration = Duration::from_secs(30);

impl Pool {
    /// Calls `method` on the least busy live worker. A worker that dies
    /// during the call fails it with an error naming the worker, how it
    /// ended and its last lines of stderr; the call is not retried (see
    /// [`call_retrying`](Pool::call_retrying)).
    ///
    /// # Errors
    ///
    /// As for [`Peer::call`]; [`Error::Closed`] when the pool is shut down
    /// or gave up (with why).
    pub fn call<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        self.call_on(method, &args, 1)
    }

    /// Like [`call`](Pool::call), but when the worker dies during the call
    /// it is made again on another worker (up to three times in all): for
    /// calls that are safe to repeat.
    ///
    /// # Errors
    ///
    /// As for [`call`](Pool::call).
    pub fn call_retrying<R: DeserializeOwned>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> Result<R, Error> {
        self.call_on(method, &args, 3)
    }

    fn call_on<R: DeserializeOwned>(
        &self,
        method: &str,
        args: &impl Serialize,
        attempts: usize,
    ) -> Result<R, Error> {
        let inner = &self.inner;
        inner.calls.fetch_add(1, Ordering::Relaxed);
        let mut tried = Vec::new();
        let mut last = None;
        for _ in 0..attempts {
            let worker = match inner.pick(&tried, PATIENCE) {
                Ok(w) => w,
                Err(e) => {
                    last = Some(e);
                    break;
                }
            };
            tried.push(worker.id);
            let result = {
                let _busy = Busy::new(&worker);
                worker.peer.call::<Value>(method, args)
            };
            match result {
                Ok(v) => {
                    inner.answered(&worker);
                    return from_value(v).map_err(Error::Value);
                }
                Err(Error::Closed { .. }) => {
                    last = Some(worker.died(method, worker.ending(Duration::from_secs(5))));
                }
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        inner.failed.fetch_add(1, Ordering::Relaxed);
        Err(last.unwrap_or_else(|| Error::closed(Closed::NoWorker, "the pool has no live worker")))
    }

    /// The async form of [`call`](Pool::call): awaits the answer without
    /// holding a thread. A call made while no worker is live (one is being
    /// replaced) fails at once.
    pub fn call_async<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: impl Serialize,
    ) -> impl std::future::Future<Output = Result<R, Error>> + Send + 'static {
        let inner = Arc::clone(&self.inner);
        let method = method.to_owned();
        let args = crate::value::to_value(&args);
        async move {
            inner.calls.fetch_add(1, Ordering::Relaxed);
            let result = async {
                let args = args.map_err(Error::Value)?;
                let worker = inner.pick(&[], Duration::ZERO)?;
                let busy = Busy::new(&worker);
                let answer = worker.peer.call_async::<Value>(&method, args).await;
                drop(busy);
                match answer {
                    Ok(v) => {
                        inner.answered(&worker);
                        from_value(v).map_err(Error::Value)
                    }
                    Err(Error::Closed { .. }) => {
                        // The supervisor records how it ended a moment after
                        // the channel closed: wait for that without blocking.
                        let until = Instant::now() + Duration::from_secs(5);
                        while lock(&worker.ended).is_none() && Instant::now() < until {
                            crate::timer::Sleep::until(Instant::now() + Duration::from_millis(10))
                                .await;
                        }
                        let how = lock(&worker.ended).clone();
                        Err(worker.died(&method, how))
                    }
                    Err(e) => Err(e),
                }
            }
            .await;
            if result.is_err() {
                inner.failed.fetch_add(1, Ordering::Relaxed);
            }
            result
        }
    }

    /// Sends a notification to one worker (the least busy).
    ///
    /// # Errors
    ///
    /// As for [`Peer::notify`], and when the pool has no worker.
    pub fn notify(&self, method: &str, args: impl Serialize) -> Result<(), Error> {
        self.inner.pick(&[], PATIENCE)?.peer.notify(method, args)
    }

    /// Calls `method` on every live worker (to reload configuration, say)
    /// and returns each worker's number and answer.
    pub fn broadcast(
        &self,
        method: &str,
        args: impl Serialize + Sync,
    ) -> Vec<(u64, Result<Value, Error>)> {
        let workers: Vec<Arc<Worker>> = lock(&self.inner.state).workers.clone();
        std::thread::scope(|s| {
            let calls: Vec<_> = workers
                .iter()
                .map(|w| {
                    let args = &args;
                    s.spawn(move || {
                        let _busy = Busy::new(w);
                        (w.id, w.peer.call::<Value>(method, args))
                    })
                })
                .collect();
            calls.into_iter().filter_map(|c| c.join().ok()).collect()
        })
    }

    /// Grows or shrinks the pool to `n` workers while it runs. Workers
    /// beyond `n` stop once their calls in flight have finished.
    ///
    /// # Errors
    ///
    /// When a new worker cannot be started.
    pub fn resize(&self, n: usize) -> Result<(), Error> {
        let (grow, retire) = {
            let mut state = lock(&self.inner.state);
            state.target = n;
            let live: Vec<_> = state
                .workers
                .iter()
                .filter(|w| !w.retiring.load(Ordering::Acquire))
                .cloned()
                .collect();
            let retire: Vec<_> = live.iter().skip(n).cloned().collect();
            (n.saturating_sub(live.len()), retire)
        };
        for w in retire {
            w.retiring.store(true, Ordering::Release);
        }
        for _ in 0..grow {
            Inner::start_worker(&self.inner, false)?;
        }
        Ok(())
    }

    /// What the pool has done so far.
    pub fn stats(&self) -> PoolStats {
        let inner = &self.inner;
        let state = lock(&inner.state);
        PoolStats {
            live: state.workers.len(),
            started: inner.started.load(Ordering::Relaxed),
            exited: inner.exited.load(Ordering::Relaxed),
            restarts: inner.restarted.load(Ordering::Relaxed),
            calls: inner.calls.load(Ordering::Relaxed),
            failed: inner.failed.load(Ordering::Relaxed),
            recycled: inner.recycled.load(Ordering::Relaxed),
            health_kills: inner.health_kills.load(Ordering::Relaxed),
            gave_up: state.gave_up.clone(),
            zygote_restarts: inner.script.spec.warm.as_ref().map_or(0, |z| z.restarts()),
        }
    }

    /// Takes no new calls, lets the calls in flight finish within half of
    /// `grace`, then stops every worker as [`Child::shutdown`] does with
    /// the rest, and waits until they have ended.
    pub fn shutdown(&self, grace: Duration) {
        let inner = &self.inner;
        let workers = {
            let mut state = lock(&inner.state);
            state.closed = true;
            inner.changed.notify_all();
            state.workers.clone()
        };
        let until = crate::clock::deadline_in(grace / 2);
        while workers
            .iter()
            .any(|w| w.in_flight.load(Ordering::Acquire) > 0)
            && until.is_none_or(|until| Instant::now() < until)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        for w in &workers {
            w.retiring.store(true, Ordering::Release);
            w.stop_now.store(true, Ordering::Release);
        }
        for w in &workers {
            let _ = w.ending(grace.saturating_add(Duration::from_secs(1)));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if !lock(&self.inner.state).closed {
            self.shutdown(self.inner.host_grace());
        }
    }
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("stats", &self.stats())
            .finish()
    }
}
