"""Unit tests of the sans-IO wire format, against the shared golden frames."""

import json
import os
import struct
import unittest

import tether
from tether import FrameTooLarge, ProtocolError, _framing

VECTORS = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "vectors")


def untag(v):
    if isinstance(v, dict):
        if set(v) == {"__hex__"}:
            return bytes.fromhex(v["__hex__"])
        return {k: untag(x) for k, x in v.items()}
    if isinstance(v, list):
        return [untag(x) for x in v]
    return v


def joined(pieces):
    return b"".join(bytes(p) for p in pieces)


def small_frame(text):
    """The frame of JSON ``text`` with no attachments."""
    return struct.pack("<II", len(text) + 4, len(text)) + text


class GoldenFrames(unittest.TestCase):
    def test_native_vectors_encode_and_decode_exactly(self):
        with open(os.path.join(VECTORS, "native.json"), encoding="utf-8") as f:
            vectors = json.load(f)
        self.assertGreater(len(vectors), 5)
        for v in vectors:
            frame = bytes.fromhex(v["frame_hex"])
            message = untag(v["message"])
            with self.subTest(v["name"]):
                self.assertEqual(joined(_framing.encode(message)), frame)
                self.assertEqual(_framing.decode(frame[4:]), message)

    def test_a_nested_request_names_the_request_it_serves(self):
        # Protocol 4: both encoders put "within" last, as in the golden frame.
        with open(os.path.join(VECTORS, "native.json"), encoding="utf-8") as f:
            frame = next(bytes.fromhex(v["frame_hex"]) for v in json.load(f) if v["name"] == "nested-request")
        self.assertEqual(_framing.encode_call(2, "deep", (9,), 1 << 20, 5), frame)
        self.assertEqual(joined(_framing.encode(_framing.request(2, "deep", [9], 5))), frame)
        plain = _framing.encode_call(2, "deep", (9,), 1 << 20)
        self.assertEqual(plain, joined(_framing.encode(_framing.request(2, "deep", [9]))))
        self.assertNotIn(b"within", plain)
        self.assertNotIn(b"within", _framing.encode_call(3, "tick", (), 1 << 20))

    def test_the_short_way_of_a_result_makes_the_same_frame(self):
        for result in [7, 0, -3, -2**63, 2**64 - 1, "é\n\"", "$x", 1.5, True, False, None, [1, "a", None], {"a": [1, {"b": 2.5}]}, []]:
            with self.subTest(result=result):
                want = joined(_framing.encode({"jsonrpc": "2.0", "id": 12, "result": result}))
                self.assertEqual(_framing.encode_result(12, result, 1 << 20), want)
        # The general encoder's cases: bytes, ints past 64 bits, NaN, a string id, the limit.
        for msg_id, result in [(1, b"x"), (1, [b"x"]), (1, 2**64), (1, float("nan")), ("a", 1), (1, "x" * 100)]:
            self.assertIsNone(_framing.encode_result(msg_id, result, 64))
        with self.assertRaises(tether.CannotSend):
            _framing.encode_result(1, {1: 2}, 1 << 20)

    def test_classic_vectors(self):
        from tether import classic

        with open(os.path.join(VECTORS, "classic.json"), encoding="utf-8") as f:
            vectors = json.load(f)
        for v in vectors:
            frame = bytes.fromhex(v["frame_hex"])
            if "name_field" in v:
                name, arg = v["name_field"].encode(), v["arg"].encode()
                built = b"".join((classic._HEADER.pack(len(name)), name, classic._HEADER.pack(len(arg)), arg))
            else:
                result = v["result"].encode()
                built = classic._HEADER.pack(len(result)) + result
            self.assertEqual(built, frame)


