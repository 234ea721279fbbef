"""The script side of hpp.cpp."""

import tether
from tether import host


@tether.export
def double(x):
    return 2 * x


@tether.export
def fail():
    raise ValueError("the script failed on purpose")


@tether.export
def types():
    out = [
        host.add(2, 3),
        host.add(a=1, b=1),
        host.concat("tether", ".hpp"),
        host.total(b"\x01\x02\x03"),
        host.negate(True),
        host.half(3.0),
        host.echo({"k": [1, "two"]}),
        host.reverse(b"abc"),
        host.nested(21),
    ]
    try:
        host.throws("boom")
    except tether.RemoteError as e:
        out.append("%s: %s" % (e.kind, e))
    try:
        host.add("x", 1)
    except tether.RemoteError as e:
        out.append(e.kind)
    host.nothing()
    return out


tether.serve()
