//! Serving one script: starting it, reading what it sends and routing it,
//! running its calls, and reporting how the run ended.
//!
//! ```text
//!            frames             replies ──▶ the host's pending calls (Link)
//!   script ──────────▶ reader ─┬ rpc.* ───▶ handshake, readiness, logs, cancels
//!     ▲                        └ calls ───▶ run here (quick) ─┐
//!     │                                   or on the pool ─────┤
//!     └──────────────── writer (Link, behind a lock) ◀────────┘
//! ```
//!
//! The rooms: [`read`] reads frames and routes them (the handshake and the
//! other `rpc.*` messages are answered there), [`standby`] is the reader
//! thread's loop and the standby reader that takes over while the reader
//! runs a call that blocks, [`end`] turns how serving ended into the run's
//! [`Outcome`] or error.
//!
//! The reader thread runs most of the script's calls itself, right after
//! reading them: handing a call to another thread costs a wake-up, which is
//! most of a small call's round trip. While it runs a call nobody reads, so
//! a call that takes long (the [`watchdog`] notices after a millisecond)
//! hands reading over to the standby reader, which passes the calls it
//! reads to the pool until the inline call returns; a function that needed
//! that runs on the pool for a while (`function::Pooling`). A call that
//! calls back into its script reads for itself while it waits (the
//! leader/follower pattern): it delivers the answers it reads, runs the
//! script's calls made within its own call right there (so a nested call,
//! to any depth, crosses no thread), and passes the script's other calls to the pool (they may need
//! what the waiting function holds). A serial host runs every call on a one-thread pool of the
//! script's own, in the order they arrived, never on the reader. A classic
//! host runs quick calls on the reader too (the seed's protocol is one call
//! at a time), the others on such a pool, and answers strictly in order
//! (`Core::classic_order`); a classic call that blocks hands reading over
//! like a native one, so the reader always notices the script's end.

mod end;
mod read;
mod standby;
mod task;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::child::Child;
use crate::config::{Config, Mode};
use crate::error::Error;
use crate::function::{Pooling, Registry};
use crate::link::{Link, LinkSetup};
use crate::outcome::Outcome;
use crate::pool::Pool;
use crate::process::{self, FdVars, Launch};
use crate::protocol::message::{Id, Params};
use crate::runtime::Runtime;
use crate::scope::{self, Reading, Scope};
use crate::script::Script;
use crate::stats::Counters;
use crate::sync::lock;
use crate::trace::{CallSpan, Direction, Ended};
use crate::transport::{ExitWatch, Limits, Reader, Writer};
use crate::{bundle, watchdog};

use read::ReadSide;
use standby::Standby;

/// Who runs the script's calls that the reader does not run itself.
pub(crate) enum Dispatch {
    /// The host's pool, shared by all its scripts.
    HostPool(Arc<Pool>),
    /// A pool of one thread of this script's own: calls run one at a time,
    /// in the order they arrived (serial and classic hosts).
    Serial(Pool),
}

