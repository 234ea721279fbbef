"""Call the functions of the program that started this script.

A host program (written with the tether Rust crate or its C API) starts this
script with two pipes; ``from tether import host`` and then ``host.NAME(...)``
calls the host's function NAME::

    from tether import host
    print(host.add(2, 3))

Values are the JSON types plus ``bytes`` (``bytearray`` and ``memoryview`` are
sent as bytes too). Errors are subclasses of :class:`tether.Error`.
"""

from ._errors import (
    ConnectionLost,
    Error,
    FrameTooLarge,
    InvalidParams,
    MethodNotFound,
    NotConnected,
    ProtocolError,
    RemoteError,
    VersionMismatch,
)
from ._host import host
from ._version import PROTOCOL_VERSION, __version__

__all__ = [
    "ConnectionLost",
    "Error",
    "FrameTooLarge",
    "InvalidParams",
    "MethodNotFound",
    "NotConnected",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "RemoteError",
    "VersionMismatch",
    "__version__",
    "host",
]
