"""Helpers for tests that run under both CPython (pytest) and MicroPython (tests/micropython/run.mjs).

Only the MicroPython subset: no pytest, no typing, no dataclasses.
"""


def raises(exc, fn, *args, **kwargs):
    """Call fn and return the exception it raised; fail if it raised nothing or something else."""
    try:
        fn(*args, **kwargs)
    except exc as e:
        return e
    raise AssertionError("%s not raised by %r" % (exc.__name__, fn))


class SeededRng:
    """Deterministic rng(n) -> bytes for sans-IO machines (xorshift32, portable to MicroPython)."""

    def __init__(self, seed=1):
        self.state = (seed or 1) & 0xFFFFFFFF

    def __call__(self, n):
        out = bytearray(n)
        s = self.state
        for i in range(n):
            s ^= (s << 13) & 0xFFFFFFFF
            s ^= s >> 17
            s ^= (s << 5) & 0xFFFFFFFF
            out[i] = s & 0xFF
        self.state = s
        return bytes(out)

    def random(self):
        """A float in [0, 1), for loss/reorder decisions in tests."""
        return int.from_bytes(self(4), "big") / 4294967296.0


def unhex(s):
    """bytes from hex text with any whitespace (RFC vectors are printed spaced)."""
    return bytes.fromhex("".join(s.split()))


try:
    from unittest import SkipTest  # pytest reports it as a skip
except ImportError:  # MicroPython without micropython-lib: run.mjs reports any class named SkipTest as SKIP
    class SkipTest(Exception):
        """Raise to skip a test."""
