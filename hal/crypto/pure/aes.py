"""AES (FIPS 197) in pure Python, with CBC (SP 800-38A 6.2), for ports without a C implementation.

Table-driven: the S-box is computed at import from its definition (FIPS 197 5.1.1: multiplicative
inverse in GF(2^8) followed by the affine map), and from it the four encryption and four decryption
round tables that fold SubBytes, ShiftRows and MixColumns into lookups on 32-bit column words.
Decryption uses the equivalent inverse cipher (FIPS 197 5.3.5). About 50 us a block on CPython; on
MicroPython `cryptolib` is used instead when the port has it (`Aes` picks it at construction).
MicroPython-compatible: tuples, ints, bytes; no struct, no typing.
"""

try:
    import cryptolib as _cryptolib  # MicroPython's C AES (ECB=1, CBC=2)
except ImportError:
    try:
        import ucryptolib as _cryptolib
    except ImportError:
        _cryptolib = None


def _tables():
    exp = [0] * 256
    log = [0] * 256
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x2 = x << 1
        if x2 & 0x100:
            x2 ^= 0x11B
        x ^= x2  # multiply by the generator 3
    sbox = [0] * 256
    inv = [0] * 256
    for a in range(256):
        b = exp[(255 - log[a]) % 255] if a else 0
        s = b
        for _ in range(4):
            b = ((b << 1) | (b >> 7)) & 0xFF
            s ^= b
        s ^= 0x63
        sbox[a] = s
        inv[s] = a

    def mul(a, b):
        if a == 0 or b == 0:
            return 0
        return exp[(log[a] + log[b]) % 255]

    te = [[0] * 256 for _ in range(4)]
    td = [[0] * 256 for _ in range(4)]
    for a in range(256):
        s = sbox[a]
        w = (mul(s, 2) << 24) | (s << 16) | (s << 8) | mul(s, 3)
        i = inv[a]
        v = (mul(i, 14) << 24) | (mul(i, 9) << 16) | (mul(i, 13) << 8) | mul(i, 11)
        for k in range(4):
            te[k][a] = w
            td[k][a] = v
            w = ((w >> 8) | (w << 24)) & 0xFFFFFFFF
            v = ((v >> 8) | (v << 24)) & 0xFFFFFFFF
    return (bytes(sbox), bytes(inv), tuple(tuple(t) for t in te), tuple(tuple(t) for t in td))


SBOX, INV_SBOX, _TE, _TD = _tables()


def _expand(key):
    nk = len(key) // 4
    if len(key) not in (16, 24, 32):
        raise ValueError("AES key must be 16, 24 or 32 bytes")
    nr = nk + 6
    w = [int.from_bytes(key[4 * i:4 * i + 4], "big") for i in range(nk)]
    rcon = 1
    S = SBOX
    for i in range(nk, 4 * (nr + 1)):
        t = w[i - 1]
        if i % nk == 0:
            t = ((t << 8) | (t >> 24)) & 0xFFFFFFFF
            t = (S[t >> 24] << 24) | (S[(t >> 16) & 255] << 16) | (S[(t >> 8) & 255] << 8) | S[t & 255]
            t ^= rcon << 24
            rcon <<= 1
            if rcon & 0x100:
                rcon ^= 0x11B
        elif nk > 6 and i % nk == 4:
            t = (S[t >> 24] << 24) | (S[(t >> 16) & 255] << 16) | (S[(t >> 8) & 255] << 8) | S[t & 255]
        w.append(w[i - nk] ^ t)
    # Equivalent inverse cipher: round keys reversed, InvMixColumns on the middle ones (FIPS 197 5.3.5).
    d0, d1, d2, d3 = _TD
    dk = []
    for r in range(nr, -1, -1):
        for c in range(4):
            x = w[4 * r + c]
            if 0 < r < nr:
                x = d0[S[x >> 24]] ^ d1[S[(x >> 16) & 255]] ^ d2[S[(x >> 8) & 255]] ^ d3[S[x & 255]]
            dk.append(x)
    return nr, tuple(w), tuple(dk)


