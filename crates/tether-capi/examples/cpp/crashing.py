"""A plugin that serves a call, then crashes on the second."""

import os

import tether
from tether import host


@tether.export
def work(n):
    host.note("crashing.py works on %d" % n)
    if n > 1:
        os.abort()
    return n * 10


tether.serve()
