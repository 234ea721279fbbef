//! Frame splitting: any byte stream, fed in chunks of any size, either yields
//! frames within the limit or a clean error; never a panic, never memory
//! beyond what arrived.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::protocol::frame::FrameReader;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let chunk = usize::from(split % 17) + 1;
    let mut reader = FrameReader::new(1 << 16);
    for piece in rest.chunks(chunk) {
        reader.feed(piece);
        loop {
            match reader.next_frame() {
                Ok(Some(frame)) => assert!(frame.len() <= 1 << 16),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(reader.buffered() <= rest.len());
    }
    let _ = reader.finish();
});
