//! Native messages: JSON-RPC 2.0 envelopes with raw byte attachments.
//!
//! A frame body is
//!
//! ```text
//! u32le json_len | json_len bytes of UTF-8 JSON | attachment area
//! ```
//!
//! and a bytes value inside the JSON is the object `{"$bytes":[offset,length]}`
//! pointing into the attachment area. See `docs/protocol.md` for the full
//! specification.

use std::cell::RefCell;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::frame::{self, HEADER_LEN};
use super::wire::{Attachments, Resolve, Share, Wire, WireList, WireMap, WireSeed};
use super::DecodeError;
use crate::value::{Map, Value};

/// JSON-RPC and tether error codes.
pub mod code {
    /// The frame was not valid JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON was not a valid message.
    pub const INVALID_REQUEST: i64 = -32600;
    /// No function of that name.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Wrong number or types of arguments.
    pub const INVALID_PARAMS: i64 = -32602;
    /// The callee failed in a way that is not the function's own error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// The function ran and returned an error (its kind is in `data.kind`).
    pub const FUNCTION_ERROR: i64 = -32000;
    /// The two sides speak different protocol versions.
    pub const VERSION_MISMATCH: i64 = -32001;
    /// A message would exceed the frame size limit.
    pub const TOO_LARGE: i64 = -32002;
    /// A limit refused the call (too many calls in flight, nesting too deep).
    pub const LIMIT: i64 = -32003;
}

/// A request or notification id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Id {
    /// A numeric id (what tether itself sends).
    Int(i64),
    /// A string id (accepted and echoed back).
    Str(String),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Int(n) => write!(f, "{n}"),
            Id::Str(s) => write!(f, "{s:?}"),
        }
    }
}

/// Arguments of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// `params` was an array, or absent (no arguments).
    Positional(Vec<Value>),
    /// `params` was an object: arguments by name.
    Named(Map),
}

/// The error member of a failed response.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// One of [`code`], or an application code.
    pub code: i64,
    /// A one-line description.
    pub message: String,
    /// Structured detail; tether puts a map with at least `kind` here.
    pub data: Option<Value>,
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// A request (with an id, wants a response) or a notification (no id).
    Call {
        /// `None` for a notification.
        id: Option<Id>,
        /// The function to call.
        method: String,
        /// Its arguments.
        params: Params,
        /// The receiver's request that the sender was serving when it made
        /// this one (`"within"`, protocol 4): the call nests in that one.
        /// The Python client sets it on the calls an export makes; the host
        /// never sends it.
        within: Option<i64>,
    },
    /// A response to an earlier request.
    Reply {
        /// The request's id; `None` (JSON `null`) only when the request could
        /// not be read far enough to find its id.
        id: Option<Id>,
        /// The result, or the error.
        outcome: Result<Value, RpcError>,
    },
}

