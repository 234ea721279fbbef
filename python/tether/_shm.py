"""Shared memory for large values, when the host offers it (``Host::shared_memory``).

A bytes value at or above the host's threshold does not travel through the
pipe: the sender writes it into a fresh memory file, seals the file against
any change, and passes its descriptor over the Unix socket in
``TETHER_SHM_FD`` just before the frame that refers to it as
``{"$shm": [offset, length]}``. The receiver checks the seals and maps the
file read-only: the value is a ``memoryview`` of the sender's pages, not a
copy. See docs/protocol.md.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, List, Optional

from ._errors import ProtocolError

ENV = "TETHER_SHM_FD"

# At most this many descriptors travel in one message (the kernel takes 253).
_FDS_PER_MESSAGE = 64

# fcntl's seal constants (Linux; fcntl has them from Python 3.8 on).
_F_ADD_SEALS = 1033
_F_GET_SEALS = 1034
_SEAL_SEAL, _SEAL_SHRINK, _SEAL_GROW, _SEAL_WRITE = 0x1, 0x2, 0x4, 0x8
_REQUIRED = _SEAL_SEAL | _SEAL_SHRINK | _SEAL_GROW | _SEAL_WRITE


def available() -> bool:
    """Whether this process can use shared memory with its host."""
    return bool(os.environ.get(ENV)) and hasattr(os, "memfd_create")


class Side:
    """The socket memory files go over, both ways."""

    def __init__(self, fd: int) -> None:
        import socket

        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
        self._socket.setblocking(True)
        self._recv_lock = __import__("threading").Lock()
        # Descriptors taken off the socket before their frame was decoded.
        self._inbox: "List[int]" = []

    @classmethod
    def from_environment(cls) -> "Optional[Side]":
        try:
            return cls(int(os.environ[ENV])) if available() else None
        except (KeyError, ValueError, OSError):
            return None

    def place(self, view: memoryview, fds: "List[int]") -> int:
        """Write ``view`` into a sealed memory file to pass; its offset in it (0)."""
        import fcntl

        fd = os.memfd_create("tether-value", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            done = 0
            n = len(view)
            while done < n:
                done += os.write(fd, view[done:])
            fcntl.fcntl(fd, getattr(fcntl, "F_ADD_SEALS", _F_ADD_SEALS), _REQUIRED)
        except BaseException:
            os.close(fd)
            raise
        fds.append(fd)
        return 0

    def fileno(self) -> int:
        """The socket's descriptor, to wait on."""
        return self._socket.fileno()

    def send(self, fds: "List[int]") -> None:
        """Pass ``fds`` in order (up to 64 in a message), then close them. Call with the write lock held."""
        import array
        import socket

        try:
            for i in range(0, len(fds), _FDS_PER_MESSAGE):
                batch = array.array("i", fds[i : i + _FDS_PER_MESSAGE])
                self._socket.sendmsg([b"\0"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, batch)])
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def resolve(self, offset: int, length: int, limit: int) -> "Any":
        """Map the next shared value the host passed: a read-only memoryview."""
        import mmap

        if length > limit:
            raise ProtocolError("a shared value of %d bytes exceeds the limit of %d bytes" % (length, limit))
        with self._recv_lock:
            if not self._inbox:
                self._drain_locked()
            if not self._inbox:
                raise ProtocolError("a frame refers to a shared value whose descriptor was not passed")
            fd = self._inbox.pop(0)
        try:
            import fcntl

            try:
                seals = fcntl.fcntl(fd, getattr(fcntl, "F_GET_SEALS", _F_GET_SEALS))
            except OSError:
                raise ProtocolError("the descriptor passed for a shared value is not a memory file") from None
            if seals & _REQUIRED != _REQUIRED:
                raise ProtocolError("the memory file passed for a shared value is not sealed against change")
            size = os.fstat(fd).st_size
            if offset < 0 or length < 0 or offset + length > size:
                raise ProtocolError("shared value [%d, +%d] lies outside its memory file of %d bytes" % (offset, length, size))
            if length == 0:
                return memoryview(b"")
            start = offset - offset % mmap.ALLOCATIONGRANULARITY
            mapped = mmap.mmap(fd, offset + length - start, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=start)
        finally:
            os.close(fd)  # the mapping keeps its own reference
        return memoryview(mapped)[offset - start : offset - start + length].toreadonly()

    def drain(self) -> None:
        """Take every descriptor waiting on the socket, in order.

        The host passes a frame's descriptors before the frame and may pass
        more than the socket holds, so whoever waits for the pipe takes them
        off the socket too: the host never waits on a full socket while the
        script waits for the frame behind it.

        Raises:
            ProtocolError: a message carried no descriptor.
        """
        with self._recv_lock:
            self._drain_locked()

    def _drain_locked(self) -> None:
        import array
        import socket

        size = socket.CMSG_SPACE(_FDS_PER_MESSAGE * array.array("i").itemsize)
        while True:
            try:
                data, ancillary, _flags, _addr = self._socket.recvmsg(1, size, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return  # the host closed its end
            fds = array.array("i")
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            if not fds:
                raise ProtocolError("a message on the shared-memory socket carried no descriptor")
            self._inbox.extend(fds)
