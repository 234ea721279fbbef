//! The wire protocols, free of I/O: bytes in, messages out, and back.
//!
//! Nothing in this module reads, writes, spawns or sleeps. [`frame`] splits
//! a byte stream into length-prefixed frames, [`message`] turns a native
//! frame body into a JSON-RPC [`Message`](message::Message) with raw byte
//! attachments (and back), and [`classic`] speaks the seed's protocol.
//!
//! A native session goes through three states:
//!
//! ```text
//!   spawned ──(client: rpc.hello request)──▶ greeted ──(host: hello result)──▶ running
//!      │                                         │                               │
//!      └──── EOF / exit ─────────────────────────┴──────── EOF / exit ───────────┴──▶ ended
//! ```
//!
//! A script that never imports `tether` stays in *spawned* until it exits;
//! that is a normal run. Any frame other than `rpc.hello` in *spawned* is a
//! protocol error.

pub mod classic;
pub mod frame;
pub mod handshake;
pub mod message;
pub mod method;
mod number;
pub mod recover;
mod wire;

pub use wire::{decode_value, encode_value, Place, Resolve, Share};

use std::fmt;

/// Version of the native protocol this host speaks and its client speaks.
///
/// Protocol 4 added `"within"` to the script's requests (the request of the
/// host's that the script serves when it makes one). Protocol 5 added the
/// client's `max_frame` to `rpc.hello` and the nesting limits (`max_depth`,
/// `max_call_depth`) to the host's answer.
pub const PROTOCOL_VERSION: u32 = 5;

/// The oldest client protocol the host still serves: a client that says it
/// speaks any version from this one to [`PROTOCOL_VERSION`] is welcomed in
/// its own version (a protocol-3 client never sends `"within"`).
pub const OLDEST_PROTOCOL_VERSION: u32 = 3;

/// The deepest a JSON text may nest arrays and objects, the message object
/// itself counting as the first level (`docs/protocol.md` §3.2). Deeper texts
/// are a parse error; the host refuses to send one.
pub const MAX_DEPTH: usize = 100;

/// Default largest frame body: 64 MiB.
pub const DEFAULT_MAX_FRAME: u32 = 64 * 1024 * 1024;

/// Why bytes from the peer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// A length prefix announced more bytes than the limit allows.
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The limit in force.
        max: u32,
    },
    /// The stream ended inside a frame.
    Truncated {
        /// Bytes of the frame that arrived, prefix included.
        have: usize,
        /// Bytes the frame needed, prefix included.
        need: usize,
    },
    /// The frame is not valid JSON (JSON-RPC "parse error").
    Parse(String),
    /// Valid JSON that is not a valid message (JSON-RPC "invalid request").
    Invalid(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::FrameTooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the limit of {max} bytes")
            }
            DecodeError::Truncated { have, need } => {
                write!(
                    f,
                    "stream ended inside a frame ({have} of {need} bytes arrived)"
                )
            }
            DecodeError::Parse(m) => write!(f, "frame is not valid JSON: {m}"),
            DecodeError::Invalid(m) => write!(f, "invalid message: {m}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A native frame body (JSON length, then the text) around `json`, for tests.
#[cfg(test)]
pub(crate) fn body_of(json: &str) -> bytes::Bytes {
    let mut b = (json.len() as u32).to_le_bytes().to_vec();
    b.extend_from_slice(json.as_bytes());
    bytes::Bytes::from(b)
}
