"""A pool worker for `cargo run --example demo -- --pool N --calls M crates/tether/examples/pool_work.py`:
`work(i)` spends about 2 ms of pure-Python CPU and returns a number."""

import tether


@tether.export
def work(i: int) -> int:
    total = 0
    for k in range(20_000):
        total += k * i % 7
    return total


tether.serve()
