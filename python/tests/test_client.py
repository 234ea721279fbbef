"""The client against an in-process fake host over real pipes."""

import inspect
import os
import threading
import time
import unittest

import tether
from tether import _connection, _dispatch, _framing, _nogil, _spin


class FakeHost(threading.Thread):
    """Answers rpc.hello, then `add` and `echo`, over real pipes."""

    def __init__(self, hello_delay=0.0):
        super().__init__(daemon=True)
        self.c_read, self.h_write = os.pipe()
        self.h_read, self.c_write = os.pipe()
        self.hello_delay = hello_delay
        self.greeted = False
        # Calls that arrived before the hello was answered.
        self.early = []
        # The script's answers to this host's calls (to its exports).
        self.answers = []
        # Answers to send once the script answered this host's call (by its id).
        self.after = {}

    def run(self):
        d = _framing.FrameDecoder()
        while True:
            body = d.next()
            if body is None:
                data = os.read(self.h_read, 65536)
                if not data:
                    # The script closed its end: hang up, as a real host does
                    # (a thread of the script still reading then sees it).
                    os.close(self.h_write)
                    return
                d.feed(data)
                continue
            msg = _framing.decode(body)
            if "id" not in msg:
                continue  # notifications (rpc.ready, logs) need no answer
            if "method" not in msg:
                self.answers.append(msg)
                reply = self.after.pop(msg["id"], None)
                if reply is not None:
                    for piece in _framing.encode(reply):
                        os.write(self.h_write, piece)
                continue
            if not self.greeted and msg["method"] != "rpc.hello":
                self.early.append(msg["method"])
            if msg["method"] == "rpc.hello":
                time.sleep(self.hello_delay)
                result = {"protocol": tether.PROTOCOL_VERSION, "version": "test", "max_frame": 1 << 20,
                          "functions": [{"name": "add", "params": ["a", "b"], "signature": "add(a, b)"}]}
                reply = {"jsonrpc": "2.0", "id": msg["id"], "result": result}
                self.greeted = True
            elif msg["method"] == "add":
                p = msg.get("params", [])
                a, b = (p["a"], p["b"]) if isinstance(p, dict) else p
                reply = {"jsonrpc": "2.0", "id": msg["id"], "result": a + b}
            elif msg["method"] == "never":
                continue  # never answered
            elif msg["method"] == "slow_add":
                # Answered late: a caller is surely asleep by then.
                time.sleep(0.3)
                a, b = msg["params"]
                reply = {"jsonrpc": "2.0", "id": msg["id"], "result": a + b}
            elif msg["method"] == "split":
                # The answer in three writes: a piece of the prefix, most of
                # the rest, the last byte.
                frame = b"".join(bytes(p) for p in _framing.encode(
                    {"jsonrpc": "2.0", "id": msg["id"], "result": msg["params"][0]}))
                for piece in (frame[:3], frame[3:-1], frame[-1:]):
                    os.write(self.h_write, piece)
                    time.sleep(0.02)
                continue
            elif msg["method"] == "with_call":
                # A call to the script's export `ident`, then the answer, in one write.
                call = {"jsonrpc": "2.0", "id": "h%d" % msg["id"], "method": "ident", "params": msg["params"]}
                reply = {"jsonrpc": "2.0", "id": msg["id"], "result": "after"}
                os.write(self.h_write, b"".join(bytes(p) for m in (call, reply) for p in _framing.encode(m)))
                continue
            elif msg["method"] == "after_call":
                # A call to the script's export `ident`; the answer once it answered.
                call = {"jsonrpc": "2.0", "id": "a%d" % msg["id"], "method": "ident", "params": msg["params"]}
                self.after[call["id"]] = {"jsonrpc": "2.0", "id": msg["id"], "result": "after"}
                for piece in _framing.encode(call):
                    os.write(self.h_write, piece)
                continue
            elif msg["method"] == "unreadable":
                # As a host answers a message it could not read (§7.1), then the call.
                err = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "bad frame",
                                                              "data": {"kind": "ParseError"}}}
                reply = {"jsonrpc": "2.0", "id": msg["id"], "result": "still here"}
                os.write(self.h_write, b"".join(bytes(p) for m in (err, reply) for p in _framing.encode(m)))
                continue
            elif msg["method"] == "with_bytes":
                reply = {"jsonrpc": "2.0", "id": msg["id"], "result": [b"xyz", "$x"]}
            elif msg["method"] == "quit":
                os.close(self.h_write)
                return
            else:
                reply = {"jsonrpc": "2.0", "id": msg["id"],
                         "error": {"code": -32601, "message": "no %s" % msg["method"], "data": {"kind": "MethodNotFound"}}}
            for piece in _framing.encode(reply):
                os.write(self.h_write, piece)


class ClientTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost()
        self.host.start()
        self.conn = _connection.Connection(self.host.c_read, self.host.c_write)
        self.conn.handshake()

    def tearDown(self):
        self.conn.close()
        self.conn.close()  # twice is fine

    def test_an_error_with_a_null_id_is_reported_and_the_call_still_answered(self):
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(self.conn.call("unreadable", (), {}), "still here")
        self.assertIn("the host could not read a message of this script's: bad frame", err.getvalue())

    def test_threads_get_their_own_answers_and_none_is_left_asleep(self):
        # Each waiting caller sleeps on its own lock: the reader wakes exactly
        # the thread an answer is for, and one sleeper when it gives the role up.
        errors = []

        def work(k):
            try:
                for i in range(300):
                    got = self.conn.call("add", (k, i), {})
                    if got != k + i:
                        errors.append((k, i, got))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(daemon=True, target=work, args=(k * 1000,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads), "a caller was left asleep")
        self.assertEqual(errors, [])
        self.assertEqual(self.conn._parked, {})
        self.assertEqual(self.conn._pending, {})

    def test_callers_asleep_when_the_host_goes_away_all_fail(self):
        failures = []

        def wait_forever():
            try:
                self.conn.call("never", (), {})
            except tether.ConnectionLost as e:
                failures.append(e)

        threads = [threading.Thread(daemon=True, target=wait_forever) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        # Three sleep with their slots pending; the fourth reads (a lone
        # caller's answer has no slot while it holds the reader role).
        def waiting():
            return len(self.conn._pending) + (self.conn._reader is not None)

        while waiting() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual(waiting(), 4)
        try:
            self.conn.call("quit", (), {})
        except tether.ConnectionLost:
            pass
        for t in threads:
            t.join(10)
        self.assertFalse(any(t.is_alive() for t in threads), "a caller was left asleep")
        self.assertEqual(len(failures), 4)
        self.assertEqual(self.conn._parked, {})

    def test_a_lone_caller_reads_answers_that_are_not_simple(self):
        # Three writes for one answer, bytes and a "$" string, a call of the
        # host's before the answer: a lone caller's short way takes none of
        # them, the general way all of them, and the next call is short again.
        self.assertEqual(self.conn.call("split", (41,), {}), 41)
        self.assertEqual(self.conn.call("with_bytes", (), {}), [b"xyz", "$x"])
        _dispatch.EXPORTS.clear()
        try:
            tether.export("ident")(lambda x: ["ident", x])
            self.assertEqual(self.conn.call("with_call", (7,), {}), "after")
        finally:
            _dispatch.EXPORTS.clear()
        deadline = time.monotonic() + 10
        while not self.host.answers and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertEqual([(a["id"], a["result"]) for a in self.host.answers], [("h3", ["ident", 7])])
        self.assertEqual(self.conn.call("add", (1, 2), {}), 3)
        self.assertEqual((self.conn._pending, self.conn._reader), ({}, None))
        self.assertTrue(self.conn._decoder.empty())

    def test_a_lone_caller_reads_alone_again_after_the_hosts_call(self):
        # The host calls an export, and answers once the export answered: the
        # caller runs the export, then takes the role back (with its slot) and
        # reads its answer the short way again.
        _dispatch.EXPORTS.clear()
        reads = []
        read_alone = self.conn._read_alone

        def counted(msg_id):
            got = read_alone(msg_id)
            reads.append("other" if got is _framing.NOT_SIMPLE else "request" if type(got) is tuple else "answer")
            return got

        self.conn._read_alone = counted
        try:
            tether.export("ident")(lambda x: ["ident", x])
            self.assertEqual(self.conn.call("after_call", (7,), {}), "after")
        finally:
            _dispatch.EXPORTS.clear()
            del self.conn._read_alone
        # The host's call came alone and whole: read the short way as well.
        self.assertEqual(reads, ["request", "answer"])
        self.assertEqual([(a["id"], a["result"]) for a in self.host.answers], [("a1", ["ident", 7])])
        self.assertEqual((self.conn._pending, self.conn._reader), ({}, None))

    def test_calls_and_keywords(self):
        self.assertEqual(self.conn.call("add", (1, 2), {}), 3)
        self.assertEqual(self.conn.call("add", (1,), {"b": 5}), 6)
        self.assertEqual(self.conn.call("add", (), {"a": 2, "b": 5}), 7)
        self.assertEqual(self.conn.host_version, "test")
        self.assertEqual(sorted(self.conn.functions), ["add"])

    def test_errors_map_to_exception_classes(self):
        with self.assertRaises(tether.MethodNotFound) as cm:
            self.conn.call("nope", (), {})
        self.assertEqual(cm.exception.kind, "MethodNotFound")
        self.assertIsInstance(cm.exception, tether.RemoteError)
        with self.assertRaises(TypeError):
            self.conn.call("add", (1,), {"a": 2})

    def test_threads_get_their_own_answers(self):
        errors = []
        done = []

        def work(k):
            try:
                for i in range(200):
                    if self.conn.call("add", (k, i), {}) != k + i:
                        errors.append((k, i))
                done.append(k)
            except BaseException as e:  # recorded: a thread's exception fails the test
                errors.append((k, repr(e)))

        threads = [threading.Thread(daemon=True, target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(sorted(done), list(range(8)))

    def test_a_request_larger_than_the_pipe_arrives_whole(self):
        # 600 kB is far more than a pipe holds: the write waits for the host
        # to read, whether the write end blocks or (threads called) not.
        big = "x" * 600000
        self.assertEqual(self.conn.call("add", (big, "y"), {}), big + "y")
        self.assertEqual(self.conn.call("add", (1, 2), {}), 3)

    def test_host_going_away_raises_connection_lost_at_once(self):
        with self.assertRaises(tether.ConnectionLost):
            self.conn.call("quit", (), {})
        with self.assertRaises(tether.ConnectionLost):
            self.conn.call("add", (1, 2), {})


class ClientWithoutSpinningTests(ClientTests):
    """The same, as on one core: no spinning."""

    def setUp(self):
        super().setUp()
        self.conn._spin = _spin.Spin(0.0)


class ClientThreadedTests(ClientTests):
    """The same, once several threads called: reads, looks and small writes keep the GIL."""

    def setUp(self):
        super().setUp()
        self.conn._go_threaded()
        self.assertIsNotNone(self.conn._calls)
        self.assertIs(self.conn._spin.calls, self.conn._calls)
        self.assertFalse(os.get_blocking(self.host.c_write))


class ClientWithoutCtypesTests(ClientTests):
    """The same where the calls that keep the GIL cannot be had: the os functions stay."""

    def setUp(self):
        super().setUp()
        load, _nogil.load = _nogil.load, lambda size: None
        try:
            self.conn._go_threaded()
        finally:
            _nogil.load = load
        self.assertTrue(self.conn._threaded)
        self.assertIsNone(self.conn._calls)
        self.assertIsNone(self.conn._spin.calls)
        self.assertTrue(os.get_blocking(self.host.c_write))


class ThreadedModeTests(unittest.TestCase):
    def test_a_thread_that_waits_while_another_reads_turns_it_on(self):
        host = FakeHost()
        host.start()
        conn = _connection.Connection(host.c_read, host.c_write)
        try:
            conn.handshake()
            conn.call("add", (1, 2), {})
            self.assertFalse(conn._threaded)
            self.assertIsNone(conn._calls)
            # One thread holds the reader role while it waits for an answer
            # that never comes; the next caller must wait for the role.
            outcome = []

            def hold():
                try:
                    outcome.append(conn.call("never", (), {}))
                except BaseException as e:  # recorded: checked below
                    outcome.append(type(e))

            holder = threading.Thread(daemon=True, target=hold)
            holder.start()
            deadline = time.monotonic() + 10
            while conn._reader is None and time.monotonic() < deadline:
                time.sleep(0.001)
            self.assertIsNotNone(conn._reader)
            # Answered late, so this caller surely parks while the holder
            # reads (a quick answer could be delivered before it parks, and a
            # caller whose answer is already there needs no threaded mode).
            self.assertEqual(conn.call("slow_add", (2, 3), {}), 5)
            self.assertTrue(conn._threaded)
            self.assertIsNotNone(conn._calls)
            self.assertEqual(conn.call("add", (3, 4), {}), 7)
            # The host goes away: the reader sees it, and both calls fail.
            self.assertRaises(tether.ConnectionLost, conn.call, "quit", (), {})
            holder.join(10)
            self.assertFalse(holder.is_alive())
            self.assertEqual(outcome, [tether.ConnectionLost])
        finally:
            conn.close()

    def test_a_small_frame_waits_for_room_when_the_pipe_is_full(self):
        c_read, h_write = os.pipe()
        h_read, c_write = os.pipe()
        conn = _connection.Connection(c_read, c_write)
        try:
            conn._go_threaded()
            self.assertIsNotNone(conn._calls)
            filled = 0
            while True:  # the write end is non-blocking now
                try:
                    filled += os.write(c_write, b"f" * 4096)
                except BlockingIOError:
                    break
            frame = b"0123456789" * 10
            sent = threading.Event()

            def send():
                conn._send([frame])
                sent.set()

            sender = threading.Thread(daemon=True, target=send)
            sender.start()
            self.assertFalse(sent.wait(0.1), "a write to a full pipe returned")
            got = bytearray()
            while len(got) < filled + len(frame):
                got += os.read(h_read, 65536)
            sender.join(10)
            self.assertTrue(sent.is_set())
            self.assertEqual(bytes(got), b"f" * filled + frame)
            self.assertFalse(os.get_blocking(c_write), "the write end stays non-blocking")
        finally:
            conn.close()
            os.close(h_read)
            os.close(h_write)

    def test_importing_tether_leaves_ctypes_out(self):
        import subprocess
        import sys

        code = "import sys, tether; print('ctypes' in sys.modules, 'tether._nogil' in sys.modules)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=os.path.dirname(os.path.dirname(tether.__file__)))
        self.assertEqual(out.stdout.split(), ["False", "False"])


class ScriptedHost(threading.Thread):
    """A fake host that calls the script's exports, then answers its calls."""

    def __init__(self, requests):
        super().__init__(daemon=True)
        self.c_read, self.h_write = os.pipe()
        self.h_read, self.c_write = os.pipe()
        self.requests = requests
        self.replies = {}
        self.done = threading.Event()

    def send(self, msg):
        for piece in _framing.encode(msg):
            os.write(self.h_write, piece)

    def run(self):
        # As a host speaking protocol 2 does: nothing is sent to the script
        # before it said it is ready (after the handshake).
        d = _framing.FrameDecoder()
        want = sum(1 for m in self.requests if "id" in m)
        self.ready = None
        while len(self.replies) < want or self.ready is None:
            body = d.next()
            if body is None:
                data = os.read(self.h_read, 65536)
                if not data:
                    break
                d.feed(data)
                continue
            msg = _framing.decode(body)
            if msg.get("method") == "rpc.hello":
                self.send({"jsonrpc": "2.0", "id": 0,
                           "result": {"protocol": tether.PROTOCOL_VERSION, "version": "t", "functions": []}})
            elif msg.get("method") == "rpc.ready":
                self.ready = msg["params"]["exports"]
                for request in self.requests:
                    self.send(request)
            elif "method" not in msg:
                self.replies[msg["id"]] = msg
        self.done.set()
        os.close(self.h_write)


class ExportTests(unittest.TestCase):
    def setUp(self):
        _dispatch.EXPORTS.clear()

        @tether.export
        def double(x):
            return 2 * x

        @tether.export("explode")
        def boom():
            raise KeyError("nope")

        @tether.export
        async def later(x):
            return x + 1

    def test_serve_answers_exports_and_reports_errors(self):
        fake = ScriptedHost([
            {"jsonrpc": "2.0", "id": 1, "method": "double", "params": [21]},
            {"jsonrpc": "2.0", "id": 2, "method": "explode"},
            {"jsonrpc": "2.0", "id": 3, "method": "missing"},
            {"jsonrpc": "2.0", "id": 4, "method": "double", "params": [1, 2]},
            {"jsonrpc": "2.0", "id": 5, "method": "later", "params": {"x": 1}},
        ])
        fake.start()
        conn = _connection.Connection(fake.c_read, fake.c_write)
        conn.handshake()
        conn.serve()  # returns when the fake host closes the channel
        self.assertTrue(fake.done.wait(5))
        r = fake.replies
        self.assertEqual(r[1]["result"], 42)
        self.assertEqual(r[2]["error"]["data"]["kind"], "KeyError")
        self.assertIn("raise KeyError", r[2]["error"]["data"]["traceback"])
        self.assertEqual(r[3]["error"]["code"], -32601)
        self.assertIn("double, explode, later", r[3]["error"]["message"])
        self.assertEqual(r[4]["error"]["code"], -32602)
        self.assertEqual(r[5]["result"], 2)
        self.assertEqual(fake.ready, ["double", "explode", "later"])
        conn.close()

    def test_a_call_cancelled_before_it_starts_is_not_run(self):
        ran = []

        @tether.export
        def side_effect():
            ran.append(1)

        fake = ScriptedHost([
            {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 7}},
            {"jsonrpc": "2.0", "id": 7, "method": "side_effect"},
            {"jsonrpc": "2.0", "id": 8, "method": "double", "params": [2]},
        ])
        fake.start()
        conn = _connection.Connection(fake.c_read, fake.c_write)
        conn.handshake()
        conn.serve()
        self.assertTrue(fake.done.wait(5))
        self.assertEqual(ran, [])
        self.assertEqual(fake.replies[7]["error"]["data"]["kind"], "CancelledError")
        self.assertEqual(fake.replies[8]["result"], 4)
        conn.close()

    def test_stop_ends_serve(self):
        fake = ScriptedHost([{"jsonrpc": "2.0", "method": "rpc.stop"}])
        fake.start()
        conn = _connection.Connection(fake.c_read, fake.c_write)
        conn.handshake()
        conn.serve()
        self.assertTrue(conn.stop_requested)
        conn.close()


class Handshake(unittest.TestCase):
    def setUp(self):
        self.saved = {k: os.environ.get(k) for k in ("TETHER_READ_FD", "TETHER_WRITE_FD", "TETHER_SHM_FD")}
        self.host = FakeHost(hello_delay=0.3)
        self.host.start()
        os.environ["TETHER_READ_FD"] = str(self.host.c_read)
        os.environ["TETHER_WRITE_FD"] = str(self.host.c_write)
        os.environ.pop("TETHER_SHM_FD", None)
        _connection._connection = None
        _connection._connect_error = None
        tether.host._forget()

    def tearDown(self):
        conn = _connection._connection
        if conn is not None:
            conn.close()
        _connection._connection = None
        _connection._connect_error = None
        tether.host._forget()
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def test_no_thread_calls_before_the_handshake_is_answered(self):
        # One thread connects (its handshake is answered slowly); another
        # calls meanwhile. Its call must wait for the handshake and see the
        # host's signatures, not race ahead of rpc.hello.
        results = {}

        def first():
            results["first"] = tether.host.add(1, 2)

        def second():
            time.sleep(0.1)  # the first thread is inside the handshake now
            results["signature"] = list(inspect.signature(tether.host.add).parameters)
            results["second"] = tether.host.add(a=3, b=4)

        threads = [threading.Thread(daemon=True, target=first), threading.Thread(daemon=True, target=second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        self.assertEqual(self.host.early, [])
        self.assertEqual(results, {"first": 3, "second": 7, "signature": ["a", "b"]})


class NoHost(unittest.TestCase):
    def test_first_call_says_no_host_started_this_script(self):
        saved = {k: os.environ.pop(k, None) for k in ("TETHER_READ_FD", "TETHER_WRITE_FD")}
        try:
            with self.assertRaises(tether.NotConnected) as cm:
                _connection.Connection.from_environment()
            self.assertIn("not started by a tether host", str(cm.exception))
        finally:
            for k, v in saved.items():
                if v is not None:
                    os.environ[k] = v


if __name__ == "__main__":
    unittest.main()
