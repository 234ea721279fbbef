"""The native wire format, free of I/O: messages to bytes and bytes to messages.

A frame is a little-endian u32 length followed by that many bytes. A native frame
body is a u32 JSON length, the JSON text of a JSON-RPC 2.0 message, and an
attachment area: every bytes value travels there raw, and the JSON holds
``{"$bytes": [offset, length]}`` in its place. See docs/protocol.md.
"""

from __future__ import annotations

import struct
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, Callable, Dict, List, Optional, Tuple, Union

    Buffer = Union[bytes, bytearray, memoryview]

from ._errors import FrameTooLarge, IntOutOfRange, ProtocolError, UnsendableType, UnsendableValue

HEADER = struct.Struct("<I")
_HEADER2 = struct.Struct("<II")
BYTES_KEY = "$bytes"
_BYTES_MARK = b'"$bytes"'
SHARED_KEY = "$shm"
_SHARED_MARK = b'"$shm"'
# Both marks hold "$": one look for this byte spares the searches in most frames
# (an int is looked up with memchr; ``bytes in bytes`` costs far more in CPython).
_DOLLAR = ord("$")
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
DEFAULT_MAX_FRAME = 64 * 1024 * 1024
# A host holds at most 8192 descriptors passed ahead of their frames (docs/protocol.md
# §3.6); one frame places at most half of that in shared memory, the rest goes inline.
MAX_SHARED_PER_FRAME = 4096

# The reserved method names (docs/protocol.md §5): every name that starts with
# `rpc.` belongs to the protocol. The host's list is protocol/method.rs; a test
# checks that the two agree.
HELLO = "rpc.hello"
READY = "rpc.ready"
CANCEL = "rpc.cancel"
STOP = "rpc.stop"
LOG = "rpc.log"
PING = "rpc.ping"
RESERVED = (HELLO, READY, CANCEL, STOP, LOG, PING)


# Arrays and objects may nest at most this deep in a JSON text, the message object
# being the first level (docs/protocol.md §3.2); a bytes value's reference object and
# its array are two levels. The host announces it in its welcome (protocol 5).
MAX_DEPTH = 100
# What a value may still open below where it stands: a call's argument stands inside
# the message and its params (two levels), a result inside the message (one).
ARG_ROOM = MAX_DEPTH - 2
RESULT_ROOM = MAX_DEPTH - 1


def check_value(value: Any, room: int = ARG_ROOM) -> None:
    """Raise if ``value`` cannot travel unchanged.

    JSON would silently turn dict keys into strings and accept integers Rust
    cannot hold; we refuse instead, so that what arrives equals what was sent.
    ``room``: how many levels of lists and dicts the value may still nest.

    Raises:
        UnsendableType (a TypeError): a dict key that is not a str, or a type with no wire form.
        IntOutOfRange (an OverflowError): an int outside [-2**63, 2**64 - 1].
        UnsendableValue (a ValueError): a dict whose only key is "$bytes" (reserved for
            bytes), or a value nested deeper than the protocol allows.
        All three are tether.CannotSend.
    """
    t = type(value)
    if t is str or t is float or t is bool or value is None:
        return
    if t is int:
        if not _INT_MIN <= value <= _INT_MAX:
            raise IntOutOfRange("int %d does not fit in 64 bits and cannot be sent" % value)
        return
    if t is list or t is tuple:
        if room < 1:
            _too_deep()
        for item in value:
            check_value(item, room - 1)
        return
    if t is dict:
        if room < 1:
            _too_deep()
        if len(value) == 1 and (BYTES_KEY in value or SHARED_KEY in value):
            raise UnsendableValue(
                'a dict whose only key is "%s" cannot be sent: that shape is reserved for bytes' % next(iter(value))
            )
        for key, item in value.items():
            if type(key) is not str:
                raise UnsendableType("dict key %r is a %s; only str keys can be sent" % (key, type(key).__name__))
            check_value(item, room - 1)
        return
    if t is bytes or t is bytearray or t is memoryview:
        if room < 2:
            _too_deep()
        return
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        check_value(int(value), room)
        return
    if isinstance(value, (str, float)):
        return
    if isinstance(value, (list, tuple)):
        check_value(list(value), room)
        return
    if isinstance(value, dict):
        check_value(dict(value), room)
        return
    raise UnsendableType("cannot send a value of type %s" % type(value).__name__)


