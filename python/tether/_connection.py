"""The connection to the host over the two inherited descriptors.

Calls go both ways. The script calls the host (``host.NAME(...)``), and the
host calls the functions the script exports (``@tether.export``), also while
one of the script's own calls is pending, to any depth.

There is no reader thread. Whoever waits for an answer takes the *reader role*:
it reads frames, hands each answer to the thread (or asyncio future) that waits
for it, and runs the host's calls itself after giving the role up. A script
with one thread therefore never hands a call over to another thread; with many
threads, one reads while the others sleep until their answer is there. Each
sleeping caller sleeps on a lock of its own: an answer wakes exactly the thread
it is for, and a reader that gives the role up wakes one sleeper to take it (a
thread whose answer is already there never takes the role).

The rooms: this module is the reader role and its I/O (reading frames,
delivering answers, the handshake); ``_writers.py`` is the one send path,
``_dispatch.py`` runs the host's calls to exports, ``_futures.py`` holds the
slots and asyncio futures answers land in, ``_spin.py`` the spinning policy.
"""

from __future__ import annotations

import itertools
import os
import select
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any, Callable, Dict, List, Optional, Tuple

    from ._nogil import Calls

from . import _framing
from ._dispatch import CURRENT_CALL, EXPORTS, INVALID_PARAMS, METHOD_NOT_FOUND, CallContext, Dispatch, _interrupts
from ._errors import (
    BlockingCall,
    Cancelled,
    ConnectionLost,
    Error,
    InvalidParams,
    MethodNotFound,
    NotConnected,
    RemoteError,
    VersionMismatch,
    error_class,
)
from ._futures import _call_future, _future_slot, _running_loop, _settle, _Slot
from ._spin import Spin, _spin_bound
from ._version import PROTOCOL_VERSION, __version__
from ._writers import Writer, _close_all

READ_VAR = "TETHER_READ_FD"
WRITE_VAR = "TETHER_WRITE_FD"

VERSION_MISMATCH = -32001

CANCEL = _framing.CANCEL
STOP = _framing.STOP

_CHUNK = 64 * 1024


class Function:
    """What the host said about one of its functions."""

    __slots__ = ("name", "params", "signature", "annotations", "returns", "doc")

    def __init__(self, description: Dict[str, Any]) -> None:
        self.name: str = description["name"]
        self.params: Optional[List[str]] = description.get("params")
        self.signature: str = description.get("signature", self.name)
        self.annotations: List[str] = list(description.get("annotations") or [])
        self.returns: str = description.get("returns") or "Any"
        self.doc: Optional[str] = description.get("doc")


