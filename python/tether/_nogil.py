"""System calls that keep the GIL, for a connection that several threads call through.

In CPython every ``os.read``, ``os.write`` and ``poll`` lets the GIL go while
it runs. With one thread that costs nothing. With several, each of them hands
the GIL to a thread that waits for it, and a hand-off between threads on two
cores costs a wake-up: about 30 µs on a small VM, more than a whole call to
the host (a pair of Python threads passing control back and forth measured
62-70 µs per round trip, against 12-15 µs for a call). A thread that writes
its request, looks for the answer and reads it without letting the GIL go makes
its call in one turn; the other threads run when it sleeps in ``poll`` for a
slow answer, when it waits for a lock, or when the interpreter's switch
interval takes the GIL from it, as with any Python code.

Only calls that cannot block are made this way: ``poll`` with a zero timeout,
``read`` of the read end (non-blocking), ``write`` to the write end (made
non-blocking before these are used), ``sched_yield``. They go through ctypes:
functions of a ``ctypes.PyDLL`` keep the GIL. Where ctypes is missing
(importing this module fails) or :func:`load` cannot load the C library, the
connection keeps the ``os`` functions. This module (and ctypes with it) is
imported only when a second thread first waits: importing ctypes costs a few
milliseconds.
"""

from __future__ import annotations

import ctypes
import errno
import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, List, Optional, Sequence, Tuple

# What a non-blocking call that could not go ahead says: try again after poll.
_AGAIN = frozenset((errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR))
_POLLIN = 1


class _PollFd(ctypes.Structure):
    """``struct pollfd``."""

    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


class Calls:
    """``read``, ``write``, ``poll(0)`` and ``sched_yield`` of the C library, keeping the GIL.

    One per connection: reads go into its one buffer, so only the thread that
    holds the connection's reader role reads. Its methods raise what the ``os``
    functions raise: :class:`BlockingIOError` when the call would block,
    another :class:`OSError` for any other failure.
    """

    __slots__ = ("_read", "_write", "_poll", "pause", "_buffer", "_size", "_fds", "_count")

    def __init__(self, size: int) -> None:
        libc = ctypes.PyDLL(None, use_errno=True)
        read, write, poll = libc.read, libc.write, libc.poll
        read.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
        read.restype = ctypes.c_ssize_t
        write.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        write.restype = ctypes.c_ssize_t
        poll.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int]
        poll.restype = ctypes.c_int
        pause = libc.sched_yield
        pause.argtypes = []
        pause.restype = ctypes.c_int
        self._read, self._write, self._poll, self.pause = read, write, poll, pause
        self._size = size
        self._buffer = ctypes.create_string_buffer(size)
        self._fds: Any = None
        self._count = 0

    def watch(self, fds: Sequence[int]) -> None:
        """The descriptors :meth:`poll` looks at (for reading)."""
        self._fds = (_PollFd * len(fds))(*(_PollFd(fd, _POLLIN, 0) for fd in fds))
        self._count = len(fds)

    def poll(self, timeout: int = 0) -> List[Tuple[int, int]]:
        """The watched descriptors that are ready, as ``select.poll().poll(0)`` gives
        them: (fd, events). It never waits (``timeout`` is ignored)."""
        fds = self._fds
        n = self._poll(fds, self._count, 0)
        if n <= 0:
            if n < 0:
                self._raise()
            return []
        return [(p.fd, p.revents) for p in fds if p.revents]

    def read(self, fd: int) -> bytes:
        """What one ``read`` of ``fd`` (non-blocking) gives, up to the buffer's size."""
        n = self._read(fd, self._buffer, self._size)
        if n < 0:
            self._raise()
        return ctypes.string_at(self._buffer, n)

    def write(self, fd: int, data: bytes) -> int:
        """Write ``data`` to ``fd`` (non-blocking): how many bytes went."""
        n = self._write(fd, data, len(data))
        if n < 0:
            self._raise()
        return int(n)

    def _raise(self) -> None:
        code = ctypes.get_errno()
        if code in _AGAIN:
            raise BlockingIOError(code, os.strerror(code))
        raise OSError(code, os.strerror(code))


def load(size: int) -> Optional[Calls]:
    """The calls, with a read buffer of ``size`` bytes; None where the C library cannot be loaded."""
    try:
        return Calls(size)
    except (OSError, AttributeError, TypeError):
        return None
