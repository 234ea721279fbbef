"""A plugin with a bug: handle() raises."""

import tether


@tether.export
def describe() -> dict:
    return {"name": "raises", "version": "0.1", "about": "parses the text as a number"}


@tether.export
def handle(text: str) -> int:
    return int(text)  # ValueError for anything but a number


tether.serve()