class Connection(Dispatch, Writer):
    """A channel to the host: the reader role and its I/O. Thread-safe; ``close()`` may be called twice.

    Writing is :class:`~tether._writers.Writer`'s, running the host's calls
    :class:`~tether._dispatch.Dispatch`'s; both are mixed in here.
    """

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._rfd = read_fd
        self._wfd = write_fd
        os.set_blocking(read_fd, False)
        self._poller = select.poll()
        self._poller.register(read_fd, select.POLLIN)
        self._spin = Spin(_spin_bound())
        # The system calls that keep the GIL (``_nogil``), from the first time a
        # thread waits while another reads; None before (and where ctypes is
        # missing). ``_threaded`` says whether that first time came.
        self._calls: Optional[Calls] = None
        self._threaded = False
        # The lock guards the reader role, the pending calls and the loss.
        # Callers waiting for an answer sleep on their slot's own lock and are
        # parked here (oldest first); other threads waiting for the reader role
        # (serve(), its asyncio form) sleep on the condition.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._sleepers = 0
        self._parked: Dict[_Slot, None] = {}
        self._write_lock = threading.Lock()
        # Requests made in the event loop, written together once per iteration.
        self._outbox: List[bytes] = []
        self._decoder = _framing.FrameDecoder()
        self._ids = itertools.count(1)
        # Calls waiting for their answer: a slot, or an asyncio call's future.
        self._pending: Dict[int, Any] = {}
        self._running: Dict[Any, CallContext] = {}
        # Ids the host cancelled before their call started (kept in order,
        # bounded): those calls are not run at all.
        self._cancelled_early: Dict[Any, None] = {}
        self._reader: Optional[int] = None
        self._lost: Optional[Error] = None
        self._closed = False
        self.stop_requested = False
        self._aio_loop: Any = None
        self._serve_waiters: List[Any] = []
        self.max_frame = _framing.DEFAULT_MAX_FRAME
        # Shared memory (when the host offers it): the socket, the
        # (threshold, place) for what we send, and the mapper for what comes.
        self._side: Any = None
        self._share: Any = None
        self._shared: Any = None
        self.host_version = "?"
        self.functions: Dict[str, Function] = {}
        self.types: Dict[str, List[List[str]]] = {}
        # Whether the host was told the script serves (rpc.ready).
        self._ready_sent = False
        # close() was called while another thread read: that thread closes
        # the descriptors when it gives the reader role up.
        self._close_pending = False
        # The host's calls read by the interruption signal's handler, for the next
        # reader to run (the handler runs only cancellations).
        self._deferred: List[Dict[str, Any]] = []
        # SIGURG makes the main thread read what the host sent (a cancellation) and
        # raise Cancelled in an export the host cancelled; the host sends it only
        # when told so in the hello.
        self._interrupts = _interrupts.install(_on_interrupt_signal)

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
            raise NotConnected(
                "the tether descriptors %s=%r, %s=%r are unusable: %s" % (READ_VAR, r, WRITE_VAR, w, e)
            ) from None
        conn = cls(rfd, wfd)
        if os.environ.get("TETHER_SHM_FD"):
            from . import _shm

            side = _shm.Side.from_environment()
            if side is not None:
                conn._side = side
                conn._shared = lambda offset, length: side.resolve(offset, length, conn.max_frame)
                # Descriptors may arrive faster than their frames: whoever
                # waits for the pipe also takes them off the socket.
                conn._poller.register(side.fileno(), select.POLLIN)
        return conn

    def handshake(self) -> None:
        """Exchange versions with the host; call once, before anything else.

        Raises:
            VersionMismatch: the host speaks another protocol version.
            ConnectionLost: the host went away.
        """
        try:
            self._hello()
        except Error as e:
            # Every later call fails the same way instead of reading on.
            self._lose(e)
            raise

    # -- calls to the host ----------------------------------------------------

    def call(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        """Call a host function and return its result.

        Host calls that arrive while this one waits are answered meanwhile.

        Raises:
            MethodNotFound, InvalidParams, RemoteError: the host answered with an error.
            ConnectionLost: the host went away.
            FrameTooLarge, CannotSend: the arguments cannot be sent.
        """
        if self._aio_loop is not None:
            self._refuse_on_serving_loop(method)
        ctx = CURRENT_CALL.get()
        if ctx is None or ctx.thread != threading.get_ident():
            return self._call(method, args, kwargs, None)
        # Made by an export the host called: the host runs it as part of that
        # call. Inside the client the export is not interrupted: the call
        # raises Cancelled when it returns instead.
        ctx.enter_shield()
        try:
            return self._call(method, args, kwargs, ctx.id if type(ctx.id) is int else None)
        finally:
            if ctx.exit_shield():
                raise Cancelled()

    def _refuse_on_serving_loop(self, method: str) -> None:
        """Raise :class:`BlockingCall` when this thread runs the loop that serves the
        host's calls and an export is ``async def``: the host may call it back while
        this call waits, and it could never run (a deadlock; the host refuses the
        mirror case in the same way)."""
        try:
            running = _running_loop()()
        except RuntimeError:
            return
        if running is self._aio_loop and any(e.is_async for e in EXPORTS.values()):
            raise BlockingCall(
                "host.%s() blocks the asyncio loop that serves the host's calls, and the host may call "
                "an async export back meanwhile, which could never run: use "
                "'await tether.aio.host.%s(...)' in a coroutine" % (method, method)
            )

    def _call(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any], within: Optional[int]) -> Any:
        """:meth:`call`, with ``within`` the host's call the caller serves."""
        msg_id = next(self._ids)
        frame = None if kwargs else _framing.encode_call(msg_id, method, args, self.max_frame, within)
        if frame is not None:
            if self._reader is None:
                # Most calls: a small frame, and nobody reads.
                return self._call_alone(msg_id, frame)
            encoded: Tuple[List[_framing.Buffer], List[int]] = ([frame], [])
        else:
            encoded = self._encode_general(msg_id, method, args, kwargs, within)
        slot = _Slot()
        self._request(msg_id, encoded, slot)
        self._wait(slot)
        return _outcome(slot)

    def _call_alone(self, msg_id: int, frame: bytes) -> Any:
        """A call that takes the reader role at once, if nobody holds it, and reads its
        own answer with no slot or wake-up (most calls of a script with one thread).

        While it holds the role its answer has no slot: nobody else can read it.
        Before giving the role up with the answer still to come (the host's call
        to an export came first, or bytes that are not the plain answer), it
        registers a slot and reads the general way; once the host's calls ran,
        it takes the role back with its slot, if the answer is still to come and
        nobody reads, and reads alone again.
        """
        with self._lock:
            if self._lost is not None:
                raise self._lost
            alone = self._reader is None and not self._deferred
            if alone:
                self._reader = threading.get_ident()
        if not alone:
            slot = _Slot()
            self._request(msg_id, ([frame], []), slot)
            self._wait(slot)
            return _outcome(slot)
        try:
            self._send([frame])
        except BaseException:
            self._release_reader()
            raise
        while True:
            try:
                result = self._read_alone(msg_id)
                if result is not _framing.NOT_SIMPLE and type(result) is not tuple:
                    self._release_reader()
                    return result
                # Anything else: the answer gets a slot, and the general reader
                # delivers it (the bytes read so far are in the decoder).
                with self._lock:
                    if self._lost is not None:
                        raise self._lost
                    slot = self._pending[msg_id] = _Slot()
            except BaseException:
                # Given up without an answer (an interruption, a loss), the answer
                # has no slot: nobody waits for it, and it is dropped when it comes.
                self._release_reader()
                raise
            if type(result) is tuple:
                # Exactly one call of the host, read whole: it runs here, as
                # _read_for would run it, without the decoder's round.
                self._release_reader()
                self._handle(result[0])
            else:
                self._read_for(slot)
            # The host's calls ran (an export called back, maybe nesting calls of
            # its own): when the answer is still to come and nobody reads, take
            # the role back, and the slot with it, and read alone again.
            with self._lock:
                again = not slot.done and self._reader is None and not self._deferred and self._lost is None
                if again:
                    del self._pending[msg_id]
                    self._reader = threading.get_ident()
            if not again:
                if not slot.done:
                    self._wait(slot)
                return _outcome(slot)

    def _read_alone(self, msg_id: int) -> Any:
        """Holding the reader role with no slot for answer ``msg_id``: wait for bytes
        and read once. The result, when they are exactly that answer; else
        NOT_SIMPLE, with what was read in the decoder; when they are exactly one
        request of the host (its call to an export, the commonest nesting), that
        message in a 1-tuple (a decoded result is never a tuple: JSON arrays
        decode to lists), with nothing in the decoder.

        Raises:
            ConnectionLost: the host went away (the channel is lost).
        """
        rfd = self._rfd
        while self._decoder.empty():
            calls = self._calls
            ready = self._spin.wait(self._poller, calls is not None or not self._parked)
            if self._side is not None and any(fd != rfd for fd, _ in ready):
                break
            try:
                data = os.read(rfd, _CHUNK) if calls is None else calls.read(rfd)
            except BlockingIOError:
                continue
            except OSError as e:
                error: Error = ConnectionLost("reading from the host failed: %s" % e)
                self._lose(error)
                raise self._lost or error from None
            result = _framing.simple_result(data, msg_id)
            if result is not _framing.NOT_SIMPLE:
                return result
            if not data:
                error = ConnectionLost("the host closed the channel (it exited or stopped serving)")
                self._lose(error)
                raise self._lost or error
            request = _framing.simple_request(data)
            if request is not None:
                return (request,)
            self._decoder.feed(data)
            break
        return _framing.NOT_SIMPLE

    def acall(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
        """The asyncio form of :meth:`call`: an awaitable future of the result.

        Call it from a running event loop; many calls may be in flight at once.
        The request leaves with the others made in the same loop iteration (one
        write for all of them). Cancelling the future, or the task awaiting it,
        tells the host and leaves the channel usable.
        """
        loop = _running_loop()()
        if self._aio_loop is not loop:
            self._attach_loop(loop)
        # The future itself waits in the pending table (no slot): it knows its
        # loop, and answers read in that loop settle it directly.
        fut = _call_future()(loop=loop)
        fut.connection = self
        fut.thread = threading.get_ident()
        msg_id = fut.msg_id = next(self._ids)
        ctx = CURRENT_CALL.get()
        within = ctx.id if ctx is not None and type(ctx.id) is int else None
        pieces, fds = encoded = self._encode_request(msg_id, method, args, kwargs, within)
        if len(pieces) == 1 and not fds and type(pieces[0]) is bytes:
            # Leaves with the other requests of this loop iteration.
            self._register(msg_id, fut)
            self._post(pieces[0], loop)
        else:
            self._request(msg_id, encoded, fut)
        return fut

    def _cancelled(self, msg_id: int) -> None:
        """A call's future was cancelled: forget the call and tell the host."""
        if self._forget(msg_id):
            try:
                self.notify(CANCEL, (), {"id": msg_id})
            except Error:
                pass


    def notify(self, method: str, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
        """Send a notification: the host runs ``method`` and sends no answer."""
        if self._lost is not None:
            raise self._lost
        params = self._params(method, args, kwargs)
        message: Dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params:
            message["params"] = params
        ctx = _shield_own_export()
        try:
            self._send(*self._encode(message, self.max_frame))
        finally:
            if ctx is not None and ctx.exit_shield():
                raise Cancelled()

    # -- serving the host's calls ---------------------------------------------

    def serve(self) -> None:
        """Answer the host's calls until it closes the channel or asks the script to stop.

        Raises:
            ProtocolError: the host broke the protocol.
        """
        self.ready()
        while self._take_reader_role(until=lambda: self.stop_requested or self._lost is not None):
            requests = self._read_as_reader(block=True)
            for msg in requests:
                self._handle(msg)
        if self._lost is not None and not isinstance(self._lost, ConnectionLost):
            raise self._lost

    def ready(self) -> None:
        """Tell the host the script serves, with the names it exports (once).

        The host's calls wait for this: a script that calls the host while it
        imports finds its exports defined when the host calls it.
        """
        with self._lock:
            if self._ready_sent or self._lost is not None:
                return
            self._ready_sent = True
        try:
            self.notify(_framing.READY, (), {"exports": sorted(EXPORTS)})
        except ConnectionLost:
            pass

    def pump(self) -> bool:
        """Handle whatever the host has sent, without waiting (if no other thread reads).

        Returns True when the export this thread runs must raise :class:`Cancelled` now:
        the host cancelled it, and the cancellation was read here, while the client's own
        reading kept the export from being interrupted. The caller raises it, or looks
        (``tether.cancelled()``).
        """
        ctx = _shield_own_export()
        try:
            with self._lock:
                reading = self._reader is None and self._lost is None
                if reading:
                    self._reader = threading.get_ident()
            if reading:
                for msg in self._read_as_reader(block=False):
                    self._handle(msg)
        finally:
            interrupt = ctx is not None and ctx.exit_shield()
        return interrupt

    def _on_interrupt_signal(self) -> None:
        """SIGURG, in the main thread: the host cancelled a call. Read the cancellation if
        nobody reads, then raise Cancelled if the export this thread runs is the one."""
        me = threading.get_ident()
        got = False
        if self._lock.acquire(blocking=False):
            try:
                if self._reader is None and self._lost is None and not self._closed:
                    self._reader = me
                    got = True
            finally:
                self._lock.release()
        if got:
            try:
                for msg in self._read(False):
                    if msg.get("method") in (CANCEL, STOP):
                        self._handle(msg)
                    else:
                        self._deferred.append(msg)
            finally:
                self._release_reader()
        ctx = CURRENT_CALL.get()
        if ctx is not None and ctx.thread == me:
            with ctx.lock:
                now = ctx.wants_interruption()
            if now:
                raise Cancelled()

    def close(self) -> None:
        """Close both descriptors; the host then sees end-of-file.

        A thread that reads or writes meanwhile finishes first: the write end
        closes once no write is under way, the read end once no thread holds
        the reader role (that thread closes it when it gives the role up).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lose_locked(ConnectionLost("the connection to the host was closed"))
            reading = self._reader is not None
            self._close_pending = reading
        with self._write_lock:
            _close_quietly(self._wfd)
        if not reading:
            self._close_read_end()

    def _close_read_end(self) -> None:
        loop = self._aio_loop
        if loop is not None:
            try:
                loop.remove_reader(self._rfd)
            except Exception:
                pass
        _close_quietly(self._rfd)

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the reader role --------------------------------------------------------

    def _request(self, msg_id: int, encoded: Tuple[List[_framing.Buffer], List[int]], waiter: Any) -> None:
        """Send an encoded request whose answer goes to ``waiter`` (a slot, or an asyncio call's future)."""
        pieces, fds = encoded
        try:
            self._register(msg_id, waiter)
        except BaseException:
            _close_all(fds)
            raise
        try:
            self._send(pieces, fds)
        except BaseException:
            self._forget(msg_id)
            raise

    def _register(self, msg_id: int, slot: Any) -> None:
        with self._lock:
            if self._lost is not None:
                raise self._lost
            self._pending[msg_id] = slot

    def _forget(self, msg_id: int) -> bool:
        with self._lock:
            return self._pending.pop(msg_id, None) is not None

    def _take_reader_role(self, until: Callable[[], bool]) -> bool:
        """Become the reader; False (without the role) once ``until()`` holds."""
        me = threading.get_ident()
        with self._lock:
            while True:
                if until():
                    return False
                if self._reader is None:
                    self._reader = me
                    return True
                self._sleepers += 1
                try:
                    self._cond.wait()
                finally:
                    self._sleepers -= 1

    def _wait(self, slot: _Slot) -> None:
        lock = self._lock
        me = threading.get_ident()
        while True:
            with lock:
                if slot.done:
                    return
                if self._reader is None:
                    self._reader = me
                    wake = None
                else:
                    # Another thread reads: sleep until it hands over the
                    # answer or the role (whoever unparks the slot releases
                    # its lock once; acquiring it leaves it held for next time).
                    wake = slot.wake
                    if wake is None:
                        wake = slot.wake = threading.Lock()
                        wake.acquire()
                    self._parked[slot] = None
            if wake is not None:
                if not self._threaded:
                    self._go_threaded()
                wake.acquire()
                continue
            self._read_for(slot)

    def _read_for(self, slot: _Slot) -> None:
        """Holding the reader role: read until ``slot``'s answer is here, the host's
        calls came or the channel was lost; give the role up and run those calls.

        It keeps the role while the frames read are other threads' answers:
        giving it up and taking it back would wake a sleeper for nothing. It
        gives it up for the host's calls (they run while another thread reads).
        """
        try:
            while True:
                requests = self._read(True)
                if requests or slot.done or self._lost is not None or self._deferred:
                    break
        finally:
            self._release_reader()
        for msg in requests:
            self._handle(msg)

    def _read_as_reader(self, block: bool) -> List[Dict[str, Any]]:
        """Read frames as the reader, deliver answers, and return the host's calls.

        Gives the reader role back before returning, so the calls can run while
        another thread reads.
        """
        try:
            return self._read(block)
        finally:
            self._release_reader()

    def _release_reader(self) -> None:
        """Give the reader role up, waking one caller that waits (or the threads
        waiting for the role alone, when no caller does)."""
        with self._lock:
            self._reader = None
            parked = self._parked
            if parked:
                slot = next(iter(parked))
                del parked[slot]
                slot.wake.release()
            elif self._sleepers:
                self._cond.notify_all()
            closing, self._close_pending = self._close_pending, False
        if closing:
            self._close_read_end()

    def _read(self, block: bool) -> List[Dict[str, Any]]:
        requests: List[Dict[str, Any]] = []
        if self._deferred:
            # Calls the interruption handler read, for the next reader to run.
            requests, self._deferred = self._deferred, requests
            return requests
        decoder = self._decoder
        decode = _framing.decode
        shared = self._shared
        got = False
        while True:
            try:
                body = decoder.next()
                if body is not None:
                    got = True
                    msg = decode(body, shared)
                    if "method" in msg:
                        requests.append(msg)
                    else:
                        self._deliver(msg)
                    continue
            except Error as e:
                self._lose(e)
                return requests
            if got:
                return requests
            calls = self._calls
            if block:
                # Nothing buffered: wait for bytes (spinning first) instead of
                # paying for a read that fails.
                # Not while other callers sleep, unless the looks keep the GIL:
                # the GIL this reader takes back after each look (with hand-offs
                # each time) keeps the threads it woke from running.
                ready = self._spin.wait(self._poller, calls is not None or not self._parked)
                side = self._side
                if side is not None and any(fd != self._rfd for fd, _ in ready):
                    try:
                        side.drain()
                    except Error as e:
                        self._lose(e)
                        return requests
            try:
                target = decoder.target()
                if target is not None:
                    n = os.readv(self._rfd, [target])
                    decoder.advance(n)
                    if n == 0:
                        self._lose(ConnectionLost("the host closed the channel in the middle of a frame"))
                        return requests
                    continue
                data = os.read(self._rfd, _CHUNK) if calls is None else calls.read(self._rfd)
            except Error as e:
                self._lose(e)
                return requests
            except BlockingIOError:
                if not block:
                    return requests
                continue
            except OSError as e:
                self._lose(ConnectionLost("reading from the host failed: %s" % e))
                return requests
            if not data:
                self._lose(ConnectionLost("the host closed the channel (it exited or stopped serving)"))
                return requests
            decoder.feed(data)

    def _go_threaded(self) -> None:
        """A thread waits while another reads: from now on the reader role's
        system calls and small writes keep the GIL (``_nogil`` says why).

        Tried once. The write end becomes non-blocking, under the write lock,
        before the calls are used: a small frame then goes whole or not at all,
        and anything else is written blocking, as before (``_writers``).
        """
        self._threaded = True
        try:
            from . import _nogil
        except ImportError:  # no ctypes in this Python
            return
        calls = _nogil.load(_CHUNK)
        if calls is None:
            return
        fds = [self._rfd]
        if self._side is not None:
            fds.append(self._side.fileno())
        calls.watch(fds)
        with self._write_lock:
            if self._closed:
                return
            try:
                os.set_blocking(self._wfd, False)
            except OSError:
                return
            self._spin.calls = calls
            self._calls = calls

    def _deliver(self, msg: Dict[str, Any]) -> None:
        if "result" in msg and "error" not in msg and "id" in msg:
            msg_id, result, error = msg["id"], msg["result"], None
        else:
            msg_id, result, error = _framing.split_reply(msg)
            if msg_id is None:
                # The host could not read a message of ours (docs/protocol.md §7.1),
                # so it could not tell which: no call can be failed with it.
                sys.stderr.write(
                    "tether: the host could not read a message of this script's: %s\n"
                    % (error or {}).get("message", result)
                )
                return
        with self._lock:
            slot = self._pending.pop(msg_id, None)
            if slot is None:
                # A late answer to a call that was cancelled: nobody wants it.
                return
            if type(slot) is not _Slot:
                # An asyncio call's future.
                fut = slot
                if error is None and fut.thread == threading.get_ident():
                    if not fut.done():
                        fut.set_result(result)
                    return
                slot = _future_slot(fut)
            if error is not None:
                slot.error = _remote_error(error)
            else:
                slot.result = result
            if slot.future is None:
                slot.done = True
                if slot in self._parked:
                    del self._parked[slot]
                    slot.wake.release()
                return
        _settle(slot)

    def _lose(self, error: Error) -> None:
        with self._lock:
            self._lose_locked(error)
        self._release_serve_waiters()

    def _release_serve_waiters(self) -> None:
        waiters, self._serve_waiters = self._serve_waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(lambda f=fut: f.done() or f.set_result(None))
            except RuntimeError:
                pass

    async def aserve(self) -> None:
        """The asyncio form of :meth:`serve`: answer the host's calls in the running loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        self._attach_loop(loop)
        self.ready()
        fut = loop.create_future()
        self._serve_waiters.append((loop, fut))
        if self.stop_requested or self._lost is not None:
            self._release_serve_waiters()
        await fut
        if self._lost is not None and not isinstance(self._lost, ConnectionLost):
            raise self._lost

    def _lose_locked(self, error: Error) -> None:
        if self._lost is None:
            self._lost = error
        slots = list(self._pending.values())
        self._pending.clear()
        for slot in slots:
            if type(slot) is not _Slot:
                slot = _future_slot(slot)
            slot.error = self._lost
            if slot.future is None:
                slot.done = True
            else:
                _settle(slot)
        parked, self._parked = self._parked, {}
        for slot in parked:
            slot.wake.release()
        self._cond.notify_all()


    # -- asyncio ----------------------------------------------------------------

    def _attach_loop(self, loop: Any) -> None:
        if self._aio_loop is loop:
            return
        self._aio_loop = loop
        loop.add_reader(self._rfd, self._on_readable, loop)
        side = self._side
        if side is not None:
            loop.add_reader(side.fileno(), self._drain_side, loop)

    def _drain_side(self, loop: Any) -> None:
        try:
            self._side.drain()
        except Error as e:
            self._lose(e)
            try:
                loop.remove_reader(self._side.fileno())
            except Exception:
                pass

    def _on_readable(self, loop: Any) -> None:
        me = threading.get_ident()
        with self._lock:
            if self._reader is not None:
                return  # another thread reads, and will settle our futures
            self._reader = me
        requests = self._read_as_reader(block=False)
        if self._lost is not None:
            try:
                loop.remove_reader(self._rfd)
            except Exception:
                pass
        for msg in requests:
            self._handle(msg, loop)

    # -- plumbing ---------------------------------------------------------------

    def _hello(self) -> None:
        params: Dict[str, Any] = {"protocol": PROTOCOL_VERSION, "version": __version__, "python": sys.version.split()[0]}
        if self._side is not None:
            params["shm"] = True
        if self._interrupts:
            params["interrupt"] = True
        slot = _Slot()
        self._register(0, slot)
        self._send(_framing.encode(_framing.request(0, _framing.HELLO, params), self.max_frame))
        self._wait(slot)
        if slot.error is not None:
            if isinstance(slot.error, RemoteError) and slot.error.code == VERSION_MISMATCH:
                raise VersionMismatch(str(slot.error))
            raise slot.error
        result = slot.result
        if type(result) is not dict or result.get("protocol") != PROTOCOL_VERSION:
            raise VersionMismatch(
                "protocol version mismatch: this client (tether %s) speaks protocol %d, the host answered %.200r; "
                "run the script with the client the host bundles" % (__version__, PROTOCOL_VERSION, result)
            )
        self.host_version = str(result.get("version", "?"))
        threshold = result.get("shm")
        if self._side is not None and type(threshold) is int and threshold > 0:
            self._share = (threshold, self._side.place)
        self.max_frame = int(result.get("max_frame", self.max_frame))
        self._decoder.max_frame = self.max_frame
        for f in result.get("functions", []):
            self.functions[f["name"]] = Function(f)
        self.types = dict(result.get("types") or {})

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


def _outcome(slot: _Slot) -> Any:
    """A delivered answer: its result, or its error raised."""
    if slot.error is not None:
        raise slot.error
    return slot.result


def _remote_error(error: Dict[str, Any]) -> RemoteError:
    code, message, data = error["code"], error["message"], error.get("data")
    if code == METHOD_NOT_FOUND:
        return MethodNotFound(code, message, data)
    if code == INVALID_PARAMS:
        return InvalidParams(code, message, data)
    kind = data.get("kind") if isinstance(data, dict) else None
    if isinstance(kind, str) and kind.isidentifier():
        return error_class(kind)(code, message, data)
    return RemoteError(code, message, data)


_connection: Optional[Connection] = None
_connect_lock = threading.Lock()


def connection() -> Connection:
    """The process's connection to its host, made on first use."""
    global _connection
    conn = _connection
    if conn is not None:
        return conn
    with _connect_lock:
        if _connection is not None:
            return _connection
        if _connect_error is not None:
            raise _connect_error
        conn = Connection.from_environment()
        try:
            # Published only after the handshake: no thread may send a call
            # before rpc.hello, or see the host's functions before they are
            # known. The host calls no export before the script is ready.
            conn.handshake()
        except Error as e:
            _remember_failure(e)
            raise
        _connection = conn
        return conn


_connect_error: Optional[Error] = None


def _shield_own_export() -> Optional[CallContext]:
    """The export this thread runs, shielded from interruption (the client's own code
    must not be cut short); ``None`` outside an export. End it with ``exit_shield``."""
    ctx = CURRENT_CALL.get()
    if ctx is None or ctx.thread != threading.get_ident():
        return None
    ctx.enter_shield()
    return ctx


def _on_interrupt_signal() -> None:
    conn = _connection
    if conn is not None:
        conn._on_interrupt_signal()


def _remember_failure(e: Error) -> None:
    """Later calls fail the same way instead of trying again on a broken channel."""
    global _connect_error
    _connect_error = e


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