def _too_deep() -> None:
    raise UnsendableValue(
        "a value nested deeper than the protocol's limit of %d levels of lists and dicts "
        "(the message counts as one, a bytes value as two) cannot be sent" % MAX_DEPTH
    )


def encode(
    message: Dict[str, Any],
    max_frame: int = DEFAULT_MAX_FRAME,
    share: Optional[Tuple[int, Callable[[memoryview, List[int]], int]]] = None,
    fds: Optional[List[int]] = None,
) -> List[Buffer]:
    """Encode one message as the pieces of one frame, to be written in order.

    With ``share`` = ``(threshold, place)``, bytes values of at least
    ``threshold`` bytes go to shared memory: ``place(view, fds)`` puts one in
    a memory file, appends the descriptor to ``fds`` and returns the value's
    offset in it; the caller passes ``fds`` before writing the frame.

    Raises:
        FrameTooLarge: the frame would exceed ``max_frame``.
        CannotSend (also a TypeError, ValueError or OverflowError): a value cannot be sent.
    """
    try:
        # Fast path, valid as long as no bytes value needs an attachment.
        text = _dumps(message, _no_bytes).encode("utf-8")
        blobs: List[Buffer] = []
        size = 0
    except _HasBytes:
        text, blobs, size = _encode_with_bytes(message, share, fds if fds is not None else [])
    except UnicodeEncodeError as e:
        raise UnsendableValue("a string cannot be sent: %s" % e) from None
    except UnsendableValue:
        raise
    except ValueError as e:
        raise UnsendableValue("a value cannot be sent: %s (JSON has no NaN or infinity)" % e) from None
    body = 4 + len(text) + size
    if body > max_frame:
        raise FrameTooLarge("message of %d bytes exceeds the frame limit of %d bytes" % (body, max_frame))
    head = _HEADER2.pack(body, len(text)) + text
    return [head, *blobs] if blobs else [head]


class _HasBytes(Exception):
    pass


def _no_bytes(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raise _HasBytes
    raise UnsendableType("cannot send a value of type %s" % type(obj).__name__)


# JSON. CPython's C accelerator of the json package (the private module _json)
# is the fast path: a scanner and an encoder built once, where the json package
# builds an encoder per call, and no import of json.decoder and re at start-up.
# Being private, it changes without notice: its scanner reads the attributes of
# the decoder object it is given, and Python 3.15 added one (array_hook), which
# broke `import tether` when the context below lacked it. So the fast path is
# taken only when it passes a check at import (_accelerated) that it reads and
# writes exactly as the json package does; otherwise the public json module
# does all the work (JSONDecoder.raw_decode, JSONEncoder), about one Python call
# slower per message. TETHER_JSON=public forces the public path (for tests).
_OPTIONS: Dict[str, Any] = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}


def _no_constant(name: str) -> Any:
    raise ValueError("%s is not a JSON value" % name)


class _ScanContext:
    """What the C scanner reads from a JSONDecoder: every hook off, NaN refused."""

    def __init__(self, object_hook: Optional[Callable[[Dict[str, Any]], Any]] = None) -> None:
        self.strict = True
        self.object_hook = object_hook
        self.object_pairs_hook = None
        self.array_hook = None  # Python 3.15
        self.parse_float = float
        self.parse_int = int
        self.parse_constant = _no_constant
        self.memo: Dict[str, str] = {}


# A sample that takes every branch of the scanner and the encoder, and what
# it must give.
_SAMPLE = r'{"a":[1,-2,1.5,-0.25,1e+300,"\u00e9\n\"",true,false,null,{}],"b":{"c":[[]]},"d":18446744073709551615}'
_SAMPLE_VALUE: Any = {
    "a": [1, -2, 1.5, -0.25, 1e300, "\u00e9\n\"", True, False, None, {}],
    "b": {"c": [[]]},
    "d": 18446744073709551615,
}
# As the encoder writes it: the non-ASCII character as itself.
_SAMPLE_TEXT = _SAMPLE.replace("\\u00e9", "\u00e9")


