"""Triple DES (TDEA, NIST SP 800-67: EDE with three keys) with CBC, in pure Python.

Built on the single-DES pieces of `sluice.hal.crypto.pure.des` (FIPS 46-3 tables, key schedule,
round function); the subkeys are computed once per key, decryption runs them in reverse.
Slow (a few hundred us a block): it exists so that legacy 3DES peers work on ports without a C cipher.
"""

from sluice.hal.crypto.pure import des as _des


def _crypt(x, keys):
    x = _des._permute(x, _des._IP, 64)
    left = x >> 32
    right = x & 0xFFFFFFFF
    f = _des._f
    for k in keys:
        left, right = right, left ^ f(right, k)
    return _des._permute((right << 32) | left, _des._FP, 64)


class TripleDes:
    """One 24-byte key (K1 || K2 || K3); 64-bit blocks as ints or bytes."""

    __slots__ = ("_k1", "_k2", "_k3", "_k1r", "_k2r", "_k3r")

    def __init__(self, key):
        if len(key) != 24:
            raise ValueError("3DES needs a 24-byte key")
        key = bytes(key)
        self._k1 = tuple(_des._subkeys(int.from_bytes(key[0:8], "big")))
        self._k2 = tuple(_des._subkeys(int.from_bytes(key[8:16], "big")))
        self._k3 = tuple(_des._subkeys(int.from_bytes(key[16:24], "big")))
        # Decryption runs the schedule backwards (MicroPython has no [::-1] on tuples).
        self._k1r = tuple(reversed(self._k1))
        self._k2r = tuple(reversed(self._k2))
        self._k3r = tuple(reversed(self._k3))

    def __repr__(self):
        return "<TripleDes>"

    def encrypt_int(self, x):
        return _crypt(_crypt(_crypt(x, self._k1), self._k2r), self._k3)

    def decrypt_int(self, x):
        return _crypt(_crypt(_crypt(x, self._k3r), self._k2), self._k1r)

    def cbc_encrypt(self, iv, data):
        n = len(data)
        if len(iv) != 8 or n % 8:
            raise ValueError("CBC needs an 8-byte IV and whole blocks")
        out = bytearray(n)
        prev = int.from_bytes(iv, "big")
        for i in range(0, n, 8):
            prev = self.encrypt_int(int.from_bytes(data[i:i + 8], "big") ^ prev)
            out[i:i + 8] = prev.to_bytes(8, "big")
        return bytes(out)

    def cbc_decrypt(self, iv, data):
        n = len(data)
        if len(iv) != 8 or n % 8:
            raise ValueError("CBC needs an 8-byte IV and whole blocks")
        out = bytearray(n)
        prev = int.from_bytes(iv, "big")
        for i in range(0, n, 8):
            c = int.from_bytes(data[i:i + 8], "big")
            out[i:i + 8] = (self.decrypt_int(c) ^ prev).to_bytes(8, "big")
            prev = c
        return bytes(out)
