"""A plugin that keeps working."""

import tether
from tether import host


@tether.export
def work(n):
    host.note("steady.py works on %d" % n)
    return n * 100


tether.serve()
