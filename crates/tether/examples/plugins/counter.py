"""Counts words and keeps a running total on the host: a plugin that calls back."""

import tether
from tether import host


@tether.export
def describe() -> dict:
    return {"name": "counter", "version": "2.1", "about": "counts words, totals kept by the host"}


@tether.export
def handle(text: str) -> str:
    words = len(text.split())
    total = host.add_to_total(words)  # the host knows which plugin calls
    return "%d words (%d so far)" % (words, total)


tether.serve()