class Decoder(unittest.TestCase):
    def test_one_byte_at_a_time(self):
        frames = [b"hello", b"", b"x" * 300]
        wire = b"".join(_framing.HEADER.pack(len(f)) + f for f in frames)
        d = _framing.FrameDecoder()
        got = []
        for i in range(len(wire)):
            d.feed(wire[i : i + 1])
            while True:
                f = d.next()
                if f is None:
                    break
                got.append(f)
        self.assertEqual(got, frames)
        d.feed(b"")
        self.assertIsNone(d.next())

    def test_large_frames_are_read_in_place(self):
        body = bytes(range(256)) * 1000
        msg = {"jsonrpc": "2.0", "id": 1, "result": [b"small", body]}
        wire = joined(_framing.encode(msg)) + _framing.HEADER.pack(3) + b"end"
        d = _framing.FrameDecoder()
        pos = 0
        frames = []
        while pos < len(wire):
            target = d.target()
            if target is not None:
                n = min(len(target), 7000, len(wire) - pos)
                target[:n] = wire[pos : pos + n]
                d.advance(n)
            else:
                n = min(5000, len(wire) - pos)
                d.feed(wire[pos : pos + n])
            pos += n
            while True:
                f = d.next()
                if f is None:
                    break
                frames.append(f)
        self.assertEqual(len(frames), 2)
        self.assertIsInstance(frames[0], memoryview)
        self.assertTrue(frames[0].readonly)
        result = _framing.decode(frames[0])["result"]
        self.assertIsInstance(result[1], memoryview)
        self.assertEqual(result, [b"small", body])
        self.assertEqual(bytes(frames[1]), b"end")

    def test_oversized_prefix_raises_before_the_body(self):
        d = _framing.FrameDecoder(max_frame=16)
        d.feed(_framing.HEADER.pack(17))
        with self.assertRaises(FrameTooLarge):
            d.next()

    def test_eof_inside_a_frame(self):
        d = _framing.FrameDecoder()
        d.feed(_framing.HEADER.pack(10) + b"abc")
        self.assertIsNone(d.next())
        d.feed(b"")
        with self.assertRaises(ProtocolError):
            d.next()


