//! Serving one script: a reader thread takes frames off the script's pipe,
//! answers the handshake, routes replies to the host's pending calls, and
//! hands the script's calls to the pool; when the script ends it reaps it and
//! says how it ended.
//!
//! ```text
//!            frames            replies ──▶ pending host→script calls (Peer)
//!   script ──────────▶ reader ─┤
//!     ▲                        └ calls ───▶ pool ──▶ host function ──┐
//!     └──────────────────── writer (mutex, shared) ◀─────────────────┘
//! ```

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::child::{self, FdVars, Launch, Proc};
use crate::host::{Child, Mode, Outcome};
use crate::peer::{self, Peer, Shared, CANCEL};
use crate::pool::Pool;
use crate::protocol::classic::{self, Pairing};
use crate::protocol::handshake::{self, Hello};
use crate::protocol::message::{code, EncodeError, Id, Message, Params, RpcError};
use crate::protocol::{DecodeError, Resolve, PROTOCOL_VERSION};
use crate::transport::{ExitWatch, Incoming, Limits, ReadError, Reader, Spin, Writer};
use crate::value::{Map, Value};
use crate::{bundle, lock, watchdog, Error, Host, Script};

/// How long to wait for capture threads after the script exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// The method of a log record forwarded by the script.
pub(crate) const LOG: &str = "rpc.log";

/// Starts the script and the thread that serves it.
pub(crate) fn start(host: &Host, script: &Script) -> Result<Child, Error> {
    let python = child::interpreter(host.python.as_deref());
    // The bundled client goes on the path in both modes: classic scripts
    // use `tether.classic`.
    let client_dir = bundle::client_dir().map_err(|source| Error::Io {
        context: "writing the bundled tether client to the cache directory".into(),
        source,
    })?;
    let vars = match host.mode {
        Mode::Native => FdVars {
            read: "TETHER_READ_FD",
            write: "TETHER_WRITE_FD",
        },
        Mode::Classic => FdVars {
            read: "PY_READ_FD",
            write: "PY_WRITE_FD",
        },
    };
    let dispatch = match (host.mode, host.serial) {
        (Mode::Classic, _) => Dispatch::Inline,
        (Mode::Native, true) => Dispatch::Own(Pool::new(1, "tether-serial").map_err(thread_error)?),
        (Mode::Native, false) => Dispatch::Shared(host.pool().map_err(thread_error)?),
    };
    let (proc, channel) = child::spawn(&Launch {
        python: &python,
        script,
        vars,
        pythonpath: &client_dir,
        logs: host.forward_logs,
        own_group: host.own_group,
        capture_limit: host.capture_limit,
        spin: host.spin_bound(),
        shared_memory: host.shared_memory.is_some() && host.mode == Mode::Native,
    })?;
    let pid = proc.id();
    tracing::debug!(pid, script = %script.path().display(), "script started");
    let watch = ExitWatch::new(&proc);
    let side = channel.side.map(Arc::new);
    let shares = side.is_some();
    let shared = Arc::new(Shared::new(
        pid,
        host.max_frame,
        host.max_depth,
        Writer::new(channel.to_child, watch.clone(), side.clone()),
    ));
    let peer = Peer { shared };
    let killer = proc.killer();
    let (tx, rx) = mpsc::channel();
    let core = Arc::new(Core {
        host: Arc::new(host.clone()),
        peer: peer.clone(),
        calls: AtomicU64::new(0),
        in_flight: Arc::new(AtomicUsize::new(0)),
        running: Arc::new(Mutex::new(Vec::new())),
        dispatch,
        read: Mutex::new(ReadSide {
            reader: Reader::new(
                channel.from_child,
                host.max_frame,
                watch,
                Limits {
                    deadline: host.deadline.map(|d| (Instant::now() + d, d)),
                    idle: host.idle_timeout,
                },
                Spin::new(host.spin_bound()),
            ),
            proc,
            greeted: false,
            pairing: Pairing::default(),
            shared: side.clone().map(|side| {
                let max = u64::from(host.max_frame);
                let resolve: Box<Resolve> = Box::new(move |offset, len| {
                    crate::shm::map(crate::shm::receive_fd(&*side)?, offset, len, max)
                });
                RefCell::new(resolve)
            }),
        }),
        ended: AtomicBool::new(false),
        done: Mutex::new(Some(tx)),
        finished: Arc::new(AtomicBool::new(false)),
        inline_seq: Arc::new(AtomicU64::new(0)),
        handed_over: AtomicU64::new(0),
        watched: AtomicU64::new(0),
        standby: Mutex::new(Standby::default()),
        standby_cv: Condvar::new(),
        shares,
    });
    let finished = Arc::clone(&core.finished);
    let busy = Arc::clone(&core.inline_seq);
    if matches!(core.dispatch, Dispatch::Shared(_)) {
        let weak = Arc::downgrade(&core);
        watchdog::watch(weak);
    }
    let thread = std::thread::Builder::new()
        .name(format!("tether-reader-{pid}"))
        .spawn(move || serve(core))
        .map_err(thread_error)?;
    Ok(Child::new(peer, killer, rx, thread, finished, busy))
}