def _accelerated() -> Any:
    """(module, scanner, encoder) of the C accelerator, or None where it is
    missing, forced off, or does not behave exactly as checked here."""
    import os

    if os.environ.get("TETHER_JSON") == "public":
        return None
    try:
        import _json

        c: Any = _json  # typeshed types the context as a scanner; any object with the attributes does
        scan = c.make_scanner(_ScanContext())
        enc = c.make_encoder(None, _no_bytes, c.encode_basestring, None, ":", ",", False, False, False)
        hooked = c.make_scanner(_ScanContext(lambda d: ("hooked", d) if d == {} else d))
        checks = (
            scan(_SAMPLE, 0) == (_SAMPLE_VALUE, len(_SAMPLE)),
            "".join(enc(_SAMPLE_VALUE, 0)) == _SAMPLE_TEXT,
            hooked("[{}]", 0) == ([("hooked", {})], 4),
        )
        try:
            scan("NaN", 0)
            return None  # NaN must be refused
        except ValueError:
            pass
        return (c, scan, enc) if all(checks) else None
    except Exception:  # any change of the private API: the public path
        return None


_C: Any
_SCAN: Any
_FAST: Any
_ACCEL = _accelerated()
if _ACCEL is not None:
    _C, _SCAN, _FAST = _ACCEL
    JSON_BACKEND = "_json"
else:
    import json as _json_module

    _C = None
    _SCAN = _json_module.JSONDecoder(parse_constant=_no_constant).raw_decode
    _encoder = _json_module.JSONEncoder(check_circular=False, default=_no_bytes, **_OPTIONS)

    def _FAST(value: Any, _level: int) -> Any:  # noqa: N802 - the C encoder's call form
        return _encoder.iterencode(value)

    JSON_BACKEND = "json"


def _dumps(value: Any, default: Callable[[Any], Any]) -> str:
    """Compact JSON text with ``default`` for other types; no NaN, cycles refused."""
    if _C is not None:
        enc = _C.make_encoder({}, default, _C.encode_basestring, None, ":", ",", False, False, False)
        return "".join(enc(value, 0))
    import json

    return json.JSONEncoder(default=default, **_OPTIONS).encode(value)


def _loads(string: str, object_hook: Optional[Callable[[Dict[str, Any]], Any]] = None) -> Any:
    """One JSON value, with insignificant whitespace around it (RFC 8259);
    ValueError when the text is not exactly one."""
    if object_hook is None:
        scan = _SCAN
    elif _C is not None:
        scan = _C.make_scanner(_ScanContext(object_hook))
    else:
        import json

        scan = json.JSONDecoder(object_hook=object_hook, parse_constant=_no_constant).raw_decode
    try:
        value, stop = scan(string, 0)
        if stop == len(string):
            return value
    except (StopIteration, ValueError):
        pass
    # Surrounding whitespace, or an error to describe.
    import json

    return json.loads(string, object_hook=object_hook, parse_constant=_no_constant)
_SCALARS = (str, float, bool, type(None))


def encode_call(
    msg_id: int, method: str, args: Tuple[Any, ...], max_frame: int, within: Optional[int] = None
) -> Optional[bytes]:
    """The frame of a request with positional arguments, or None when the
    general :func:`encode` must make it (bytes values, an error to report, a
    frame over the limit). ``within``: the host's request being served (§5).

    Raises:
        CannotSend (also a TypeError, ValueError or OverflowError): an argument cannot be sent.
    """
    if _FAST is None:
        return None
    ints = True
    for a in args:
        t = type(a)
        if t is int:
            if not _INT_MIN <= a <= _INT_MAX:
                check_value(a)
        else:
            ints = False
            if t not in _SCALARS:
                check_value(a)
    forms = _CALL_FORMS.get(method)
    if forms is None:
        forms = _call_forms(method)
    try:
        if not args:
            text = forms[1] % msg_id if within is None else forms[3] % (msg_id, within)
        else:
            # Integers only (the commonest arguments): formatted as JSON writes them.
            params = _INT_LISTS[len(args)] % args if ints and len(args) < 8 else "".join(_FAST(args, 0))
            text = forms[0] % (msg_id, params) if within is None else forms[2] % (msg_id, params, within)
        data = text.encode("utf-8")
    except Exception:
        return None
    n = len(data)
    if n + 4 > max_frame:
        return None
    return _HEADER2.pack(n + 4, n) + data


