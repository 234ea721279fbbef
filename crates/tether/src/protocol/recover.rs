//! What can still be read of a message that failed to decode: its id, and
//! whether it was a call or a reply, so that the receiver can answer the call
//! (or fail the call that reply was for) instead of giving up on the peer.
//!
//! A frame whose JSON nests too deep, holds a number out of range or a lone
//! surrogate, or breaks a rule of the envelope is still a sound frame: the
//! stream goes on after it. `docs/protocol.md` §7.1 says which of these are
//! answered and how.

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;

use super::frame::{self, HEADER_LEN};
use super::message::Id;

/// The envelope of a message that did not decode, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Peeked {
    /// Its `id`, when that is an integer or a string.
    pub id: Option<Id>,
    /// It has a `method` member: a request (with an id) or a notification.
    pub call: bool,
    /// It has a `result` or an `error` member and no `method`: a reply.
    pub reply: bool,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<RawId>,
    #[serde(default)]
    method: Option<IgnoredAny>,
    #[serde(default)]
    result: Option<IgnoredAny>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawId {
    Int(i64),
    Str(String),
    Other(IgnoredAny),
}

/// Reads what it can of the envelope of frame body `body` (a native body:
/// JSON length, JSON text, attachments). Members it does not need are
/// skipped without being decoded, however deep they nest; a text that is not
/// JSON at all gives an empty [`Peeked`].
pub fn peek(body: &Bytes) -> Peeked {
    let Some(json) = frame::peek_len(body)
        .and_then(|len| (len as usize).checked_add(HEADER_LEN))
        .and_then(|end| body.get(HEADER_LEN..end))
    else {
        return Peeked::default();
    };
    // Only an object is an envelope (serde would also read a struct from an array).
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Peeked::default();
    }
    let Ok(envelope) = serde_json::from_slice::<Envelope>(json) else {
        return Peeked::default();
    };
    let call = envelope.method.is_some();
    Peeked {
        id: match envelope.id {
            Some(RawId::Int(n)) => Some(Id::Int(n)),
            Some(RawId::Str(s)) => Some(Id::Str(s)),
            Some(RawId::Other(_)) | None => None,
        },
        call,
        reply: !call && (envelope.result.is_some() || envelope.error.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::protocol::body_of as body;

    #[test]
    fn the_id_of_a_request_nested_too_deep_is_found() {
        let deep = format!("{}7{}", "[".repeat(500), "]".repeat(500));
        let json = format!(r#"{{"jsonrpc":"2.0","id":3,"method":"echo","params":[{deep}]}}"#);
        let peeked = peek(&body(&json));
        assert_eq!(peeked.id, Some(Id::Int(3)));
        assert!(peeked.call && !peeked.reply);
    }

    #[test]
    fn a_reply_with_a_number_out_of_range_is_a_reply() {
        let peeked = peek(&body(r#"{"jsonrpc":"2.0","id":"a","result":1e400}"#));
        assert_eq!(peeked.id, Some(Id::Str("a".into())));
        assert!(peeked.reply && !peeked.call);
        let peeked = peek(&body(r#"{"jsonrpc":"2.0","id":4,"result":"\ud800"}"#));
        assert_eq!(peeked.id, Some(Id::Int(4)));
    }

    #[test]
    fn what_is_not_json_gives_nothing() {
        assert_eq!(peek(&body("{\"id\":1,")), Peeked::default());
        assert_eq!(peek(&Bytes::from_static(b"\x09\x00")), Peeked::default());
        assert_eq!(peek(&body("[1,2]")), Peeked::default());
        let peeked = peek(&body(r#"{"id":[1],"method":"x"}"#));
        assert_eq!(peeked.id, None);
        assert!(peeked.call);
    }
}
