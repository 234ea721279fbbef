//! Shared memory for large values (opt-in: [`Host::shared_memory`]).
//!
//! A bytes value at or above the threshold does not travel through the
//! pipe. The sender writes it into a fresh memory file (`memfd_create`),
//! seals the file against any further change (`F_SEAL_WRITE`,
//! `F_SEAL_SHRINK`, `F_SEAL_GROW`, `F_SEAL_SEAL`), and passes the descriptor
//! over a Unix socket the child inherits, just before the frame that refers
//! to it (`{"$shm":[offset,length]}`). The receiver checks the seals and
//! maps the file read-only: the value is a view of the sender's pages, not a
//! copy. Because a value that arrived this way is still backed by its
//! sealed file, sending it on (an echo, a host function that returns what
//! it was given) passes the same file again, without writing it at all.
//!
//! This is the one module besides `process/unix.rs` with `unsafe`: mapping a
//! file is unsafe in general because another process could change it under
//! the mapping, which the seals rule out.
//!
//! [`Host::shared_memory`]: crate::Host::shared_memory
#![allow(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustix::fs::{fcntl_add_seals, fcntl_get_seals, fstat, memfd_create, MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::sync::lock;

/// The seals a memory file must carry before its pages are mapped: nobody
/// can change, shrink or grow it, or take the seals off.
fn required_seals() -> SealFlags {
    SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

/// A mapped shared value: the mapping, and the file it maps (kept open so
/// the value can be passed on without a copy).
struct Region {
    map: memmap2::Mmap,
    /// Kept open while the value lives (the registry hands it out).
    _fd: Arc<OwnedFd>,
}

impl AsRef<[u8]> for Region {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        lock(&REGIONS).remove(&(self.map.as_ptr() as usize));
    }
}

/// A live mapping: its length, its file and where it starts in the file.
struct Known {
    len: usize,
    fd: Arc<OwnedFd>,
    file_offset: u64,
}

/// Every mapping alive in this process, by start address, so that a value
/// sent on can be recognised as lying in one.
static REGIONS: Mutex<BTreeMap<usize, Known>> = Mutex::new(BTreeMap::new());

/// Puts `bytes` in shared memory: the sealed file to pass and the offset of
/// the value in it. A value that lies in a mapping received earlier is
/// passed in its own file, without a copy.
pub(crate) fn place(bytes: &Bytes) -> Result<(Arc<OwnedFd>, u64), String> {
    let start = bytes.as_ptr() as usize;
    if let Some((base, known)) = lock(&REGIONS).range(..=start).next_back() {
        if start + bytes.len() <= base + known.len {
            return Ok((
                Arc::clone(&known.fd),
                known.file_offset + (start - base) as u64,
            ));
        }
    }
    write_sealed(bytes)
        .map(|fd| (Arc::new(fd), 0))
        .map_err(|e| format!("cannot put {} bytes in shared memory: {e}", bytes.len()))
}