class PureAes:
    """One AES key schedule; blocks as 128-bit ints (`encrypt_int`) or bytes."""

    __slots__ = ("_nr", "_ek", "_dk")

    def __init__(self, key):
        self._nr, self._ek, self._dk = _expand(bytes(key))

    def __repr__(self):
        return "<PureAes>"

    def encrypt_int(self, x):
        e0, e1, e2, e3 = _TE
        k = self._ek
        s0 = (x >> 96) ^ k[0]
        s1 = ((x >> 64) & 0xFFFFFFFF) ^ k[1]
        s2 = ((x >> 32) & 0xFFFFFFFF) ^ k[2]
        s3 = (x & 0xFFFFFFFF) ^ k[3]
        i = 4
        for _ in range(self._nr - 1):
            t0 = e0[s0 >> 24] ^ e1[(s1 >> 16) & 255] ^ e2[(s2 >> 8) & 255] ^ e3[s3 & 255] ^ k[i]
            t1 = e0[s1 >> 24] ^ e1[(s2 >> 16) & 255] ^ e2[(s3 >> 8) & 255] ^ e3[s0 & 255] ^ k[i + 1]
            t2 = e0[s2 >> 24] ^ e1[(s3 >> 16) & 255] ^ e2[(s0 >> 8) & 255] ^ e3[s1 & 255] ^ k[i + 2]
            s3 = e0[s3 >> 24] ^ e1[(s0 >> 16) & 255] ^ e2[(s1 >> 8) & 255] ^ e3[s2 & 255] ^ k[i + 3]
            s0, s1, s2 = t0, t1, t2
            i += 4
        S = SBOX
        o0 = ((S[s0 >> 24] << 24) | (S[(s1 >> 16) & 255] << 16) | (S[(s2 >> 8) & 255] << 8) | S[s3 & 255]) ^ k[i]
        o1 = ((S[s1 >> 24] << 24) | (S[(s2 >> 16) & 255] << 16) | (S[(s3 >> 8) & 255] << 8) | S[s0 & 255]) ^ k[i + 1]
        o2 = ((S[s2 >> 24] << 24) | (S[(s3 >> 16) & 255] << 16) | (S[(s0 >> 8) & 255] << 8) | S[s1 & 255]) ^ k[i + 2]
        o3 = ((S[s3 >> 24] << 24) | (S[(s0 >> 16) & 255] << 16) | (S[(s1 >> 8) & 255] << 8) | S[s2 & 255]) ^ k[i + 3]
        return (o0 << 96) | (o1 << 64) | (o2 << 32) | o3

    def decrypt_int(self, x):
        d0, d1, d2, d3 = _TD
        k = self._dk
        s0 = (x >> 96) ^ k[0]
        s1 = ((x >> 64) & 0xFFFFFFFF) ^ k[1]
        s2 = ((x >> 32) & 0xFFFFFFFF) ^ k[2]
        s3 = (x & 0xFFFFFFFF) ^ k[3]
        i = 4
        for _ in range(self._nr - 1):
            t0 = d0[s0 >> 24] ^ d1[(s3 >> 16) & 255] ^ d2[(s2 >> 8) & 255] ^ d3[s1 & 255] ^ k[i]
            t1 = d0[s1 >> 24] ^ d1[(s0 >> 16) & 255] ^ d2[(s3 >> 8) & 255] ^ d3[s2 & 255] ^ k[i + 1]
            t2 = d0[s2 >> 24] ^ d1[(s1 >> 16) & 255] ^ d2[(s0 >> 8) & 255] ^ d3[s3 & 255] ^ k[i + 2]
            s3 = d0[s3 >> 24] ^ d1[(s2 >> 16) & 255] ^ d2[(s1 >> 8) & 255] ^ d3[s0 & 255] ^ k[i + 3]
            s0, s1, s2 = t0, t1, t2
            i += 4
        S = INV_SBOX
        o0 = ((S[s0 >> 24] << 24) | (S[(s3 >> 16) & 255] << 16) | (S[(s2 >> 8) & 255] << 8) | S[s1 & 255]) ^ k[i]
        o1 = ((S[s1 >> 24] << 24) | (S[(s0 >> 16) & 255] << 16) | (S[(s3 >> 8) & 255] << 8) | S[s2 & 255]) ^ k[i + 1]
        o2 = ((S[s2 >> 24] << 24) | (S[(s1 >> 16) & 255] << 16) | (S[(s0 >> 8) & 255] << 8) | S[s3 & 255]) ^ k[i + 2]
        o3 = ((S[s3 >> 24] << 24) | (S[(s2 >> 16) & 255] << 16) | (S[(s1 >> 8) & 255] << 8) | S[s0 & 255]) ^ k[i + 3]
        return (o0 << 96) | (o1 << 64) | (o2 << 32) | o3

    def encrypt_block(self, block):
        return self.encrypt_int(int.from_bytes(block, "big")).to_bytes(16, "big")

    def decrypt_block(self, block):
        return self.decrypt_int(int.from_bytes(block, "big")).to_bytes(16, "big")

    def cbc_encrypt(self, iv, data):
        n = len(data)
        if len(iv) != 16 or n % 16:
            raise ValueError("CBC needs a 16-byte IV and whole blocks")
        out = bytearray(n)
        prev = int.from_bytes(iv, "big")
        enc = self.encrypt_int
        for i in range(0, n, 16):
            prev = enc(int.from_bytes(data[i:i + 16], "big") ^ prev)
            out[i:i + 16] = prev.to_bytes(16, "big")
        return bytes(out)

    def cbc_decrypt(self, iv, data):
        n = len(data)
        if len(iv) != 16 or n % 16:
            raise ValueError("CBC needs a 16-byte IV and whole blocks")
        out = bytearray(n)
        prev = int.from_bytes(iv, "big")
        dec = self.decrypt_int
        for i in range(0, n, 16):
            c = int.from_bytes(data[i:i + 16], "big")
            out[i:i + 16] = (dec(c) ^ prev).to_bytes(16, "big")
            prev = c
        return bytes(out)


