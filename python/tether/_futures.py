"""Where the answers to the script's calls land: a slot a thread waits on, or an asyncio
future settled from whichever thread read the answer."""

from __future__ import annotations

import threading

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, Optional


class _Slot:
    """Where the answer to one of the script's calls lands.

    ``wake`` is the thread's own lock, held while it sleeps for its answer or for
    the reader role (see ``Connection._wait``); ``None`` until it first sleeps.
    """

    __slots__ = ("done", "result", "error", "future", "loop", "loop_thread", "wake")

    def __init__(self) -> None:
        self.wake: Any = None
        self.done = False
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.future: Any = None
        self.loop: Any = None
        self.loop_thread: Optional[int] = None


_GET_RUNNING_LOOP: Any = None


def _running_loop() -> Any:
    """``asyncio.get_running_loop``, imported on first use."""
    global _GET_RUNNING_LOOP
    if _GET_RUNNING_LOOP is None:
        import asyncio

        _GET_RUNNING_LOOP = asyncio.get_running_loop
    return _GET_RUNNING_LOOP


_CALL_FUTURE: Any = None


def _call_future() -> Any:
    """The future class of asyncio calls, made on first use (asyncio costs start-up time).

    Cancelling it (directly, or by cancelling the task that awaits it) tells
    the host, without a done-callback on every call.
    """
    global _CALL_FUTURE
    if _CALL_FUTURE is None:
        import asyncio

        class CallFuture(asyncio.Future):  # type: ignore[type-arg]
            # Set right after creation: the connection, the call's id, and
            # the thread of the future's loop.
            __slots__ = ("connection", "msg_id", "thread")
            connection: Any  # the Connection, which settles the call
            msg_id: int
            thread: int

            def cancel(self, msg: Any = None) -> bool:
                # Python 3.8's cancel() takes no message.
                if not (super().cancel() if msg is None else super().cancel(msg)):
                    return False
                self.connection._cancelled(self.msg_id)
                return True

        _CALL_FUTURE = CallFuture
    return _CALL_FUTURE


def _future_slot(fut: Any) -> _Slot:
    """A slot that settles an asyncio call's future (from any thread)."""
    slot = _Slot()
    slot.future = fut
    slot.loop = fut.get_loop()
    slot.loop_thread = fut.thread
    return slot


def _settle(slot: _Slot) -> None:
    """Resolve an asyncio future from whichever thread read the answer."""

    def settle() -> None:
        fut = slot.future
        if fut.done():
            return
        if slot.error is not None:
            fut.set_exception(slot.error)
        else:
            fut.set_result(slot.result)

    if slot.loop_thread == threading.get_ident():
        settle()
    else:
        try:
            slot.loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop is closed: nobody waits any more
