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

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::child::{self, FdVars, Launch, Proc};
use crate::host::{Child, Mode, Outcome};
use crate::peer::{Peer, Shared, CANCEL};
use crate::pool::Pool;
use crate::protocol::classic::{self, Pairing};
use crate::protocol::handshake::{self, Hello};
use crate::protocol::message::{code, EncodeError, Id, Message, Params, RpcError};
use crate::protocol::{DecodeError, PROTOCOL_VERSION};
use crate::transport::{ExitWatch, Incoming, Limits, ReadError, Reader, Writer};
use crate::value::{Map, Value};
use crate::{bundle, Error, Host, Script};

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
    })?;
    let pid = proc.id();
    tracing::debug!(pid, script = %script.path().display(), "script started");
    let watch = ExitWatch::new(&proc);
    let shared = Arc::new(Shared::new(
        pid,
        host.max_frame,
        host.max_depth,
        Writer::new(channel.to_child, watch.clone()),
    ));
    let peer = Peer { shared };
    let killer = proc.killer();
    let session = Session {
        host: Arc::new(host.clone()),
        peer: peer.clone(),
        reader: Reader::new(
            channel.from_child,
            host.max_frame,
            watch,
            Limits {
                deadline: host.deadline.map(|d| (std::time::Instant::now() + d, d)),
                idle: host.idle_timeout,
            },
        ),
        proc,
        greeted: false,
        pairing: Pairing::default(),
        calls: Arc::new(AtomicU64::new(0)),
        in_flight: Arc::new(AtomicUsize::new(0)),
        running: Arc::new(std::sync::Mutex::new(Vec::new())),
        dispatch,
    };
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("tether-reader-{pid}"))
        .spawn(move || {
            let _ = tx.send(session.run());
        })
        .map_err(thread_error)?;
    Ok(Child::new(peer, killer, rx, thread))
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
    names: Arc<std::sync::Mutex<Vec<(u64, String)>>>,
    serial: u64,
}

