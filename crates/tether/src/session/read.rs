//! Reading and routing: frames off the script's pipe become replies to the
//! host's calls, protocol messages (handshake, readiness, logs, cancels)
//! answered here, or calls for the host's functions.

use std::time::Instant;

use bytes::Bytes;

use super::{Call, Core, InFlight, Work};
use crate::config::{Config, Mode};
use crate::error::Error;
use crate::function::Registry;
use crate::link::Link;
use crate::process::Proc;
use crate::protocol::classic::{self, Pairing};
use crate::protocol::handshake::{self, Hello, Welcome};
use crate::protocol::message::{code, EncodeError, Encoded, Id, Message, Params, RpcError};
use crate::protocol::recover::{self, Peeked as Recovered};
use crate::protocol::{method, DecodeError, PROTOCOL_VERSION};
use crate::stats::Counters;
use crate::transport::{Broken, Incoming, Reader};
use crate::value::{Map, Value};

/// Why serving stopped.
pub(super) enum End {
    /// The script closed its end of the channel or exited.
    Ended,
    /// The session must end with this error; the script is stopped.
    Fatal(Error),
}

/// What the reading side owns: only the thread that reads touches it.
pub(super) struct ReadSide {
    pub reader: Reader,
    pub proc: Proc,
    greeted: bool,
    /// The protocol version agreed in the handshake.
    protocol: i64,
    pairing: Pairing,
    /// The script got a socket for shared memory.
    shares: bool,
    mode: Mode,
}

impl ReadSide {
    pub fn new(reader: Reader, proc: Proc, shares: bool, config: &Config) -> ReadSide {
        ReadSide {
            reader,
            proc,
            greeted: false,
            protocol: i64::from(PROTOCOL_VERSION),
            pairing: Pairing::default(),
            shares,
            mode: config.mode,
        }
    }

    /// Reads until one of the script's calls is ready to run (`Some`), or
    /// `until` passes or a message read makes `stop()` true (`None`),
    /// handling everything else on the way.
    pub fn next_work(
        &mut self,
        core: &Core,
        until: Option<Instant>,
        stop: Option<&dyn Fn() -> bool>,
    ) -> Result<Option<Work>, End> {
        loop {
            let incoming = match self.reader.next(&mut self.proc, until) {
                Ok(incoming) => incoming,
                // A script the host itself killed may leave a frame cut short.
                Err(Broken::Decode(DecodeError::Truncated { .. }))
                    if self.proc.signalled_by_host() =>
                {
                    return Err(End::Ended)
                }
                Err(Broken::Decode(e)) => return Err(End::Fatal(protocol(e.to_string()))),
                Err(Broken::Io(e)) => {
                    return Err(End::Fatal(io_error("reading from the script", e)))
                }
                Err(Broken::Gone) => return Err(End::Ended),
            };
            let frame = match incoming {
                Incoming::Frame(frame) => {
                    let read = frame.len() + crate::protocol::frame::HEADER_LEN;
                    Counters::add(&core.link.counters.bytes_from_script, read as u64);
                    frame
                }
                Incoming::Waiting => return Ok(None),
                Incoming::Expired(limit, what) => {
                    tracing::warn!(target: "tether::limits", pid = core.link.pid, "{what}");
                    return Err(End::Fatal(Error::limit(limit, what)));
                }
                Incoming::Closed | Incoming::Exited => {
                    return match self.pairing.finish() {
                        Ok(()) => Err(End::Ended),
                        Err(e) => Err(End::Fatal(protocol(e.to_string()))),
                    };
                }
            };
            let call = match self.mode {
                Mode::Native => self.native(core, &frame)?,
                Mode::Classic => self.pairing.push(frame).map(|request| Call::Classic {
                    name: String::from_utf8_lossy(&request.name).into_owned(),
                    arg: String::from_utf8_lossy(&request.arg).into_owned(),
                }),
            };
            if let Some(call) = call {
                if let Some(work) = admit(core, call)? {
                    return Ok(Some(work));
                }
            }
            if stop.is_some_and(|stop| stop()) {
                return Ok(None);
            }
        }
    }