fn write_sealed(bytes: &[u8]) -> io::Result<OwnedFd> {
    let fd = memfd_create(
        "tether-value",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let mut rest = bytes;
    while !rest.is_empty() {
        match rustix::io::write(&fd, rest) {
            Ok(n) => rest = &rest[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    fcntl_add_seals(&fd, required_seals())?;
    Ok(fd)
}

/// Maps `len` bytes at `offset` of a memory file that arrived from the
/// peer, after checking that it is sealed and large enough, and that the
/// value is within `max` bytes.
pub(crate) fn map(fd: OwnedFd, offset: u64, len: u64, max: u64) -> Result<Bytes, String> {
    if len > max {
        return Err(format!(
            "a shared value of {len} bytes exceeds the limit of {max} bytes"
        ));
    }
    let seals = fcntl_get_seals(&fd).map_err(|e| {
        format!("the descriptor passed for a shared value is not a memory file: {e}")
    })?;
    if !seals.contains(required_seals()) {
        return Err(format!(
            "the memory file passed for a shared value is not sealed against change (seals {seals:?})"
        ));
    }
    let size = fstat(&fd)
        .map(|st| u64::try_from(st.st_size).unwrap_or(0))
        .map_err(|e| format!("cannot inspect a shared value's memory file: {e}"))?;
    let end = offset.checked_add(len);
    if end.is_none_or(|end| end > size) {
        return Err(format!(
            "shared value [{offset}, +{len}] lies outside its memory file of {size} bytes"
        ));
    }
    if len == 0 {
        return Ok(Bytes::new());
    }
    let file = File::from(fd.try_clone().map_err(|e| e.to_string())?);
    let length = usize::try_from(len).map_err(|e| e.to_string())?;
    // SAFETY: the file is a memory file sealed with F_SEAL_WRITE,
    // F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_SEAL (checked above): no process
    // can change its contents or its size any more, so the mapped bytes
    // cannot change or vanish while the mapping lives, and the range lies
    // inside the file (checked above).
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(offset)
            .len(length)
            .map(&file)
    }
    .map_err(|e| format!("cannot map a shared value: {e}"))?;
    let key = map.as_ptr() as usize;
    let fd = Arc::new(fd);
    lock(&REGIONS).insert(
        key,
        Known {
            len: length,
            fd: Arc::clone(&fd),
            file_offset: offset,
        },
    );
    Ok(Bytes::from_owner(Region { map, _fd: fd }))
}

/// At most this many descriptors go in one message over the side socket
/// (the kernel takes up to 253).
const FDS_PER_MESSAGE: usize = 64;

/// Passes `fds` over the side socket, in order, up to [`FDS_PER_MESSAGE`]
/// in each message of one byte.
///
/// # Errors
///
/// `WouldBlock` when the socket is full (the caller waits and retries with
/// what is left: returned is how many went).
pub(crate) fn send_fds(socket: impl AsFd, fds: &[Arc<OwnedFd>]) -> (usize, io::Result<()>) {
    let mut sent_count = 0;
    for batch in fds.chunks(FDS_PER_MESSAGE) {
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        let borrowed: Vec<_> = batch.iter().map(|fd| fd.as_fd()).collect();
        if !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
            return (sent_count, Err(io::Error::other("no room for descriptors")));
        }
        let sent = loop {
            match sendmsg(
                &socket,
                &[io::IoSlice::new(&[0])],
                &mut control,
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Err(Errno::INTR) => continue,
                other => break other,
            }
        };
        if let Err(e) = sent {
            return (sent_count, Err(e.into()));
        }
        sent_count += batch.len();
    }
    (sent_count, Ok(()))
}

/// The receiving end of the side socket: descriptors the peer passed, in
/// the order it passed them.
///
/// The peer passes a frame's descriptors before the frame, and may pass more
/// than the socket holds: so the reader takes them off the socket whenever
/// it waits ([`drain`](Inbox::drain)), not only while it decodes the frame
/// that refers to them, and the sender never waits for a reader that waits
/// for it.
pub(crate) struct Inbox {
    socket: Arc<OwnedFd>,
    queue: VecDeque<OwnedFd>,
}

/// The most descriptors a peer may have passed ahead of the frames that
/// refer to them (`docs/protocol.md` §3.6): each is a descriptor the host
/// holds, so a script that passes descriptors no frame claims cannot make
/// the host run out of them. A client puts at most half of this in one frame.
pub(crate) const MAX_WAITING_FDS: usize = 8192;

impl Inbox {
    pub fn new(socket: Arc<OwnedFd>) -> Inbox {
        Inbox {
            socket,
            queue: VecDeque::new(),
        }
    }

    /// The socket, to wait on.
    pub fn socket(&self) -> &OwnedFd {
        &self.socket
    }

    /// Takes every descriptor waiting on the socket.
    ///
    /// # Errors
    ///
    /// When a message carries no descriptor, or receiving fails.
    pub fn drain(&mut self) -> Result<(), String> {
        loop {
            let mut space =
                [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(FDS_PER_MESSAGE))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut byte = [0u8; 1];
            let got = loop {
                match recvmsg(
                    &*self.socket,
                    &mut [io::IoSliceMut::new(&mut byte)],
                    &mut control,
                    RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
                ) {
                    Err(Errno::INTR) => continue,
                    other => break other,
                }
            };
            match got {
                Ok(msg) if msg.bytes == 1 => {}
                // The peer closed its end, or nothing more is there.
                Ok(_) | Err(Errno::AGAIN) => return Ok(()),
                Err(e) => return Err(format!("cannot receive a shared value's descriptor: {e}")),
            }
            let before = self.queue.len();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(passed) = message {
                    self.queue.extend(passed);
                }
            }
            if self.queue.len() == before {
                return Err("a message on the shared-memory socket carried no descriptor".into());
            }
            if self.queue.len() > MAX_WAITING_FDS {
                let waiting = self.queue.len();
                self.queue.clear();
                return Err(format!(
                    "the script passed {waiting} descriptors that no frame has claimed yet \
                     (at most {MAX_WAITING_FDS} may wait)"
                ));
            }
        }
    }

    /// The next descriptor the peer passed; it must be there already (the
    /// peer passes it before the frame that refers to it).
    ///
    /// # Errors
    ///
    /// When none was passed.
    pub fn next(&mut self) -> Result<OwnedFd, String> {
        if self.queue.is_empty() {
            self.drain()?;
        }
        self.queue.pop_front().ok_or_else(|| {
            "a frame refers to a shared value whose descriptor was not passed".into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placed_value_maps_back_and_is_passed_on_in_its_own_file() {
        let data = Bytes::from((0..300_000u32).map(|i| (i % 253) as u8).collect::<Vec<_>>());
        let (fd, offset) = place(&data).unwrap();
        assert_eq!(offset, 0);
        let copy = fd.try_clone().unwrap();
        let mapped = map(copy, 0, data.len() as u64, u64::MAX).unwrap();
        assert_eq!(mapped, data);
        // A slice of the mapping goes on in the same file, at its offset.
        let part = mapped.slice(1000..2000);
        let (again, at) = place(&part).unwrap();
        assert_eq!(at, 1000);
        assert_eq!(fstat(&*again).unwrap().st_ino, fstat(&*fd).unwrap().st_ino);
        let key = mapped.as_ptr() as usize;
        assert!(lock(&REGIONS).contains_key(&key));
        drop((mapped, part));
        // Gone from the registry once no value uses the mapping.
        assert!(!lock(&REGIONS).contains_key(&key));
    }

    #[test]
    fn unsealed_short_or_foreign_descriptors_are_refused() {
        let unsealed = memfd_create("t", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
        rustix::io::write(&unsealed, &[1, 2, 3]).unwrap();
        assert!(map(unsealed, 0, 3, 100).unwrap_err().contains("not sealed"));
        let (fd, _) = place(&Bytes::from_static(b"abc")).unwrap();
        let fd = Arc::try_unwrap(fd).unwrap();
        let err = map(fd.try_clone().unwrap(), 2, 5, 100).unwrap_err();
        assert!(err.contains("outside"), "{err}");
        assert!(map(fd, 0, 3, 2).unwrap_err().contains("limit"));
        let (r, _w) = rustix::pipe::pipe().unwrap();
        assert!(map(r, 0, 1, 100).unwrap_err().contains("not a memory file"));
    }
}