_CALL_FORMS: Dict[str, Tuple[str, str, str, str]] = {}
# The JSON list of 0 to 7 integers, to format with a tuple of them.
_INT_LISTS = tuple("[" + ",".join(["%d"] * k) + "]" for k in range(8))


def _call_forms(method: str) -> Tuple[str, str, str, str]:
    """The texts of a call to ``method``: with arguments, without, and both again
    made within a host's request; ``%d`` for its id, ``%s`` for its arguments'
    JSON list, then ``%d`` for ``within`` (kept for 1,024 methods)."""
    name = "".join(_FAST(method, 0)).replace("%", "%%")
    head = '{"jsonrpc":"2.0","id":%d,"method":' + name
    forms = (head + ',"params":%s}', head + "}", head + ',"params":%s,"within":%d}', head + ',"within":%d}')
    if len(_CALL_FORMS) < 1024:
        _CALL_FORMS[method] = forms
    return forms


def encode_result(msg_id: Any, result: Any, max_frame: int) -> Optional[bytes]:
    """The frame of a success response, or None when the general :func:`encode`
    must make it (bytes values, a value that cannot be sent, a frame over the limit).

    Raises:
        CannotSend: the result cannot be sent (found by ``check_value``).
    """
    if _FAST is None or type(msg_id) is not int:
        return None
    t = type(result)
    if t is int:
        if not _INT_MIN <= result <= _INT_MAX:
            return None
        data = b'{"jsonrpc":"2.0","id":%d,"result":%d}' % (msg_id, result)
    else:
        if t not in _SCALARS:
            check_value(result, RESULT_ROOM)
        try:
            data = ('{"jsonrpc":"2.0","id":%d,"result":%s}' % (msg_id, "".join(_FAST(result, 0)))).encode("utf-8")
        except Exception:
            return None
    n = len(data)
    if n + 4 > max_frame:
        return None
    return _HEADER2.pack(n + 4, n) + data


NOT_SIMPLE: Any = object()