    /// Routes one native frame; a call for a host function comes back.
    fn native(&mut self, core: &Core, frame: &Bytes) -> Result<Option<Call>, End> {
        let decoded = {
            let mut resolve = |offset: u64, len: u64| {
                let max = u64::from(core.config.max_frame);
                let fd = self.reader.next_shared_fd()?;
                Counters::add(&core.link.counters.bytes_from_script, len);
                crate::shm::map(fd, offset, len, max)
            };
            Message::decode_shared(frame, Some(&mut resolve))
        };
        let msg = match decoded {
            Ok(msg) => msg,
            Err(e) => return self.unreadable(core, frame, &e).map(|()| None),
        };
        if !self.greeted {
            return self.handshake(core, msg).map(|()| None);
        }
        let (id, method, params, within) = match msg {
            Message::Call {
                id,
                method,
                params,
                within,
            } => (id, method, params, within),
            Message::Reply { id: None, outcome } => {
                // The script could not read a frame of the host's (§7.1): no
                // call can be matched with it, so it is only reported.
                let what = match outcome {
                    Err(e) => e.message,
                    Ok(_) => "a result with a null id".to_owned(),
                };
                tracing::warn!(
                    pid = core.link.pid,
                    "the script could not read a message of the host's: {what}"
                );
                return Ok(None);
            }
            Message::Reply { id, outcome } => {
                core.link
                    .deliver(id, outcome)
                    .map_err(|detail| End::Fatal(protocol(detail)))?;
                return Ok(None);
            }
        };
        // `within` nests a request in one of the host's; a notification
        // nests in nothing, and a protocol-3 client has no such member.
        let within = within.filter(|_| id.is_some() && self.protocol >= 4);
        // A reserved notification sent as a request is acted on and answered
        // with null (§5.1).
        let acknowledge = |id| answer(core, id, Ok(Value::Null)).map(|()| None);
        match method.as_str() {
            method::HELLO => {
                let refusal = invalid_request(format!(
                    "the handshake is done: {} is sent once, as the first message",
                    method::HELLO
                ));
                answer(core, id, Err(refusal)).map(|()| None)
            }
            method::LOG => {
                forward_log(&core.link, core.config.on_log.as_ref(), params);
                acknowledge(id)
            }
            method::READY => {
                let exports =
                    handshake::ready(&params).map_err(|e| End::Fatal(protocol(e.to_string())))?;
                tracing::debug!(pid = core.link.pid, ?exports, "script is ready");
                core.link.set_ready(exports);
                acknowledge(id)
            }
            method::CANCEL => {
                // An async host function's future is dropped; a sync one
                // cannot be interrupted (the client drops its late answer).
                // A cancel of a call unknown or already answered does nothing.
                tracing::debug!(pid = core.link.pid, "script cancelled a call");
                if let Params::Named(p) = &params {
                    match p.get("id") {
                        Some(Value::Int(n)) => core.tasks.cancel(&Id::Int(*n)),
                        Some(Value::Str(s)) => core.tasks.cancel(&Id::Str(s.clone())),
                        _ => {}
                    }
                }
                acknowledge(id)
            }
            _ => Ok(Some(Call::Native {
                id,
                method,
                params,
                within,
            })),
        }
    }

    /// The first message: a hello is answered with the host's description
    /// (or a refusal of its version); anything else is answered with an
    /// error when it has an id, and ends the session.
    fn handshake(&mut self, core: &Core, msg: Message) -> Result<(), End> {
        let id = match &msg {
            Message::Call { id, .. } => id.clone(),
            Message::Reply { .. } => None,
        };
        let hello = match handshake::hello(msg) {
            Ok(hello) => hello,
            Err(not) => {
                let refusal = rpc_error(not.code(), kind_of(not.code()), not.message().to_owned());
                answer(core, id, Err(refusal))?;
                return Err(End::Fatal(protocol(format!(
                    "the script's first message is not a handshake the host can take: {not}"
                ))));
            }
        };
        let interrupt = hello.interrupt;
        let protocol = hello.protocol;
        greet(core, hello, self.shares)?;
        if interrupt {
            let killer = self.proc.killer();
            core.link
                .set_interrupt(Box::new(move || killer.nudge(rustix::process::Signal::URG)));
        }
        self.protocol = protocol;
        self.greeted = true;
        Ok(())
    }

