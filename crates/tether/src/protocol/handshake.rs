//! The handshake: the client's first message must be an `rpc.hello`
//! request that names its protocol version, which the host answers with
//! its description ([`welcome`]) or a refusal ([`refusal`]); later the
//! client says it serves with an `rpc.ready` notification ([`ready`]). See
//! `docs/protocol.md` §4.

use bytes::Bytes;

use super::message::{code, Id, Message, Params, RpcError};
use super::method::{HELLO, READY};
use super::{DecodeError, OLDEST_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::value::{Map, Value};

/// What the client said about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    /// The request's id, for the answer.
    pub id: Id,
    /// The client's protocol version (compared with the host's).
    pub protocol: i64,
    /// The client package's version, for messages.
    pub version: String,
    /// The client can receive large values in shared memory (`"shm": true`).
    pub shared_memory: bool,
    /// The client handles SIGURG as "read the pipe: a call may be cancelled"
    /// (`"interrupt": true`), so the host sends it after `rpc.cancel` and
    /// `rpc.stop` to reach a script busy in an export.
    pub interrupt: bool,
    /// The largest frame the client takes (`"max_frame"`, protocol 5): the
    /// host sends none larger. `None` when the client did not say.
    pub max_frame: Option<u32>,
}

/// The smallest `max_frame` a client may announce: room for the host's
/// answers to the handshake and for its errors.
pub const MIN_CLIENT_FRAME: u32 = 4096;

/// Why a client's first message is not a hello the host can take, with the
/// JSON-RPC code of the error the host answers it with (`docs/protocol.md` §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotHello {
    /// Not an `rpc.hello` request (-32600, invalid request).
    Invalid(String),
    /// An `rpc.hello` request whose params are wrong (-32602, invalid params).
    BadParams(String),
}

impl NotHello {
    /// The error code the host answers with.
    pub fn code(&self) -> i64 {
        match self {
            NotHello::Invalid(_) => code::INVALID_REQUEST,
            NotHello::BadParams(_) => code::INVALID_PARAMS,
        }
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        match self {
            NotHello::Invalid(m) | NotHello::BadParams(m) => m,
        }
    }
}

impl std::fmt::Display for NotHello {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl From<NotHello> for DecodeError {
    fn from(e: NotHello) -> DecodeError {
        DecodeError::Invalid(e.message().to_owned())
    }
}

/// Reads the handshake from the client's first frame body.
///
/// # Errors
///
/// When the body is not a message, or not an `rpc.hello` request with an
/// integer `protocol`.
pub fn parse_hello(body: &Bytes) -> Result<Hello, DecodeError> {
    Ok(hello(Message::decode(body)?)?)
}

/// Reads the handshake from the client's first message.
///
/// # Errors
///
/// When it is not an `rpc.hello` request with an integer `protocol` (and,
/// when given, an integer `max_frame` of at least [`MIN_CLIENT_FRAME`]).
pub fn hello(msg: Message) -> Result<Hello, NotHello> {
    let (id, params) = match msg {
        Message::Call {
            id: Some(id),
            method,
            params,
            ..
        } if method == HELLO => (id, params),
        Message::Call {
            id: None, method, ..
        } if method == HELLO => {
            return Err(NotHello::Invalid(format!(
                "{HELLO} must be a request (with an id), not a notification"
            )))
        }
        Message::Call { method, .. } => {
            return Err(NotHello::Invalid(format!(
                "expected the {HELLO} handshake first, got a call to {method:?}"
            )))
        }
        Message::Reply { id, .. } => {
            let id = id.map_or_else(|| "null".to_owned(), |id| id.to_string());
            return Err(NotHello::Invalid(format!(
                "reply to a call the host never made (id {id}), before the {HELLO} handshake"
            )));
        }
    };
    let Params::Named(info) = params else {
        return Err(NotHello::BadParams(format!(
            "{HELLO} params must be an object, such as {{\"protocol\": {PROTOCOL_VERSION}}}"
        )));
    };
    let protocol = info
        .get("protocol")
        .and_then(Value::as_i64)
        .ok_or_else(|| NotHello::BadParams(format!("{HELLO} needs an integer \"protocol\"")))?;
    let max_frame = match info.get("max_frame") {
        None | Some(Value::Null) => None,
        Some(Value::Int(n)) if *n >= i64::from(MIN_CLIENT_FRAME) => {
            Some(u32::try_from(*n).unwrap_or(u32::MAX))
        }
        Some(Value::UInt(_)) => Some(u32::MAX),
        Some(v) => {
            return Err(NotHello::BadParams(format!(
                "{HELLO} \"max_frame\" must be an integer of at least {MIN_CLIENT_FRAME}, not {}",
                v.repr()
            )))
        }
    };
    let version = info
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("(unknown)")
        .to_owned();
    let flag = |name: &str| info.get(name).is_some_and(|v| *v == Value::Bool(true));
    Ok(Hello {
        id,
        protocol,
        version,
        shared_memory: flag("shm"),
        interrupt: flag("interrupt"),
        max_frame,
    })
}

/// A host function as the client learns of it in the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Described {
    /// The name the script calls.
    pub name: String,
    /// Parameter names, when the host declared them.
    pub params: Option<Vec<String>>,
    /// The printable signature, `add(a: int, b: int) -> int`.
    pub signature: String,
    /// Each parameter's Python annotation.
    pub annotations: Vec<String>,
    /// The return annotation.
    pub returns: String,
    /// What the function does.
    pub doc: Option<String>,
}

