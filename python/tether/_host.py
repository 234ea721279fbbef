"""``tether.host``: the host's functions as attributes, with their signatures and docs."""

from __future__ import annotations

import keyword

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs start-up time; it is imported when help() needs it
    from typing import Any, Callable, Dict, List, Optional

from ._connection import Function, connection
from ._errors import Error, Errors

_TYPING_NAMES = ("Any", "Dict", "List", "Literal", "Optional", "Tuple", "Type", "TypedDict", "Union")


def _evaluate(annotation: str, namespace: Dict[str, Any]) -> Any:
    """The typing object an annotation string names, or the string when it cannot be built."""
    try:
        return eval(annotation, {"__builtins__": {"None": None, "int": int, "float": float, "str": str,
                                                  "bytes": bytes, "bool": bool}}, namespace)
    except Exception:
        return annotation


def _namespace() -> Dict[str, Any]:
    """Typing names plus a TypedDict for every struct the host described."""
    import typing

    conn = connection()
    ns: Dict[str, Any] = {name: getattr(typing, name) for name in _TYPING_NAMES}
    for name, fields in getattr(conn, "types", {}).items():
        try:
            ns[name] = typing.TypedDict(name, {f: _evaluate(a, ns) for f, a in fields})  # type: ignore[operator]
        except Exception:
            ns[name] = dict
    return ns


_types: Optional[Dict[str, Any]] = None


def host_type(name: str) -> Any:
    """The struct ``name`` the host described, as a TypedDict: ``from tether import Row``
    works at run time as the stubs promise it does for the type checker."""
    global _types
    try:
        conn = connection()
    except Error as e:
        raise AttributeError(
            "module 'tether' has no attribute %r: the host's types exist only in a script a tether "
            "host runs (%s); for a type checker alone, import them under `if typing.TYPE_CHECKING:`"
            % (name, e)
        ) from None
    if name not in conn.types:
        raise AttributeError(
            "module 'tether' has no attribute %r (the host describes these types: %s)"
            % (name, ", ".join(sorted(conn.types)) or "none")
        )
    if _types is None:
        _types = _namespace()
    return _types[name]


def _optional_tail(annotations: List[str]) -> int:
    """Index of the first of the trailing parameters that may be left out."""
    i = len(annotations)
    while i > 0 and annotations[i - 1].startswith("Optional["):
        i -= 1
    return i


def build(description: Optional[Function], name: str, is_async: bool) -> Callable[..., Any]:
    """A real Python function that calls host function ``name``.

    With parameter names it has the host's exact signature, so Python itself
    rejects a wrong keyword with its usual message, and ``help()`` and
    ``inspect.signature`` show names, types and the doc.
    """
    params = description.params if description is not None else None
    usable = params is not None and all(p.isidentifier() and not keyword.iskeyword(p) for p in params)
    ns: Dict[str, Any] = {"_connection": connection, "_Error": Error}
    if usable and name.isidentifier() and not keyword.iskeyword(name):
        assert params is not None and description is not None
        tail = _optional_tail(description.annotations[: len(params)])
        header = ", ".join(p + ("=None" if i >= tail else "") for i, p in enumerate(params))
        packed = "({}{})".format(", ".join(params), "," if len(params) == 1 else "")
        # The connection's method is bound once: a call costs one lookup less.
        conn = connection()
        ns["_call"] = conn.acall if is_async else conn.call
        # The asyncio form returns the call's future itself: awaiting it needs
        # no task or coroutine of its own, so many calls cost less.
        if is_async:
            src = "def {}({}):\n    return _call({!r}, {}, {{}})\n".format(name, header, name, packed)
        else:
            # The traceback of a host error starts in this function: the client's own
            # frames below it say nothing to the script's author.
            src = (
                "def {}({}):\n    try:\n        return _call({!r}, {}, {{}})\n"
                "    except _Error as e:\n        raise e.with_traceback(None) from None\n"
            ).format(name, header, name, packed)
        exec(compile(src, "<tether.host>", "exec"), ns)
        fn: Callable[..., Any] = ns[name]
        types = _namespace()
        fn.__annotations__ = {p: _evaluate(a, types) for p, a in zip(params, description.annotations)}
        fn.__annotations__["return"] = _evaluate(description.returns, types)
    elif is_async:

        def call_async(*args: Any, **kwargs: Any) -> Any:
            return connection().acall(name, args, kwargs)

        fn = call_async
    else:

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return connection().call(name, args, kwargs)
            except Error as e:
                # The traceback starts here: the client's own frames below say nothing
                # to the script's author.
                raise e.with_traceback(None) from None

        fn = call

    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = "tether.host"
    if description is not None:
        doc = description.doc or ""
        fn.__doc__ = "{}\n\nHost function {}.".format(doc, description.signature).strip()
    return fn


class Host:
    """The functions of the host that started this script.

    ``host.NAME(*args, **kwargs)`` calls the host's function NAME and returns
    its result; ``dir(host)`` lists the host's functions, ``help(host.NAME)``
    shows one, and ``host.errors.KIND`` is the exception class for the host's
    errors of that kind. Nothing connects until first use, so importing tether
    never fails.
    """

    errors = Errors()

    def __init__(self, is_async: bool = False) -> None:
        self._is_async = is_async

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        f = build(connection().functions.get(name), name, self._is_async)
        # A plain attribute from now on: __getattr__ runs once per name.
        self.__dict__[name] = f
        return f

    def _forget(self) -> None:
        """Drop the functions built so far (a test's new connection)."""
        is_async = self._is_async
        self.__dict__.clear()
        self._is_async = is_async

    def __dir__(self) -> List[str]:
        return sorted(connection().functions)

    def __repr__(self) -> str:
        return "<tether host>"


host = Host()
