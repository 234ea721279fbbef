"""A plugin-style script that hello.c spawns and calls."""

import tether


@tether.export
def square(x):
    return x * x


@tether.export
def explode():
    raise RuntimeError("the plugin failed on purpose")


tether.serve()
