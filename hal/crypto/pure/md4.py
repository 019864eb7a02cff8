"""MD4 (RFC 1320) in pure Python: MS-CHAPv2's NtPasswordHash needs it and OpenSSL 3 hides it (RFC 2759 8.3).

MicroPython-compatible: 32-bit masking, struct packing, no int.to_bytes keywords.
"""

import struct

_M = 0xFFFFFFFF


def _rol(x, s):
    x &= _M
    return ((x << s) | (x >> (32 - s))) & _M


def _pad(data):
    # RFC 1320 3.1-3.2: identical padding to MD5.
    n = len(data)
    return data + b"\x80" + b"\x00" * ((55 - n) % 64) + struct.pack("<Q", (n * 8) & 0xFFFFFFFFFFFFFFFF)


# RFC 1320 3.4: word order and shifts of rounds 2 and 3.
_R2 = (0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
_R3 = (0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15)
_S1 = (3, 7, 11, 19)
_S2 = (3, 5, 9, 13)
_S3 = (3, 9, 11, 15)


def digest(data):
    """The 16-byte MD4 digest of data."""
    data = _pad(bytes(data))
    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for off in range(0, len(data), 64):
        x = struct.unpack("<16I", data[off:off + 64])
        a, b, c, d = h
        for i in range(16):
            a = _rol(a + ((b & c) | (~b & d)) + x[i], _S1[i & 3])
            a, b, c, d = d, a, b, c
        for i in range(16):
            a = _rol(a + ((b & c) | (b & d) | (c & d)) + x[_R2[i]] + 0x5A827999, _S2[i & 3])
            a, b, c, d = d, a, b, c
        for i in range(16):
            a = _rol(a + (b ^ c ^ d) + x[_R3[i]] + 0x6ED9EBA1, _S3[i & 3])
            a, b, c, d = d, a, b, c
        h[0] = (h[0] + a) & _M
        h[1] = (h[1] + b) & _M
        h[2] = (h[2] + c) & _M
        h[3] = (h[3] + d) & _M
    return struct.pack("<4I", h[0], h[1], h[2], h[3])
