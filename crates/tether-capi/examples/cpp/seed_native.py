"""The seed's script in tether's native mode: host.foo and host.bar are
ordinary calls with typed results, and the missing boo is a clear error."""

import time

import tether
from tether import host


def main():
    print("Script Starting")
    for i in range(10):
        res = host.foo(100 - i)
        print(i, " foo: ", res)
        res = host.bar("something " + str(i))
        print(i, " bar: ", res)
        time.sleep(0.01)
    try:
        host.boo(5)
    except tether.MethodNotFound as e:
        print("boo: ", e)
    try:
        host.foo("not a number")
    except tether.RemoteError as e:
        print("foo error: ", e.kind, e)


if __name__ == "__main__":
    main()