fn thread_error(source: io::Error) -> Error {
    Error::Io {
        context: "starting a thread to serve the script".into(),
        source,
    }
}

/// Who runs the script's calls.
enum Dispatch {
    /// The host's shared pool.
    Shared(Arc<Pool>),
    /// A pool of one thread of this script's own (serial mode).
    Own(Pool),
    /// The reader thread itself (classic mode, which has no nesting).
    Inline,
}

/// Why serving stopped.
enum End {
    /// The script closed its end of the channel or exited.
    Ended,
    /// The session must end with this error; the script is stopped.
    Fatal(Error),
}

/// Counts one of the script's calls as running until dropped, and remembers
/// its name for crash reports.
struct InFlight {
    count: Arc<AtomicUsize>,
    names: Arc<Mutex<Vec<(u64, String)>>>,
    serial: u64,
}

impl InFlight {
    fn start(
        count: &Arc<AtomicUsize>,
        names: &Arc<Mutex<Vec<(u64, String)>>>,
        method: &str,
    ) -> InFlight {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        count.fetch_add(1, Ordering::AcqRel);
        names
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((serial, method.to_owned()));
        InFlight {
            count: Arc::clone(count),
            names: Arc::clone(names),
            serial,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = names.iter().position(|(s, _)| *s == self.serial) {
            names.swap_remove(i);
        }
    }
}

/// A call of the script's, read and ready to run.
struct Work {
    id: Option<Id>,
    method: String,
    params: Params,
    running: InFlight,
}

/// What the reading side owns: only the thread that reads touches it.
struct ReadSide {
    reader: Reader,
    proc: Proc,
    greeted: bool,
    pairing: Pairing,
    /// Maps the shared values the script sends (shared memory on).
    shared: Option<RefCell<Box<Resolve>>>,
}

/// The standby reader: a thread that reads for the script while its reader
/// thread runs a call that blocks or calls back into the script.
#[derive(Default)]
struct Standby {
    /// The inline call (by its sequence number) to read during.
    wanted: u64,
    exit: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One script being served, shared by its reader thread, its standby reader
/// and the watchdog.
///
/// The reader thread runs most of the script's calls itself, right after
/// reading them: handing a call to another thread costs a wake-up, which is
/// most of a small call's round trip. While it runs a call nobody reads,
/// so a call that takes long (the [`watchdog`] notices after a millisecond)
/// or calls back into the script (noticed at once) hands reading over to the
/// standby reader, which passes the calls it reads to the pool, until the
/// inline call returns. A function that needed that runs on the pool from
/// then on.
pub(crate) struct Core {
    host: Arc<Host>,
    peer: Peer,
    calls: AtomicU64,
    /// The script's calls running on the host now, and their names.
    in_flight: Arc<AtomicUsize>,
    running: Arc<Mutex<Vec<(u64, String)>>>,
    dispatch: Dispatch,
    read: Mutex<ReadSide>,
    /// Serving has ended (set under the `read` lock by whoever ended it).
    ended: AtomicBool,
    done: Mutex<Option<mpsc::Sender<Result<Outcome, Error>>>>,
    /// The outcome has been sent.
    finished: Arc<AtomicBool>,
    /// Counts the calls the reader thread runs itself, twice: odd while one
    /// runs.
    inline_seq: Arc<AtomicU64>,
    /// The inline call for which reading was handed over.
    handed_over: AtomicU64,
    /// The inline call the watchdog saw running at its last tick.
    watched: AtomicU64,
    standby: Mutex<Standby>,
    standby_cv: Condvar,
    /// The script got a socket for shared memory.
    shares: bool,
}

/// How often the standby reader checks whether the inline call returned.
const STANDBY_POLL: Duration = Duration::from_millis(1);

/// The reader thread: reads, runs calls, and when serving ends, reports.
fn serve(core: Arc<Core>) {
    let _serving = crate::transport::Serving::start();
    let hook: Rc<dyn Fn()> = {
        let core = Arc::clone(&core);
        Rc::new(move || core.hand_over(core.inline_seq.load(Ordering::SeqCst)))
    };
    loop {
        let work = {
            let mut rs = lock(&core.read);
            if core.ended.load(Ordering::Acquire) {
                break;
            }
            match rs.next_work(&core, None) {
                Ok(work) => work,
                Err(end) => {
                    core.finish(&mut rs, end);
                    break;
                }
            }
        };
        if let Some(work) = work {
            core.run(work, Some(&hook));
        }
    }
    let standby = {
        let mut sb = lock(&core.standby);
        sb.exit = true;
        sb.thread.take()
    };
    core.standby_cv.notify_all();
    if let Some(thread) = standby {
        let _ = thread.join();
    }
}

/// The standby reader's thread.
fn standby(core: Arc<Core>) {
    let mut served = 0;
    loop {
        let seq = {
            let mut sb = lock(&core.standby);
            loop {
                if sb.exit {
                    return;
                }
                if sb.wanted != served {
                    break sb.wanted;
                }
                sb = core.standby_cv.wait(sb).unwrap_or_else(|e| e.into_inner());
            }
        };
        served = seq;
        tracing::trace!(pid = core.peer.id(), "standby reader takes over");
        while core.inline_seq.load(Ordering::SeqCst) == seq {
            let work = {
                let mut rs = lock(&core.read);
                if core.ended.load(Ordering::Acquire) {
                    return;
                }
                match rs.next_work(&core, Some(Instant::now() + STANDBY_POLL)) {
                    Ok(work) => work,
                    Err(end) => {
                        core.finish(&mut rs, end);
                        return;
                    }
                }
            };
            if let Some(work) = work {
                core.run(work, None);
            }
        }
    }
}

impl watchdog::Watched for Core {
    fn tick(self: Arc<Self>) -> bool {
        let seq = self.inline_seq.load(Ordering::SeqCst);
        if seq.is_multiple_of(2) {
            return false;
        }
        if self.watched.swap(seq, Ordering::AcqRel) == seq {
            // The same inline call as a tick ago: it blocks reading.
            self.hand_over(seq);
        }
        true
    }
}

impl Core {
    /// Runs one of the script's calls: on this thread when `hook` is given
    /// (this is the reader thread) and the function is quick, else on the
    /// pool.
    fn run(self: &Arc<Core>, work: Work, hook: Option<&Rc<dyn Fn()>>) {
        let function = self.host.functions.get(&work.method);
        let inline = hook.filter(|_| {
            matches!(self.dispatch, Dispatch::Shared(_))
                && function.is_none_or(|f| !f.pooled.load(Ordering::Relaxed))
        });
        let task = self.task(work);
        match (inline, &self.dispatch) {
            (Some(hook), _) => {
                let seq = self.inline_seq.fetch_add(1, Ordering::SeqCst) + 1;
                watchdog::poke();
                peer::as_reader(&self.peer.shared, hook, task);
                self.inline_seq.fetch_add(1, Ordering::SeqCst);
                if self.handed_over.load(Ordering::Acquire) == seq {
                    if let Some(f) = function {
                        tracing::debug!(function = %f.name, "host function blocks: it runs on the pool from now on");
                        f.pooled.store(true, Ordering::Relaxed);
                    }
                }
            }
            (None, Dispatch::Shared(pool)) => pool.submit(Box::new(task)),
            (None, Dispatch::Own(pool)) => pool.submit(Box::new(task)),
            (None, Dispatch::Inline) => task(),
        }
    }