/// Starts the script and the thread that serves it. `pool` is the host's
/// shared pool, for a host that is neither serial nor classic.
pub(crate) fn start(
    config: Arc<Config>,
    registry: Arc<Registry>,
    pool: impl FnOnce() -> std::io::Result<Arc<Pool>>,
    script: &Script,
    runtime: Option<Runtime>,
) -> Result<Child, Error> {
    let (python, python_from) = process::interpreter(config.python.as_deref());
    // The bundled client goes on the path in both modes: classic scripts
    // use `tether.classic`.
    let client_dir = bundle::client_dir().map_err(|source| Error::Io {
        context: "writing the bundled tether client to the cache directory".into(),
        source,
    })?;
    let vars = match config.mode {
        Mode::Native => FdVars {
            read: "TETHER_READ_FD",
            write: "TETHER_WRITE_FD",
        },
        Mode::Classic => FdVars {
            read: "PY_READ_FD",
            write: "PY_WRITE_FD",
        },
    };
    let dispatch = if config.serial || config.mode == Mode::Classic {
        Dispatch::Serial(Pool::new(1, "tether-serial").map_err(thread_error)?)
    } else {
        Dispatch::HostPool(pool().map_err(thread_error)?)
    };
    let spin = config.spin_bound();
    let (proc, pipes) = process::spawn(&Launch {
        python: &python,
        python_from,
        script: &script.spec,
        vars,
        pythonpath: &client_dir,
        logs: config.forward_logs,
        own_group: config.own_group,
        capture_limit: config.capture_limit,
        spin,
        shared_memory: config.shared_memory.is_some() && config.mode == Mode::Native,
        sandbox: script.spec.sandbox.as_ref().or(config.sandbox.as_ref()),
    })?;
    let pid = proc.id();
    let enforcement = proc.enforcement().cloned();
    tracing::debug!(pid, script = %script.path().display(), "script started");
    let watch = ExitWatch::new(&proc);
    let side = pipes.side.map(Arc::new);
    let link = Arc::new(Link::new(
        LinkSetup {
            pid,
            script: script.name(),
            context: script.context.clone().map(|c| c.0),
            max_frame: config.max_frame,
            max_depth: config.max_depth,
            ready_timeout: config.ready_timeout,
            counters: Arc::default(),
            has_async: registry.has_async(),
        },
        Writer::new(pipes.to_child, watch.clone(), side.clone()),
    ));
    let killer = proc.killer();
    let (tx, rx) = crate::oneshot::channel();
    let reader = Reader::new(
        pipes.from_child,
        config.max_frame,
        watch,
        Limits {
            deadline: config
                .deadline
                .and_then(|d| crate::clock::deadline_in(d).map(|at| (at, d))),
            idle: config.idle_timeout,
        },
        crate::spin::Spin::new(spin),
        side.clone(),
    );
    let inline = matches!(dispatch, Dispatch::HostPool(_)) || config.mode == Mode::Classic;
    let core = Arc::new(Core {
        read: Mutex::new(ReadSide::new(reader, proc, side.is_some(), &config)),
        config,
        registry,
        link: Arc::clone(&link),
        running: Arc::new(Mutex::new(Vec::new())),
        inline,
        dispatch,
        classic_order: Mutex::new(()),
        classic_queued: AtomicUsize::new(0),
        ended: AtomicBool::new(false),
        done: Mutex::new(Some(tx)),
        finished: Arc::new(AtomicBool::new(false)),
        inline_seq: Arc::new(AtomicU64::new(0)),
        handed_over: AtomicU64::new(0),
        read_for_itself_ns: AtomicU64::new(0),
        watched: AtomicU64::new(0),
        standby: Mutex::new(Standby::default()),
        standby_cv: Condvar::new(),
        runtime,
        tasks: task::Tasks::default(),
        ended_signal: Mutex::new(None),
    });
    let target = crate::stop::register(crate::stop::Target {
        link: Arc::clone(&link),
        killer,
        finished: Arc::clone(&core.finished),
    });
    if let Some(runtime) = &core.runtime {
        task::watch_runtime(&core, runtime, Arc::clone(&target));
    }
    let busy = Arc::clone(&core.inline_seq);
    if core.inline {
        let weak = Arc::downgrade(&core);
        watchdog::watch(weak);
    }
    let thread = std::thread::Builder::new()
        .name(format!("tether-reader-{pid}"))
        .stack_size(READER_STACK)
        .spawn(move || standby::serve(core))
        .map_err(thread_error)?;
    let peer = crate::peer::Peer { link };
    Ok(Child::new(peer, target, rx, thread, busy, enforcement))
}

/// The reader thread's stack: a nested call runs on it, one level on top of
/// the other, up to `Config::max_depth` (128 by default) levels. Reserved,
/// not used: the pages a shallow script never touches cost no memory.
const READER_STACK: usize = 16 << 20;

fn thread_error(source: std::io::Error) -> Error {
    Error::Io {
        context: "starting a thread to serve the script".into(),
        source,
    }
}

