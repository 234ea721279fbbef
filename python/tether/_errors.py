"""The exception tree: one base class, local and remote errors apart."""

from __future__ import annotations

import threading
TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, Callable, Dict, Optional, Type


# Set by _dispatch, which knows the call an export runs: notes there that Cancelled was
# raised in it. A hook, so that this module imports nothing else of the client's.
_on_cancelled: "Optional[Callable[[], None]]" = None


class Error(Exception):
    """Base class of every exception tether raises."""


class NotConnected(Error):
    """This process was not started by a tether host (or its channel is unusable)."""


class ConnectionLost(Error):
    """The host is gone: it closed the channel or exited. Raised at once, never a hang."""


class ProtocolError(Error):
    """The host sent bytes that break the protocol."""


class VersionMismatch(Error):
    """The host speaks another protocol version than this client."""


class BlockingCall(Error, RuntimeError):
    """A blocking host call from the thread that runs the asyncio loop serving the host's
    calls, in a script with ``async def`` exports: the host may call one of them back while
    this call waits, and it could never run on the blocked loop. Nothing was sent; await
    ``tether.aio.host.NAME(...)`` instead.
    """


class FrameTooLarge(Error):
    """A message would exceed the frame size limit the host announced; nothing was sent."""


class Cancelled(BaseException):
    """The host cancelled the call this export runs (its time limit passed, its future was
    dropped, or it is shutting the script down); raised inside the export to stop it.

    It derives from ``BaseException``, as ``KeyboardInterrupt`` and ``asyncio.CancelledError``
    do, so that ``except Exception:`` in the export (a retry loop, a catch-all that logs)
    does not swallow it and keep running work nobody waits for. ``finally`` blocks and
    ``with`` statements run as usual. Code that must not be cut short runs under
    ``with tether.shield():``; an export that checks ``tether.cancelled()`` and sees True is
    not interrupted (it stops on its own).
    """

    def __init__(self, *args: Any) -> None:
        super().__init__(*(args or ("the host cancelled this call",)))
        # Raised by an asynchronous exception: note it in the call it interrupts.
        hook = _on_cancelled
        if hook is not None:
            hook()


class CannotSend(Error):
    """A value cannot be sent as it is; nothing was sent.

    Raised for a type with no wire form, an int beyond 64 bits, NaN or infinity, a string
    that is not valid Unicode, or a dict of the shape reserved for bytes. Each of these is
    also the built-in exception Python uses for that problem: ``except TypeError``,
    ``except OverflowError`` and ``except ValueError`` keep working.
    """


class UnsendableType(CannotSend, TypeError):
    """A value of a type that has no wire form (or a dict key that is not a str)."""


class IntOutOfRange(CannotSend, OverflowError):
    """An int outside [-2**63, 2**64 - 1]: the host cannot hold it."""


class UnsendableValue(CannotSend, ValueError):
    """NaN or infinity, a string that is not valid Unicode, or a reserved dict shape."""


class RemoteError(Error):
    """The host answered a call with an error.

    Attributes:
        code: the JSON-RPC error code.
        message: the host's message.
        kind: what kind of error it was (the Rust error type's name, or the kind the
            host chose), or ``None``.
        data: the error's structured detail as sent by the host, or ``None``.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.kind: Optional[str] = data.get("kind") if isinstance(data, dict) else None

    def __repr__(self) -> str:
        return "%s(code=%d, kind=%r, message=%r)" % (
            type(self).__name__,
            self.code,
            self.kind,
            self.message,
        )


class MethodNotFound(RemoteError):
    """The host has no function of that name; the message lists the ones it has."""


class InvalidParams(RemoteError):
    """Wrong number or types of arguments; the message names the function and what it expects."""


_classes: Dict[str, Type[RemoteError]] = {"MethodNotFound": MethodNotFound, "InvalidParams": InvalidParams}
_classes_lock = threading.Lock()


def error_class(kind: str) -> Type[RemoteError]:
    """The exception class for errors of ``kind``: a subclass of RemoteError named so.

    The same class every time, so ``except host.errors.NotFound`` catches the
    errors the host reports with kind ``"NotFound"``.
    """
    with _classes_lock:
        cls = _classes.get(kind)
        if cls is None:
            cls = type(kind, (RemoteError,), {"__module__": "tether.errors", "__doc__": "Host errors of kind %r." % kind})
            _classes[kind] = cls
        return cls


class Errors:
    """``host.errors.KIND``: the exception class for errors of that kind."""

    def __getattr__(self, kind: str) -> Type[RemoteError]:
        if kind.startswith("__"):
            raise AttributeError(kind)
        return error_class(kind)

    def __repr__(self) -> str:
        return "<tether host errors>"