    /// The running of one call, answer included.
    fn task(self: &Arc<Core>, work: Work) -> impl FnOnce() + Send + 'static {
        let Work {
            id,
            method,
            params,
            running,
        } = work;
        let core = Arc::clone(self);
        move || {
            let _running = running;
            let host = &core.host;
            let peer = &core.peer;
            let outcome = Peer::scope(peer, || match host.functions.get(&method) {
                Some(f) => f.call(params),
                None => Err(method_not_found(host, &method)),
            });
            match id {
                Some(id) => {
                    if let Err(e) = reply(&peer.shared, id, outcome) {
                        tracing::warn!(pid = peer.id(), "cannot answer the script: {e}");
                    }
                }
                None => {
                    if let Err(e) = outcome {
                        tracing::warn!(method, error = %e.message, "notification failed");
                    }
                }
            }
        }
    }

    /// Gets the standby reader to read while inline call `seq` runs.
    fn hand_over(self: &Arc<Core>, seq: u64) {
        if seq.is_multiple_of(2) || self.handed_over.swap(seq, Ordering::AcqRel) == seq {
            return;
        }
        let mut sb = lock(&self.standby);
        if sb.exit {
            return;
        }
        sb.wanted = seq;
        if sb.thread.is_none() {
            let core = Arc::clone(self);
            match std::thread::Builder::new()
                .name(format!("tether-standby-{}", self.peer.id()))
                .spawn(move || standby(core))
            {
                Ok(thread) => sb.thread = Some(thread),
                Err(e) => {
                    // Reading resumes when the inline call returns.
                    tracing::warn!(pid = self.peer.id(), "cannot start a standby reader: {e}");
                }
            }
        }
        drop(sb);
        self.standby_cv.notify_all();
    }

