//! The loop that serves one script: read a frame, dispatch, answer, until the
//! script exits; then reap it and say how it ended.

use std::io;
use std::time::Duration;

use crate::child::{self, Channel, FdVars, Launch, Proc};
use crate::host::{Mode, Outcome};
use crate::protocol::classic::{self, Pairing};
use crate::protocol::message::{code, EncodeError, Encoded, Id, Message, Params, RpcError};
use crate::protocol::PROTOCOL_VERSION;
use crate::transport::{Incoming, Transport, TransportError};
use crate::value::{Map, Value};
use crate::{bundle, Error, Host, Script};

/// How long to wait for capture threads after the script exited.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

/// The method of the handshake request.
pub(crate) const HELLO: &str = "rpc.hello";

pub(crate) fn run(host: &Host, script: &Script) -> Result<Outcome, Error> {
    let (proc, channel) = start(host, script)?;
    serve(host, proc, channel)
}

/// Starts the script; [`serve`] then serves it until it ends.
pub(crate) fn start(host: &Host, script: &Script) -> Result<(Proc, Channel), Error> {
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
    let (proc, channel) = child::spawn(&Launch {
        python: &python,
        script,
        vars,
        pythonpath: &client_dir,
    })?;
    tracing::debug!(pid = proc.id(), script = %script.path().display(), "script started");
    Ok((proc, channel))
}

/// Serves a started script until it ends, and reports how it ended.
pub(crate) fn serve(host: &Host, proc: Proc, channel: Channel) -> Result<Outcome, Error> {
    let mut session = Session {
        host,
        proc,
        io: Transport::new(channel, host.max_frame),
        greeted: false,
        pairing: Pairing::default(),
        calls: 0,
    };
    let end = session.serve();
    session.finish(end)
}

/// Why serving stopped.
enum End {
    /// The script closed its end of the channel or exited.
    Ended,
    /// The session must end with this error; the script is stopped.
    Fatal(Error),
}

struct Session<'h> {
    host: &'h Host,
    proc: Proc,
    io: Transport,
    greeted: bool,
    pairing: Pairing,
    calls: u64,
}