class Values(unittest.TestCase):
    def roundtrip(self, value):
        msg = {"jsonrpc": "2.0", "id": 1, "result": value}
        return _framing.decode(joined(_framing.encode(msg))[4:])["result"]

    def test_bytes_types_travel_as_attachments(self):
        pieces = _framing.encode({"jsonrpc": "2.0", "id": 1, "result": [b"ab", bytearray(b"c"), memoryview(b"de")]})
        self.assertEqual(len(pieces), 4)
        self.assertIn(b'{"$bytes":[0,2]}', bytes(pieces[0]))
        self.assertEqual(self.roundtrip([b"ab", bytearray(b"c"), memoryview(b"de")]), [b"ab", b"c", b"de"])

    def test_values_round_trip(self):
        for v in [None, True, 0, -(2**63), 2**64 - 1, 1.5, "é✓", [1, [2]], {"a": {"b": b"\x00"}}, {"$bytes": 1, "x": 2}]:
            self.assertEqual(self.roundtrip(v), v)

    def test_check_value_refuses_what_cannot_travel(self):
        for bad, exc in [(2**64, OverflowError), (-(2**63) - 1, OverflowError), ({1: 2}, TypeError),
                         ({"$bytes": [0, 1]}, ValueError), ({1, 2}, TypeError), ([object()], TypeError)]:
            with self.subTest(bad=bad), self.assertRaises(exc):
                _framing.check_value(bad)

    def test_bad_bytes_reference_is_a_protocol_error(self):
        text = b'{"jsonrpc":"2.0","id":1,"result":{"$bytes":[0,5]}}'
        body = _framing.HEADER.pack(len(text)) + text + b"abc"
        with self.assertRaises(ProtocolError):
            _framing.decode(body)

    def test_garbage_is_a_protocol_error(self):
        for body in [b"", b"\x01", b"\xff\xff\xff\xff{}", b"\x02\x00\x00\x00{x", b"\x02\x00\x00\x00[]"]:
            with self.subTest(body=body), self.assertRaises(ProtocolError):
                _framing.decode(body)

    def test_fast_call_encoding_equals_the_general_one(self):
        # Integers alone are formatted directly (up to seven), the rest by the JSON encoder.
        ints = [(0, -5, 7), tuple(range(7)), tuple(range(8)), (True, 1), (1, False), (1, "a")]
        for args in [(), (1,), ("é✓", 2.5, None, True), ([1, {"a": [2]}],), (2**64 - 1, -(2**63))] + ints:
            with self.subTest(args=args):
                fast = _framing.encode_call(7, "fn", args, _framing.DEFAULT_MAX_FRAME)
                general = joined(_framing.encode(_framing.request(7, "fn", list(args))))
                self.assertEqual(fast, general)
        # What the fast path cannot take, it leaves to the general encoder.
        self.assertIsNone(_framing.encode_call(7, "fn", (b"x",), _framing.DEFAULT_MAX_FRAME))
        self.assertIsNone(_framing.encode_call(7, "fn", ("x" * 100,), 50))
        with self.assertRaises(OverflowError):
            _framing.encode_call(7, "fn", (2**64,), _framing.DEFAULT_MAX_FRAME)
        with self.assertRaises(TypeError):
            _framing.encode_call(7, "fn", ({1: 2},), _framing.DEFAULT_MAX_FRAME)

    def test_a_method_name_that_needs_escaping_encodes_like_the_general_way(self):
        for name in ['a"b', "50%", "%d%s", "é"]:
            with self.subTest(name=name):
                for args in [(), (1,)]:
                    fast = _framing.encode_call(3, name, args, _framing.DEFAULT_MAX_FRAME)
                    general = joined(_framing.encode(_framing.request(3, name, list(args))))
                    self.assertEqual(fast, general)
                for args in [(), (1,), (1, "x", None, 2.5), tuple(range(9))]:
                    fast = _framing.encode_call(3, name, args, _framing.DEFAULT_MAX_FRAME, within=9)
                    general = joined(_framing.encode(_framing.request(3, name, list(args), within=9)))
                    self.assertEqual(fast, general)

    def test_a_lone_callers_answer_is_read_the_short_way_or_not_at_all(self):
        simple = _framing.simple_result
        NOT = _framing.NOT_SIMPLE

        def reply(msg_id, result):
            return joined(_framing.encode({"jsonrpc": "2.0", "id": msg_id, "result": result}))

        for value in [5, None, "x\u00e9", [1, {"a": 2.5}], True, -(2**63)]:
            with self.subTest(value=value):
                self.assertEqual(simple(reply(12, value), 12), value)
        error = joined(_framing.encode({"jsonrpc": "2.0", "id": 12, "error": {"code": 1, "message": "m"}}))
        two = reply(12, 1) + reply(13, 2)
        cases = {
            "another id": (reply(12, 1), 1),
            "an id it starts": (reply(12, 1), 1),
            "a longer id": (reply(1, 1), 12),
            "an error": (error, 12),
            "attachments": (reply(12, b"xy"), 12),
            "a shared value": (b"\x1c\x00\x00\x00\x18\x00\x00\x00" + b'{"jsonrpc":"2.0","id":12,"result":{"$shm":[0,1]}}'[:0], 12),
            "two frames": (two, 12),
            "half a frame": (reply(12, 1)[:-3], 12),
            "a frame and a half": (reply(12, 1) + reply(13, 2)[:5], 12),
            "nothing": (b"", 12),
            "whitespace": (small_frame(b'{"jsonrpc":"2.0","id":12,"result": 1}'), 12),
            "trailing text": (small_frame(b'{"jsonrpc":"2.0","id":12,"result":1,"x":2}'), 12),
            "bad JSON": (small_frame(b'{"jsonrpc":"2.0","id":12,"result":[1}'), 12),
            "bad UTF-8": (small_frame(b'{"jsonrpc":"2.0","id":12,"result":"\xff"}'), 12),
            "a wrong length": (b"\x00" + reply(12, 1)[1:], 12),
            # One look finds both marks ("$bytes", "$shm"): a string that
            # starts with "$" goes the general way too.
            "a string that starts with $": (reply(12, {"$b": 1}), 12),
        }
        shared = b'{"jsonrpc":"2.0","id":12,"result":{"$shm":[0,1]}}'
        cases["a shared value"] = (small_frame(shared), 12)
        for what, (data, msg_id) in cases.items():
            with self.subTest(what):
                self.assertIs(simple(data, msg_id), NOT)
        # Whatever is not simple, the general decoder still reads.
        d = _framing.FrameDecoder()
        d.feed(two)
        self.assertEqual(_framing.decode(d.next())["result"], 1)
        self.assertEqual(_framing.decode(d.next())["result"], 2)

    def test_a_hosts_call_to_a_lone_caller_is_read_the_short_way_or_not_at_all(self):
        simple = _framing.simple_request

        def frame(message):
            return joined(_framing.encode(message))

        for message in [
            {"jsonrpc": "2.0", "id": 7, "method": "down", "params": [1, "x\u00e9", None]},
            {"jsonrpc": "2.0", "id": "h3", "method": "ident", "params": {"x": [1.5]}},
            {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 4}},
        ]:
            with self.subTest(message=message):
                self.assertEqual(simple(frame(message)), message)
        call = frame({"jsonrpc": "2.0", "id": 7, "method": "down", "params": [1]})
        cases = {
            "an answer": frame({"jsonrpc": "2.0", "id": 7, "result": 1}),
            "attachments": frame({"jsonrpc": "2.0", "id": 7, "method": "m", "params": [b"xy"]}),
            "a shared value": small_frame(b'{"jsonrpc":"2.0","id":7,"method":"m","params":[{"$shm":[0,1]}]}'),
            "a string that starts with $": frame({"jsonrpc": "2.0", "id": 7, "method": "m", "params": ["$x"]}),
            "two frames": call + call,
            "half a frame": call[:-3],
            "nothing": b"",
            "a header alone": call[:8],
            "not JSON-RPC 2.0": small_frame(b'{"jsonrpc":"1.0","id":7,"method":"m"}'),
            "not an object": small_frame(b'["method"]'),
            "trailing text": small_frame(b'{"jsonrpc":"2.0","method":"m"} x'),
            "bad JSON": small_frame(b'{"jsonrpc":"2.0","method":"m"'),
            "bad UTF-8": small_frame(b'{"jsonrpc":"2.0","method":"\xff"}'),
            "a wrong length": b"\x00" + call[1:],
        }
        for what, data in cases.items():
            with self.subTest(what):
                self.assertIsNone(simple(data))

    def test_shared_memory_references(self):
        placed = []

        def place(view, fds):
            placed.append(bytes(view))
            fds.append(99)
            return 0

        fds = []
        pieces = _framing.encode({"jsonrpc": "2.0", "id": 1, "result": [b"x" * 10, b"y"]}, share=(5, place), fds=fds)
        self.assertIn(b'{"$shm":[0,10]}', bytes(pieces[0]))
        self.assertIn(b'{"$bytes":[0,1]}', bytes(pieces[0]))
        self.assertEqual((placed, fds), ([b"x" * 10], [99]))
        body = joined(pieces)[4:]
        got = _framing.decode(body, lambda offset, length: ("mapped", offset, length))["result"]
        self.assertEqual(got, [("mapped", 0, 10), b"y"])
        with self.assertRaises(ProtocolError):
            _framing.decode(body)  # shared memory is off
        with self.assertRaises(ValueError):
            _framing.check_value({"$shm": [0, 1]})

    def test_frame_limit(self):
        msg = {"jsonrpc": "2.0", "id": 1, "result": b"x" * 100}
        with self.assertRaises(FrameTooLarge):
            _framing.encode(msg, max_frame=50)