/// An encoded message: frame header and JSON in `head`, attachments after it.
/// Written in order, the pieces form exactly one frame.
#[derive(Debug, Default)]
pub struct Encoded {
    /// Frame prefix, JSON length and JSON text.
    pub head: Bytes,
    /// Attachment pieces, in order.
    pub attachments: Vec<Bytes>,
    /// Memory files to pass beside the frame, before it (shared memory).
    pub shared_files: Vec<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl Encoded {
    /// Total bytes on the wire, frame prefix included.
    pub fn len(&self) -> usize {
        self.head.len() + self.attachments.iter().map(Bytes::len).sum::<usize>()
    }

    /// Whether this holds nothing at all (never true for an encoded message).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All pieces joined into one buffer (for tests and small messages).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.head);
        for a in &self.attachments {
            out.extend_from_slice(a);
        }
        out
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq)]
pub enum EncodeError {
    /// A value cannot be represented (NaN, reserved `$bytes` map).
    Value(String),
    /// The message would exceed the frame limit.
    TooLarge {
        /// Its size in bytes, without the prefix.
        len: u64,
        /// The limit.
        max: u32,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Value(m) => f.write_str(m),
            EncodeError::TooLarge { len, max } => {
                write!(
                    f,
                    "message of {len} bytes exceeds the frame limit of {max} bytes"
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}

impl Message {
    /// Encodes this message as one frame no larger than `max`.
    ///
    /// # Errors
    ///
    /// [`EncodeError::Value`] when a value cannot be sent, and
    /// [`EncodeError::TooLarge`] when the frame would exceed `max`.
    pub fn encode(&self, max: u32) -> Result<Encoded, EncodeError> {
        self.encode_shared(max, None)
    }

    /// Like [`encode`](Message::encode), with bytes values of at least
    /// `share.threshold` bytes placed in shared memory by `share.place`
    /// instead of the frame (their memory files are in
    /// [`Encoded::shared_files`]).
    ///
    /// # Errors
    ///
    /// As for [`encode`](Message::encode); a value `place` refuses is an
    /// [`EncodeError::Value`].
    pub fn encode_shared(&self, max: u32, share: Option<Share>) -> Result<Encoded, EncodeError> {
        let att = RefCell::new(Attachments {
            share,
            // The message object itself is the first level.
            depth: 1,
            ..Attachments::default()
        });
        let mut head = BytesMut::with_capacity(128).writer();
        head.get_mut().put_slice(&[0; 2 * HEADER_LEN]);
        serde_json::to_writer(
            &mut head,
            &Envelope {
                msg: self,
                att: &att,
            },
        )
        .map_err(|e| EncodeError::Value(e.to_string()))?;
        let mut head = head.into_inner();
        let att = att.into_inner();
        let json_len = head.len() - 2 * HEADER_LEN;
        let body_len = (HEADER_LEN + json_len) as u64 + att.len as u64;
        let prefix = usize::try_from(body_len)
            .ok()
            .and_then(|n| frame::header(n, max).ok())
            .ok_or(EncodeError::TooLarge { len: body_len, max })?;
        head[..HEADER_LEN].copy_from_slice(&prefix);
        head[HEADER_LEN..2 * HEADER_LEN].copy_from_slice(&(json_len as u32).to_le_bytes());
        Ok(Encoded {
            head: head.freeze(),
            attachments: att.parts,
            shared_files: att.shared_files,
        })
    }

    /// Decodes one frame body (without its length prefix).
    ///
    /// # Errors
    ///
    /// [`DecodeError::Parse`] for a body that is not JSON with a valid
    /// attachment layout, [`DecodeError::Invalid`] for JSON that is not a
    /// message.
    pub fn decode(body: &Bytes) -> Result<Message, DecodeError> {
        Message::decode_shared(body, None)
    }

    /// Like [`decode`](Message::decode), mapping shared-memory values with
    /// `shared` (`None`: shared memory is off, and a reference to it is an
    /// error).
    ///
    /// # Errors
    ///
    /// As for [`decode`](Message::decode); what `shared` refuses is a
    /// [`DecodeError::Parse`].
    pub fn decode_shared(
        body: &Bytes,
        shared: Option<&mut Resolve<'_>>,
    ) -> Result<Message, DecodeError> {
        let json_len = frame::peek_len(body).ok_or_else(|| {
            DecodeError::Parse(format!("body of {} bytes has no JSON length", body.len()))
        })?;
        let json_end = (json_len as usize)
            .checked_add(HEADER_LEN)
            .filter(|end| *end <= body.len())
            .ok_or_else(|| {
                DecodeError::Parse(format!(
                    "JSON length {json_len} exceeds the body of {} bytes",
                    body.len()
                ))
            })?;
        let blobs = body.slice(json_end..);
        let json = &body[HEADER_LEN..json_end];
        let mut de = serde_json::Deserializer::from_slice(json);
        let shared = shared.map(|r| RefCell::new(r as &mut Resolve<'_>));
        let floats = std::cell::Cell::new(false);
        let seed = WireSeed {
            blobs: &blobs,
            shared: shared.as_ref(),
            depth: 0,
            floats: &floats,
        };
        let value = serde::de::DeserializeSeed::deserialize(seed, &mut de)
            .and_then(|v| de.end().map(|()| v))
            .map_err(|e| DecodeError::Parse(e.to_string()))?;
        if floats.get() {
            super::number::check_integers(json).map_err(DecodeError::Parse)?;
        }
        from_envelope(value)
    }
}

struct Envelope<'a> {
    msg: &'a Message,
    att: &'a RefCell<Attachments>,
}

impl serde::Serialize for Envelope<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let wire = |value| Wire {
            value,
            att: self.att,
        };
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("jsonrpc", "2.0")?;
        match self.msg {
            Message::Call {
                id,
                method,
                params,
                within,
            } => {
                if let Some(id) = id {
                    m.serialize_entry("id", &IdRef(Some(id)))?;
                }
                m.serialize_entry("method", method)?;
                match params {
                    Params::Positional(items) if items.is_empty() => {}
                    Params::Positional(items) => {
                        m.serialize_entry(
                            "params",
                            &WireList {
                                items,
                                att: self.att,
                            },
                        )?;
                    }
                    Params::Named(map) => {
                        m.serialize_entry("params", &WireMap { map, att: self.att })?;
                    }
                }
                if let Some(within) = within {
                    m.serialize_entry("within", within)?;
                }
            }
            Message::Reply { id, outcome } => {
                m.serialize_entry("id", &IdRef(id.as_ref()))?;
                match outcome {
                    Ok(value) => m.serialize_entry("result", &wire(value))?,
                    Err(err) => {
                        let mut obj = Map::new();
                        obj.insert("code".into(), Value::Int(err.code));
                        obj.insert("message".into(), Value::Str(err.message.clone()));
                        if let Some(data) = &err.data {
                            obj.insert("data".into(), data.clone());
                        }
                        m.serialize_entry("error", &wire(&Value::Map(obj)))?;
                    }
                }
            }
        }
        m.end()
    }
}

struct IdRef<'a>(Option<&'a Id>);

impl serde::Serialize for IdRef<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_unit(),
            Some(Id::Int(n)) => s.serialize_i64(*n),
            Some(Id::Str(v)) => s.serialize_str(v),
        }
    }
}