    /// A sound frame whose message cannot be read (§7.1): a call with an id
    /// is answered with the error, the host's call a reply was for fails with
    /// it, a notification is dropped, and anything else is answered with a
    /// null id. Before the handshake, and for a frame with shared-memory
    /// references (whose descriptors can no longer be matched with the
    /// frames that follow), it ends the session instead.
    fn unreadable(&mut self, core: &Core, frame: &Bytes, e: &DecodeError) -> Result<(), End> {
        let (code, detail) = match e {
            DecodeError::Parse(m) => (code::PARSE_ERROR, m.clone()),
            other => (code::INVALID_REQUEST, other.to_string()),
        };
        let peeked = recover::peek(frame);
        let shared = self.shares && frame.windows(6).any(|w| w == b"\"$shm\"");
        if !self.greeted || shared {
            if peeked.call {
                let what = format!("the host cannot read this message: {e}");
                answer(core, peeked.id, Err(rpc_error(code, kind_of(code), what)))?;
            }
            return Err(End::Fatal(protocol(e.to_string())));
        }
        tracing::warn!(
            pid = core.link.pid,
            "the script sent a message the host cannot read: {e}"
        );
        match peeked {
            Recovered {
                reply: true, id, ..
            } if id.is_some() => {
                let what = format!("the script's answer cannot be read: {detail}");
                core.link
                    .deliver(id, Err(rpc_error(code, kind_of(code), what)))
                    .map_err(|detail| End::Fatal(protocol(detail)))
            }
            Recovered {
                call: true,
                id: None,
                ..
            } => Ok(()),
            Recovered { id, .. } => {
                let what = format!("the host cannot read this message: {e}");
                answer_any(core, id, Err(rpc_error(code, kind_of(code), what)))
            }
        }
    }
}

/// Answers a request (`id` given); a notification gets no answer.
fn answer(core: &Core, id: Option<Id>, outcome: Result<Value, RpcError>) -> Result<(), End> {
    match id {
        Some(id) => reply(&core.link, id, outcome).map_err(End::Fatal),
        None => Ok(()),
    }
}

/// Answers with `id`, or with a null id when it is unknown.
fn answer_any(core: &Core, id: Option<Id>, outcome: Result<Value, RpcError>) -> Result<(), End> {
    send_message(&core.link, &Message::Reply { id, outcome }).map_err(End::Fatal)
}

/// An error answer with `data.kind`.
fn rpc_error(code: i64, kind: &str, message: String) -> RpcError {
    let mut data = Map::new();
    data.insert("kind".into(), Value::from(kind));
    RpcError {
        code,
        message,
        data: Some(Value::Map(data)),
    }
}

fn invalid_request(message: String) -> RpcError {
    rpc_error(code::INVALID_REQUEST, "InvalidRequest", message)
}

/// The `data.kind` of the protocol's own errors.
fn kind_of(code: i64) -> &'static str {
    match code {
        code::PARSE_ERROR => "ParseError",
        code::INVALID_PARAMS => "InvalidParams",
        _ => "InvalidRequest",
    }
}