    /// Records how serving ended and sends the outcome, once.
    fn finish(&self, rs: &mut ReadSide, end: End) {
        if self.ended.swap(true, Ordering::AcqRel) {
            return;
        }
        let result = self.outcome(rs, end);
        if let Some(tx) = lock(&self.done).take() {
            let _ = tx.send(result);
        }
        self.finished.store(true, Ordering::Release);
    }

    fn running_names(&self) -> Vec<String> {
        lock(&self.running)
            .iter()
            .map(|(_, name)| name.clone())
            .collect()
    }
}

impl ReadSide {
    /// Reads until one of the script's calls is ready to run (`Some`), or
    /// `until` passes (`None`), handling everything else on the way:
    /// the handshake, replies, logs, cancellations, classic calls.
    fn next_work(&mut self, core: &Core, until: Option<Instant>) -> Result<Option<Work>, End> {
        loop {
            let incoming = match self.reader.next(&mut self.proc, until) {
                Ok(incoming) => incoming,
                // A script the host itself killed may leave a frame cut short.
                Err(ReadError::Decode(DecodeError::Truncated { .. }))
                    if self.proc.signalled_by_host() =>
                {
                    return Err(End::Ended)
                }
                Err(ReadError::Decode(e)) => return Err(End::Fatal(protocol(e.to_string()))),
                Err(ReadError::Io(e)) => {
                    return Err(End::Fatal(io_error("reading from the script", e)))
                }
            };
            let frame = match incoming {
                Incoming::Frame(frame) => frame,
                Incoming::Waiting => return Ok(None),
                Incoming::Expired(what) => {
                    tracing::warn!(target: "tether::limits", pid = core.peer.id(), "{what}");
                    return Err(End::Fatal(Error::Limit(what)));
                }
                Incoming::Closed | Incoming::Exited => {
                    return match self.pairing.finish() {
                        Ok(()) => Err(End::Ended),
                        Err(e) => Err(End::Fatal(protocol(e.to_string()))),
                    };
                }
            };
            let work = match core.host.mode {
                Mode::Native => self.native(core, &frame)?,
                Mode::Classic => {
                    self.classic(core, frame)?;
                    None
                }
            };
            if work.is_some() {
                return Ok(work);
            }
        }
    }

