"""The client against an in-process fake host over real pipes."""

import os
import threading
import unittest

import tether
from tether import _connection, _framing


class FakeHost(threading.Thread):
    """Answers rpc.hello, then `add` and `echo`, over real pipes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.c_read, self.h_write = os.pipe()
        self.h_read, self.c_write = os.pipe()

    def run(self):
        d = _framing.FrameDecoder()
        while True:
            body = d.next()
            if body is None:
                data = os.read(self.h_read, 65536)
                if not data:
                    return
                d.feed(data)
                continue
            msg = _framing.decode(body)
            if msg["method"] == "rpc.hello":
                result = {"protocol": 1, "version": "test", "max_frame": 1 << 20,
                          "functions": [{"name": "add", "params": ["a", "b"], "signature": "add(a, b)"}]}
                reply = {"jsonrpc": "2.0", "id": msg["id"], "result": result}
            elif msg["method"] == "add":
                p = msg.get("params", [])
                a, b = (p["a"], p["b"]) if isinstance(p, dict) else p
                reply = {"jsonrpc": "2.0", "id": msg["id"], "result": a + b}
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

        def work(k):
            for i in range(200):
                if self.conn.call("add", (k, i), {}) != k + i:
                    errors.append((k, i))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def test_host_going_away_raises_connection_lost_at_once(self):
        with self.assertRaises(tether.ConnectionLost):
            self.conn.call("quit", (), {})
        with self.assertRaises(tether.ConnectionLost):
            self.conn.call("add", (1, 2), {})


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
