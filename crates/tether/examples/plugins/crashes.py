"""A plugin that dies in the middle of a call."""

import os
import sys

import tether


@tether.export
def describe() -> dict:
    return {"name": "crashes", "version": "0.2", "about": "exits halfway through"}


@tether.export
def handle(text: str) -> str:
    sys.stderr.write("crashes: giving up on %r\n" % text)
    sys.stderr.flush()
    os._exit(3)


tether.serve()
