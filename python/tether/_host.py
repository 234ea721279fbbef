"""``tether.host``: the host's functions as attributes."""

from typing import Any, Dict, List

from ._connection import connection


class HostFunction:
    """One host function; calling it calls the host."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def __name__(self) -> str:  # type: ignore[override]
        return self._name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return connection().call(self._name, args, kwargs)

    def __repr__(self) -> str:
        f = connection().functions.get(self._name)
        return "<host function %s>" % (f.signature if f else self._name)


class Host:
    """The functions of the host that started this script.

    ``host.NAME(*args, **kwargs)`` calls the host's function NAME and returns
    its result; ``dir(host)`` lists the host's functions. Nothing connects
    until the first call, so importing tether never fails.
    """

    def __init__(self) -> None:
        self._functions: Dict[str, HostFunction] = {}

    def __getattr__(self, name: str) -> HostFunction:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        f = self._functions.get(name)
        if f is None:
            f = self._functions[name] = HostFunction(name)
        return f

    def __dir__(self) -> List[str]:
        return sorted(connection().functions)

    def __repr__(self) -> str:
        return "<tether host>"


host = Host()
