"""The seed's classic protocol: ``call(name, arg) -> str``.

Speaks byte for byte what the article "Pipes for basic IPC between C/C++ and
Python" defined: the request ``[u32 name_len][name][u32 arg_len][arg]`` and the
response ``[u32 len][result]``, little-endian, over the descriptors in
``PY_READ_FD`` and ``PY_WRITE_FD``. Works against a tether host in classic mode
and against the seed's own C++ program.
"""

from __future__ import annotations

import os
import struct
import threading
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, Optional, Tuple

from ._errors import ConnectionLost, Error, NotConnected, RemoteError

BAD_API = "__BAD API__"
ERROR_PREFIX = "__ERROR__: "

_HEADER = struct.Struct("<I")
_fds: Optional[Tuple[int, int]] = None
_lock = threading.Lock()


class BadApi(Error):
    """The host answered ``__BAD API__``: it has no function of that name."""


def call(name: str, arg: Any) -> str:
    """Call the host's function ``name`` with ``str(arg)`` and return its answer.

    Raises:
        BadApi: the host has no such function.
        RemoteError: a tether host reported that the function failed.
        ConnectionLost: the host went away.
        NotConnected: no host started this script.
    """
    name_b = name.encode("utf-8")
    arg_b = (arg if isinstance(arg, str) else str(arg)).encode("utf-8")
    request = b"".join((_HEADER.pack(len(name_b)), name_b, _HEADER.pack(len(arg_b)), arg_b))
    with _lock:
        rfd, wfd = _descriptors()
        try:
            view = memoryview(request)
            while view:
                view = view[os.write(wfd, view) :]
            (size,) = _HEADER.unpack(_read_exactly(rfd, 4))
            answer = _read_exactly(rfd, size).decode("utf-8", "replace")
        except OSError as e:
            raise ConnectionLost("the host closed the channel: %s" % e) from None
    if answer == BAD_API:
        raise BadApi("the host has no function named %r (it answered %s)" % (name, BAD_API))
    if answer.startswith(ERROR_PREFIX):
        raise RemoteError(-32000, answer[len(ERROR_PREFIX) :])
    return answer


def _descriptors() -> Tuple[int, int]:
    global _fds
    if _fds is None:
        r, w = os.environ.get("PY_READ_FD"), os.environ.get("PY_WRITE_FD")
        if r is None or w is None:
            raise NotConnected("this script was not started by a classic host (PY_READ_FD and PY_WRITE_FD are not set)")
        try:
            _fds = (int(r), int(w))
        except ValueError:
            raise NotConnected("PY_READ_FD=%r and PY_WRITE_FD=%r are not descriptor numbers" % (r, w)) from None
    return _fds


def _read_exactly(fd: int, n: int) -> bytes:
    chunks = []
    while n > 0:
        data = os.read(fd, n)
        if not data:
            raise ConnectionLost("the host closed the channel in the middle of a reply")
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)