    fn native(&mut self, core: &Core, frame: &bytes::Bytes) -> Result<Option<Work>, End> {
        let msg = Message::decode_shared(frame, self.shared.as_ref())
            .map_err(|e| End::Fatal(protocol(e.to_string())))?;
        if !self.greeted {
            let hello = handshake::hello(msg).map_err(|e| End::Fatal(protocol(e.to_string())))?;
            core.hello(hello)?;
            self.greeted = true;
            return Ok(None);
        }
        let (id, method, params) = match msg {
            Message::Call { id, method, params } => (id, method, params),
            Message::Reply { id, outcome } => {
                core.peer
                    .shared
                    .deliver(id, outcome)
                    .map_err(|detail| End::Fatal(protocol(detail)))?;
                return Ok(None);
            }
        };
        match (method.as_str(), &id) {
            (LOG, None) => {
                forward_log(core.peer.id(), params);
                return Ok(None);
            }
            (CANCEL, None) => {
                // Host functions cannot be interrupted; their late answer is
                // dropped by the client.
                tracing::debug!(pid = core.peer.id(), "script cancelled a call");
                return Ok(None);
            }
            _ => {}
        }
        core.calls.fetch_add(1, Ordering::Relaxed);
        if core.in_flight.load(Ordering::Acquire) >= core.host.max_in_flight {
            let what = format!(
                "the script has {} calls running on the host already (the limit); {method}() was refused",
                core.host.max_in_flight
            );
            tracing::warn!(target: "tether::limits", pid = core.peer.id(), "{what}");
            if let Some(id) = id {
                let mut data = Map::new();
                data.insert("kind".into(), Value::from("Limit"));
                data.insert("function".into(), Value::Str(method));
                let refusal = Err(RpcError {
                    code: code::LIMIT,
                    message: what,
                    data: Some(Value::Map(data)),
                });
                reply(&core.peer.shared, id, refusal).map_err(End::Fatal)?;
            }
            return Ok(None);
        }
        let running = InFlight::start(&core.in_flight, &core.running, &method);
        Ok(Some(Work {
            id,
            method,
            params,
            running,
        }))
    }

    fn classic(&mut self, core: &Core, frame: bytes::Bytes) -> Result<(), End> {
        let Some(request) = self.pairing.push(frame) else {
            return Ok(());
        };
        core.calls.fetch_add(1, Ordering::Relaxed);
        let name = String::from_utf8_lossy(&request.name);
        let arg = String::from_utf8_lossy(&request.arg).into_owned();
        let answer = match core.host.functions.get(name.as_ref()) {
            None => classic::BAD_API.to_owned(),
            Some(f) => match f.call(Params::Positional(vec![Value::Str(arg)])) {
                Ok(value) => value.to_string(),
                Err(e) => format!("{}{}", classic::ERROR_PREFIX, e.message),
            },
        };
        let max = core.host.max_frame;
        let bytes = match classic::encode_response(answer.as_bytes(), max) {
            Ok(bytes) => bytes,
            Err(e) => classic::encode_response(
                format!("{}{e}", classic::ERROR_PREFIX).as_bytes(),
                u32::MAX,
            )
            .map_err(|e| End::Fatal(protocol(e.to_string())))?,
        };
        let encoded = crate::protocol::message::Encoded {
            head: bytes::Bytes::from(bytes),
            attachments: Vec::new(),
            shared: Vec::new(),
        };
        // A script that went away is noticed by the next read.
        core.peer
            .shared
            .send(&encoded)
            .map(drop)
            .map_err(End::Fatal)
    }
}

impl Core {
    /// Checks the client's protocol version and answers with the host's
    /// description: version, frame limit, functions.
    fn hello(&self, hello: Hello) -> Result<(), End> {
        let Hello {
            id,
            protocol: client,
            version: client_version,
            shared_memory: client_shares,
        } = hello;
        if client != i64::from(PROTOCOL_VERSION) {
            let mut data = Map::new();
            data.insert("kind".into(), Value::from("VersionMismatch"));
            data.insert("protocol".into(), Value::from(PROTOCOL_VERSION));
            data.insert("version".into(), Value::from(bundle::CLIENT_VERSION));
            let message = format!(
                "protocol version mismatch: the host (tether {}) speaks protocol {PROTOCOL_VERSION}, \
                 this client (tether {client_version}) speaks {client}; run the script with the client \
                 the host bundles (remove other tether installs from its path)",
                bundle::CLIENT_VERSION
            );
            let answer = Err(RpcError {
                code: code::VERSION_MISMATCH,
                message,
                data: Some(Value::Map(data)),
            });
            reply(&self.peer.shared, id, answer).map_err(End::Fatal)?;
            return Err(End::Fatal(Error::VersionMismatch {
                host: PROTOCOL_VERSION,
                client: u32::try_from(client).unwrap_or(0),
                client_version,
            }));
        }
        let registry = self.host.type_registry();
        let strings =
            |items: &[String]| Value::List(items.iter().map(|s| Value::Str(s.clone())).collect());
        let functions = self
            .host
            .functions
            .values()
            .map(|f| {
                let (annotations, returns) = f.annotations(&registry);
                let mut m = Map::new();
                m.insert("name".into(), Value::Str(f.name.clone()));
                m.insert(
                    "params".into(),
                    f.params.as_deref().map_or(Value::Null, strings),
                );
                m.insert("signature".into(), Value::Str(f.signature()));
                m.insert("annotations".into(), strings(&annotations));
                m.insert("returns".into(), Value::Str(returns));
                m.insert("doc".into(), f.doc.clone().map_or(Value::Null, Value::Str));
                Value::Map(m)
            })
            .collect();
        let types = registry
            .structs
            .iter()
            .map(|(name, fields)| {
                let fields = fields
                    .iter()
                    .map(|(field, ann)| {
                        Value::List(vec![Value::from(field.as_str()), Value::from(ann.as_str())])
                    })
                    .collect();
                (name.clone(), Value::List(fields))
            })
            .collect::<Map>();
        let mut result = Map::new();
        result.insert("protocol".into(), Value::from(PROTOCOL_VERSION));
        result.insert("version".into(), Value::from(bundle::CLIENT_VERSION));
        result.insert("max_frame".into(), Value::from(self.host.max_frame));
        result.insert("logs".into(), Value::Bool(self.host.forward_logs));
        // Shared memory, when the host offers it and the client can take it:
        // the threshold the client uses for what it sends.
        let share = self
            .host
            .shared_memory
            .filter(|_| client_shares && self.shares);
        result.insert(
            "shm".into(),
            share.map_or(Value::Null, |t| Value::from(t as u64)),
        );
        result.insert("functions".into(), Value::List(functions));
        result.insert("types".into(), Value::Map(types));
        reply(&self.peer.shared, id, Ok(Value::Map(result))).map_err(End::Fatal)?;
        if let Some(threshold) = share {
            self.peer.shared.share_from(threshold);
        }
        Ok(())
    }

