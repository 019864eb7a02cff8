"""AES-GCM (NIST SP 800-38D; McGrew-Viega, "The Galois/Counter Mode of Operation") in pure Python.

A field element is a 128-bit int read big-endian from its 16 bytes, so bit 127 of the int is the
coefficient of x^0 (GCM's reflected order). Multiplying by x is a right shift, folding the bit that
falls off back in with R = 0xE1 || 0^120 (SP 800-38D 6.3). GHASH multiplies by H with Shoup's 8-bit
method: a 256-entry table of H times every byte value, built per key from the 8 products H * x^i by
linearity, and one shared table reducing the 8 bits a shift by x^8 drops. 16 lookups per block.
Only 96-bit nonces (RFC 4106 uses salt(4) || IV(8)); tags are 16 bytes and may be read truncated.
"""

_R = 0xE1 << 120


def _mulx(v):
    return (v >> 1) ^ _R if v & 1 else v >> 1


def _reduce8():
    out = []
    for n in range(256):
        v = n
        for _ in range(8):
            v = _mulx(v)
        out.append(v)
    return tuple(out)


_R8 = _reduce8()


class Gcm:
    """GCM over a block cipher object with encrypt_int (sluice.hal.crypto.pure.aes)."""

    __slots__ = ("_enc", "_table")

    def __init__(self, aes):
        self._enc = aes.encrypt_int
        h = self._enc(0)
        basis = {}
        for bit in (0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01):
            basis[bit] = h
            h = _mulx(h)
        table = [0] * 256
        for i in range(1, 256):
            low = i & -i
            table[i] = table[i ^ low] ^ basis[low]
        self._table = tuple(table)

    def __repr__(self):
        return "<Gcm>"

    def _ghash(self, aad, ct):
        t = self._table
        r8 = _R8
        y = 0
        for data in (aad, ct):
            n = len(data)
            for i in range(0, n, 16):
                chunk = data[i:i + 16]
                x = int.from_bytes(chunk, "big")
                if len(chunk) < 16:
                    x <<= 8 * (16 - len(chunk))
                x ^= y
                z = 0
                for _ in range(16):  # Horner from the last byte (highest powers of x) down
                    z = (z >> 8) ^ r8[z & 0xFF] ^ t[x & 0xFF]
                    x >>= 8
                y = z
        x = ((len(aad) * 8) << 64 | (len(ct) * 8)) ^ y
        z = 0
        for _ in range(16):
            z = (z >> 8) ^ r8[z & 0xFF] ^ t[x & 0xFF]
            x >>= 8
        return z

    def _ctr(self, j0, data):
        n = len(data)
        out = bytearray(n)
        enc = self._enc
        prefix = j0 & ~0xFFFFFFFF
        ctr = j0 & 0xFFFFFFFF
        for i in range(0, n, 16):
            ctr = (ctr + 1) & 0xFFFFFFFF  # inc32 (SP 800-38D 6.2)
            ks = enc(prefix | ctr)
            chunk = data[i:i + 16]
            m = len(chunk)
            if m < 16:
                ks >>= 8 * (16 - m)
            out[i:i + m] = (int.from_bytes(chunk, "big") ^ ks).to_bytes(m, "big")
        return bytes(out)

    def encrypt(self, nonce, plaintext, aad):
        """ciphertext || 16-byte tag."""
        if len(nonce) != 12:
            raise ValueError("GCM here takes 96-bit nonces only")
        j0 = (int.from_bytes(nonce, "big") << 32) | 1
        ct = self._ctr(j0, plaintext)
        tag = self._enc(j0) ^ self._ghash(aad, ct)
        return ct + tag.to_bytes(16, "big")

    def decrypt(self, nonce, data, aad, tag_len=16):
        """The plaintext, or None when the tag (the last tag_len bytes of data) does not verify."""
        if len(nonce) != 12 or len(data) < tag_len:
            return None
        j0 = (int.from_bytes(nonce, "big") << 32) | 1
        ct = data[:len(data) - tag_len]
        tag = (self._enc(j0) ^ self._ghash(aad, ct)).to_bytes(16, "big")[:tag_len]
        if not equal(tag, data[len(data) - tag_len:]):
            return None
        return self._ctr(j0, ct)


from sluice.hal.crypto.digest import ct_equal as equal  # noqa: E402 (the project's one compare)
