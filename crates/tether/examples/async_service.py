"""The script behind the async service example: one export per route.

Run with `cargo run --example async_service`.
"""

import time

import tether

interrupted = 0


@tether.export
def square(n: int) -> int:
    return n * n


@tether.export
def work(seconds: float) -> str:
    """Busy for `seconds` in pure Python, never looking at tether.cancelled()."""
    global interrupted
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            pass
        return "done"
    except tether.Cancelled:
        # The request timed out: the host cancelled the call, and this loop stopped.
        interrupted += 1
        raise


@tether.export
def interrupted_count() -> int:
    return interrupted


tether.serve()
