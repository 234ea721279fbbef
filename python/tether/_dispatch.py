"""Running the host's calls: the script's exports, the call context an export sees, and
the answers the script sends back."""

from __future__ import annotations

import sys
import threading
from contextvars import ContextVar

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, Callable, Dict, List, Optional, Tuple

from . import _errors, _framing
from ._errors import Cancelled

METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
FUNCTION_ERROR = -32000

CANCEL = _framing.CANCEL
STOP = _framing.STOP
# The host's requests that are no export's: cancellations, stop, health checks.
_CONTROL = frozenset((CANCEL, STOP, _framing.PING))


_NOT_YET = object()
_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
_CO_COROUTINE = 0x80


def _plain_shape(fn: Any) -> "Optional[Tuple[int, bool]]":
    """``(arity, is_async)`` of a plain function whose parameters are all plain and
    without defaults, read from its code object; None for anything else (decorated,
    partial, defaults, ``*args``...), which ``inspect`` must look at.

    Importing ``inspect`` costs a script about 10 ms of start-up, most of the time a
    plain export needs nothing of it.
    """
    import types

    if type(fn) is not types.FunctionType or hasattr(fn, "__wrapped__") or hasattr(fn, "_is_coroutine_marker"):
        return None
    code = fn.__code__
    if code.co_flags & (_CO_VARARGS | _CO_VARKEYWORDS) or code.co_kwonlyargcount:
        return None
    if fn.__defaults__ or fn.__kwdefaults__:
        return None
    return code.co_argcount, bool(code.co_flags & _CO_COROUTINE)


class Export:
    """A function of the script that the host may call."""

    __slots__ = ("name", "fn", "_signature", "is_async", "arity")

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name = name
        self.fn = fn
        # When every parameter is a plain one without a default, exactly that many
        # positional arguments bind: checking the count spares Signature.bind (the
        # largest cost of a small call) on the common path.
        self.arity: Optional[int] = None
        self._signature: Any = _NOT_YET
        shape = _plain_shape(fn)
        if shape is not None:
            self.arity, self.is_async = shape
            return
        import inspect

        self.is_async = inspect.iscoroutinefunction(fn)
        signature = self.signature
        if signature is not None:
            plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            ps = list(signature.parameters.values())
            if all(p.kind in plain and p.default is inspect.Parameter.empty for p in ps):
                self.arity = len(ps)

    @property
    def signature(self) -> Any:
        """The export's ``inspect.Signature`` (None when it has none), made on first use."""
        if self._signature is _NOT_YET:
            import inspect

            try:
                self._signature = inspect.signature(self.fn)
            except (TypeError, ValueError):
                self._signature = None
        return self._signature


EXPORTS: Dict[str, Export] = {}


