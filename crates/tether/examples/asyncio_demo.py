"""An asyncio script: many host calls in flight from one event loop, and an async export.

Run it under the demo host: `cargo run --example demo -- crates/tether/examples/asyncio_demo.py`.
"""

import asyncio

import tether
from tether import aio


@tether.export
async def square(x: int) -> int:
    await asyncio.sleep(0)  # async exports may await
    return x * x


async def main() -> None:
    # 100 calls at once; each echo comes back to the call that made it.
    results = await asyncio.gather(*(aio.host.echo(i) for i in range(100)))
    assert results == list(range(100))
    # The host calls back into the async export while our call is pending.
    print("map_with:", await aio.host.map_with("square", [1, 2, 3]))
    # A slow call can be cancelled; the channel stays usable.
    slow = asyncio.ensure_future(aio.host.sleep(5))
    await asyncio.sleep(0.05)
    slow.cancel()
    try:
        await slow
    except asyncio.CancelledError:
        print("cancelled a slow call")
    print("echo after cancel:", await aio.host.echo("still fine"))


asyncio.run(main())
