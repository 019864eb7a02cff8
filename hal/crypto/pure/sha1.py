"""SHA-1 (FIPS 180-4 6.1) in pure Python, for MS-CHAPv2 (RFC 2759 8.2, 8.7) on ports without hashlib.sha1.

MicroPython-compatible: 32-bit masking, struct packing.
"""

import struct

_M = 0xFFFFFFFF


def _pad(data):
    # FIPS 180-4 5.1.1: 0x80, zeros to 56 mod 64, bit length big-endian.
    n = len(data)
    return data + b"\x80" + b"\x00" * ((55 - n) % 64) + struct.pack(">Q", (n * 8) & 0xFFFFFFFFFFFFFFFF)


def digest(data):
    """The 20-byte SHA-1 digest of data."""
    data = _pad(bytes(data))
    h0, h1, h2, h3, h4 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
    w = [0] * 80
    for off in range(0, len(data), 64):
        w[0:16] = struct.unpack(">16I", data[off:off + 64])
        for t in range(16, 80):
            x = w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]
            w[t] = ((x << 1) | (x >> 31)) & _M
        a, b, c, d, e = h0, h1, h2, h3, h4
        for t in range(80):
            if t < 20:
                f = ((b & c) | (~b & d)) & _M
                k = 0x5A827999
            elif t < 40:
                f = b ^ c ^ d
                k = 0x6ED9EBA1
            elif t < 60:
                f = (b & c) | (b & d) | (c & d)
                k = 0x8F1BBCDC
            else:
                f = b ^ c ^ d
                k = 0xCA62C1D6
            tmp = ((((a << 5) | (a >> 27)) & _M) + f + e + k + w[t]) & _M
            e = d
            d = c
            c = ((b << 30) | (b >> 2)) & _M
            b = a
            a = tmp
        h0 = (h0 + a) & _M
        h1 = (h1 + b) & _M
        h2 = (h2 + c) & _M
        h3 = (h3 + d) & _M
        h4 = (h4 + e) & _M
    return struct.pack(">5I", h0, h1, h2, h3, h4)