fn invalid(msg: impl Into<String>) -> DecodeError {
    DecodeError::Invalid(msg.into())
}

fn from_envelope(value: Value) -> Result<Message, DecodeError> {
    let Value::Map(mut obj) = value else {
        return Err(invalid(format!(
            "message is a {}, not an object",
            value.type_name()
        )));
    };
    match obj.shift_remove("jsonrpc") {
        Some(Value::Str(v)) if v == "2.0" => {}
        Some(other) => {
            return Err(invalid(format!(
                "\"jsonrpc\" is {}, not \"2.0\"",
                other.repr()
            )))
        }
        None => return Err(invalid("\"jsonrpc\": \"2.0\" is missing")),
    }
    let id = match obj.shift_remove("id") {
        None => None,
        Some(Value::Int(n)) => Some(Some(Id::Int(n))),
        Some(Value::Str(s)) => Some(Some(Id::Str(s))),
        Some(Value::Null) => Some(None),
        Some(other) => {
            return Err(invalid(format!(
                "\"id\" must be an integer or a string, not {}",
                other.repr()
            )))
        }
    };
    if let Some(method) = obj.shift_remove("method") {
        let Value::Str(method) = method else {
            return Err(invalid(format!(
                "\"method\" must be a string, not {}",
                method.repr()
            )));
        };
        let id = match id {
            None => None,
            Some(Some(id)) => Some(id),
            Some(None) => return Err(invalid("a request id must not be null")),
        };
        let params = match obj.shift_remove("params") {
            None => Params::Positional(Vec::new()),
            Some(Value::List(items)) => Params::Positional(items),
            Some(Value::Map(map)) => Params::Named(map),
            Some(other) => {
                return Err(invalid(format!(
                    "\"params\" must be an array or an object, not {}",
                    other.type_name()
                )))
            }
        };
        let within = match obj.shift_remove("within") {
            None => None,
            Some(Value::Int(n)) => Some(n),
            Some(other) => {
                return Err(invalid(format!(
                    "\"within\" must be an integer (a request id), not {}",
                    other.repr()
                )))
            }
        };
        reject_extra(&obj)?;
        return Ok(Message::Call {
            id,
            method,
            params,
            within,
        });
    }
    let Some(id) = id else {
        return Err(invalid("message has neither \"method\" nor \"id\""));
    };
    let outcome = match (obj.shift_remove("result"), obj.shift_remove("error")) {
        (Some(result), None) => Ok(result),
        (None, Some(error)) => Err(rpc_error(error)?),
        (Some(_), Some(_)) => return Err(invalid("response has both \"result\" and \"error\"")),
        (None, None) => return Err(invalid("response has neither \"result\" nor \"error\"")),
    };
    reject_extra(&obj)?;
    Ok(Message::Reply { id, outcome })
}

fn reject_extra(obj: &Map) -> Result<(), DecodeError> {
    match obj.keys().next() {
        None => Ok(()),
        Some(k) => Err(invalid(format!("unknown member {k:?}"))),
    }
}

