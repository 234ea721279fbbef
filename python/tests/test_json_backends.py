"""The client's two JSON paths: CPython's private C accelerator when it passes the check
at import, else the public json module. Each path must read and write the same bytes, so
the wire tests run again on the public path, in a fresh interpreter that is forced onto it
the two ways it can happen: the private API changed (as Python 3.15 changed it), or is off."""

import os
import subprocess
import sys
import unittest

PYTHON_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

# A stand-in for a future _json whose scanner reads an attribute the client's context does
# not have (Python 3.15 added array_hook this way). The json package's own decoder has every
# attribute its _json reads, so the stand-in serves it as the real one does.
CHANGED_PRIVATE_API = """
import sys, types
import _json as real
fake = types.ModuleType("_json")
def make_scanner(context):
    if type(context).__module__ != "json.decoder":
        return context.some_future_hook
    return real.make_scanner(context)
fake.make_scanner = make_scanner
fake.make_encoder = real.make_encoder
fake.encode_basestring = real.encode_basestring
fake.encode_basestring_ascii = real.encode_basestring_ascii
fake.scanstring = real.scanstring
sys.modules["_json"] = fake
"""

# What runs in the fresh interpreter, after the stand-in (if any) is in place.
CHECK = """
import tether
from tether import _framing
assert _framing.JSON_BACKEND == "json", _framing.JSON_BACKEND
frame = b"".join(bytes(p) for p in _framing.encode({"jsonrpc": "2.0", "id": 3, "result": [1, "\\u00e9"]}))
assert _framing.decode(frame[4:]) == {"jsonrpc": "2.0", "id": 3, "result": [1, "\\u00e9"]}
assert _framing.encode_call(4, "echo", (1, "x", [2.5]), 1 << 20) == b"".join(
    bytes(p) for p in _framing.encode(_framing.request(4, "echo", [1, "x", [2.5]])))
print("public json path ok")
"""

# The wire-format and client test classes, which must pass on either path.
SUITES = [
    "tests.test_framing.GoldenFrames",
    "tests.test_framing.Decoder",
    "tests.test_framing.Values",
    "tests.test_client.ClientTests",
    "tests.test_client.ExportTests",
    "tests.test_client.Handshake",
]


def run(args, env_extra):
    env = dict(os.environ)
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, *args], cwd=PYTHON_DIR, env=env, capture_output=True, text=True, timeout=300
    )


class PublicJsonPath(unittest.TestCase):
    def test_a_changed_private_json_api_falls_back_to_the_public_module(self):
        done = run(["-c", CHANGED_PRIVATE_API + CHECK], {"TETHER_JSON": ""})
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("public json path ok", done.stdout)

    def test_a_missing_accelerator_falls_back_to_the_public_module(self):
        done = run(["-c", "import sys; sys.modules['_json'] = None\n" + CHECK], {"TETHER_JSON": ""})
        self.assertEqual(done.returncode, 0, done.stderr)

    def test_the_wire_tests_pass_on_the_public_path(self):
        done = run(["-m", "unittest", "-q", *SUITES], {"TETHER_JSON": "public"})
        self.assertEqual(done.returncode, 0, done.stderr[-4000:])

    def test_the_accelerator_is_used_where_it_passes_the_check(self):
        # CPython has _json; if this fails, every call of this interpreter takes the slow path.
        done = run(["-c", "from tether import _framing; print(_framing.JSON_BACKEND)"], {"TETHER_JSON": ""})
        self.assertEqual(done.stdout.strip(), "_json", done.stderr)


if __name__ == "__main__":
    unittest.main()
