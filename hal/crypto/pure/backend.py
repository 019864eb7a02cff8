"""The pure-Python backend: runs anywhere, including MicroPython 1.27 (where only hashlib.sha256 and,
on some ports, cryptolib exist).

Same surface as sluice.hal.crypto.openssl minus signatures: ESP transforms (AES-CBC/3DES-CBC with
HMAC, AES-GCM), hash, PRF (HMAC), IKE CBC ciphers, MODP and ECP Diffie-Hellman. Hashes come from
sluice.hal.crypto.digest (CPython's built-in hash modules, else hashlib, else the pure modules): with it
this backend never maps OpenSSL, which is why kernel mode takes it for IKE. SHA-384/512 exist only where
the platform has them in C. Slow (milliseconds per 1400-byte packet on CPython):
`auto` only picks it where nothing else passes its known-answer tests.
"""

from sluice.hal.crypto import digest as _digest
from sluice.hal.crypto import groups, transforms
from sluice.hal.crypto.errors import UnsupportedAlgorithm
from sluice.hal.crypto.ivs import IvSource
from sluice.hal.crypto.modp import ModpDh
from sluice.hal.crypto.pure.aes import Aes
from sluice.hal.crypto.pure.gcm import Gcm, equal

NAME = "pure"


def available():
    return None


def _hash_fn(name):
    """A one-shot hash function for name, or None where this port has none."""
    fn = getattr(_digest, name, None)
    if fn is not None and name != "md4":
        return fn
    return _digest.native(name)  # C built-in modules before hashlib (which maps libcrypto on CPython)


_HASHES = {}
for _n in ("md5", "sha1", "sha256", "sha384", "sha512"):
    _f = _hash_fn(_n)
    if _f is not None:
        _HASHES[_n] = _f


def _tdes():
    try:
        from sluice.hal.crypto.pure.tdes import TripleDes
    except ImportError:
        return None
    return TripleDes


class Hmac:
    """RFC 2104 with the padded inner and outer keys computed once."""

    __slots__ = ("_h", "_ipad", "_opad")

    def __init__(self, hash_name, key):
        h = _HASHES.get(hash_name)
        if h is None:
            raise UnsupportedAlgorithm("hash %r is not available on this port" % (hash_name,))
        block = transforms.HASH_BLOCK[hash_name]
        if len(key) > block:
            key = h(key)
        key = bytes(key) + b"\x00" * (block - len(key))
        self._h = h
        self._ipad = bytes([b ^ 0x36 for b in key])
        self._opad = bytes([b ^ 0x5C for b in key])

    def __repr__(self):
        return "<Hmac>"

    def digest(self, data):
        return self._h(self._opad + self._h(self._ipad + data))


def _cipher(cipher, key):
    if cipher == "aes":
        return Aes(key), 16
    if cipher == "3des":
        tdes = _tdes()
        if tdes is None:
            raise UnsupportedAlgorithm("3DES is not available")
        return tdes(key), 8
    raise UnsupportedAlgorithm("cipher %r" % (cipher,))


def _no_rng(n):
    raise ValueError("this transform was built without an rng: it can open but not seal")


class CbcHmacTransform:
    """ESP CBC + HMAC, encrypt-then-MAC (RFC 4303 3.3.2); see sluice.hal.crypto.openssl for the contract."""

    __slots__ = ("name", "block", "iv_len", "icv_len", "_c", "_mac", "_iv")

    def __init__(self, name, enc_key, auth_key, rng):
        _, cipher, _, integ, icv, _ = transforms.esp_spec(name)
        self.name = name
        self._c, self.block = _cipher(cipher, enc_key)
        self.iv_len = self.block
        self.icv_len = icv
        self._mac = Hmac(transforms.INTEG[integ][0], auth_key)
        self._iv = IvSource(rng).take if rng else _no_rng  # no syscall per packet (sluice.hal.crypto.ivs)

    def __repr__(self):
        return "<pure CbcHmacTransform %s>" % self.name

    def seal(self, hdr, plaintext):
        iv = self._iv(self.block)
        head = hdr + iv + self._c.cbc_encrypt(iv, plaintext)
        return head + self._mac.digest(head)[:self.icv_len]

    def open(self, packet):
        end = len(packet) - self.icv_len
        if not equal(self._mac.digest(bytes(packet[:end]))[:self.icv_len], packet[end:]):
            return None
        return self._c.cbc_decrypt(packet[8:8 + self.block], packet[8 + self.block:end])

    def encrypt(self, iv, data):
        return self._c.cbc_encrypt(iv, data)

    def decrypt(self, iv, data):
        return self._c.cbc_decrypt(iv, data)

    def mac(self, data):
        return self._mac.digest(data)[:self.icv_len]


