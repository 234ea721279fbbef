"""The script hello.c runs: calls the C host's functions."""

import sys

import tether
from tether import host

print("argv:", sys.argv[1:])
print("add:", host.add(2, 40))
print("greet:", host.greet("world"))
print("greet:", host.greet("again"))
print("checksum:", host.checksum(b"\x00\x01\x02" * 1000))
try:
    host.add("x", 1)
except host.errors.TypeError as e:
    print("add error:", e.kind, e)
print("functions:", dir(host))