class CallContext:
    """One call from the host that the script is running.

    A plain export whose call the host cancels is interrupted: :class:`tether.Cancelled`
    is raised in the thread that runs it (an asynchronous exception, or from the signal
    handler when that thread is the main thread, so a blocking ``time.sleep`` ends too).
    Not while the export is shielded (``tether.shield()``) or inside the client (a host
    call, a notification: those raise once they return), not once the export looked at
    ``tether.cancelled()`` and saw True (it stops on its own), and never after it returned.
    """

    __slots__ = ("id", "cancelled", "task", "loop", "thread", "lock", "shield", "issued", "raised",
                 "observed", "done")

    def __init__(self, msg_id: Any) -> None:
        self.id = msg_id
        self.cancelled = False
        self.task: Any = None
        self.loop: Any = None
        # The thread running a plain export, and what its interruption is at.
        self.thread = 0
        # Reentrant: the SIGURG handler runs in the main thread, maybe while that thread
        # holds this lock (entering a shield, finishing).
        self.lock = threading.RLock()
        self.shield = 0
        self.issued = False  # an asynchronous exception is pending in that thread
        self.raised = False  # Cancelled was raised in it
        self.observed = False  # tether.cancelled() returned True to it
        self.done = False

    def wants_interruption(self) -> bool:
        """Whether Cancelled should be raised in the export now (hold ``lock``)."""
        return self.cancelled and not (self.done or self.shield or self.raised or self.observed)

    def interrupt(self) -> None:
        """The host cancelled this call: interrupt the export if it still runs."""
        with self.lock:
            self.cancelled = True
            if not self.thread or self.issued or not self.wants_interruption():
                return
            me = threading.get_ident()
            if self.thread == me:
                # This thread is the export's own, inside the client (it reads while
                # it waits for the host): the host call raises when it returns.
                return
            if self.thread == _MAIN and _interrupts.installed:
                # The signal handler raises in the main thread, also out of a sleep.
                _interrupts.wake_main()
                return
            if _interrupts.raise_in(self.thread):
                self.issued = True

    def enter_shield(self) -> None:
        """A section that must not be interrupted begins (user code or the client's own)."""
        with self.lock:
            self.shield += 1
            if self.issued:
                # Pending but not raised yet: withdraw it; the section's end decides.
                _interrupts.raise_in(self.thread, withdraw=True)
                self.issued = False

    def exit_shield(self) -> bool:
        """The section ends; True when Cancelled must be raised now."""
        with self.lock:
            self.shield -= 1
            return self.thread == threading.get_ident() and self.wants_interruption()

    def finish(self) -> None:
        """The export returned (or raised): nothing may interrupt it any more."""
        with self.lock:
            self.done = True
            if self.issued:
                _interrupts.raise_in(self.thread, withdraw=True)
                self.issued = False


_MAIN = threading.main_thread().ident
_EAGER = sys.version_info >= (3, 12)


class _Interrupts:
    """Raising :class:`tether.Cancelled` in another thread, and waking the main thread.

    The main thread is woken by SIGURG (ignored by default, so a process without the
    handler is not harmed); its handler raises there. Other threads get an asynchronous
    exception (``PyThreadState_SetAsyncExc``), which lands at their next bytecode.
    """

    SIGNAL_NAME = "SIGURG"

    def __init__(self) -> None:
        self.installed = False
        self._set_async_exc: Any = None

    def install(self, on_signal: Callable[[], None]) -> bool:
        """Install the handler (main thread only, and only over the default one)."""
        import signal

        if self.installed:
            return True
        sig = getattr(signal, self.SIGNAL_NAME, None)
        if sig is None or threading.get_ident() != _MAIN:
            return False
        try:
            if signal.getsignal(sig) not in (signal.SIG_DFL, signal.SIG_IGN, None):
                return False  # the script has its own use for it
            signal.signal(sig, lambda signum, frame: on_signal())
            # A system call the signal interrupts is restarted after the handler ran.
            signal.siginterrupt(sig, False)
        except (ValueError, OSError):
            return False
        self.installed = True
        return True

    def wake_main(self) -> None:
        import signal

        try:
            signal.pthread_kill(_MAIN, getattr(signal, self.SIGNAL_NAME))  # type: ignore[arg-type]
        except (OSError, ValueError, AttributeError):
            pass

    def raise_in(self, thread: int, withdraw: bool = False) -> bool:
        """Make ``thread`` raise Cancelled at its next bytecode (or withdraw that)."""
        if self._set_async_exc is None:
            try:
                import ctypes

                f = ctypes.pythonapi.PyThreadState_SetAsyncExc
                f.argtypes = (ctypes.c_ulong, ctypes.py_object)
                f.restype = ctypes.c_int
                self._set_async_exc = f
            except (ImportError, AttributeError):
                self._set_async_exc = False
        if not self._set_async_exc:
            return False
        return bool(self._set_async_exc(thread, None if withdraw else Cancelled))


_interrupts = _Interrupts()


CURRENT_CALL: "ContextVar[Optional[CallContext]]" = ContextVar("tether_current_call", default=None)