    /// Turns how serving ended into the run's result, reaping the script.
    fn outcome(&self, rs: &mut ReadSide, end: End) -> Result<Outcome, Error> {
        let grace = self.host.exit_grace;
        let result = match end {
            End::Ended => match rs.proc.wait_timeout(grace) {
                Ok(Some(status)) => {
                    // Whatever the script started ends with it (and stops
                    // holding its output pipes open).
                    rs.proc.kill_group();
                    let (stdout, stderr) = rs.proc.take_output(OUTPUT_GRACE);
                    Ok(Outcome {
                        status,
                        stdout,
                        stderr,
                        calls: self.calls.load(Ordering::Relaxed),
                        in_flight: self.running_names(),
                    })
                }
                Ok(None) => Err(Error::Protocol {
                    detail: format!(
                        "the script closed its channel but did not exit within {grace:?}"
                    ),
                    status: rs.proc.kill().ok(),
                }),
                Err(e) => Err(io_error("waiting for the script", e)),
            },
            End::Fatal(err) => {
                if let Error::VersionMismatch { .. } = err {
                    // The client learns of the mismatch from our reply; give
                    // it the grace period to say so before it is killed.
                    self.peer.shared.close_writer();
                    let _ = rs.proc.wait_timeout(grace);
                }
                let status = rs.proc.kill().ok();
                let (_, stderr) = rs.proc.take_output(OUTPUT_GRACE);
                let report = report(&self.running_names(), stderr.as_deref());
                Err(match err {
                    Error::Protocol { detail, .. } => Error::Protocol {
                        detail: detail + &report,
                        status,
                    },
                    Error::Limit(what) => Error::Limit(what + &report),
                    other => other,
                })
            }
        };
        self.peer.shared.close_writer();
        let why = match &result {
            Ok(outcome) => format!("script {} ended ({})", self.peer.id(), outcome.status),
            Err(e) => format!("script {} was stopped: {e}", self.peer.id()),
        };
        self.peer.shared.close(why);
        // Any reaped-but-unreported status is already in `result`; make sure
        // the process is gone in every case before reporting.
        let _ = rs.proc.kill();
        match &result {
            Ok(o) => tracing::debug!(status = %o.status, calls = o.calls, "script ended"),
            Err(e) => tracing::debug!(error = %e, "script stopped"),
        }
        result
    }
}

/// What a failure report adds to how the script ended: the calls in flight
/// and the last lines of captured stderr.
pub(crate) fn report(in_flight: &[String], stderr: Option<&[u8]>) -> String {
    const LINES: usize = 20;
    let mut out = String::new();
    if !in_flight.is_empty() {
        out += &format!("; calls in flight: {}", in_flight.join(", "));
    }
    if let Some(stderr) = stderr.filter(|s| !s.is_empty()) {
        let text = String::from_utf8_lossy(stderr);
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(LINES)..];
        out += &format!("; last lines of stderr:\n{}", tail.join("\n"));
    }
    out
}