/// A struct's fields, each with its Python annotation.
pub type StructFields = Vec<(String, String)>;

/// What the host tells a client whose version it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The protocol version both sides speak from now on (the client's,
    /// when the host serves it).
    pub protocol: u32,
    /// The host's tether version.
    pub version: String,
    /// The largest frame either side may send.
    pub max_frame: u32,
    /// Whether the client should forward `logging` records.
    pub logs: bool,
    /// The threshold for shared memory, when the host offers it and the
    /// client can take it.
    pub shared_memory: Option<usize>,
    /// The host's functions, in registration order.
    pub functions: Vec<Described>,
    /// Structs the annotations name: each field with its annotation.
    pub types: Vec<(String, StructFields)>,
    /// How deep calls between the two sides may nest (`Host::max_depth`);
    /// announced from protocol 5 on, with [`MAX_DEPTH`](super::MAX_DEPTH).
    pub max_call_depth: usize,
}

/// The host's answer to a hello it accepts.
pub fn welcome(id: Id, welcome: &Welcome) -> Message {
    let strings =
        |items: &[String]| Value::List(items.iter().map(|s| Value::Str(s.clone())).collect());
    let functions = welcome
        .functions
        .iter()
        .map(|f| {
            let mut m = Map::new();
            m.insert("name".into(), Value::Str(f.name.clone()));
            m.insert(
                "params".into(),
                f.params.as_deref().map_or(Value::Null, strings),
            );
            m.insert("signature".into(), Value::Str(f.signature.clone()));
            m.insert("annotations".into(), strings(&f.annotations));
            m.insert("returns".into(), Value::Str(f.returns.clone()));
            m.insert("doc".into(), f.doc.clone().map_or(Value::Null, Value::Str));
            Value::Map(m)
        })
        .collect();
    let types = welcome
        .types
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
    result.insert("protocol".into(), Value::from(welcome.protocol));
    result.insert("version".into(), Value::from(welcome.version.as_str()));
    result.insert("max_frame".into(), Value::from(welcome.max_frame));
    result.insert("logs".into(), Value::Bool(welcome.logs));
    result.insert(
        "shm".into(),
        welcome
            .shared_memory
            .map_or(Value::Null, |t| Value::from(t as u64)),
    );
    if welcome.protocol >= 5 {
        result.insert("max_depth".into(), Value::from(super::MAX_DEPTH as u64));
        result.insert(
            "max_call_depth".into(),
            Value::from(welcome.max_call_depth as u64),
        );
    }
    result.insert("functions".into(), Value::List(functions));
    result.insert("types".into(), Value::Map(types));
    Message::Reply {
        id: Some(id),
        outcome: Ok(Value::Map(result)),
    }
}

