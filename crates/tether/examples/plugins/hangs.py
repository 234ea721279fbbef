"""A plugin that never answers: handle() loops forever."""

import time

import tether


@tether.export
def describe() -> dict:
    return {"name": "hangs", "version": "0.0", "about": "thinks very hard"}


@tether.export
def handle(text: str) -> str:
    while True:
        time.sleep(0.1)


tether.serve()
