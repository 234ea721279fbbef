"""The seed's demo script in classic mode, on tether.classic."""

from tether import classic


def main():
    print("Script Starting")
    for i in range(10):
        res = classic.call("foo", 100 - i)
        print(i, " foo: ", res)
        res = classic.call("bar", "something " + str(i))
        print(i, " bar: ", res)
    try:
        classic.call("boo", 1)
    except classic.BadApi as e:
        print("boo: ", type(e).__name__ + ":", e)


if __name__ == "__main__":
    main()