/// Whether the host serves a client that speaks `protocol`.
pub fn speaks(protocol: i64) -> bool {
    (i64::from(OLDEST_PROTOCOL_VERSION)..=i64::from(PROTOCOL_VERSION)).contains(&protocol)
}

/// The host's answer to a hello whose protocol version it does not speak.
pub fn refusal(hello: &Hello, host_version: &str) -> Message {
    let mut data = Map::new();
    data.insert("kind".into(), Value::from("VersionMismatch"));
    data.insert("protocol".into(), Value::from(PROTOCOL_VERSION));
    data.insert("version".into(), Value::from(host_version));
    let message = format!(
        "protocol version mismatch: the host (tether {host_version}) speaks protocol {PROTOCOL_VERSION} \
         (and serves clients of protocol {OLDEST_PROTOCOL_VERSION} to {PROTOCOL_VERSION}), this client (tether {}) speaks {}; run the script with the client \
         the host bundles (remove other tether installs from its path)",
        hello.version, hello.protocol
    );
    Message::Reply {
        id: Some(hello.id.clone()),
        outcome: Err(RpcError {
            code: code::VERSION_MISMATCH,
            message,
            data: Some(Value::Map(data)),
        }),
    }
}

/// Reads an `rpc.ready` notification's params: the names the script
/// exports (none when it sent no params).
///
/// # Errors
///
/// When the params are given and are not `{"exports": [names]}`.
pub fn ready(params: &Params) -> Result<Vec<String>, DecodeError> {
    let bad = || DecodeError::Invalid(format!("{READY} params must be {{\"exports\": [names]}}"));
    if matches!(params, Params::Positional(items) if items.is_empty()) {
        return Ok(Vec::new());
    }
    let Params::Named(info) = params else {
        return Err(bad());
    };
    let Some(Value::List(items)) = info.get("exports") else {
        return Err(bad());
    };
    items
        .iter()
        .map(|v| v.as_str().map(str::to_owned).ok_or_else(bad))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocol::body_of as body;

    #[test]
    fn a_hello_is_read() {
        let h = parse_hello(&body(
            r#"{"jsonrpc":"2.0","id":0,"method":"rpc.hello","params":{"protocol":1,"version":"0.1.0"}}"#,
        ))
        .unwrap();
        assert_eq!(
            (h.id, h.protocol, h.version.as_str()),
            (Id::Int(0), 1, "0.1.0")
        );
    }

    #[test]
    fn the_host_serves_the_protocols_it_knows() {
        assert!(speaks(3) && speaks(4) && speaks(5));
        assert!(!speaks(2) && !speaks(6) && !speaks(-1));
        let hello = Hello {
            id: Id::Int(0),
            protocol: 9,
            version: "9.0".into(),
            shared_memory: false,
            interrupt: false,
            max_frame: None,
        };
        let Message::Reply {
            outcome: Err(e), ..
        } = refusal(&hello, "0.1.0")
        else {
            panic!("a refusal is an error reply")
        };
        assert!(
            e.message
                .contains("speaks protocol 5 (and serves clients of protocol 3 to 5)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            r#"{"jsonrpc":"2.0","id":1,"method":"add","params":[1]}"#,
            r#"{"jsonrpc":"2.0","method":"rpc.hello","params":{"protocol":1}}"#,
            r#"{"jsonrpc":"2.0","id":0,"method":"rpc.hello","params":[1]}"#,
            r#"{"jsonrpc":"2.0","id":0,"method":"rpc.hello","params":{"protocol":"1"}}"#,
            r#"{"jsonrpc":"2.0","id":0,"result":1}"#,
        ] {
            assert!(parse_hello(&body(bad)).is_err(), "{bad}");
        }
    }
}
