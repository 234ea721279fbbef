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
    BlockingCall,
    CannotSend,
    Cancelled,
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
from ._exports import cancelled, export, notify, ready, serve, shield, stop_requested
from ._host import host
from ._logs import install_if_requested as _install_log_forwarding
from ._version import PROTOCOL_VERSION, __version__

_install_log_forwarding()


def _cache_bytecode() -> None:
    """Write this package's bytecode once, in the host's bundle directory.

    Compiling the client costs more start-up time than everything else it
    does. Python caches bytecode unless PYTHONDONTWRITEBYTECODE is set; the
    directory the host bundles the client into is tether's own (it holds a
    marker file), so the bytecode is cached there in any case. Anywhere else
    the user's setting is respected.
    """
    import sys

    if not sys.dont_write_bytecode:
        return
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    tag = sys.implementation.cache_tag
    if tag is None or not os.path.exists(os.path.join(here, ".bundled")):
        return
    cache = os.path.join(here, "__pycache__")
    for name in sorted(os.listdir(here)):
        if not name.endswith(".py") or os.path.exists(os.path.join(cache, "%s.%s.pyc" % (name[:-3], tag))):
            continue
        try:
            import py_compile

            py_compile.compile(os.path.join(here, name), doraise=True)
        except Exception:
            return  # a read-only cache, or a Python without bytecode: it only costs time


_cache_bytecode()


def __getattr__(name: str) -> object:
    # tether.aio imports asyncio, which costs start-up time: load it on first use.
    if name == "aio":
        import importlib

        return importlib.import_module(".aio", __name__)
    # The struct types the host's stubs declare here (``from tether import Row``): at run
    # time a TypedDict made from the host's description of it.
    if name[:1].isupper():
        from ._host import host_type

        return host_type(name)
    raise AttributeError("module 'tether' has no attribute %r" % name)

__all__ = [
    "BlockingCall",
    "CannotSend",
    "Cancelled",
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
    "cancelled",
    "export",
    "host",
    "notify",
    "ready",
    "serve",
    "shield",
    "stop_requested",
]