/// Sends the answer to one call, replacing a result that cannot be sent
/// (too large, NaN) with an error that says why.
fn reply(shared: &Shared, id: Id, outcome: Result<Value, RpcError>) -> Result<(), Error> {
    let max = shared.max_frame;
    let msg = Message::Reply {
        id: Some(id.clone()),
        outcome,
    };
    let encoded = match shared.encode(&msg, max) {
        Ok(enc) => enc,
        Err(e) => {
            let (code, kind) = match e {
                EncodeError::TooLarge { .. } => (code::TOO_LARGE, "TooLarge"),
                EncodeError::Value(_) => (code::INTERNAL_ERROR, "BadResult"),
            };
            let mut data = Map::new();
            data.insert("kind".into(), Value::from(kind));
            Message::Reply {
                id: Some(id),
                outcome: Err(RpcError {
                    code,
                    message: format!("the host cannot send its answer: {e}"),
                    data: Some(Value::Map(data)),
                }),
            }
            .encode(max.max(4096))
            .map_err(|e| protocol(format!("cannot encode an error reply: {e}")))?
        }
    };
    // A script that went away is noticed by the reader.
    shared.send(&encoded).map(drop)
}

fn method_not_found(host: &Host, method: &str) -> RpcError {
    let mut names: Vec<&str> = host.function_names().collect();
    names.sort_unstable();
    let mut data = Map::new();
    data.insert("kind".into(), Value::from("MethodNotFound"));
    data.insert("method".into(), Value::from(method));
    data.insert(
        "available".into(),
        Value::List(names.iter().map(|n| Value::from(*n)).collect()),
    );
    let message = if names.is_empty() {
        format!("no host function named {method:?}; the host has no functions")
    } else {
        format!(
            "no host function named {method:?}; the host has: {}",
            names.join(", ")
        )
    };
    RpcError {
        code: code::METHOD_NOT_FOUND,
        message,
        data: Some(Value::Map(data)),
    }
}

/// Re-emits a Python logging record as a `tracing` event.
fn forward_log(pid: u32, params: Params) {
    let Params::Named(record) = params else {
        return;
    };
    let level = record.get("level").and_then(Value::as_i64).unwrap_or(20);
    let logger = record
        .get("logger")
        .and_then(Value::as_str)
        .unwrap_or("root");
    let message = record.get("message").and_then(Value::as_str).unwrap_or("");
    // Python levels: DEBUG 10, INFO 20, WARNING 30, ERROR 40, CRITICAL 50.
    match level {
        l if l >= 40 => tracing::error!(target: "tether::script", pid, logger, "{message}"),
        l if l >= 30 => tracing::warn!(target: "tether::script", pid, logger, "{message}"),
        l if l >= 20 => tracing::info!(target: "tether::script", pid, logger, "{message}"),
        l if l >= 10 => tracing::debug!(target: "tether::script", pid, logger, "{message}"),
        _ => tracing::trace!(target: "tether::script", pid, logger, "{message}"),
    }
}

fn protocol(detail: String) -> Error {
    Error::Protocol {
        detail,
        status: None,
    }
}

fn io_error(context: &str, source: io::Error) -> Error {
    Error::Io {
        context: context.to_owned(),
        source,
    }
}
