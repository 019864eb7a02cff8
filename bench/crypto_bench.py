"""Crypto HAL benchmark: seal and open per ESP transform per backend at 64 and 1400 bytes, side by side.

    python bench/crypto_bench.py [--time SECONDS_PER_CELL] [--transforms a,b,...] [--backends a,b]

Prints microseconds per call and packets/s for each backend, and each backend's ratio to the fastest
in its row. A benchmark, not a test: numbers depend on the machine.
"""

import argparse
import os
import sys
import time

from sluice.hal import crypto
from sluice.hal.crypto import transforms

DEFAULT = ["aes128gcm16", "aes256gcm16", "aes128-sha1", "aes256-sha1", "aes128-sha256", "aes256-sha256",
           "aes256-sha384", "aes256-sha512", "aes128-md5", "3des-sha1"]


def _time(fn, budget):
    n = 0
    start = time.perf_counter()
    end = start + budget
    now = start
    while n == 0 or now < end:
        fn()
        n += 1
        now = time.perf_counter()
    return (now - start) / n * 1e6


def bench_cell(mod, name, size, budget):
    ek, ak, sl = transforms.esp_key_lengths(name)
    t = mod.esp_transform(name, os.urandom(ek), os.urandom(ak), os.urandom(sl), os.urandom)
    pt = bytes(size + (-size) % t.block)
    hdr = b"\x00\x00\x10\x00\x00\x00\x00\x01"
    pkt = t.seal(hdr, pt)
    assert t.open(pkt) == pt
    return _time(lambda: t.seal(hdr, pt), budget), _time(lambda: t.open(pkt), budget)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", type=float, default=0.05, help="seconds per measurement (default 0.05)")
    ap.add_argument("--transforms", default=",".join(DEFAULT))
    ap.add_argument("--backends", default=",".join(crypto.NAMES))
    args = ap.parse_args(argv)
    mods = []
    for b in args.backends.split(","):
        try:
            mod = crypto.load(b)
        except ImportError as e:
            print("# %s: cannot import (%s)" % (b, e))
            continue
        why = mod.available()
        if why:
            print("# %s: %s" % (b, why))
            continue
        mods.append(mod)
    head = "%-16s %5s" % ("transform", "bytes")
    for m in mods:
        head += " | %-8s seal us  open us   pkt/s  x" % m.NAME
    print(head)
    for name in args.transforms.split(","):
        for size in (64, 1400):
            cells = []
            for m in mods:
                if not m.supports(name):
                    cells.append(None)
                    continue
                budget = args.time if m.NAME != "pure" else max(args.time, 0.02)
                cells.append(bench_cell(m, name, size, budget))
            best = min((c[0] + c[1] for c in cells if c), default=None)
            line = "%-16s %5d" % (name, size)
            for m, c in zip(mods, cells):
                if c is None:
                    line += " | %-8s %8s %8s %7s %5s" % ("", "-", "-", "-", "-")
                else:
                    s, o = c
                    line += " | %-8s %8.1f %8.1f %7.0f %5.0f" % ("", s, o, 1e6 / (s + o) * 2, (s + o) / best)
            print(line)
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
