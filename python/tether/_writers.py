"""Writing to the host: the send path every message takes once encoded (the
encoders are in ``_framing``: the general one and the short forms of a call and a
result), the outbox of requests made in an event loop, and what a failed write means."""

from __future__ import annotations

import os
import select

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    import threading
    from typing import Any, Dict, List, Optional, Tuple

from . import _framing
from ._errors import ConnectionLost


class Writer:
    """The writing half of :class:`~tether._connection.Connection` (a mixin).

    Every message leaves through :meth:`_send`, with the write lock held, after
    the requests queued in the outbox; memory files of shared values go over
    the side socket first.
    """

    if TYPE_CHECKING:
        _wfd: int
        _calls: Any
        _write_lock: threading.Lock
        _outbox: List[bytes]
        _closed: bool
        _side: Any
        _share: Any
        max_frame: int

        def _lose(self, error: Any) -> None: ...

        def _params(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any: ...

    def _encode_request(
        self, msg_id: int, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], within: Optional[int] = None
    ) -> Tuple[List[_framing.Buffer], List[int]]:
        """The pieces of a request's frame and the memory files of its shared values;
        ``within`` is the host's request the caller serves (it nests in that one).

        Positional arguments that need no attachment take the short way
        (``_framing.encode_call``); everything else the general encoder.

        Raises:
            InvalidParams, TypeError: the arguments do not fit the host function.
            FrameTooLarge, CannotSend: they cannot be sent.
        """
        if not kwargs:
            frame = _framing.encode_call(msg_id, method, args, self.max_frame, within)
            if frame is not None:
                return [frame], []
        return self._encode_general(msg_id, method, args, kwargs, within)

    def _encode_general(
        self, msg_id: int, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], within: Optional[int] = None
    ) -> Tuple[List[_framing.Buffer], List[int]]:
        """:meth:`_encode_request` the general way, for what the short way declined."""
        params = self._params(method, args, kwargs)
        return self._encode(_framing.request(msg_id, method, params, within), self.max_frame)

    def _encode(self, message: Dict[str, Any], max_frame: int) -> Tuple[List[_framing.Buffer], List[int]]:
        """The pieces of a frame, and the memory files of its shared values."""
        fds: List[int] = []
        try:
            return _framing.encode(message, max_frame, self._share, fds), fds
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise

    def _send(self, pieces: List[_framing.Buffer], fds: Optional[List[int]] = None) -> None:
        if self._closed:
            for fd in fds or ():
                os.close(fd)
            raise ConnectionLost("the connection to the host was closed")
        try:
            with self._write_lock:
                if self._outbox:
                    self._write_outbox()
                if fds:
                    # The host takes them in this order while it decodes the frame.
                    self._side.send(fds)
                if self._calls is not None:
                    self._send_threaded(pieces)
                elif len(pieces) == 1:
                    piece = pieces[0]
                    n = os.write(self._wfd, piece)
                    if n != len(piece):
                        self._write_all(memoryview(piece)[n:])
                else:
                    _writev_all(self._wfd, pieces)
        except OSError as e:
            raise _lost_writing(e) from None

    def _send_threaded(self, pieces: List[_framing.Buffer]) -> None:
        """:meth:`_send`'s write once several threads call (the write end is
        non-blocking then): a small frame in one write that keeps the GIL, when
        the pipe has room for it; anything else as before, blocking."""
        if len(pieces) == 1:
            piece = pieces[0]
            if type(piece) is bytes and len(piece) <= _ATOMIC:
                try:
                    # All or nothing: the pipe takes a write this small whole.
                    self._calls.write(self._wfd, piece)
                    return
                except BlockingIOError:
                    pass
            self._write_all(memoryview(piece))
        else:
            with _blocking(self._wfd):
                _writev_all(self._wfd, pieces)

    def _send_quietly(self, pieces: List[_framing.Buffer], fds: Optional[List[int]] = None) -> None:
        try:
            self._send(pieces, fds)
        except ConnectionLost:
            pass

    def _post(self, frame: bytes, loop: Any) -> None:
        """Queue a request made in the event loop; all of them leave together."""
        with self._write_lock:
            self._outbox.append(frame)
            if len(self._outbox) > 1:
                return
        loop.call_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        try:
            with self._write_lock:
                self._write_outbox()
        except OSError as e:
            self._lose(_lost_writing(e))

    def _write_outbox(self) -> None:
        """Write the queued requests; call with the write lock held.

        Raises:
            OSError: the write failed.
        """
        box = self._outbox
        if not box:
            return
        data = box[0] if len(box) == 1 else b"".join(box)
        box.clear()
        self._write_all(memoryview(data))

    def _write_all(self, view: memoryview) -> None:
        """Write all of ``view``, blocking until the host took it; call with the
        write lock held."""
        if self._calls is None:
            _write_view(self._wfd, view)
        else:
            with _blocking(self._wfd):
                _write_view(self._wfd, view)


def _lost_writing(e: OSError) -> ConnectionLost:
    """What a failed write to the host means for the script."""
    if isinstance(e, (BrokenPipeError, ConnectionResetError)):
        return ConnectionLost("the host closed the channel (it exited or stopped serving)")
    return ConnectionLost("writing to the host failed: %s" % e)


# The most a write to a pipe takes whole or not at all (POSIX's PIPE_BUF).
_ATOMIC = getattr(select, "PIPE_BUF", 512)


class _blocking:
    """The write end blocking for a while (it is non-blocking once several threads
    call): a frame the pipe cannot take at once is written as before, so that it
    is never left half written by a write that gave up, should the script then
    exit."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> None:
        os.set_blocking(self.fd, True)

    def __exit__(self, *exc: Any) -> None:
        os.set_blocking(self.fd, False)


def _write_view(fd: int, view: memoryview) -> None:
    """Write all of ``view`` to ``fd`` (blocking)."""
    while view:
        view = view[os.write(fd, view):]


def _writev_all(fd: int, pieces: List[_framing.Buffer]) -> None:
    views = [memoryview(p).cast("B") for p in pieces if len(p)]
    while views:
        n = os.writev(fd, views)
        while n and views:
            if n >= len(views[0]):
                n -= len(views[0])
                views.pop(0)
            else:
                views[0] = views[0][n:]
                n = 0


def _close_all(fds: List[int]) -> None:
    """Close memory files that will not be sent."""
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