class NativeAes:
    """The same surface over MicroPython's cryptolib (one object per direction and per CBC call)."""

    __slots__ = ("_key", "_ecb_enc", "_ecb_dec")

    def __init__(self, key):
        self._key = bytes(key)
        self._ecb_enc = _cryptolib.aes(self._key, 1)
        self._ecb_dec = _cryptolib.aes(self._key, 1)

    def __repr__(self):
        return "<NativeAes>"

    def encrypt_block(self, block):
        return self._ecb_enc.encrypt(bytes(block))

    def decrypt_block(self, block):
        return self._ecb_dec.decrypt(bytes(block))

    def encrypt_int(self, x):
        return int.from_bytes(self.encrypt_block(x.to_bytes(16, "big")), "big")

    def cbc_encrypt(self, iv, data):
        if len(iv) != 16 or len(data) % 16:
            raise ValueError("CBC needs a 16-byte IV and whole blocks")
        return _cryptolib.aes(self._key, 2, bytes(iv)).encrypt(bytes(data))

    def cbc_decrypt(self, iv, data):
        if len(iv) != 16 or len(data) % 16:
            raise ValueError("CBC needs a 16-byte IV and whole blocks")
        return _cryptolib.aes(self._key, 2, bytes(iv)).decrypt(bytes(data))


def Aes(key):
    """The fastest AES this port has for a key: cryptolib when present, else PureAes."""
    if _cryptolib is not None:
        try:
            return NativeAes(key)
        except Exception:  # a port whose cryptolib lacks a key size or mode
            pass
    return PureAes(key)
