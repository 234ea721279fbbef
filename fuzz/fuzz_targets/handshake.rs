//! The handshake: any frame body is either a valid `rpc.hello` request with
//! a protocol version, or rejected with an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::protocol::handshake;
use tether::Bytes;

fuzz_target!(|data: &[u8]| {
    let _ = handshake::parse_hello(&Bytes::copy_from_slice(data));
});