def _note_cancelled_raised() -> None:
    """Cancelled was raised in this thread (an asynchronous exception lands as a new
    instance): the call the thread runs knows it was interrupted."""
    ctx = CURRENT_CALL.get()
    if ctx is not None:
        ctx.raised = True
        ctx.issued = False


_errors._on_cancelled = _note_cancelled_raised


class Dispatch:
    """The host's calls, as :class:`~tether._connection.Connection` runs them (a mixin)."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        _cond: threading.Condition
        _running: Dict[Any, CallContext]
        _cancelled_early: Dict[Any, None]
        _aio_loop: Any
        stop_requested: bool
        max_frame: int

        def _release_serve_waiters(self) -> None: ...

        def _encode(self, message: Dict[str, Any], max_frame: int) -> Tuple[List[_framing.Buffer], List[int]]: ...

        def _send_quietly(self, pieces: List[_framing.Buffer], fds: Optional[List[int]] = None) -> None: ...

        def _post(self, frame: bytes, loop: Any) -> None: ...

    def _handle(self, msg: Dict[str, Any], loop: Any = None) -> None:
        method = msg.get("method")
        msg_id = msg.get("id")
        if type(method) is str and method in _CONTROL:
            self._control(method, msg_id, msg.get("params"))
            return
        if self._cancelled_early and msg_id is not None and self._cancelled_early.pop(msg_id, 0) is None:
            self._reply_error(msg_id, FUNCTION_ERROR, "%s() was cancelled before it started" % method,
                              {"kind": "CancelledError", "function": method})
            return
        export = EXPORTS.get(method) if isinstance(method, str) else None
        if export is None:
            names = sorted(EXPORTS)
            self._reply_error(
                msg_id,
                METHOD_NOT_FOUND,
                "the script exports no function named %r; it exports: %s" % (method, ", ".join(names) or "nothing"),
                {"kind": "MethodNotFound", "method": method, "available": names},
            )
            return
        params = msg.get("params", [])
        if isinstance(params, list):
            args, kwargs = params, {}
        elif isinstance(params, dict):
            args, kwargs = [], params
        else:
            self._reply_error(msg_id, INVALID_PARAMS, "params must be a list or a dict",
                              {"kind": "InvalidParams", "function": export.name})
            return
        if not (not kwargs and len(args) == export.arity) and export.signature is not None:
            try:
                export.signature.bind(*args, **kwargs)
            except TypeError as e:
                self._reply_error(
                    msg_id,
                    INVALID_PARAMS,
                    "%s%s: %s" % (export.name, export.signature, e),
                    {"kind": "InvalidParams", "function": export.name},
                )
                return
        ctx = CallContext(msg_id)
        if export.is_async:
            self._start_async(export, args, kwargs, ctx, loop)
            return
        ctx.thread = threading.get_ident()
        if msg_id is not None:
            self._running[msg_id] = ctx
        token = CURRENT_CALL.set(ctx)
        try:
            try:
                result = export.fn(*args, **kwargs)
            finally:
                ctx.finish()
        except Cancelled:
            self._reply_error(msg_id, FUNCTION_ERROR, "%s() was interrupted: the host cancelled the call" % export.name,
                              {"kind": "Cancelled", "function": export.name})
            return
        except Exception as e:
            self._reply_exception(msg_id, export.name, e)
            return
        finally:
            CURRENT_CALL.reset(token)
            if msg_id is not None:
                self._running.pop(msg_id, None)
        self._reply_result(msg_id, export.name, result)

    def _control(self, method: str, msg_id: Any, params: Any) -> None:
        """The host's cancellations, stop and health checks."""
        if method == CANCEL:
            target = params.get("id") if isinstance(params, dict) else None
            ctx = self._running.get(target)
            if ctx is not None:
                if ctx.task is not None:
                    ctx.cancelled = True
                    ctx.loop.call_soon_threadsafe(ctx.task.cancel)
                else:
                    ctx.interrupt()
            elif target is not None:
                # The call has not started yet (it may still be in the pipe).
                self._cancelled_early[target] = None
                while len(self._cancelled_early) > 4096:
                    del self._cancelled_early[next(iter(self._cancelled_early))]
            return
        if method == STOP:
            with self._lock:
                self.stop_requested = True
                self._cond.notify_all()
            self._release_serve_waiters()
            # The host is shutting the script down: what its calls run is not wanted.
            for ctx in list(self._running.values()):
                if ctx.task is None:
                    ctx.interrupt()
            return
        # The host's health check, answered in turn with the script's other calls.
        if msg_id is not None:
            self._reply_result(msg_id, method, True)

    def _start_async(self, export: Export, args: Any, kwargs: Any, ctx: CallContext, loop: Any) -> None:
        import asyncio

        async def run() -> None:
            ctx.task = asyncio.current_task()
            ctx.loop = asyncio.get_running_loop()
            if ctx.id is not None:
                self._running[ctx.id] = ctx
            CURRENT_CALL.set(ctx)
            try:
                result = await export.fn(*args, **kwargs)
            except asyncio.CancelledError:
                self._reply_error(ctx.id, FUNCTION_ERROR, "%s() was cancelled" % export.name,
                                  {"kind": "CancelledError", "function": export.name})
                return
            except Exception as e:
                self._reply_exception(ctx.id, export.name, e)
                return
            finally:
                if ctx.id is not None:
                    self._running.pop(ctx.id, None)
            # Answers given in one turn of the loop leave in one write.
            self._reply_result(ctx.id, export.name, result, ctx.loop)

        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        if loop is not None:
            if _EAGER:
                # Python 3.12+: the export runs at once, up to its first real wait; one
                # that never waits answers without being scheduled at all.
                asyncio.Task(run(), loop=loop, eager_start=True)  # type: ignore[call-arg]
            else:
                loop.create_task(run())
        elif self._aio_loop is not None and self._aio_loop.is_running():
            asyncio.run_coroutine_threadsafe(run(), self._aio_loop)
        else:
            # No event loop serves this script: run the coroutine to its end here.
            asyncio.run(run())

    def _reply_result(self, msg_id: Any, name: str, result: Any, loop: Any = None) -> None:
        if msg_id is None:
            return
        try:
            frame = _framing.encode_result(msg_id, result, self.max_frame)
            pieces: List[_framing.Buffer]
            fds: List[int]
            if frame is not None:
                pieces, fds = [frame], []
            else:
                _framing.check_value(result, _framing.RESULT_ROOM)
                pieces, fds = self._encode({"jsonrpc": "2.0", "id": msg_id, "result": result}, self.max_frame)
        except Exception as e:
            self._reply_error(msg_id, INTERNAL_ERROR, "%s() returned a value that cannot be sent: %s" % (name, e),
                              {"kind": "BadResult", "function": name})
            return
        if loop is not None and len(pieces) == 1 and not fds and type(pieces[0]) is bytes:
            self._post(pieces[0], loop)
            return
        self._send_quietly(pieces, fds)

    def _reply_exception(self, msg_id: Any, name: str, e: BaseException) -> None:
        import traceback

        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        if msg_id is None:
            sys.stderr.write("tether: notification %s() raised:\n%s" % (name, tb))
            return
        self._reply_error(msg_id, FUNCTION_ERROR, str(e),
                          {"kind": type(e).__name__, "function": name, "traceback": tb})

    def _reply_error(self, msg_id: Any, code: int, message: str, data: Dict[str, Any]) -> None:
        if msg_id is None:
            sys.stderr.write("tether: notification failed: %s\n" % message)
            return
        error = {"code": code, "message": message, "data": data}
        self._send_quietly(_framing.encode({"jsonrpc": "2.0", "id": msg_id, "error": error}, 1 << 30))
