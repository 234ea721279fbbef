"""The blocking connection to the host over the two inherited descriptors."""

import os
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

from . import _framing
from ._errors import (
    ConnectionLost,
    Error,
    InvalidParams,
    MethodNotFound,
    NotConnected,
    ProtocolError,
    RemoteError,
    VersionMismatch,
)
from ._version import PROTOCOL_VERSION, __version__

READ_VAR = "TETHER_READ_FD"
WRITE_VAR = "TETHER_WRITE_FD"

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
VERSION_MISMATCH = -32001

_CHUNK = 64 * 1024


class Function:
    """What the host said about one of its functions."""

    __slots__ = ("name", "params", "signature")

    def __init__(self, name: str, params: Optional[List[str]], signature: str) -> None:
        self.name = name
        self.params = params
        self.signature = signature


class Connection:
    """A channel to the host: requests out on one descriptor, replies in on the other.

    Thread-safe: one call at a time holds the channel. ``close()`` may be called twice.
    """

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._rfd = read_fd
        self._wfd = write_fd
        self._lock = threading.Lock()
        self._decoder = _framing.FrameDecoder()
        self._next_id = 1
        self._closed = False
        self.max_frame = _framing.DEFAULT_MAX_FRAME
        self.host_version = "?"
        self.functions: Dict[str, Function] = {}
        self._hello()

    @classmethod
    def from_environment(cls) -> "Connection":
        """Connect through the descriptors the host passed in the environment.

        Raises:
            NotConnected: no host started this process, or its descriptors are unusable.
        """
        r, w = os.environ.get(READ_VAR), os.environ.get(WRITE_VAR)
        if r is None or w is None:
            raise NotConnected(
                "this script was not started by a tether host (%s and %s are not set); "
                "run it from a host program, for example: cargo run --example demo -- %s"
                % (READ_VAR, WRITE_VAR, os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "SCRIPT")
            )
        try:
            rfd, wfd = int(r), int(w)
            os.fstat(rfd)
            os.fstat(wfd)
        except (ValueError, OSError) as e:
            raise NotConnected("the tether descriptors %s=%r, %s=%r are unusable: %s" % (READ_VAR, r, WRITE_VAR, w, e)) from None
        return cls(rfd, wfd)

    def call(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        """Call a host function and return its result.

        Raises:
            MethodNotFound, InvalidParams, RemoteError: the host answered with an error.
            ConnectionLost: the host went away.
            FrameTooLarge, TypeError, ValueError, OverflowError: the arguments cannot be sent.
        """
        params = self._params(method, args, kwargs)
        with self._lock:
            msg_id = self._next_id
            self._next_id += 1
            reply = self._roundtrip(_framing.request(msg_id, method, params), msg_id)
        return _result(reply)

    def close(self) -> None:
        """Close both descriptors; the host then sees end-of-file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._rfd, self._wfd):
                try:
                    os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- private -------------------------------------------------------------

    def _hello(self) -> None:
        params = {"protocol": PROTOCOL_VERSION, "version": __version__, "python": sys.version.split()[0]}
        reply = self._roundtrip(_framing.request(0, "rpc.hello", params), 0)
        _, result, error = _framing.split_reply(reply)
        if error is not None:
            if error["code"] == VERSION_MISMATCH:
                raise VersionMismatch(error["message"])
            raise ProtocolError("the host refused the handshake: %s" % error["message"])
        if type(result) is not dict or result.get("protocol") != PROTOCOL_VERSION:
            raise VersionMismatch(
                "protocol version mismatch: this client (tether %s) speaks protocol %d, the host answered %.200r; "
                "run the script with the client the host bundles" % (__version__, PROTOCOL_VERSION, result)
            )
        self.host_version = str(result.get("version", "?"))
        self.max_frame = int(result.get("max_frame", self.max_frame))
        self._decoder.max_frame = self.max_frame
        for f in result.get("functions", []):
            self.functions[f["name"]] = Function(f["name"], f.get("params"), f.get("signature", f["name"]))

    def _params(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        for a in args:
            _framing.check_value(a)
        for v in kwargs.values():
            _framing.check_value(v)
        if not kwargs:
            return list(args)
        if not args:
            return kwargs
        # Mixed: bind the positional ones to the names the host declared.
        f = self.functions.get(method)
        if f is None or f.params is None:
            raise InvalidParams(
                INVALID_PARAMS,
                "%s() takes no keyword arguments (its parameters have no names)" % method,
                {"kind": "InvalidParams", "function": method},
            )
        if len(args) > len(f.params):
            raise InvalidParams(
                INVALID_PARAMS,
                "%s() takes %d positional arguments but %d were given; expects %s"
                % (method, len(f.params), len(args), f.signature),
                {"kind": "InvalidParams", "function": method},
            )
        named = dict(zip(f.params, args))
        for key, value in kwargs.items():
            if key in named:
                raise TypeError("%s() got multiple values for argument %r" % (method, key))
            named[key] = value
        return named

    def _roundtrip(self, message: Dict[str, Any], msg_id: int) -> Dict[str, Any]:
        if self._closed:
            raise ConnectionLost("the connection to the host was closed")
        self._send(_framing.encode(message, self.max_frame))
        reply = self._receive()
        if reply.get("id") != msg_id:
            raise ProtocolError("reply for id %r while waiting for id %r" % (reply.get("id"), msg_id))
        return reply

    def _send(self, pieces: List[_framing.Buffer]) -> None:
        try:
            if len(pieces) == 1:
                data = memoryview(pieces[0])
                while data:
                    n = os.write(self._wfd, data)
                    data = data[n:]
            else:
                _writev_all(self._wfd, pieces)
        except (BrokenPipeError, ConnectionResetError):
            raise ConnectionLost("the host closed the channel (it exited or stopped serving)") from None
        except OSError as e:
            raise ConnectionLost("writing to the host failed: %s" % e) from None

    def _receive(self) -> Dict[str, Any]:
        decoder = self._decoder
        while True:
            body = decoder.next()
            if body is not None:
                return _framing.decode(body)
            try:
                data = os.read(self._rfd, max(_CHUNK, decoder.missing()))
            except OSError as e:
                raise ConnectionLost("reading from the host failed: %s" % e) from None
            if not data:
                raise ConnectionLost("the host closed the channel (it exited or stopped serving)")
            decoder.feed(data)


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


def _result(reply: Dict[str, Any]) -> Any:
    _, result, error = _framing.split_reply(reply)
    if error is None:
        return result
    code, message, data = error["code"], error["message"], error.get("data")
    if code == METHOD_NOT_FOUND:
        raise MethodNotFound(code, message, data)
    if code == INVALID_PARAMS:
        raise InvalidParams(code, message, data)
    raise RemoteError(code, message, data)


_connection: Optional[Connection] = None
_connect_lock = threading.Lock()


def connection() -> Connection:
    """The process's connection to its host, made on first use."""
    global _connection
    conn = _connection
    if conn is not None:
        return conn
    with _connect_lock:
        if _connection is None:
            _connection = Connection.from_environment()
        return _connection


__all__ = ["Connection", "connection", "Error"]
