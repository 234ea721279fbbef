"""The zygote: a preloaded interpreter that forks warm workers for the host.

The host starts this module once (``python -c "from tether._zygote import main; main()"``)
with one end of a ``SOCK_SEQPACKET`` socket in ``TETHER_ZYGOTE_FD`` and the modules to
import first in ``TETHER_PRELOAD`` (a JSON list). It imports them, says ``ready``, and
then forks one worker per ``fork`` request: the worker takes the pipes that came with
the request, the script's arguments, environment and working directory, and runs the
script as ``__main__``, in the imported interpreter, so it starts in milliseconds and
shares the preloaded pages copy-on-write.

Every message is one datagram of JSON, with descriptors passed alongside it:

- zygote -> host ``{"op": "ready", "pid", "preloaded", "threads"}`` once, or
  ``{"op": "failed", "error"}`` when a module cannot be imported (then it exits);
- host -> zygote ``{"op": "fork", "id", "path", "args", "env", "cwd", "group",
  "fds", "vars", "stdin", "stdout", "stderr"}`` with the descriptors named in ``fds``;
- zygote -> host ``{"op": "forked", "id", "pid"}`` with the worker's pidfd, or
  ``{"op": "refused", "id", "error"}`` when the worker could not be set up;
- zygote -> host ``{"op": "exited", "pid", "status"}`` when a worker ended: ``status``
  is the raw wait status, so the host reports it as it would a child's own.

The zygote stays single-threaded (forking a threaded process is unsafe), exits when
the host closes its end of the socket, and dies with the host (the parent-death
signal the host set); each worker dies with the zygote the same way, so a worker
never outlives its host. The zygote reaps its workers, killing what is left of a
worker's process group first, as the host does for a child of its own.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import socket
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

FD_VAR = "TETHER_ZYGOTE_FD"
PRELOAD_VAR = "TETHER_PRELOAD"
MAX_MESSAGE = 1 << 20
MAX_FDS = 16

# What a worker needs from the client, imported here so that no worker pays for it.
CLIENT_MODULES = (
    "tether",
    "tether._connection",
    "tether._dispatch",
    "tether._exports",
    "tether._futures",
    "tether._host",
    "tether._shm",
    "tether._writers",
    "tether.aio",
)

_PR_SET_PDEATHSIG = 1
# pidfd_open has the same number on every architecture (Linux 5.3).
_SYS_PIDFD_OPEN = 434


def _os_string(value: "Any") -> str:
    """A string from the host: text, or ``{"hex": ...}`` for bytes that are not UTF-8."""
    if isinstance(value, dict):
        return os.fsdecode(bytes.fromhex(str(value["hex"])))
    return str(value)


def _send(sock: socket.socket, message: "Dict[str, Any]", fds: "List[int]" = ()) -> None:  # type: ignore[assignment]
    data = json.dumps(message, separators=(",", ":")).encode()
    ancillary = []
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(memoryview(_int_array(fds))))]
    sock.sendmsg([data], ancillary)


def _int_array(fds: "List[int]") -> "Any":
    import array

    return array.array("i", fds)


def _receive(sock: socket.socket) -> "Optional[Tuple[Dict[str, Any], List[int]]]":
    """The next message and its descriptors; ``None`` when the host closed its end."""
    import array

    data, ancillary, flags, _ = sock.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4))
    fds = []  # type: List[int]
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            got = array.array("i")
            got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
            fds.extend(got)
    if not data:
        for fd in fds:
            os.close(fd)
        return None
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise ValueError("a message from the host was cut short")
    return json.loads(data.decode()), fds


def _threads() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 1


_LIBC = None  # type: Any


def _libc() -> "Any":
    """The C library, loaded once in the zygote (ctypes costs a worker milliseconds)."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        _LIBC = ctypes.CDLL(None, use_errno=True)
    return _LIBC


def _pidfd_open(pid: int) -> int:
    opener = getattr(os, "pidfd_open", None)
    if opener is not None:
        return int(opener(pid))
    import ctypes

    fd = _libc().syscall(_SYS_PIDFD_OPEN, pid, 0)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(fd)


