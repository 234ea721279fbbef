"""An export's shape: read from its code object when that is exact, else from inspect."""

import functools
import unittest

from tether import _dispatch


def plain(a, b):
    return a + b


async def coro(a):
    return a


def defaults(a, b=1):
    return a + b


def star(*args):
    return args


def keyword_only(a, *, b):
    return a + b


@functools.wraps(plain)
def decorated(*args, **kwargs):
    return plain(*args, **kwargs)


class Shape(unittest.TestCase):
    def test_plain_functions_are_read_from_their_code(self) -> None:
        self.assertEqual(_dispatch._plain_shape(plain), (2, False))
        self.assertEqual(_dispatch._plain_shape(coro), (1, True))
        self.assertEqual(_dispatch._plain_shape(lambda: None), (0, False))

    def test_anything_else_goes_to_inspect(self) -> None:
        for fn in (defaults, star, keyword_only, decorated, functools.partial(plain, 1), len):
            self.assertIsNone(_dispatch._plain_shape(fn), fn)

    def test_an_export_gets_the_same_arity_and_signature_either_way(self) -> None:
        for fn, arity in ((plain, 2), (defaults, None), (decorated, 2), (keyword_only, None)):
            export = _dispatch.Export("f", fn)
            self.assertEqual(export.arity, arity, fn)
            self.assertIsNotNone(export.signature)
        self.assertTrue(_dispatch.Export("c", coro).is_async)
        self.assertFalse(_dispatch.Export("p", plain).is_async)
        self.assertEqual(str(_dispatch.Export("d", decorated).signature), "(a, b)")


if __name__ == "__main__":
    unittest.main()
