"""Adaptive spinning before a reader sleeps in ``poll``: the same rule as the host's (spin.rs)."""

from __future__ import annotations

import os
from time import perf_counter as _clock

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; annotations are strings
    from typing import Any

_yield = getattr(os, "sched_yield", lambda: None)


def _spin_bound() -> float:
    """How long a reader may spin, in seconds: ``TETHER_SPIN_US`` from the host, and 0 with one core."""
    try:
        micros = int(os.environ.get("TETHER_SPIN_US", "50"))
    except ValueError:
        micros = 50
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(micros, 0) / 1e6 if cores > 1 else 0.0


class Spin:
    """Adaptive spinning before sleeping in ``poll``; the same rule as the host's.

    Waking a process that sleeps on another core costs tens of microseconds; an
    answer that comes back within a few is caught far sooner by a reader that
    keeps looking. The budget is bounded by ``max`` and adapts: a wait that
    spinning caught keeps it (or raises it to twice that wait); a wait that it
    missed halves it (answers are slow, or the cores are busy with other
    processes); a missed wait that turned out short raises it to twice its length; a
    budget that fell to zero is tried again at the bound every 10 ms.
    While it spins it yields the core to anything else that wants to run, and
    while the cores are crowded (this process keeps being preempted, or far more
    threads are runnable than there are cores; looked at every 10 ms) it does not
    spin at all. With ``calls`` set (several threads call) it looks and yields
    without letting the GIL go, and spins whatever the machine's state: a reader
    that sleeps in ``poll`` hands the GIL to a thread that can only send its
    request and park, and waking it again costs two more hand-offs; the yields
    between looks already give the core to anything else that wants it.
    """

    __slots__ = ("max", "budget", "looked", "crowded", "calls")

    FLOOR = 0.5e-6
    LOOK_EVERY = 0.01

    def __init__(self, max_seconds: float) -> None:
        self.max = max_seconds
        self.budget = max_seconds
        self.looked = -1.0
        self.crowded = False
        # The connection's calls that keep the GIL (``_nogil``), once several
        # threads call through it: looking and yielding then keep the GIL too.
        self.calls: Any = None

    def wait(self, poller: Any, spin: bool = True) -> Any:
        """Return once a polled descriptor is readable: ``poll``'s list of (fd, events).
        ``spin=False``: sleep in ``poll`` at once (the wait is not recorded)."""
        if not spin:
            return poller.poll()
        start = _clock()
        if self.max:
            if start - self.looked >= self.LOOK_EVERY:
                self.looked = start
                # Not with several threads calling (see above). Such a process
                # is preempted by its own threads and its host all the time, and
                # the run queue holds them too: with 8 threads, the run-queue
                # test alone still sent the reader to sleep in poll on 374 to
                # 3,554 of 40,000 calls, and each time other threads parked.
                self.crowded = _machine_is_crowded() if self.calls is None else False
                if not self.budget:
                    # Try again (at most a few wasted spins every look): at
                    # zero the budget would learn nothing more.
                    self.budget = self.max
        budget = 0.0 if self.crowded else self.budget
        if budget:
            calls = self.calls
            poll, pause = (poller.poll, _yield) if calls is None else (calls.poll, calls.pause)
            end = start + budget
            while True:
                ready = poll(0)
                if ready:
                    self.record(_clock() - start, True)
                    return ready
                if _clock() >= end:
                    break
                pause()
        ready = poller.poll()
        self.record(_clock() - start, False)
        return ready

    def record(self, waited: float, caught: bool) -> None:
        maximum = self.max
        if not maximum:
            return
        twice = min(waited * 2, maximum)
        if caught:
            budget = max(self.budget, twice)
        elif waited <= maximum / 2:
            budget = twice
        else:
            budget = self.budget / 2
        self.budget = budget if budget >= self.FLOOR else 0.0


_PREEMPTED = [0]


def _machine_is_crowded() -> bool:
    """Whether spinning would take time from others: this process was preempted
    more than twice since the last look (10 ms ago), or more than twice as many
    threads are runnable as the machine has cores (``/proc/loadavg``)."""
    try:
        import resource

        preempted = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
    except (ImportError, OSError):
        return False
    was, _PREEMPTED[0] = _PREEMPTED[0], preempted
    if preempted - was > 2:
        return True
    return _crowded_run_queue()


def _crowded_run_queue() -> bool:
    """Far more threads want to run than the machine has cores."""
    try:
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return False
    return running > 2 * (os.cpu_count() or 1)