/// Counts a call and lets it run, unless the script has too many running:
/// then it is refused at once (a notification is dropped).
fn admit(core: &Core, call: Call) -> Result<Option<Work>, End> {
    let counters = &core.link.counters;
    Counters::add(&counters.calls_from_script, 1);
    let limit = core.config.max_in_flight;
    if counters
        .running_on_host
        .load(std::sync::atomic::Ordering::Acquire)
        < limit
    {
        let running = InFlight::start(core, call.method());
        return Ok(Some(Work { call, running }));
    }
    let method = call.method().to_owned();
    let what = format!(
        "the script has {limit} calls running on the host already (the limit); {method}() was refused"
    );
    tracing::warn!(target: "tether::limits", pid = core.link.pid, "{what}");
    Counters::add(&counters.failed_from_script, 1);
    match call {
        Call::Native { id: Some(id), .. } => {
            let mut data = Map::new();
            data.insert("kind".into(), Value::from("Limit"));
            data.insert("function".into(), Value::Str(method));
            let refusal = Err(RpcError {
                code: code::LIMIT,
                message: what,
                data: Some(Value::Map(data)),
            });
            reply(&core.link, id, refusal).map_err(End::Fatal)?;
        }
        Call::Native { id: None, .. } => {}
        Call::Classic { .. } => {
            // Classic calls run one at a time, so this cannot be reached
            // with a limit of one or more; answer in order all the same.
            let answer = format!("{}{what}", classic::ERROR_PREFIX);
            send_classic(&core.link, &answer, core.config.max_frame).map_err(End::Fatal)?;
        }
    }
    Ok(None)
}

/// Checks the client's protocol version and answers with the host's
/// description, or refuses it.
fn greet(core: &Core, hello: Hello, shares: bool) -> Result<(), End> {
    if !handshake::speaks(hello.protocol) {
        let refusal = handshake::refusal(&hello, crate::bundle::VERSION);
        send_message(&core.link, &refusal).map_err(End::Fatal)?;
        return Err(End::Fatal(Error::VersionMismatch {
            host: PROTOCOL_VERSION,
            client: u32::try_from(hello.protocol).unwrap_or(0),
            client_version: hello.version,
        }));
    }
    // Shared memory, when the host offers it and the client can take it:
    // the threshold the client uses for what it sends.
    let shared_memory = core
        .config
        .shared_memory
        .filter(|_| hello.shared_memory && shares);
    let known = core.registry.types();
    let welcome = Welcome {
        // `speaks` checked that it is one of the host's versions.
        protocol: u32::try_from(hello.protocol).unwrap_or(PROTOCOL_VERSION),
        version: crate::bundle::VERSION.to_owned(),
        max_frame: core.config.max_frame,
        logs: core.config.forward_logs,
        shared_memory,
        functions: core.registry.describe(&known),
        types: Registry::structs(known),
        max_call_depth: core.config.max_depth,
    };
    if let Some(max) = hello.max_frame {
        core.link.limit_frames_to(max);
    }
    send_message(&core.link, &handshake::welcome(hello.id, &welcome)).map_err(End::Fatal)?;
    if let Some(threshold) = shared_memory {
        core.link.share_from(threshold);
    }
    Ok(())
}

/// Runs a classic request and sends its answer: Python's `str()` of the
/// result, `__BAD API__` for an unknown name, the error prefix for a
/// failure. The message of a failure comes back.
pub(super) fn answer_classic(core: &Core, name: &str, arg: String) -> Option<String> {
    let _in_order = crate::sync::lock(&core.classic_order);
    let (answer, failed) = match core.registry.get(name) {
        None => (
            classic::BAD_API.to_owned(),
            Some(format!("no host function named {name:?}")),
        ),
        Some(f) => match f.call(Params::Positional(vec![Value::Str(arg)])) {
            Ok(value) => (value.to_string(), None),
            Err(e) => (
                format!("{}{}", classic::ERROR_PREFIX, e.message),
                Some(e.message),
            ),
        },
    };
    if let Err(e) = send_classic(&core.link, &answer, core.config.max_frame) {
        tracing::warn!(pid = core.link.pid, "cannot answer the script: {e}");
    }
    failed
}

