"""The public functions a script uses to be called by the host: ``export``, ``serve``,
``ready``, ``notify``, ``cancelled``, ``shield``, ``stop_requested``. They register exports
(``_dispatch.py`` runs them) and drive the connection (``_connection.py``)."""

from __future__ import annotations

import threading

from ._connection import Connection, connection
from ._dispatch import CURRENT_CALL, EXPORTS, Export
from ._errors import Cancelled

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, Callable, Optional, TypeVar, Union, overload

    F = TypeVar("F", bound=Callable[..., Any])

    @overload
    def export(fn: F) -> F: ...

    @overload
    def export(fn: Optional[str] = None) -> Callable[[F], F]: ...

    def export(fn: Union[F, str, None] = None) -> Any: ...


def _export(fn: Union[F, str, None] = None) -> Any:
    """Make a function callable by the host.

    Use as ``@tether.export`` (the host calls it by the function's name) or
    ``@tether.export("name")``. The function may be ``async def``; it may call
    the host in turn, to any depth. Its exceptions reach the host with their
    type name, message and traceback.
    """
    if callable(fn):
        EXPORTS[fn.__name__] = Export(fn.__name__, fn)
        return fn
    name = fn

    def register(f: F) -> F:
        key = name or f.__name__
        EXPORTS[key] = Export(key, f)
        return f

    return register


if not TYPE_CHECKING:
    export = _export
    export.__name__ = export.__qualname__ = "export"


def serve() -> None:
    """Answer the host's calls until the host closes the channel or asks the script to stop.

    For plugin-style scripts that only export functions. Returns normally when
    the host is done with the script.
    """
    connection().serve()


def ready() -> None:
    """Tell the host the script serves: its calls into the script go ahead.

    ``tether.serve()`` (and ``tether.aio.serve()``) say so on their own when
    they start; call this first only when the script answers the host's calls
    some other way (an event loop of its own that calls ``tether.aio.serve()``
    later, say) and its exports are all defined. Calls the host makes before
    the script is ready wait for it, so exports defined after the script's
    first host calls at import time are still found. Saying it twice does
    nothing.
    """
    connection().ready()


def notify(name: str, *args: Any, **kwargs: Any) -> None:
    """Call host function ``name`` without waiting for (or getting) an answer."""
    connection().notify(name, args, kwargs)


def cancelled() -> bool:
    """Inside an export called by the host: whether the host gave up on this call.

    The host gives up when its call times out or is cancelled; a long-running
    export can check this and return early (its answer is dropped anyway).
    Outside an export it is always False.
    """
    ctx = CURRENT_CALL.get()
    if ctx is None:
        return False
    if not ctx.cancelled:
        conn = _connection_now()
        if conn is not None:
            conn.pump()
    if ctx.cancelled:
        # It looked and will stop on its own: it is not interrupted.
        ctx.observed = True
    return ctx.cancelled


class shield:
    """``with tether.shield():`` runs a section that the host's cancellation does not
    interrupt (a write that must finish, a transaction's commit). A cancellation that
    arrives meanwhile raises :class:`tether.Cancelled` when the section ends. Outside an
    export it does nothing; sections nest.
    """

    def __init__(self) -> None:
        self._ctx: Any = None

    def __enter__(self) -> "shield":
        ctx = CURRENT_CALL.get()
        if ctx is not None and ctx.thread == threading.get_ident():
            ctx.enter_shield()
            self._ctx = ctx
        return self

    def __exit__(self, *exc: Any) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is not None and ctx.exit_shield() and exc[0] is None:
            raise Cancelled()


def stop_requested() -> bool:
    """Whether the host asked the script to stop (``tether.serve()`` then returns).

    Inside an export whose call the host cancelled, raises :class:`tether.Cancelled`
    (the interruption the export would get anyway), unless shielded.
    """
    conn = _connection_now()
    if conn is None:
        return False
    if conn.pump():
        # The host cancelled the export that asks: reading its pipe here must not
        # swallow the interruption (an export looping on this would never end).
        raise Cancelled()
    return bool(conn.stop_requested)


def _connection_now() -> "Optional[Connection]":
    from . import _connection as module

    return module._connection


__all__ = ["cancelled", "export", "notify", "ready", "serve", "stop_requested"]
