//! The classic protocol: any byte stream splits into (name, argument)
//! requests or a clean error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::protocol::classic::Pairing;
use tether::protocol::frame::FrameReader;

fuzz_target!(|data: &[u8]| {
    let mut reader = FrameReader::new(1 << 16);
    let mut pairing = Pairing::default();
    reader.feed(data);
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                if let Some(request) = pairing.push(frame) {
                    let _ = String::from_utf8_lossy(&request.name);
                    let _ = String::from_utf8_lossy(&request.arg);
                }
            }
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let _ = reader.finish();
    let _ = pairing.finish();
});