class Zygote:
    """The serving loop: fork requests in, workers' births and deaths out."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pid = os.getpid()
        self.groups = {}  # type: Dict[int, bool]
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        signal.set_wakeup_fd(self.wake_w.fileno())
        # A handler (not SIG_DFL) so SIGCHLD reaches the wake-up socket.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def serve(self) -> "Optional[Tuple[Dict[str, Any], List[int]]]":
        """Serve until the host goes away (``None``), or return in a new worker its request."""
        import select

        poller = select.poll()
        poller.register(self.sock.fileno(), select.POLLIN)
        poller.register(self.wake_r.fileno(), select.POLLIN)
        while True:
            self.reap()
            ready = dict(poller.poll())
            if self.wake_r.fileno() in ready:
                try:
                    while self.wake_r.recv(512):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
            if self.sock.fileno() not in ready:
                continue
            try:
                got = _receive(self.sock)
            except ValueError as e:
                print("tether zygote: %s" % e, file=sys.stderr)
                continue
            except ConnectionError:
                return None
            if got is None:
                return None
            message, fds = got
            if message.get("op") != "fork":
                for fd in fds:
                    os.close(fd)
                print("tether zygote: unknown request %r" % message.get("op"), file=sys.stderr)
                continue
            worker = self.fork(message, fds)
            if worker is not None:
                poller.unregister(self.sock.fileno())
                poller.unregister(self.wake_r.fileno())
                return worker

    def fork(self, request: "Dict[str, Any]", fds: "List[int]") -> "Optional[Tuple[Dict[str, Any], List[int]]]":
        """Fork a worker for ``request``: ``(request, fds)`` in the worker, ``None`` here."""
        sys.stdout.flush()
        sys.stderr.flush()
        setup_r, setup_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(setup_r)
            os.close(setup_w)
            for fd in fds:
                os.close(fd)
            _send(self.sock, {"op": "refused", "id": request["id"], "error": "fork failed: %s" % e})
            return None
        if pid == 0:
            os.close(setup_r)
            request["_setup"] = setup_w
            return request, fds
        os.close(setup_w)
        for fd in fds:
            os.close(fd)
        failure = b""
        while True:
            chunk = os.read(setup_r, 65536)
            if not chunk:
                break
            failure += chunk
        os.close(setup_r)
        if failure:
            os.waitpid(pid, 0)
            _send(self.sock, {"op": "refused", "id": request["id"], "error": failure.decode(errors="replace")})
            return None
        self.groups[pid] = bool(request.get("group"))
        try:
            pidfd = _pidfd_open(pid)
        except OSError as e:
            os.kill(pid, signal.SIGKILL)
            _send(self.sock, {"op": "refused", "id": request["id"], "error": "pidfd_open failed: %s" % e})
            return None
        try:
            _send(self.sock, {"op": "forked", "id": request["id"], "pid": pid}, [pidfd])
        finally:
            os.close(pidfd)
        return None

    def reap(self) -> None:
        """Report every worker that ended: its group is killed before it is reaped."""
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            if self.groups.pop(pid, False):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass
            _, status = os.waitpid(pid, 0)
            try:
                _send(self.sock, {"op": "exited", "pid": pid, "status": status})
            except OSError:
                pass

    def become_worker(self, request: "Dict[str, Any]", fds: "List[int]") -> "Tuple[str, List[str]]":
        """In the new worker: take its pipes, streams, environment and directory.

        Returns the script's path and arguments. On failure the reason goes to the
        zygote through the set-up pipe and the worker exits.
        """
        setup = request.pop("_setup")
        try:
            return self._take_over(request, fds, setup)
        except BaseException as e:
            try:
                os.write(setup, ("cannot set the worker up: %s: %s" % (type(e).__name__, e)).encode())
            finally:
                os._exit(127)

    def _take_over(self, request: "Dict[str, Any]", fds: "List[int]", setup: int) -> "Tuple[str, List[str]]":
        # Everything moves out of the way of 0..5 first, then to where the worker expects it.
        moved_setup = _dup_above(setup, 32)
        os.close(setup)
        setup = moved_setup
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if request.get("group"):
            os.setpgid(0, 0)
        # Die with the zygote, which dies with the host.
        if _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0 or os.getppid() != self.pid:
            os._exit(1)
        named = dict(zip(request["fds"], fds))
        moved = {name: _dup_above(fd, 32) for name, fd in named.items()}
        for fd in fds:
            os.close(fd)
        streams = (("stdin", 0, os.O_RDONLY), ("stdout", 1, os.O_WRONLY), ("stderr", 2, os.O_WRONLY))
        for name, target, mode in streams:
            how = request.get(name, "inherit")
            if how == "null":
                null = os.open(os.devnull, mode)
                os.dup2(null, target)
                os.close(null)
            elif how == "pipe":
                os.dup2(moved.pop(name), target)
        channel = {}
        for number, name in enumerate(("read", "write", "side"), start=3):
            if name in moved:
                os.dup2(moved.pop(name), number)
                channel[name] = number
        # Nothing else of the zygote's stays open: its socket objects let go of
        # their descriptors first, or closing them later would close someone else's.
        self.sock.detach()
        self.wake_r.detach()
        self.wake_w.detach()
        keep = {0, 1, 2, setup, *channel.values()}
        try:
            open_fds = [int(entry) for entry in os.listdir("/proc/self/fd")]
        except OSError:  # no /proc: every number up to the limit
            import resource

            open_fds = list(range(3, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], 1 << 16)))
        for fd in open_fds:
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        env = {_os_string(k): _os_string(v) for k, v in request["env"]}
        for name, variable in request.get("vars", {}).items():
            if name in channel:
                env[variable] = str(channel[name])
        os.environ.clear()
        os.environ.update(env)
        cwd = request.get("cwd")
        if cwd is not None:
            try:
                os.chdir(_os_string(cwd))
            except OSError as e:
                os.write(setup, ("cannot enter the working directory %s: %s" % (_os_string(cwd), e.strerror)).encode())
                os._exit(127)
        path = _os_string(request["path"])
        args = [_os_string(a) for a in request.get("args", [])]
        os.close(setup)
        return path, args


def _dup_above(fd: int, low: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD, low)


def _fix_path(script: str, base: "List[str]", zygote_pythonpath: "List[str]") -> None:
    """``sys.path`` as a fresh interpreter would make it for ``script`` in this environment."""
    own = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    rest = [p for p in base if p not in zygote_pythonpath]
    sys.path[:] = [os.path.dirname(os.path.realpath(script))] + own + rest


def _run(path: str) -> None:
    """Run ``path`` as ``__main__``, reporting an uncaught exception as the interpreter would."""
    import builtins
    import types

    main_module = types.ModuleType("__main__")
    main_module.__dict__.update(
        {"__file__": path, "__builtins__": builtins, "__cached__": None, "__spec__": None, "__package__": None}
    )
    sys.modules["__main__"] = main_module
    try:
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, path, "exec", dont_inherit=True)
    except OSError as e:
        print("%s: can't open file %r: [Errno %s] %s" % (sys.executable, path, e.errno, e.strerror), file=sys.stderr)
        sys.exit(2)
    except SyntaxError:
        exc_type, value, _ = sys.exc_info()
        sys.excepthook(exc_type, value, None)  # type: ignore[arg-type]
        sys.exit(1)
    try:
        exec(code, main_module.__dict__)
    except SystemExit:
        raise
    except BaseException as e:
        # From the script's own frame down, as a fresh interpreter prints it.
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        sys.excepthook(type(e), e.with_traceback(tb), tb)
        if isinstance(e, KeyboardInterrupt):
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        sys.exit(1)


def main() -> None:
    """Preload, serve the host, and in a forked worker run its script."""
    fd = int(os.environ.pop(FD_VAR))
    preload = json.loads(os.environ.pop(PRELOAD_VAR, "[]"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=fd)
    # A Ctrl-C in the host's terminal is the host's to handle: the zygote ends
    # when the host closes its socket, or dies with the host.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import importlib

    # What a new worker uses before its script runs is loaded here, once.
    # (inspect: registering an export; resource: the client's spinning.)
    import fcntl  # noqa: F401
    import inspect  # noqa: F401
    import resource  # noqa: F401
    import select  # noqa: F401
    import types  # noqa: F401

    _libc()
    for name in CLIENT_MODULES + tuple(preload):
        try:
            importlib.import_module(name)
        except BaseException as e:
            _send(sock, {"op": "failed", "error": "cannot preload %s: %s: %s" % (name, type(e).__name__, e)})
            sys.exit(1)
    base_path = list(sys.path)
    if base_path and base_path[0] in ("", os.getcwd()):
        base_path = base_path[1:]
    zygote_pythonpath = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # Preloaded objects stay out of the collector's way: a collection in a
    # worker would otherwise write to (and so copy) every page they are on.
    gc.collect()
    gc.freeze()
    zygote = Zygote(sock)
    _send(sock, {"op": "ready", "pid": os.getpid(), "preloaded": list(preload), "threads": _threads()})
    got = zygote.serve()
    if got is None:
        return
    request, fds = got
    path, args = zygote.become_worker(request, fds)
    del zygote, sock, got, request, fds
    sys.argv[:] = [path] + args
    _fix_path(path, base_path, zygote_pythonpath)
    from . import _logs

    _logs.install_if_requested()
    _run(path)
