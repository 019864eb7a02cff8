"""SHA-256 (FIPS 180-4 6.2) in pure Python, for ports whose hashlib lacks it.

MicroPython-compatible: 32-bit masking, struct packing.
"""

import struct

_M = 0xFFFFFFFF

# FIPS 180-4 4.2.2: first 32 bits of the fractional parts of the cube roots of the first 64 primes.
_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4, 0xAB1C5ED5,
    0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174,
    0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967,
    0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85,
    0xA2BFE8A1, 0xA81A664B, 0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)
# FIPS 180-4 5.3.3
_H0 = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19)


def _ror(x, s):
    return ((x >> s) | (x << (32 - s))) & _M


def _pad(data):
    n = len(data)
    return data + b"\x80" + b"\x00" * ((55 - n) % 64) + struct.pack(">Q", (n * 8) & 0xFFFFFFFFFFFFFFFF)


def digest(data):
    """The 32-byte SHA-256 digest of data."""
    data = _pad(bytes(data))
    h = list(_H0)
    w = [0] * 64
    for off in range(0, len(data), 64):
        w[0:16] = struct.unpack(">16I", data[off:off + 64])
        for t in range(16, 64):
            x = w[t - 15]
            y = w[t - 2]
            s0 = _ror(x, 7) ^ _ror(x, 18) ^ (x >> 3)
            s1 = _ror(y, 17) ^ _ror(y, 19) ^ (y >> 10)
            w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & _M
        a, b, c, d, e, f, g, hh = h
        for t in range(64):
            t1 = (hh + (_ror(e, 6) ^ _ror(e, 11) ^ _ror(e, 25)) + ((e & f) ^ (~e & g)) + _K[t] + w[t]) & _M
            t2 = ((_ror(a, 2) ^ _ror(a, 13) ^ _ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) & _M
            hh = g
            g = f
            f = e
            e = (d + t1) & _M
            d = c
            c = b
            b = a
            a = (t1 + t2) & _M
        h[0] = (h[0] + a) & _M
        h[1] = (h[1] + b) & _M
        h[2] = (h[2] + c) & _M
        h[3] = (h[3] + d) & _M
        h[4] = (h[4] + e) & _M
        h[5] = (h[5] + f) & _M
        h[6] = (h[6] + g) & _M
        h[7] = (h[7] + hh) & _M
    return struct.pack(">8I", h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
