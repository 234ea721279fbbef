"""The zygote's own pieces: its messages and the descriptors they carry, OS strings
from the host, and the ``sys.path`` a forked worker gets."""

import os
import socket
import sys
import unittest

from tether import _zygote


class Messages(unittest.TestCase):
    def test_a_message_carries_its_descriptors_in_order(self) -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        try:
            _zygote._send(a, {"op": "fork", "id": 7}, [r1, r2])
            got = _zygote._receive(b)
            assert got is not None
            message, fds = got
            self.assertEqual(message, {"op": "fork", "id": 7})
            self.assertEqual(len(fds), 2)
            os.write(w1, b"one")
            os.write(w2, b"two")
            self.assertEqual(os.read(fds[0], 3), b"one")
            self.assertEqual(os.read(fds[1], 3), b"two")
            for fd in fds:
                os.close(fd)
        finally:
            for fd in (r1, w1, r2, w2):
                os.close(fd)
            a.close()
            b.close()

    def test_the_end_of_the_host_is_none(self) -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        a.close()
        try:
            self.assertIsNone(_zygote._receive(b))
        finally:
            b.close()


class Strings(unittest.TestCase):
    def test_text_and_hex_bytes(self) -> None:
        self.assertEqual(_zygote._os_string("plain"), "plain")
        self.assertEqual(_zygote._os_string({"hex": "61ff62"}), os.fsdecode(b"a\xffb"))


class Path(unittest.TestCase):
    def test_the_script_directory_then_its_own_pythonpath_then_the_rest(self) -> None:
        saved_path, saved_env = list(sys.path), os.environ.get("PYTHONPATH")
        try:
            os.environ["PYTHONPATH"] = os.pathsep.join(["/client", "/mine"])
            _zygote._fix_path("/srv/job/run.py", ["/zygote-only", "/client", "/usr/lib/python3"], ["/zygote-only", "/client"])
            self.assertEqual(sys.path, ["/srv/job", "/client", "/mine", "/usr/lib/python3"])
        finally:
            sys.path[:] = saved_path
            if saved_env is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved_env


if __name__ == "__main__":
    unittest.main()
