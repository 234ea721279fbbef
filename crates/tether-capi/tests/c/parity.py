"""The script side of parity.c: one mode per argv[1]."""

import logging
import os
import sys
import time

import tether
from tether import host

mode = sys.argv[1]


@tether.export
def double(x):
    return 2 * x


@tether.export
def length(data):
    return len(data)


@tether.export
def nested(x):
    # The host's callback calls double() back in this script.
    return host.twice_via_script(x)


if mode == "settings":
    print("spin", os.environ.get("TETHER_SPIN_US"))
    print("shm", "TETHER_SHM_FD" in os.environ)
    print("own group", os.getpgid(0) == os.getpid())
    print("named", host.add(a=40, b=2))
    logging.getLogger("parity").warning("a warning from the script")
    sys.stdout.flush()
    sys.stderr.write("line one\nline two\n")
    sys.stderr.flush()
elif mode == "sleep":
    time.sleep(60)
elif mode == "serve":
    tether.serve()
elif mode == "shadow":
    try:
        open("/etc/shadow").read()
        print("shadow ALLOWED")
    except PermissionError:
        print("shadow denied")
elif mode == "spin":
    while True:
        pass
