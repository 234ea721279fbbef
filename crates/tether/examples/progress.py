"""A script that asks the host for a long job and shows the host's progress reports.

The host calls back into the script's `progress` export while its own call is still
running. Run it with `cargo run --example progress`.
"""

import tether
from tether import host

reports = []


@tether.export
def progress(done: int, total: int) -> None:
    reports.append(done)
    bar = "#" * (20 * done // total)
    print("\r[%-20s] %3d%%" % (bar, 100 * done // total), end="", flush=True)


result = host.crunch(10)
print("\nresult:", result)
assert reports == list(range(1, 11)), reports