class DepthLimit(unittest.TestCase):
    """docs/protocol.md §3.2: 100 levels in all, the message being the first."""

    @staticmethod
    def nest(n, inner=7):
        value = inner
        for _ in range(n):
            value = [value]
        return value

    def test_an_argument_may_open_98_levels_and_a_result_99(self):
        _framing.check_value(self.nest(98))
        with self.assertRaises(tether.CannotSend):
            _framing.check_value(self.nest(99))
        _framing.check_value(self.nest(99), _framing.RESULT_ROOM)
        with self.assertRaises(ValueError):
            _framing.check_value(self.nest(100), _framing.RESULT_ROOM)
        with self.assertRaises(tether.CannotSend):
            _framing.encode_call(1, "echo", (self.nest(99),), 1 << 20)
        with self.assertRaises(tether.CannotSend):
            _framing.encode_result(1, self.nest(100), 1 << 20)

    def test_a_bytes_value_takes_two_levels(self):
        _framing.check_value(self.nest(96, b"x"))
        with self.assertRaises(tether.CannotSend):
            _framing.check_value(self.nest(97, b"x"))

    def test_dicts_count_like_lists(self):
        value = 1
        for _ in range(99):
            value = {"k": value}
        with self.assertRaises(tether.CannotSend):
            _framing.check_value(value)
        _framing.check_value(value["k"])


