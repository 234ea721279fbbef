//! Length-prefixed frames: `u32` little-endian length, then that many bytes.
//!
//! Both the native and the classic protocol use this prefix. [`FrameReader`]
//! is the incremental decoder: the caller lends it a read function through
//! [`FrameReader::read_with`] (or hands it bytes with [`FrameReader::feed`]) and
//! takes whole frames out with [`FrameReader::next_frame`]. It never allocates more
//! than about twice the bytes that have actually arrived, and it rejects a
//! frame over the limit from its length prefix alone.

use bytes::{Bytes, BytesMut};
use memmap2::MmapMut;

use super::DecodeError;

/// Size of the length prefix in bytes.
pub const HEADER_LEN: usize = 4;

/// Reads below this size go into a shared chunk; a frame larger than this is
/// read into a buffer of its own, so that its body can be handed out without
/// a copy.
const CHUNK: usize = 64 * 1024;

/// A frame at least this large is read into a memory mapping of its own
/// size: pages are committed only as bytes arrive (nothing is zeroed by
/// hand, nothing is copied to grow), and large pages are asked for.
const MAPPED: usize = 1024 * 1024;

/// A large frame being read into its own mapping.
#[derive(Debug)]
struct Mapped {
    map: MmapMut,
    filled: usize,
}
/// Incremental, allocation-bounded frame decoder.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    /// Bytes at the end of `buf` that are zeroed room for a large frame's
    /// next read, not data: room is made once per doubling, not per read.
    room: usize,
    /// The frame in progress, when it is large.
    mapped: Option<Mapped>,
    scratch: Option<Box<[u8]>>,
    max: u32,
}

impl FrameReader {
    /// A decoder that accepts frames of at most `max` bytes (not counting the
    /// four-byte prefix).
    pub fn new(max: u32) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            room: 0,
            mapped: None,
            scratch: None,
            max,
        }
    }

    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.mapped.as_ref().map_or(0, |m| m.filled) + self.buf.len() - self.room
    }

    /// Reads once with `read`, which gets a buffer to fill and returns how
    /// many bytes it wrote. Returns what `read` returned; `Ok(0)` means end of
    /// file.
    ///
    /// Small reads go through a scratch chunk and only the bytes that arrived
    /// are copied on. While a frame larger than the chunk is in progress,
    /// `read` gets room in the frame's own buffer, up to the end of that frame
    /// and at most doubling what has arrived: the frame leaves the decoder
    /// without a copy, and a peer that announces a large frame and then sends
    /// nothing commits no memory.
    pub fn read_with<E>(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
    ) -> Result<usize, E> {
        if self.mapped.is_none() {
            self.map_large_frame();
        }
        if let Some(m) = self.mapped.as_mut().filter(|m| m.filled < m.map.len()) {
            let result = read(&mut m.map[m.filled..]);
            let room = m.map.len() - m.filled;
            m.filled += result.as_ref().map_or(0, |n| (*n).min(room));
            return result;
        }
        let have = self.buffered();
        // A frame that is already whole (the caller has not taken it yet)
        // leaves no room of its own: what comes next goes after it.
        let in_progress = self.mapped.is_none() && self.pending_len().is_some_and(|t| t > have);
        match self.pending_len().filter(|_| in_progress) {
            Some(total) if total > CHUNK => {
                if self.room == 0 {
                    let want = (total - have).min(have.max(CHUNK));
                    self.buf.resize(have + want, 0);
                    self.room = want;
                }
                let result = read(&mut self.buf[have..]);
                let got = result.as_ref().map_or(0, |n| (*n).min(self.room));
                self.room -= got;
                result
            }
            _ => {
                let scratch = self
                    .scratch
                    .get_or_insert_with(|| vec![0; CHUNK].into_boxed_slice());
                let result = read(&mut scratch[..]);
                if let Ok(n) = &result {
                    self.buf.extend_from_slice(&scratch[..(*n).min(CHUNK)]);
                }
                result
            }
        }
    }

    /// Moves a large frame that has begun to arrive into a mapping of its
    /// own (virtual memory only, until bytes arrive); stays with the
    /// ordinary buffer when the system refuses the mapping.
    fn map_large_frame(&mut self) {
        let Some(total) = self.pending_len().filter(|t| *t >= MAPPED) else {
            return;
        };
        self.drop_room();
        let have = self.buf.len().min(total);
        let Ok(mut map) = memmap2::MmapOptions::new()
            .len(total)
            .no_reserve_swap()
            .map_anon()
        else {
            return;
        };
        // Only advice: fewer page faults where the system allows it.
        let _ = map.advise(memmap2::Advice::HugePage);
        map[..have].copy_from_slice(&self.buf[..have]);
        let _ = self.buf.split_to(have);
        self.mapped = Some(Mapped { map, filled: have });
    }

    /// Appends bytes that arrived by other means (tests, in-memory peers).
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.mapped.is_none() {
            self.drop_room();
            self.buf.extend_from_slice(data);
            self.map_large_frame();
            return;
        }
        if let Some(m) = &mut self.mapped {
            let n = data.len().min(m.map.len() - m.filled);
            m.map[m.filled..m.filled + n].copy_from_slice(&data[..n]);
            m.filled += n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
    }

    fn drop_room(&mut self) {
        let len = self.buffered();
        self.buf.truncate(len);
        self.room = 0;
    }

    /// The next complete frame body, `Ok(None)` when more bytes are needed,
    /// or an error when the length prefix exceeds the limit.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, DecodeError> {
        if let Some(m) = &self.mapped {
            if m.filled < m.map.len() {
                return Ok(None);
            }
            let total = m.map.len();
            let Some(m) = self.mapped.take() else {
                return Ok(None);
            };
            return Ok(Some(Bytes::from_owner(m.map).slice(HEADER_LEN..total)));
        }
        let Some(total) = self.checked_len()? else {
            return Ok(None);
        };
        if self.buffered() < total {
            return Ok(None);
        }
        // Room is never made past the frame's end, so none is left here.
        self.drop_room();
        let mut frame = self.buf.split_to(total);
        let body = frame.split_off(HEADER_LEN);
        Ok(Some(body.freeze()))
    }

    /// Call at end of file: `Ok(())` when the stream ended between frames,
    /// an error when it ended inside one.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.buffered() == 0 {
            Ok(())
        } else {
            Err(DecodeError::Truncated {
                have: self.buffered(),
                need: self.pending_len().unwrap_or(HEADER_LEN),
            })
        }
    }

    fn checked_len(&self) -> Result<Option<usize>, DecodeError> {
        if let Some(m) = &self.mapped {
            return Ok(Some(m.map.len()));
        }
        let Some(len) = peek_len(&self.buf) else {
            return Ok(None);
        };
        if len > self.max {
            return Err(DecodeError::FrameTooLarge {
                len: u64::from(len),
                max: self.max,
            });
        }
        Ok(Some(HEADER_LEN + len as usize))
    }

    /// The whole length (prefix included) of the frame now arriving, once
    /// its prefix is in and within the limit.
    pub fn pending_len(&self) -> Option<usize> {
        if let Some(m) = &self.mapped {
            return Some(m.map.len());
        }
        peek_len(&self.buf)
            .filter(|len| *len <= self.max)
            .map(|len| HEADER_LEN + len as usize)
    }
}

