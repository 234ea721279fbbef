"""Shouts: a well-behaved plugin."""

import logging

import tether

log = logging.getLogger("upper")
logging.getLogger().setLevel(logging.INFO)  # the host forwards INFO and up


@tether.export
def describe() -> dict:
    return {"name": "upper", "version": "1.0", "about": "upper-cases the text"}


@tether.export
def handle(text: str) -> str:
    log.info("handling %d characters", len(text))
    return text.upper()


tether.serve()
