//! Frame splitting through `read_with`, the path the host's transport uses:
//! reads of any size, with frames taken out after some reads and not after
//! others (so several reads may land before a frame is taken). The frames
//! that come out are exactly the ones in the stream; a read is never lent an
//! empty buffer (it would read as end of file); nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::protocol::frame::{FrameReader, HEADER_LEN};

const MAX: u32 = 1 << 21;

/// The frames a correct decoder finds in `stream`, and whether it stops at
/// a prefix over the limit.
fn expected(stream: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut frames = Vec::new();
    let mut rest = stream;
    while rest.len() >= HEADER_LEN {
        let len = u32::from_le_bytes(rest[..HEADER_LEN].try_into().unwrap());
        if len > MAX {
            return (frames, true);
        }
        let end = HEADER_LEN + len as usize;
        if rest.len() < end {
            break;
        }
        frames.push(&rest[HEADER_LEN..end]);
        rest = &rest[end..];
    }
    (frames, false)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let (tape, stream) = data.split_at(4);
    let mut state = u32::from_le_bytes(tape.try_into().unwrap()) | 1;
    let mut next = move || {
        // xorshift32: the fuzzer steers it through the seed.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state
    };
    let (want, too_large) = expected(stream);
    let mut reader = FrameReader::new(MAX);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut at = 0;
    loop {
        let step = match next() % 4 {
            0 => 1,
            1 => (next() % 16) as usize + 1,
            2 => (next() % 70_000) as usize + 1,
            _ => usize::MAX,
        };
        let read = reader.read_with(|buf: &mut [u8]| {
            assert!(!buf.is_empty(), "read_with lent an empty buffer");
            let n = step.min(buf.len()).min(stream.len() - at);
            buf[..n].copy_from_slice(&stream[at..at + n]);
            at += n;
            Ok::<usize, ()>(n)
        });
        let eof = read == Ok(0);
        if eof || next() % 3 != 0 {
            loop {
                match reader.next_frame() {
                    Ok(Some(frame)) => got.push(frame.to_vec()),
                    Ok(None) => break,
                    Err(_) => {
                        assert!(too_large, "an error where the stream has none");
                        assert_eq!(got, want, "frames before the error");
                        return;
                    }
                }
            }
        }
        if eof {
            break;
        }
    }
    assert!(!too_large, "a prefix over the limit went unnoticed");
    assert_eq!(got, want);
    let rest: usize = stream.len() - want.iter().map(|f| f.len() + HEADER_LEN).sum::<usize>();
    assert_eq!(reader.buffered(), rest);
    assert_eq!(reader.finish().is_ok(), rest == 0);
});