class Spinning(unittest.TestCase):
    def test_the_budget_backs_off_and_comes_back_as_the_host_does(self):
        from tether._spin import Spin

        spin = Spin(50e-6)
        for _ in range(20):
            spin.record(800e-6, False)
        self.assertEqual(spin.budget, 0.0)
        spin.record(4e-6, False)
        self.assertAlmostEqual(spin.budget, 8e-6)
        spin.record(2e-6, True)
        self.assertAlmostEqual(spin.budget, 8e-6)
        spin.record(40e-6, True)
        self.assertAlmostEqual(spin.budget, 50e-6)
        off = Spin(0.0)
        off.record(1e-6, False)
        self.assertEqual(off.budget, 0.0)

    def test_a_collapsed_budget_is_tried_again_at_the_next_look(self):
        import select

        from tether import _spin

        spin = _spin.Spin(50e-6)
        for _ in range(20):
            spin.record(800e-6, False)
        self.assertEqual(spin.budget, 0.0)
        r, w = os.pipe()
        try:
            os.write(w, b"x")
            poller = select.poll()
            poller.register(r, select.POLLIN)
            crowded, _spin._machine_is_crowded = _spin._machine_is_crowded, lambda: False
            try:
                spin.looked = _spin._clock()  # looked just now: no spinning
                spin.wait(poller)
                self.assertLess(spin.budget, 50e-6)  # (twice that short wait)
                spin.budget = 0.0
                spin.looked = -1.0  # due for a look: tries the bound again
                spin.wait(poller)
                self.assertEqual(spin.budget, 50e-6)
            finally:
                _spin._machine_is_crowded = crowded
        finally:
            os.close(r)
            os.close(w)

    def test_a_crowded_machine_stops_the_spin_of_one_thread_but_not_of_threaded_mode(self):
        import select

        from tether import _spin

        class Calls:
            """Looks that keep the GIL, counted."""

            def __init__(self, poller):
                self.poller, self.looks = poller, 0

            def poll(self, timeout):
                self.looks += 1
                return self.poller.poll(timeout)

            def pause(self):
                return 0

        r, w = os.pipe()
        saved = _spin._machine_is_crowded, _spin._crowded_run_queue
        _spin._machine_is_crowded = _spin._crowded_run_queue = lambda: True
        try:
            os.write(w, b"x")
            poller = select.poll()
            poller.register(r, select.POLLIN)
            alone = _spin.Spin(50e-6)
            alone.wait(poller)
            self.assertTrue(alone.crowded)
            threaded = _spin.Spin(50e-6)
            threaded.calls = Calls(poller)
            threaded.wait(poller)
            self.assertFalse(threaded.crowded)
            self.assertEqual(threaded.calls.looks, 1)  # caught by the spin's first look
            self.assertEqual(threaded.budget, 50e-6)
        finally:
            _spin._machine_is_crowded, _spin._crowded_run_queue = saved
            os.close(r)
            os.close(w)


if __name__ == "__main__":
    unittest.main()
