"""``python -m tether --version``: the versions this client knows."""

from __future__ import annotations

import argparse
import os
import sys

from ._version import PROTOCOL_VERSION, __version__


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tether", description="The tether Python client.")
    parser.add_argument("--version", action="store_true", help="print the client's and the host's versions")
    args = parser.parse_args()
    if not args.version:
        parser.print_help()
        return 0
    print("tether client %s (protocol %d)" % (__version__, PROTOCOL_VERSION))
    if os.environ.get("TETHER_READ_FD"):
        from ._connection import connection

        print("tether host %s" % connection().host_version)
    else:
        print("no host: this process was not started by a tether host")
    return 0


if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``| head``, ``| grep -q``): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
