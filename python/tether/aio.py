"""The asyncio API: ``await tether.aio.host.NAME(...)``.

Many calls may be in flight at once from one event loop; cancelling the task
that awaits a call tells the host and leaves the channel usable. Exports may be
``async def``; ``await tether.aio.serve()`` answers the host's calls inside the
running loop.
"""

from typing import Any, Dict, List

from ._connection import connection


class AsyncHostFunction:
    """One host function; awaiting a call to it calls the host."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return await connection().acall(self._name, args, kwargs)

    def __repr__(self) -> str:
        return "<async host function %s>" % self._name


class AsyncHost:
    """The host's functions, as coroutines."""

    def __init__(self) -> None:
        self._functions: Dict[str, AsyncHostFunction] = {}

    def __getattr__(self, name: str) -> AsyncHostFunction:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        f = self._functions.get(name)
        if f is None:
            f = self._functions[name] = AsyncHostFunction(name)
        return f

    def __dir__(self) -> List[str]:
        return sorted(connection().functions)


host = AsyncHost()


async def serve() -> None:
    """Answer the host's calls in the running loop until the host is done with the script.

    Returns when the host closes the channel or asks the script to stop.
    """
    await connection().aserve()


__all__ = ["AsyncHost", "host", "serve"]