fn rpc_error(error: Value) -> Result<RpcError, DecodeError> {
    let Value::Map(mut obj) = error else {
        return Err(invalid("\"error\" must be an object"));
    };
    let code = match obj.shift_remove("code") {
        Some(Value::Int(c)) => c,
        _ => return Err(invalid("\"error.code\" must be an integer")),
    };
    let message = match obj.shift_remove("message") {
        Some(Value::Str(m)) => m,
        _ => return Err(invalid("\"error.message\" must be a string")),
    };
    let data = obj.shift_remove("data");
    reject_extra(&obj)?;
    Ok(RpcError {
        code,
        message,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: &Message) -> Message {
        let enc = msg.encode(u32::MAX).unwrap();
        let wire = Bytes::from(enc.to_vec());
        let len = frame::peek_len(&wire).unwrap() as usize;
        assert_eq!(len + HEADER_LEN, wire.len());
        Message::decode(&wire.slice(HEADER_LEN..)).unwrap()
    }

    #[test]
    fn request_golden_bytes() {
        let msg = Message::Call {
            id: Some(Id::Int(1)),
            method: "echo".into(),
            params: Params::Positional(vec![Value::Int(7)]),
            within: None,
        };
        let enc = msg.encode(1024).unwrap();
        let json = br#"{"jsonrpc":"2.0","id":1,"method":"echo","params":[7]}"#;
        let mut want = Vec::new();
        want.extend_from_slice(&((json.len() + 4) as u32).to_le_bytes());
        want.extend_from_slice(&(json.len() as u32).to_le_bytes());
        want.extend_from_slice(json);
        assert_eq!(enc.to_vec(), want);
        assert_eq!(roundtrip(&msg), msg);
    }

    #[test]
    fn bytes_travel_as_attachments() {
        let msg = Message::Reply {
            id: Some(Id::Int(3)),
            outcome: Ok(Value::List(vec![
                Value::Bytes(Bytes::from_static(b"ab")),
                Value::Bytes(Bytes::from_static(b"\x00\xff\x10")),
            ])),
        };
        let enc = msg.encode(1024).unwrap();
        let all = enc.to_vec();
        let json = br#"{"jsonrpc":"2.0","id":3,"result":[{"$bytes":[0,2]},{"$bytes":[2,3]}]}"#;
        assert_eq!(&all[8..8 + json.len()], json);
        assert_eq!(&all[8 + json.len()..], b"ab\x00\xff\x10");
        assert_eq!(roundtrip(&msg), msg);
    }

    #[test]
    fn error_reply_roundtrip() {
        let msg = Message::Reply {
            id: None,
            outcome: Err(RpcError {
                code: code::PARSE_ERROR,
                message: "bad".into(),
                data: Some(Value::from("x")),
            }),
        };
        assert_eq!(roundtrip(&msg), msg);
    }

    #[test]
    fn reserved_map_and_nan_are_refused() {
        let mut map = Map::new();
        map.insert("$bytes".into(), Value::Int(1));
        for bad in [Value::Map(map), Value::Float(f64::NAN)] {
            let msg = Message::Reply {
                id: Some(Id::Int(1)),
                outcome: Ok(bad),
            };
            assert!(matches!(msg.encode(1024), Err(EncodeError::Value(_))));
        }
    }

    #[test]
    fn too_large_is_refused_before_sending() {
        let msg = Message::Reply {
            id: Some(Id::Int(1)),
            outcome: Ok(Value::Bytes(Bytes::from(vec![0; 100]))),
        };
        assert!(matches!(msg.encode(50), Err(EncodeError::TooLarge { .. })));
    }

    fn decode_json(json: &str) -> Result<Message, DecodeError> {
        let mut body = (json.len() as u32).to_le_bytes().to_vec();
        body.extend_from_slice(json.as_bytes());
        Message::decode(&Bytes::from(body))
    }

    #[test]
    fn invalid_messages_are_rejected() {
        for bad in [
            r#"[1]"#,
            r#"{"id":1,"method":"x"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":3}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","params":"s"}"#,
            r#"{"jsonrpc":"2.0","id":1}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":1,"error":{"code":1,"message":"m"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"x","extra":1}"#,
        ] {
            assert!(
                matches!(decode_json(bad), Err(DecodeError::Invalid(_))),
                "{bad}"
            );
        }
        for bad in [
            r#"{"#,
            r#"{"jsonrpc":"2.0"} x"#,
            r#"{"a":{"$bytes":[0,1]}}"#,
            "\u{0}",
        ] {
            assert!(
                matches!(decode_json(bad), Err(DecodeError::Parse(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            Message::decode(&Bytes::from_static(b"\x01")),
            Err(DecodeError::Parse(_))
        ));
        assert!(matches!(
            Message::decode(&Bytes::from_static(b"\xff\xff\xff\xff{}")),
            Err(DecodeError::Parse(_))
        ));
    }

    #[test]
    fn notification_without_params() {
        let msg = decode_json(r#"{"jsonrpc":"2.0","method":"tick"}"#).unwrap();
        assert_eq!(
            msg,
            Message::Call {
                id: None,
                method: "tick".into(),
                params: Params::Positional(vec![]),
                within: None,
            }
        );
    }

    #[test]
    fn a_nested_call_names_the_call_it_serves() {
        let json = r#"{"jsonrpc":"2.0","id":3,"method":"deep","params":[2],"within":17}"#;
        let msg = decode_json(json).unwrap();
        assert_eq!(
            msg,
            Message::Call {
                id: Some(Id::Int(3)),
                method: "deep".into(),
                params: Params::Positional(vec![Value::Int(2)]),
                within: Some(17),
            }
        );
        assert_eq!(&msg.encode(1024).unwrap().to_vec()[8..], json.as_bytes());
        for bad in [r#""17""#, "null", "1.5", "[17]"] {
            let json = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"deep","within":{bad}}}"#);
            let err = decode_json(&json).unwrap_err().to_string();
            assert!(
                err.contains("\"within\" must be an integer"),
                "{bad}: {err}"
            );
        }
    }
}
