//! The handshake: the client's first message must be an `rpc.hello`
//! request that names its protocol version (see `docs/protocol.md` §4).

use bytes::Bytes;

use super::message::{Id, Message, Params};
use super::DecodeError;
use crate::value::Value;

/// The method of the handshake request.
pub const HELLO: &str = "rpc.hello";

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
}

/// Reads the handshake from the client's first frame body.
///
/// # Errors
///
/// When the body is not a message, or not an `rpc.hello` request with an
/// integer `protocol`.
pub fn parse_hello(body: &Bytes) -> Result<Hello, DecodeError> {
    hello(Message::decode(body)?)
}

/// Reads the handshake from the client's first message.
///
/// # Errors
///
/// When it is not an `rpc.hello` request with an integer `protocol`.
pub fn hello(msg: Message) -> Result<Hello, DecodeError> {
    let (id, params) = match msg {
        Message::Call {
            id: Some(id),
            method,
            params,
        } if method == HELLO => (id, params),
        Message::Call { method, .. } => {
            return Err(DecodeError::Invalid(format!(
                "expected the {HELLO} handshake first, got a call to {method:?}"
            )))
        }
        Message::Reply { id, .. } => {
            let id = id.map_or_else(|| "null".to_owned(), |id| id.to_string());
            return Err(DecodeError::Invalid(format!(
                "reply to a call the host never made (id {id}), before the {HELLO} handshake"
            )));
        }
    };
    let Params::Named(info) = params else {
        return Err(DecodeError::Invalid(format!(
            "{HELLO} params must be an object"
        )));
    };
    let protocol = info
        .get("protocol")
        .and_then(Value::as_i64)
        .ok_or_else(|| DecodeError::Invalid(format!("{HELLO} needs an integer \"protocol\"")))?;
    let version = info
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("(unknown)")
        .to_owned();
    let shared_memory = info.get("shm").is_some_and(|v| *v == Value::Bool(true));
    Ok(Hello {
        id,
        protocol,
        version,
        shared_memory,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Bytes {
        let mut b = (json.len() as u32).to_le_bytes().to_vec();
        b.extend_from_slice(json.as_bytes());
        Bytes::from(b)
    }

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
