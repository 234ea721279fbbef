"""The asyncio API: ``await tether.aio.host.NAME(...)``.

Many calls may be in flight at once from one event loop; cancelling the task
that awaits a call tells the host and leaves the channel usable. Exports may be
``async def``; ``await tether.aio.serve()`` answers the host's calls inside the
running loop.
"""

from __future__ import annotations

from ._connection import connection
from ._host import Host


host = Host(is_async=True)


async def serve() -> None:
    """Answer the host's calls in the running loop until the host is done with the script.

    Returns when the host closes the channel or asks the script to stop.
    """
    await connection().aserve()


__all__ = ["host", "serve"]