class GcmTransform:
    """ESP AES-GCM (RFC 4106): nonce = salt || IV, AAD = SPI || sequence number; IV = sequence number."""

    __slots__ = ("name", "block", "iv_len", "icv_len", "_gcm", "_salt")

    def __init__(self, name, enc_key, salt, icv=16):
        self.name = name
        self.block = 4
        self.iv_len = 8
        self.icv_len = icv
        self._gcm = Gcm(Aes(enc_key))
        self._salt = bytes(salt)

    def __repr__(self):
        return "<pure GcmTransform %s>" % self.name

    def seal(self, hdr, plaintext):
        iv = b"\x00\x00\x00\x00" + hdr[4:8]
        ct = self._gcm.encrypt(self._salt + iv, plaintext, hdr)
        return hdr + iv + ct[:len(ct) - 16 + self.icv_len]

    def open(self, packet):
        packet = bytes(packet)
        return self._gcm.decrypt(self._salt + packet[8:16], packet[16:], packet[:8], self.icv_len)


def supports(name):
    try:
        kind, cipher, _, integ, _, _ = transforms.esp_spec(name)
    except ValueError:
        return False
    if kind == "gcm":
        return True
    if cipher == "3des" and _tdes() is None:
        return False
    return transforms.INTEG[integ][0] in _HASHES


def esp_transform(name, enc_key, auth_key=b"", salt=b"", rng=None):
    spec = transforms.esp_spec(name)
    transforms.check_keys(name, enc_key, auth_key, salt)
    if not supports(name):
        raise UnsupportedAlgorithm("%s is not available in the pure backend on this port" % name)
    if spec[0] == "gcm":
        return GcmTransform(name, enc_key, salt, spec[4])
    return CbcHmacTransform(name, enc_key, auth_key, rng)


def hash(name, data):  # noqa: A001
    h = _HASHES.get(name)
    if h is None:
        raise UnsupportedAlgorithm("hash %r" % (name,))
    return h(data)


def prf(name, key, data):
    return Hmac(name, key).digest(data)


class IkeCipher:
    """CBC with an explicit IV (IKEv1 phase 1 and 2 messages, RFC 2409 Appendix B)."""

    __slots__ = ("name", "block", "_c")

    def __init__(self, name, key):
        if name == "aes-cbc":
            self._c, self.block = _cipher("aes", key)
        elif name == "3des-cbc":
            self._c, self.block = _cipher("3des", key)
        else:
            raise UnsupportedAlgorithm("cipher %r" % (name,))
        self.name = name

    def __repr__(self):
        return "<pure IkeCipher %s>" % self.name

    def encrypt(self, iv, data):
        return self._c.cbc_encrypt(iv, data)

    def decrypt(self, iv, data):
        return self._c.cbc_decrypt(iv, data)


def cipher(name, key):
    return IkeCipher(name, key)


def dh(group):
    if group in groups.MODP_BITS:
        return ModpDh(group)
    if group in groups.ECP_BYTES:
        from sluice.hal.crypto.pure.ecp import EcpDh
        return EcpDh(group)
    raise UnsupportedAlgorithm("DH group %r" % (group,))


class Aead:
    """AES-GCM with 96-bit nonces and 16-byte tags (SP 800-38D)."""

    __slots__ = ("_g",)

    def __init__(self, key):
        self._g = Gcm(Aes(key))

    def __repr__(self):
        return "<pure Aead aes-gcm>"

    def encrypt(self, nonce, plaintext, aad):
        return self._g.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce, data, aad):
        return self._g.decrypt(nonce, data, aad)


def aead(name, key):
    if name != "aes-gcm":
        raise UnsupportedAlgorithm("AEAD %r" % (name,))
    return Aead(key)