impl InFlight {
    fn start(
        count: &Arc<AtomicUsize>,
        names: &Arc<std::sync::Mutex<Vec<(u64, String)>>>,
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

struct Session {
    /// Shared with the tasks that run this script's calls (cloned once per
    /// script, not per call).
    host: Arc<Host>,
    peer: Peer,
    reader: Reader,
    proc: Proc,
    greeted: bool,
    pairing: Pairing,
    calls: Arc<AtomicU64>,
    /// The script's calls running on the host now, and their names.
    in_flight: Arc<AtomicUsize>,
    running: Arc<std::sync::Mutex<Vec<(u64, String)>>>,
    dispatch: Dispatch,
}

impl Session {
    fn run(mut self) -> Result<Outcome, Error> {
        let end = self.serve();
        self.finish(end)
    }

    fn serve(&mut self) -> End {
        loop {
            let incoming = match self.reader.next(&mut self.proc) {
                Ok(incoming) => incoming,
                // A script the host itself killed may leave a frame cut short.
                Err(ReadError::Decode(DecodeError::Truncated { .. }))
                    if self.proc.signalled_by_host() =>
                {
                    return End::Ended
                }
                Err(ReadError::Decode(e)) => return End::Fatal(protocol(e.to_string())),
                Err(ReadError::Io(e)) => return End::Fatal(io_error("reading from the script", e)),
            };
            let frame = match incoming {
                Incoming::Frame(frame) => frame,
                Incoming::Expired(what) => {
                    tracing::warn!(target: "tether::limits", pid = self.peer.id(), "{what}");
                    return End::Fatal(Error::Limit(what));
                }
                Incoming::Closed | Incoming::Exited => {
                    return match self.pairing.finish() {
                        Ok(()) => End::Ended,
                        Err(e) => End::Fatal(protocol(e.to_string())),
                    };
                }
            };
            let handled = match self.host.mode {
                Mode::Native => self.native(&frame),
                Mode::Classic => self.classic(frame),
            };
            if let Err(end) = handled {
                return end;
            }
        }
    }

    fn native(&mut self, frame: &bytes::Bytes) -> Result<(), End> {
        let msg = Message::decode(frame).map_err(|e| End::Fatal(protocol(e.to_string())))?;
        if !self.greeted {
            let hello = handshake::hello(msg).map_err(|e| End::Fatal(protocol(e.to_string())))?;
            return self.hello(hello);
        }
        let (id, method, params) = match msg {
            Message::Call { id, method, params } => (id, method, params),
            Message::Reply { id, outcome } => {
                return self
                    .peer
                    .shared
                    .deliver(id, outcome)
                    .map_err(|detail| End::Fatal(protocol(detail)));
            }
        };
        match (method.as_str(), &id) {
            (LOG, None) => {
                forward_log(self.peer.id(), params);
                return Ok(());
            }
            (CANCEL, None) => {
                // Host functions cannot be interrupted; their late answer is
                // dropped by the client.
                tracing::debug!(pid = self.peer.id(), "script cancelled a call");
                return Ok(());
            }
            _ => {}
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) >= self.host.max_in_flight {
            let what = format!(
                "the script has {} calls running on the host already (the limit); {method}() was refused",
                self.host.max_in_flight
            );
            tracing::warn!(target: "tether::limits", pid = self.peer.id(), "{what}");
            if let Some(id) = id {
                let mut data = Map::new();
                data.insert("kind".into(), Value::from("Limit"));
                data.insert("function".into(), Value::Str(method));
                let refusal = Err(RpcError {
                    code: code::LIMIT,
                    message: what,
                    data: Some(Value::Map(data)),
                });
                reply(&self.peer.shared, id, refusal).map_err(End::Fatal)?;
            }
            return Ok(());
        }
        let running = InFlight::start(&self.in_flight, &self.running, &method);
        let host = Arc::clone(&self.host);
        let peer = self.peer.clone();
        let task = move || {
            let _running = running;
            let outcome = Peer::scope(&peer, || match host.functions.get(&method) {
                Some(f) => f.call(params),
                None => Err(method_not_found(&host, &method)),
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
        };
        match &self.dispatch {
            Dispatch::Shared(pool) => pool.submit(Box::new(task)),
            Dispatch::Own(pool) => pool.submit(Box::new(task)),
            Dispatch::Inline => task(),
        }
        Ok(())
    }

    /// Checks the client's protocol version and answers with the host's
    /// description: version, frame limit, functions.
    fn hello(&mut self, hello: Hello) -> Result<(), End> {
        let Hello {
            id,
            protocol: client,
            version: client_version,
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
        self.greeted = true;
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
        result.insert("functions".into(), Value::List(functions));
        result.insert("types".into(), Value::Map(types));
        reply(&self.peer.shared, id, Ok(Value::Map(result))).map_err(End::Fatal)
    }

    fn classic(&mut self, frame: bytes::Bytes) -> Result<(), End> {
        let Some(request) = self.pairing.push(frame) else {
            return Ok(());
        };
        self.calls.fetch_add(1, Ordering::Relaxed);
        let name = String::from_utf8_lossy(&request.name);
        let arg = String::from_utf8_lossy(&request.arg).into_owned();
        let answer = match self.host.functions.get(name.as_ref()) {
            None => classic::BAD_API.to_owned(),
            Some(f) => match f.call(Params::Positional(vec![Value::Str(arg)])) {
                Ok(value) => value.to_string(),
                Err(e) => format!("{}{}", classic::ERROR_PREFIX, e.message),
            },
        };
        let max = self.host.max_frame;
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
        };
        // A script that went away is noticed by the next read.
        self.peer
            .shared
            .send(&encoded)
            .map(drop)
            .map_err(End::Fatal)
    }

    /// Turns how serving ended into the run's result, reaping the script.
    fn finish(mut self, end: End) -> Result<Outcome, Error> {
        let grace = self.host.exit_grace;
        let result = match end {
            End::Ended => match self.proc.wait_timeout(grace) {
                Ok(Some(status)) => {
                    // Whatever the script started ends with it (and stops
                    // holding its output pipes open).
                    self.proc.kill_group();
                    let (stdout, stderr) = self.proc.take_output(OUTPUT_GRACE);
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
                    status: self.proc.kill().ok(),
                }),
                Err(e) => Err(io_error("waiting for the script", e)),
            },
            End::Fatal(err) => {
                if let Error::VersionMismatch { .. } = err {
                    // The client learns of the mismatch from our reply; give
                    // it the grace period to say so before it is killed.
                    self.peer.shared.close_writer();
                    let _ = self.proc.wait_timeout(grace);
                }
                let status = self.proc.kill().ok();
                let (_, stderr) = self.proc.take_output(OUTPUT_GRACE);
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
        let _ = self.proc.kill();
        match &result {
            Ok(o) => tracing::debug!(status = %o.status, calls = o.calls, "script ended"),
            Err(e) => tracing::debug!(error = %e, "script stopped"),
        }
        result
    }
}

impl Session {
    fn running_names(&self) -> Vec<String> {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, name)| name.clone())
            .collect()
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
    let encoded = match msg.encode(max) {
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