fn send_classic(link: &Link, answer: &str, max: u32) -> Result<(), Error> {
    let bytes = match classic::encode_response(answer.as_bytes(), max) {
        Ok(bytes) => bytes,
        Err(e) => {
            classic::encode_response(format!("{}{e}", classic::ERROR_PREFIX).as_bytes(), u32::MAX)
                .map_err(|e| protocol(e.to_string()))?
        }
    };
    let encoded = Encoded {
        head: Bytes::from(bytes),
        attachments: Vec::new(),
        shared_files: Vec::new(),
    };
    quietly_gone(link.send(encoded))
}

/// Sends the answer to one call, replacing a result that cannot be sent
/// (too large, NaN) with an error that says why.
pub(super) fn reply(link: &Link, id: Id, outcome: Result<Value, RpcError>) -> Result<(), Error> {
    let encoded = reply_frame(link, id, outcome)?;
    quietly_gone(link.send(encoded))
}

/// The answer to one call as a frame, as [`reply`] sends it.
pub(super) fn reply_frame(
    link: &Link,
    id: Id,
    outcome: Result<Value, RpcError>,
) -> Result<Encoded, Error> {
    let max = link.max_frame();
    let msg = Message::Reply {
        id: Some(id.clone()),
        outcome,
    };
    let encoded = match link.encode(&msg, max) {
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
    Ok(encoded)
}

fn send_message(link: &Link, msg: &Message) -> Result<(), Error> {
    let encoded = msg
        .encode(link.max_frame().max(4096))
        .map_err(|e| protocol(format!("cannot encode a protocol message: {e}")))?;
    quietly_gone(link.send(encoded))
}

/// A script that went away is noticed by the reader, not by whoever
/// answered it.
fn quietly_gone(sent: Result<(), Error>) -> Result<(), Error> {
    match sent {
        Err(Error::Closed { .. }) => Ok(()),
        other => other,
    }
}

pub(super) fn method_not_found(registry: &Registry, method: &str) -> RpcError {
    let mut names: Vec<&str> = registry.names().collect();
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

/// Re-emits a Python logging record as a `tracing` event, inside the span
/// of the host's call that the script was running when it logged.
fn forward_log(link: &Link, on_log: Option<&crate::config::LogCallback>, params: Params) {
    let Params::Named(record) = params else {
        return;
    };
    let pid = link.pid;
    let span = record
        .get("call")
        .and_then(Value::as_i64)
        .and_then(|id| link.span_of(id))
        .unwrap_or_else(tracing::Span::none);
    let _inside = span.enter();
    let level = record.get("level").and_then(Value::as_i64).unwrap_or(20);
    let logger = record
        .get("logger")
        .and_then(Value::as_str)
        .unwrap_or("root");
    let message = record.get("message").and_then(Value::as_str).unwrap_or("");
    if let Some(on_log) = on_log {
        let record = crate::config::LogRecord {
            pid,
            level,
            logger,
            message,
        };
        let deliver = std::panic::AssertUnwindSafe(|| (on_log.0)(&record));
        if std::panic::catch_unwind(deliver).is_err() {
            tracing::warn!("a log callback panicked; later records are still delivered");
        }
    }
    // Python levels: DEBUG 10, INFO 20, WARNING 30, ERROR 40, CRITICAL 50.
    match level {
        l if l >= 40 => tracing::error!(target: "tether::script", pid, logger, "{message}"),
        l if l >= 30 => tracing::warn!(target: "tether::script", pid, logger, "{message}"),
        l if l >= 20 => tracing::info!(target: "tether::script", pid, logger, "{message}"),
        l if l >= 10 => tracing::debug!(target: "tether::script", pid, logger, "{message}"),
        _ => tracing::trace!(target: "tether::script", pid, logger, "{message}"),
    }
}

pub(super) fn protocol(detail: String) -> Error {
    Error::Protocol {
        detail,
        status: None,
        killed_by: None,
    }
}

pub(super) fn io_error(context: &str, source: std::io::Error) -> Error {
    Error::Io {
        context: context.to_owned(),
        source,
    }
}