/// One script being served, shared by its reader thread, its standby reader,
/// the threads that run its calls and the watchdog.
pub(crate) struct Core {
    config: Arc<Config>,
    registry: Arc<Registry>,
    link: Arc<Link>,
    /// The names of the script's calls running on the host now.
    running: Arc<Mutex<Vec<(u64, String)>>>,
    dispatch: Dispatch,
    /// Quick calls may run on the reader thread (not in serial mode).
    inline: bool,
    /// Held while a classic call runs and answers: answers leave in the
    /// order the requests came, whichever thread runs them.
    classic_order: Mutex<()>,
    /// Classic calls handed to the pool and not answered yet.
    classic_queued: AtomicUsize,
    read: Mutex<ReadSide>,
    /// Serving has ended (set under the `read` lock by whoever ended it).
    ended: AtomicBool,
    done: Mutex<Option<crate::oneshot::Sender<Result<Outcome, Error>>>>,
    /// The outcome has been sent.
    finished: Arc<AtomicBool>,
    /// Counts the calls the reader thread runs itself, twice: odd while one
    /// runs.
    inline_seq: Arc<AtomicU64>,
    /// The inline call for which reading was handed over.
    handed_over: AtomicU64,
    /// Nanoseconds the reader thread spent reading for itself inside the
    /// calls it ran (waiting for the script), to tell a call's own time.
    read_for_itself_ns: AtomicU64,
    /// The inline call the watchdog saw running at its last tick.
    watched: AtomicU64,
    standby: Mutex<Standby>,
    standby_cv: Condvar,
    /// Where the script's async host functions run.
    runtime: Option<Runtime>,
    /// The script's async calls running now.
    tasks: task::Tasks,
    /// Told when serving ends (the runtime's sentinel then ends too).
    ended_signal: Mutex<Option<crate::oneshot::Sender<()>>>,
}

/// A call of the script's, read and ready to run.
struct Work {
    call: Call,
    running: InFlight,
}

/// What the script asked for.
enum Call {
    /// A native call (`id` is `None` for a notification); `within` is the
    /// host's call the script made it in.
    Native {
        id: Option<Id>,
        method: String,
        params: Params,
        within: Option<i64>,
    },
    /// A classic request: a name and one string argument, answered in order.
    Classic { name: String, arg: String },
}

impl Call {
    fn method(&self) -> &str {
        match self {
            Call::Native { method, .. } => method,
            Call::Classic { name, .. } => name,
        }
    }
}

impl Core {
    /// Runs one of the script's calls: on this thread when `reader` is
    /// given (this is the reader thread) and the function is quick, else on
    /// the pool.
    fn run(self: &Arc<Core>, work: Work, reader: Option<&Rc<dyn Reading>>) {
        let classic = matches!(work.call, Call::Classic { .. });
        let function = self.registry.get(work.call.method());
        if let Some(f) = function.filter(|f| f.is_async() && !classic) {
            let Work { call, running } = work;
            if let Call::Native {
                id, method, params, ..
            } = call
            {
                self.run_async(f, id, method, params, running);
            }
            return;
        }
        if self.inline {
            let quick = function.is_none_or(|f| f.pooling.inline_next());
            // A classic call waits behind those already on the pool.
            let in_order = !classic || self.classic_queued.load(Ordering::Acquire) == 0;
            if let Some(reader) = reader.filter(|_| quick && in_order) {
                return self.run_inline(work, reader);
            }
        }
        let pool: &Pool = match &self.dispatch {
            Dispatch::Serial(pool) => pool,
            Dispatch::HostPool(pool) => pool,
        };
        if classic {
            self.classic_queued.fetch_add(1, Ordering::AcqRel);
        }
        let core = Arc::clone(self);
        pool.submit(Box::new(move || {
            core.execute(work, None);
            if classic {
                core.classic_queued.fetch_sub(1, Ordering::AcqRel);
            }
        }));
    }

