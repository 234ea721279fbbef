//! Native message decoding: any frame body decodes to a message or an error,
//! and a decoded message encodes and decodes back to itself; reading what can
//! be read of a body that fails (`recover::peek`) never panics either.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::protocol::message::Message;
use tether::Bytes;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    let _ = tether::protocol::recover::peek(&body);
    if let Ok(msg) = Message::decode(&body) {
        if let Ok(encoded) = msg.encode(u32::MAX) {
            let wire = Bytes::from(encoded.to_vec());
            let again = Message::decode(&wire.slice(4..)).expect("re-encoded message decodes");
            assert_eq!(again, msg);
        }
    }
});