/// The length in a frame header at the start of `buf`, if four bytes are there.
pub fn peek_len(buf: &[u8]) -> Option<u32> {
    let header: [u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    Some(u32::from_le_bytes(header))
}

/// The four-byte prefix for a body of `len` bytes, or an error when `len`
/// exceeds `max`.
pub fn header(len: usize, max: u32) -> Result<[u8; HEADER_LEN], DecodeError> {
    match u32::try_from(len) {
        Ok(n) if n <= max => Ok(n.to_le_bytes()),
        _ => Err(DecodeError::FrameTooLarge {
            len: len as u64,
            max,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut out = (body.len() as u32).to_le_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }

    /// Reads from `wire` through `read_with`, `step` bytes at most each time,
    /// never with an empty buffer (that would read as end of file).
    fn read_from(r: &mut FrameReader, wire: &[u8], at: &mut usize, step: usize) -> usize {
        r.read_with(|buf: &mut [u8]| {
            assert!(!buf.is_empty(), "read_with lent an empty buffer");
            let n = step.min(buf.len()).min(wire.len() - *at);
            buf[..n].copy_from_slice(&wire[*at..*at + n]);
            *at += n;
            Ok::<_, ()>(n)
        })
        .unwrap()
    }

    #[test]
    fn read_with_twice_without_taking_the_frame() {
        // A frame of each kind (small, larger than a chunk, mapped), then
        // more bytes, read with several reads before anyone takes a frame:
        // this used to underflow (debug) or lend an empty buffer, which a
        // reader takes for end of file.
        for size in [10, CHUNK + 10, MAPPED + 10] {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut wire = frame(&body);
            wire.extend(frame(b"next"));
            let mut r = FrameReader::new(u32::MAX);
            r.feed(&wire[..HEADER_LEN + size]);
            let mut at = HEADER_LEN + size;
            assert_eq!(read_from(&mut r, &wire, &mut at, 3), 3);
            while at < wire.len() {
                assert!(read_from(&mut r, &wire, &mut at, 5) > 0);
            }
            assert_eq!(r.next_frame().unwrap().unwrap(), body, "size {size}");
            assert_eq!(&r.next_frame().unwrap().unwrap()[..], b"next");
            assert_eq!(r.buffered(), 0);
        }
    }

    #[test]
    fn frames_fed_one_byte_at_a_time() {
        let mut wire = frame(b"hello");
        wire.extend(frame(b""));
        wire.extend(frame(b"x"));
        let mut reader = FrameReader::new(16);
        let mut got = Vec::new();
        for b in &wire {
            reader.feed(std::slice::from_ref(b));
            while let Some(f) = reader.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, vec![&b"hello"[..], b"", b"x"]);
        assert!(reader.finish().is_ok());
    }

    #[test]
    fn oversized_prefix_is_rejected_before_the_body() {
        let mut reader = FrameReader::new(16);
        reader.feed(&17u32.to_le_bytes());
        assert_eq!(
            reader.next_frame(),
            Err(DecodeError::FrameTooLarge { len: 17, max: 16 })
        );
    }

    #[test]
    fn eof_inside_a_frame_is_an_error() {
        let mut reader = FrameReader::new(16);
        reader.feed(&frame(b"hello")[..6]);
        assert_eq!(reader.next_frame(), Ok(None));
        assert_eq!(
            reader.finish(),
            Err(DecodeError::Truncated { have: 6, need: 9 })
        );
        let mut reader = FrameReader::new(16);
        reader.feed(b"\x01\x00");
        assert!(reader.finish().is_err());
    }

    #[test]
    fn a_large_announced_frame_commits_memory_only_as_bytes_arrive() {
        fn rss() -> usize {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0)
                * 1024
        }
        let max = 1 << 30;
        let before = rss();
        let mut reader = FrameReader::new(max);
        reader.feed(&max.to_le_bytes());
        for _ in 0..4 {
            // What a pipe gives: at most 64 KiB per read.
            reader
                .read_with(|buf| {
                    let n = buf.len().min(65_536);
                    buf[..n].fill(7);
                    Ok::<_, ()>(n)
                })
                .unwrap();
        }
        assert_eq!(reader.buffered(), 4 + 4 * 65_536);
        assert_eq!(reader.next_frame(), Ok(None));
        // A whole gigabyte announced; only what arrived is resident (the
        // bound leaves room for other tests running in this process).
        let grew = rss().saturating_sub(before);
        assert!(grew < 64 << 20, "resident memory grew by {grew} bytes");
    }

    #[test]
    fn a_large_frame_is_read_up_to_its_end_only() {
        let body = vec![9u8; 200_000];
        let mut wire = frame(&body);
        wire.extend(frame(b"next"));
        let mut reader = FrameReader::new(1 << 20);
        let mut pos = 0;
        let mut frames = Vec::new();
        while pos < wire.len() {
            reader
                .read_with(|buf| {
                    let n = buf.len().min(wire.len() - pos);
                    buf[..n].copy_from_slice(&wire[pos..pos + n]);
                    pos += n;
                    Ok::<_, ()>(n)
                })
                .unwrap();
            while let Some(f) = reader.next_frame().unwrap() {
                frames.push(f);
            }
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], body);
        assert_eq!(frames[1], &b"next"[..]);
    }

    #[test]
    fn a_large_frame_read_in_small_pieces_arrives_whole() {
        // Short reads, as a pipe gives them: each read fills part of the
        // room made for it, and the next read continues there.
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let wire = frame(&body);
        let mut reader = FrameReader::new(1 << 23);
        let mut pos = 0;
        let mut largest_offer = 0;
        let mut got = None;
        while got.is_none() {
            reader
                .read_with(|buf| {
                    largest_offer = largest_offer.max(buf.len());
                    let n = buf.len().min(wire.len() - pos).min(65_536);
                    buf[..n].copy_from_slice(&wire[pos..pos + n]);
                    pos += n;
                    Ok::<_, ()>(n)
                })
                .unwrap();
            assert!(reader.buffered() <= pos);
            got = reader.next_frame().unwrap();
        }
        assert_eq!(got.unwrap(), body);
        assert_eq!(reader.buffered(), 0);
        assert!(largest_offer <= body.len());
    }
}