    /// Runs a call on the reader thread; when it needed another reader
    /// meanwhile, its function runs on the pool for a while ([`Pooling`]).
    ///
    /// `inline_seq` is odd while the function's own code runs, even while
    /// it reads for itself (waiting for a nested answer) and around it: the
    /// watchdog hands reading over only for a stretch of its own code (or
    /// of a call it runs while it reads) that outlasts a tick. Hand-overs
    /// are numbered by those stretches, so one during this call or a call
    /// nested in it has a number of at least `seq`.
    fn run_inline(self: &Arc<Core>, work: Work, reader: &Rc<dyn Reading>) {
        let function = self.registry.get(work.call.method());
        let seq = self.inline_seq.fetch_add(1, Ordering::SeqCst) + 1;
        watchdog::poke();
        // A moved function's call here is a try: its own time is measured.
        let start = function.filter(|f| f.pooling.moved()).map(|_| {
            (
                Instant::now(),
                self.read_for_itself_ns.load(Ordering::Relaxed),
            )
        });
        self.execute(work, Some(Rc::clone(reader)));
        self.inline_seq.fetch_add(1, Ordering::SeqCst);
        if let Some(f) = function {
            let mut blocked = self.handed_over.load(Ordering::Acquire) >= seq;
            if let Some((at, read)) = start {
                // A moved function comes back only when its own code was
                // well under a tick: one that blocks about as long as a tick
                // often returns before the watchdog looks.
                let reading = self.read_for_itself_ns.load(Ordering::Relaxed) - read;
                let own = u64::try_from(at.elapsed().as_nanos())
                    .unwrap_or(u64::MAX)
                    .saturating_sub(reading);
                blocked |= own > Pooling::TRIAL_NS;
            }
            if f.pooling.ran_inline(blocked) {
                tracing::debug!(function = %f.name, "host function blocks: it runs on the pool, trying the reader's thread again now and then");
            }
        }
    }

    /// Runs one call inside its scope and its span, and sends the answer.
    fn execute(self: &Arc<Core>, work: Work, reader: Option<Rc<dyn Reading>>) {
        let Work { call, running } = work;
        let _running = running;
        let scope = Scope {
            link: Arc::clone(&self.link) as scope::Handle,
            reader,
        };
        let span = CallSpan::new(
            Direction::ToHost,
            call.method(),
            self.link.pid,
            &self.link.script,
        );
        let failed = span.span.in_scope(|| {
            scope::enter(scope, || match call {
                Call::Native {
                    id, method, params, ..
                } => {
                    let outcome = match self.registry.get(&method) {
                        Some(f) => f.call(params),
                        None => Err(read::method_not_found(&self.registry, &method)),
                    };
                    let failed = outcome.as_ref().err().map(|e| e.message.clone());
                    match id {
                        Some(id) => {
                            if let Err(e) = read::reply(&self.link, id, outcome) {
                                tracing::warn!(
                                    pid = self.link.pid,
                                    "cannot answer the script: {e}"
                                );
                            }
                        }
                        None => {
                            if let Some(message) = &failed {
                                tracing::warn!(method, error = %message, "notification failed");
                            }
                        }
                    }
                    failed
                }
                Call::Classic { name, arg } => read::answer_classic(self, &name, arg),
            })
        });
        match failed {
            Some(message) => {
                Counters::add(&self.link.counters.failed_from_script, 1);
                span.finish(Ended::Error, Some(&message));
            }
            None => span.finish(Ended::Ok, None),
        }
    }

    fn running_names(&self) -> Vec<String> {
        lock(&self.running)
            .iter()
            .map(|(_, name)| name.clone())
            .collect()
    }
}

/// Counts one of the script's calls as running until dropped, and remembers
/// its name for crash reports.
struct InFlight {
    link: Arc<Link>,
    names: Arc<Mutex<Vec<(u64, String)>>>,
    serial: u64,
}

impl InFlight {
    fn start(core: &Core, method: &str) -> InFlight {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        core.link
            .counters
            .running_on_host
            .fetch_add(1, Ordering::AcqRel);
        lock(&core.running).push((serial, method.to_owned()));
        InFlight {
            link: Arc::clone(&core.link),
            names: Arc::clone(&core.running),
            serial,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.link
            .counters
            .running_on_host
            .fetch_sub(1, Ordering::AcqRel);
        let mut names = lock(&self.names);
        if let Some(i) = names.iter().position(|(s, _)| *s == self.serial) {
            names.swap_remove(i);
        }
    }
}
