"""The seed's demo script, on tether: ten rounds of foo and bar, then an unknown function."""

import tether
from tether import host


@tether.export
def square(x):
    return x * x


def main():
    print("Script Starting")
    for i in range(10):
        res = host.foo(100 - i)
        print(i, " foo: ", res)
        res = host.bar("something " + str(i))
        print(i, " bar: ", res)
    try:
        host.boo(1)
    except tether.MethodNotFound as e:
        print("boo: ", type(e).__name__ + ":", e)
    print("map_with: ", host.map_with("square", [1, 2, 3]))


if __name__ == "__main__":
    main()