def simple_result(data: bytes, msg_id: int) -> Any:
    """The result, when ``data`` (bytes as read from the host) is exactly one
    frame: the success response to ``msg_id``, written the way the host writes
    it, with no attachments or shared values. :data:`NOT_SIMPLE` for anything
    else (the general decoder then takes the bytes; nothing is lost).

    The short way of a lone caller's answer: no frame buffer, no message dict.
    """
    head = b'{"jsonrpc":"2.0","id":%d,"result":' % msg_id
    # One look for both marks ("$bytes", "$shm"); a string that starts with
    # "$" takes the general way too.
    if not data.startswith(head, 8) or (_DOLLAR in data and data.find(b'"$') >= 0) or _SCAN is None:
        return NOT_SIMPLE
    k = len(data)
    if _HEADER2.unpack_from(data, 0) != (k - 4, k - 8) or data[-1] != 0x7D:
        return NOT_SIMPLE
    try:
        text = data[8 + len(head) : -1].decode("utf-8")
        value, end = _SCAN(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return NOT_SIMPLE
    return value if end == len(text) else NOT_SIMPLE


def simple_request(data: bytes) -> Optional[Dict[str, Any]]:
    """The message, when ``data`` (bytes as read from the host) is exactly one
    frame: a request or notification of the host (a call to an export, a
    cancellation), with no attachments or shared values. None for anything else
    (the general decoder then takes the bytes; nothing is lost).

    The short way of the host's call that a lone caller reads while it waits
    for its own answer (a nested call): no frame buffer, no copy of the body.
    """
    k = len(data)
    if k < 10 or data[8] != 0x7B or _SCAN is None or (_DOLLAR in data and data.find(b'"$') >= 0):
        return None
    if _HEADER2.unpack_from(data, 0) != (k - 4, k - 8):
        return None
    try:
        text = data[8:].decode("utf-8")
        message, end = _SCAN(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return None
    if end != len(text) or type(message) is not dict or "method" not in message or message.get("jsonrpc") != "2.0":
        return None
    return message


def _encode_with_bytes(
    message: Dict[str, Any],
    share: Optional[Tuple[int, Callable[[memoryview, List[int]], int]]],
    fds: List[int],
) -> Tuple[bytes, List[Buffer], int]:
    blobs: List[Buffer] = []
    size = 0

    def attach(obj: Any) -> Any:
        nonlocal size
        if isinstance(obj, (bytes, bytearray, memoryview)):
            view = obj if isinstance(obj, bytes) else memoryview(obj).cast("B")
            n = len(view)
            if share is not None and n >= share[0] and len(fds) < MAX_SHARED_PER_FRAME:
                return {SHARED_KEY: [share[1](memoryview(view), fds), n]}
            blobs.append(view)
            size += n
            return {BYTES_KEY: [size - n, n]}
        raise UnsendableType("cannot send a value of type %s" % type(obj).__name__)

    text = _dumps(message, attach).encode("utf-8")
    return text, blobs, size


def decode(body: Buffer, shared: Optional[Callable[[int, int], Any]] = None) -> Dict[str, Any]:
    """Decode one frame body (without its length prefix) into a message dict.

    Bytes values are ``bytes``, except in a body that is a memoryview (a large
    frame read in place), where they are read-only memoryviews into it.
    ``shared(offset, length)`` maps a value that came in shared memory (a
    read-only memoryview); without it such a value is a protocol error.

    Raises:
        ProtocolError: the body is not a valid native message.
    """
    if len(body) < 4:
        raise ProtocolError("frame body of %d bytes has no JSON length" % len(body))
    (json_len,) = HEADER.unpack_from(body, 0)
    end = 4 + json_len
    if end > len(body):
        raise ProtocolError("JSON length %d exceeds the frame body of %d bytes" % (json_len, len(body)))
    text = body[4:end] if type(body) is bytes else bytes(body[4:end])
    try:
        if _DOLLAR not in text or (text.find(_BYTES_MARK) < 0 and text.find(_SHARED_MARK) < 0):
            string = text.decode("utf-8")
            if _SCAN is not None:
                try:
                    message, stop = _SCAN(string, 0)
                except StopIteration:
                    stop = -1
                if stop != len(string):
                    message = _loads(string)
            else:
                message = _loads(string)
        else:
            blobs = memoryview(body)[end:]
            # Values from a large frame stay views into it: no copy.
            keep_view = isinstance(body, memoryview)

            def resolve(obj: Dict[str, Any]) -> Any:
                if len(obj) == 1 and SHARED_KEY in obj:
                    ref = obj[SHARED_KEY]
                    if shared is None:
                        raise ProtocolError("a shared-memory value, but shared memory is off")
                    if type(ref) is list and len(ref) == 2 and all(type(x) is int and x >= 0 for x in ref):
                        return shared(ref[0], ref[1])
                    raise ProtocolError("bad shared-memory reference %r" % (ref,))
                if len(obj) == 1 and BYTES_KEY in obj:
                    ref = obj[BYTES_KEY]
                    if (
                        type(ref) is list
                        and len(ref) == 2
                        and all(type(x) is int and x >= 0 for x in ref)
                        and ref[0] + ref[1] <= len(blobs)
                    ):
                        view = blobs[ref[0] : ref[0] + ref[1]]
                        return view if keep_view else bytes(view)
                    raise ProtocolError("bad bytes reference %r" % (ref,))
                return obj

            message = _loads(text.decode("utf-8"), resolve)
    except (ValueError, RecursionError) as e:
        raise ProtocolError("frame is not valid JSON: %s" % e) from None
    if type(message) is not dict or message.get("jsonrpc") != "2.0":
        raise ProtocolError("not a JSON-RPC 2.0 message: %.200r" % (message,))
    return message


LARGE = 64 * 1024
_MAPPED = 1 << 20


def _buffer(length: int) -> Any:
    """A writable buffer of ``length`` bytes for a large frame to be read into.

    From 1 MiB up it is an anonymous memory mapping: no pass of zeroes like a
    bytearray's, and large pages where the system allows them, so that the
    pipe fills it with few page faults.
    """
    if length >= _MAPPED:
        try:
            import mmap

            buf = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20))
            advice = getattr(mmap, "MADV_HUGEPAGE", None)
            if advice is not None:
                try:
                    buf.madvise(advice)
                except OSError:
                    pass
            return buf
        except (ImportError, OSError, ValueError):
            pass
    return bytearray(length)


