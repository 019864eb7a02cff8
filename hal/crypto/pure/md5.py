"""MD5 (RFC 1321) in pure Python, for ports without a native hashlib.md5 (CHAP, RFC 1994).

Written for MicroPython too: every addition is masked to 32 bits, words are packed with struct.
"""

import struct

_M = 0xFFFFFFFF

# RFC 1321 3.4: T[i] = floor(2^32 * abs(sin(i + 1))), written out so that no float maths is needed.
_T = (
    0xD76AA478, 0xE8C7B756, 0x242070DB, 0xC1BDCEEE, 0xF57C0FAF, 0x4787C62A, 0xA8304613, 0xFD469501,
    0x698098D8, 0x8B44F7AF, 0xFFFF5BB1, 0x895CD7BE, 0x6B901122, 0xFD987193, 0xA679438E, 0x49B40821,
    0xF61E2562, 0xC040B340, 0x265E5A51, 0xE9B6C7AA, 0xD62F105D, 0x02441453, 0xD8A1E681, 0xE7D3FBC8,
    0x21E1CDE6, 0xC33707D6, 0xF4D50D87, 0x455A14ED, 0xA9E3E905, 0xFCEFA3F8, 0x676F02D9, 0x8D2A4C8A,
    0xFFFA3942, 0x8771F681, 0x6D9D6122, 0xFDE5380C, 0xA4BEEA44, 0x4BDECFA9, 0xF6BB4B60, 0xBEBFBC70,
    0x289B7EC6, 0xEAA127FA, 0xD4EF3085, 0x04881D05, 0xD9D4D039, 0xE6DB99E5, 0x1FA27CF8, 0xC4AC5665,
    0xF4292244, 0x432AFF97, 0xAB9423A7, 0xFC93A039, 0x655B59C3, 0x8F0CCC92, 0xFFEFF47D, 0x85845DD1,
    0x6FA87E4F, 0xFE2CE6E0, 0xA3014314, 0x4E0811A1, 0xF7537E82, 0xBD3AF235, 0x2AD7D2BB, 0xEB86D391,
)
_S = (7, 12, 17, 22) * 4 + (5, 9, 14, 20) * 4 + (4, 11, 16, 23) * 4 + (6, 10, 15, 21) * 4


def _pad(data):
    # RFC 1321 3.1-3.2: 0x80, zeros to 56 mod 64, bit length little-endian.
    n = len(data)
    return data + b"\x80" + b"\x00" * ((55 - n) % 64) + struct.pack("<Q", (n * 8) & 0xFFFFFFFFFFFFFFFF)


def digest(data):
    """The 16-byte MD5 digest of data."""
    data = _pad(bytes(data))
    a0, b0, c0, d0 = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476
    for off in range(0, len(data), 64):
        x = struct.unpack("<16I", data[off:off + 64])
        a, b, c, d = a0, b0, c0, d0
        for i in range(64):
            if i < 16:
                f = (b & c) | (~b & d)
                g = i
            elif i < 32:
                f = (d & b) | (~d & c)
                g = (5 * i + 1) & 15
            elif i < 48:
                f = b ^ c ^ d
                g = (3 * i + 5) & 15
            else:
                f = c ^ (b | (~d & _M))
                g = (7 * i) & 15
            f = (f + a + _T[i] + x[g]) & _M
            s = _S[i]
            a, d, c = d, c, b
            b = (b + (((f << s) | (f >> (32 - s))) & _M)) & _M
        a0 = (a0 + a) & _M
        b0 = (b0 + b) & _M
        c0 = (c0 + c) & _M
        d0 = (d0 + d) & _M
    return struct.pack("<4I", a0, b0, c0, d0)
