//! The seed's protocol, byte for byte ("classic" mode).
//!
//! ```text
//! request:  u32le name_len | name | u32le arg_len | arg
//! response: u32le len      | result
//! ```
//!
//! All integers are little-endian. A request is simply two frames and a
//! response one frame, so the classic decoder is [`FrameReader`] plus
//! [`Pairing`], which joins each name frame with the argument frame after it.
//! An unknown name is answered with the string [`BAD_API`]. Classic mode has
//! no error channel of its own; tether answers a failing function with
//! [`ERROR_PREFIX`] followed by the message, which the seed's client returns
//! as data and `tether.classic` raises as an exception.
//!
//! [`FrameReader`]: super::frame::FrameReader

use bytes::Bytes;

use super::frame::{self, HEADER_LEN};
use super::DecodeError;

/// The seed's answer to a request for a function that does not exist.
pub const BAD_API: &str = "__BAD API__";

/// What a failing function's answer starts with in classic mode.
pub const ERROR_PREFIX: &str = "__ERROR__: ";

/// One classic request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The function name (the seed's `apiName`).
    pub name: Bytes,
    /// The argument (the seed's `apiArg`).
    pub arg: Bytes,
}

/// Joins frames into requests: name first, then argument.
#[derive(Debug, Default)]
pub struct Pairing {
    name: Option<Bytes>,
}

impl Pairing {
    /// Takes the next frame; returns a request once its argument arrives.
    pub fn push(&mut self, frame: Bytes) -> Option<Request> {
        match self.name.take() {
            None => {
                self.name = Some(frame);
                None
            }
            Some(name) => Some(Request { name, arg: frame }),
        }
    }

    /// Call at end of file: an error when a name arrived without its argument.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match &self.name {
            None => Ok(()),
            Some(name) => Err(DecodeError::Truncated {
                have: HEADER_LEN + name.len(),
                need: 2 * HEADER_LEN + name.len(),
            }),
        }
    }
}

/// Encodes one response frame.
///
/// # Errors
///
/// When `result` is longer than `max`.
pub fn encode_response(result: &[u8], max: u32) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(HEADER_LEN + result.len());
    out.extend_from_slice(&frame::header(result.len(), max)?);
    out.extend_from_slice(result);
    Ok(out)
}

/// Encodes one request (what the script side sends).
///
/// # Errors
///
/// When the name or the argument is longer than `max`.
pub fn encode_request(name: &[u8], arg: &[u8], max: u32) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(2 * HEADER_LEN + name.len() + arg.len());
    out.extend_from_slice(&frame::header(name.len(), max)?);
    out.extend_from_slice(name);
    out.extend_from_slice(&frame::header(arg.len(), max)?);
    out.extend_from_slice(arg);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::frame::FrameReader;
    use super::*;

    #[test]
    fn seed_request_bytes_one_at_a_time() {
        let wire = encode_request(b"foo", b"100", 1024).unwrap();
        assert_eq!(wire, b"\x03\x00\x00\x00foo\x03\x00\x00\x00100");
        let mut reader = FrameReader::new(1024);
        let mut pairing = Pairing::default();
        let mut got = Vec::new();
        for b in &wire {
            reader.feed(std::slice::from_ref(b));
            while let Some(frame) = reader.next_frame().unwrap() {
                got.extend(pairing.push(frame));
            }
        }
        assert_eq!(
            got,
            vec![Request {
                name: Bytes::from_static(b"foo"),
                arg: Bytes::from_static(b"100")
            }]
        );
        assert!(pairing.finish().is_ok());
        assert!(reader.finish().is_ok());
    }

    #[test]
    fn response_bytes() {
        assert_eq!(
            encode_response(BAD_API.as_bytes(), 1024).unwrap(),
            b"\x0b\x00\x00\x00__BAD API__"
        );
        assert!(encode_response(b"12345", 4).is_err());
    }

    #[test]
    fn name_without_argument_is_truncated() {
        let mut pairing = Pairing::default();
        assert!(pairing.push(Bytes::from_static(b"foo")).is_none());
        assert!(pairing.finish().is_err());
    }
}