class FrameDecoder:
    """Incremental frame splitter: ``feed`` bytes, then take frames with ``next``.

    ``feed(b"")`` means end of file: from then on, ``next`` raises if the stream
    ended inside a frame. A length prefix over ``max_frame`` raises at once,
    before the frame's bytes are read.

    A frame larger than 64 KiB is read in place: ``target()`` gives the rest of
    its own buffer to read into (``os.readv``), ``advance(n)`` counts what
    arrived, and ``next`` returns it as a read-only memoryview, without a copy.
    """

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._eof = False
        self._large: Any = None
        self._have = 0

    def target(self) -> Optional[memoryview]:
        """Where the rest of a large frame should be read to, or None for small reads.

        Raises:
            FrameTooLarge: the next frame's length prefix exceeds the limit.
        """
        if self._large is None:
            buf = self._buf
            if len(buf) < 4:
                return None
            length: int = HEADER.unpack_from(buf, 0)[0]
            if length > self.max_frame:
                raise FrameTooLarge("frame of %d bytes exceeds the limit of %d bytes" % (length, self.max_frame))
            if length <= LARGE or len(buf) >= 4 + length:
                return None
            self._large = _buffer(length)
            self._have = len(buf) - 4
            self._large[: self._have] = buf[4:]
            del buf[:]
        return memoryview(self._large)[self._have :]

    def empty(self) -> bool:
        """Whether no bytes wait here (fed or read in place) for ``next``."""
        return not self._buf and self._large is None

    def advance(self, n: int) -> None:
        """Count ``n`` bytes read into ``target()``; 0 means end of file."""
        if n == 0:
            self._eof = True
        self._have += n

    def feed(self, data: Buffer) -> None:
        if not data:
            self._eof = True
        else:
            self._buf += data

    def next(self) -> Optional[Buffer]:
        """The next frame body, or None when more bytes are needed.

        Raises:
            FrameTooLarge: the next frame's length prefix exceeds the limit.
            ProtocolError: end of file inside a frame.
        """
        large = self._large
        if large is not None:
            if self._have < len(large):
                if self._eof:
                    raise ProtocolError("stream ended inside a frame (%d of %d bytes)" % (self._have, len(large)))
                return None
            self._large = None
            return memoryview(large).toreadonly()
        buf = self._buf
        if len(buf) >= 4:
            (length,) = HEADER.unpack_from(buf, 0)
            if length > self.max_frame:
                raise FrameTooLarge("frame of %d bytes exceeds the limit of %d bytes" % (length, self.max_frame))
            if len(buf) >= 4 + length:
                body = bytes(buf[4 : 4 + length])
                del buf[: 4 + length]
                return body
        if self._eof and buf:
            raise ProtocolError("stream ended inside a frame (%d bytes left over)" % len(buf))
        return None


def request(
    msg_id: int, method: str, params: Union[List[Any], Dict[str, Any], None], within: Optional[int] = None
) -> Dict[str, Any]:
    """A request message; ``within`` is the host's request it is made in (§5, protocol 4)."""
    message: Dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params:
        message["params"] = params
    if within is not None:
        message["within"] = within
    return message


def split_reply(message: Dict[str, Any]) -> Tuple[Any, Any, Optional[Dict[str, Any]]]:
    """(id, result, error) of a response; raises ProtocolError for anything else."""
    if "method" in message:
        raise ProtocolError("the host sent a call (%r) where a reply was expected" % message.get("method"))
    if "id" not in message or ("result" in message) == ("error" in message):
        raise ProtocolError("malformed reply: %.200r" % (message,))
    error = message.get("error")
    if error is not None and (
        type(error) is not dict or type(error.get("code")) is not int or type(error.get("message")) is not str
    ):
        raise ProtocolError("malformed error object: %.200r" % (error,))
    return message["id"], message.get("result"), error
