"""Passing a numpy array's bytes to the host and back, copying once on each side.

Sending: `memoryview(array)` goes straight into the pipe (os.writev), no copy.
Receiving: the host's answer is read from the pipe into one buffer, and the bytes
value is a read-only memoryview into it, which `np.frombuffer` wraps without a copy.
Run it with `cargo run --example numpy_bytes` (needs `pip install numpy`).
"""

import sys

try:
    import numpy as np
except ImportError:
    sys.exit("this example needs numpy: pip install numpy")

from tether import host

a = np.arange(1_000_000, dtype="<f8")
scaled = host.scale(memoryview(a), 2.5)  # the host multiplies every element
b = np.frombuffer(scaled, dtype="<f8")
assert b.base is not None and not b.flags.owndata, "frombuffer made a copy"
assert np.array_equal(b, a * 2.5)
print("sent %d bytes, got %d back as %s; b[:4] = %s" % (a.nbytes, b.nbytes, type(scaled).__name__, b[:4]))