impl Session<'_> {
    fn serve(&mut self) -> End {
        loop {
            let incoming = match self.io.next(&mut self.proc) {
                Ok(incoming) => incoming,
                Err(TransportError::Decode(e)) => return End::Fatal(protocol(e.to_string())),
                Err(TransportError::Io(e)) => {
                    return End::Fatal(io_error("reading from the script", e))
                }
            };
            let frame = match incoming {
                Incoming::Frame(frame) => frame,
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
        let (id, method, params) = match msg {
            Message::Call { id, method, params } => (id, method, params),
            Message::Reply { id, .. } => {
                let id = id.map_or_else(|| "null".to_owned(), |id| id.to_string());
                return Err(End::Fatal(protocol(format!(
                    "reply to a call the host never made (id {id})"
                ))));
            }
        };
        if !self.greeted {
            return match (method.as_str(), id) {
                (HELLO, Some(id)) => self.hello(id, params),
                (_, _) => Err(End::Fatal(protocol(format!(
                    "expected the {HELLO} handshake first, got a call to {method:?}"
                )))),
            };
        }
        self.calls += 1;
        let outcome = match self.host.functions.get(&method) {
            Some(f) => f.call(params),
            None => Err(self.method_not_found(&method)),
        };
        match id {
            Some(id) => self.reply(id, outcome),
            None => {
                if let Err(e) = outcome {
                    tracing::warn!(method, error = %e.message, "notification failed");
                }
                Ok(())
            }
        }
    }

    /// Checks the client's protocol version and answers with the host's
    /// description: version, frame limit, functions.
    fn hello(&mut self, id: Id, params: Params) -> Result<(), End> {
        let Params::Named(info) = params else {
            return Err(End::Fatal(protocol(format!(
                "{HELLO} params must be an object"
            ))));
        };
        let client = info.get("protocol").and_then(Value::as_i64).unwrap_or(-1);
        let client_version = info
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("(unknown)")
            .to_owned();
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
            self.reply(
                id,
                Err(RpcError {
                    code: code::VERSION_MISMATCH,
                    message,
                    data: Some(Value::Map(data)),
                }),
            )?;
            return Err(End::Fatal(Error::VersionMismatch {
                host: PROTOCOL_VERSION,
                client: u32::try_from(client).unwrap_or(0),
                client_version,
            }));
        }
        self.greeted = true;
        let functions = self
            .host
            .functions
            .values()
            .map(|f| {
                let mut m = Map::new();
                m.insert("name".into(), Value::Str(f.name.clone()));
                m.insert(
                    "params".into(),
                    f.params.as_ref().map_or(Value::Null, |names| {
                        Value::List(names.iter().map(|n| Value::Str(n.clone())).collect())
                    }),
                );
                m.insert("signature".into(), Value::Str(f.signature()));
                Value::Map(m)
            })
            .collect();
        let mut result = Map::new();
        result.insert("protocol".into(), Value::from(PROTOCOL_VERSION));
        result.insert("version".into(), Value::from(bundle::CLIENT_VERSION));
        result.insert("max_frame".into(), Value::from(self.host.max_frame));
        result.insert("functions".into(), Value::List(functions));
        self.reply(id, Ok(Value::Map(result)))
    }

    fn method_not_found(&self, method: &str) -> RpcError {
        let mut names: Vec<&str> = self.host.function_names().collect();
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

    fn reply(&mut self, id: Id, outcome: Result<Value, RpcError>) -> Result<(), End> {
        let max = self.host.max_frame;
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
                let fallback = Message::Reply {
                    id: Some(id),
                    outcome: Err(RpcError {
                        code,
                        message: format!("the host cannot send its answer: {e}"),
                        data: Some(Value::Map(data)),
                    }),
                };
                fallback.encode(max.max(4096)).map_err(|e| {
                    End::Fatal(protocol(format!("cannot encode an error reply: {e}")))
                })?
            }
        };
        self.send_encoded(&encoded)
    }

    fn send_encoded(&mut self, encoded: &Encoded) -> Result<(), End> {
        let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + encoded.attachments.len());
        parts.push(&encoded.head);
        parts.extend(encoded.attachments.iter().map(|b| &b[..]));
        self.send(&parts)
    }

    fn send(&mut self, parts: &[&[u8]]) -> Result<(), End> {
        match self.io.send(parts, &mut self.proc) {
            Ok(Ok(())) => Ok(()),
            // The script is gone; the next read reports how it ended.
            Ok(Err(_gone)) => Ok(()),
            Err(e) => Err(End::Fatal(io_error("writing to the script", e))),
        }
    }

    fn classic(&mut self, frame: bytes::Bytes) -> Result<(), End> {
        let Some(request) = self.pairing.push(frame) else {
            return Ok(());
        };
        self.calls += 1;
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
        self.send(&[&bytes])
    }

    /// Turns how serving ended into the run's result, reaping the script.
    fn finish(mut self, end: End) -> Result<Outcome, Error> {
        let grace = self.host.exit_grace;
        let status = match end {
            End::Ended => self
                .proc
                .wait_timeout(grace)
                .map_err(|e| io_error("waiting for the script", e))?,
            End::Fatal(err) => {
                let err = match err {
                    // The client learns of the mismatch from our reply; give it
                    // the grace period to say so before it is killed.
                    Error::VersionMismatch { .. } => {
                        drop(self.io);
                        let _ = self.proc.wait_timeout(grace);
                        err
                    }
                    other => other,
                };
                let status = self.proc.kill().ok();
                return Err(match err {
                    Error::Protocol { detail, .. } => Error::Protocol { detail, status },
                    other => other,
                });
            }
        };
        let Some(status) = status else {
            let status = self.proc.kill().ok();
            return Err(Error::Protocol {
                detail: format!("the script closed its channel but did not exit within {grace:?}"),
                status,
            });
        };
        let (stdout, stderr) = self.proc.take_output(OUTPUT_GRACE);
        tracing::debug!(%status, calls = self.calls, "script ended");
        Ok(Outcome {
            status,
            stdout,
            stderr,
            calls: self.calls,
        })
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
