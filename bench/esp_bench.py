"""ESP data-path benchmark: sluice.esp Outbound.seal / Inbound.open (sequence numbers, padding, replay
window, lifetime counters included) per transform per backend at 64 and 1400 bytes, packets/s, and
the per-packet cost the ESP layer adds over the bare transform. Also what a per-packet cipher object
would cost, to show why transforms are built once per SA.

    python bench/esp_bench.py [--time SECONDS_PER_CELL] [--backends openssl,pure]
"""

import argparse
import os
import sys
import time

from sluice.esp import Inbound, Lifetime, Outbound
from sluice.hal import crypto
from sluice.hal.crypto import transforms

TRANSFORMS = ["aes128gcm16", "aes256gcm16", "aes128-sha1", "aes256-sha1", "aes256-sha256", "3des-sha1"]


def _rate(fn, budget):
    n = 0
    start = time.perf_counter()
    end = start + budget
    now = start
    while n == 0 or now < end:
        fn()
        n += 1
        now = time.perf_counter()
    return (now - start) / n * 1e6


def bench(mod, name, size, budget):
    ek, ak, sl = transforms.esp_key_lengths(name)
    keys = (os.urandom(ek), os.urandom(ak), os.urandom(sl))
    lt = Lifetime(soft_seconds=3600, hard_seconds=3900, soft_bytes=1 << 40, hard_bytes=1 << 41)
    out = Outbound(0x1000, name, *keys, rng=os.urandom, backend=mod, lifetime=lt)
    inb = Inbound(0x1000, name, *keys, backend=mod, lifetime=lt, window=128)
    payload = os.urandom(size)
    seal_us = _rate(lambda: out.seal(payload, 17), budget)
    # Each packet opens once (replay window): time a fixed, bounded batch of fresh ones.
    count = max(20, min(50000, int(budget * 1e6 / max(seal_us, 0.1))))
    pkts = [out.seal(payload, 17) for _ in range(count)]
    start = time.perf_counter()
    for p in pkts:
        inb.open(p)
    open_us = (time.perf_counter() - start) / count * 1e6
    t = mod.esp_transform(name, *keys, rng=os.urandom)
    pt = bytes(size + 2 + (-(size + 2)) % t.block)
    hdr = b"\x00\x00\x10\x00\x00\x00\x00\x01"
    raw_us = _rate(lambda: t.seal(hdr, pt), budget)
    return seal_us, open_us, raw_us


def per_packet_cipher_object(budget):
    """What creating a cryptography CBC object per packet costs (the thing transforms avoid)."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    key, iv, pt = os.urandom(16), os.urandom(16), bytes(1408)

    def fresh():
        e = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        e.update(pt)
    reused = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return _rate(fresh, budget), _rate(lambda: reused.update(pt), budget)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time", type=float, default=0.05)
    ap.add_argument("--backends", default="openssl,pure,afalg")
    args = ap.parse_args(argv)
    print("%-8s %-14s %5s %9s %9s %10s %10s %9s" % ("backend", "transform", "bytes", "seal us", "open us",
                                                    "seal pkt/s", "open pkt/s", "esp cost"))
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
        for name in TRANSFORMS:
            if not mod.supports(name):
                continue
            for size in (64, 1400):
                s, o, raw = bench(mod, name, size, args.time)
                print("%-8s %-14s %5d %9.1f %9.1f %10.0f %10.0f %8.1fus" % (b, name, size, s, o, 1e6 / s, 1e6 / o,
                                                                          s - raw))
                sys.stdout.flush()
    try:
        fresh, reused = per_packet_cipher_object(args.time)
        print("# AES-128-CBC 1408 B: new cipher object per packet %.1f us, reused context %.1f us" % (fresh, reused))
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
