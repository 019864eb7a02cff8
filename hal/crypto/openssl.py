"""The OpenSSL backend, through the `cryptography` package (and CPython's hashlib, which is OpenSSL too).

ESP transforms are built once per SA so that a packet costs one cipher call and one MAC:

- AES-GCM (RFC 4106) reuses one `AESGCM` object; the 8-byte explicit IV is the packet's sequence
  number, unique per SA because the ESP layer refuses to wrap it (RFC 4106 3.1, RFC 4303 3.3.3).
- AES-GCM's nonce is salt || explicit IV (RFC 4106 4); the salt and the IV's four zero octets are joined
  once per SA, so a packet adds only its sequence number (one 12-byte concatenation). A bytearray nonce
  filled in place was measured slower with `cryptography` 51 (its bytes fast path; slice assignment
  costs more than the concatenation it saves), and so were its `encrypt_into`/`update_into`: the
  per-packet calls here take bytes or memoryviews and return new bytes.
- CBC + HMAC keeps one CBC encryptor and one decryptor alive for the SA's life. Sealing feeds a random
  block in front of the plaintext: its ciphertext C0 = E(R xor C_prev) is an unpredictable IV, and the
  blocks after it are exactly CBC under IV = C0 (RFC 3602 3: the IV must be unpredictable). R comes from
  the SA's `IvSource` (`sluice.hal.crypto.ivs`): the rng's bytes drawn 1 KiB at a time, each used once,
  so a packet makes no getrandom call (one per 64 packets). Opening feeds IV || ciphertext and drops the
  first output block: every later block is D(C_i) xor C_(i-1) with C_0 = IV, i.e. plain CBC, whatever
  state the decryptor had. Creating a cipher object per packet costs several microseconds; this costs
  none.
- HMAC (RFC 2104) starts from precomputed inner/outer hash states and `.copy()`s them per packet.

IKE primitives (hash, PRF, CBC ciphers with explicit IV, MODP/ECP Diffie-Hellman) and RSA PKCS#1 v1.5
signatures with X.509 chain checks live here too; `pure` has the same surface except signatures.
"""

import hashlib
import hmac as _hmac

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES as _TripleDES
except ImportError:  # cryptography < 43
    _TripleDES = algorithms.TripleDES

from sluice.hal.crypto import groups, transforms
from sluice.hal.crypto.errors import DhError, SignatureError, UnsupportedAlgorithm
from sluice.hal.crypto.ivs import IvSource
from sluice.hal.crypto.modp import ModpDh
from sluice.hal.crypto.digest import ct_equal

NAME = "openssl"


def available():
    """None when this backend can run here, else the reason it cannot."""
    return None


def _block_cipher(cipher, key):
    if cipher == "aes":
        return algorithms.AES(key), 16
    if cipher == "3des":
        return _TripleDES(key), 8
    raise UnsupportedAlgorithm("cipher %r" % (cipher,))


class HmacState:
    """HMAC with the keyed inner and outer hash states computed once (RFC 2104 2)."""

    __slots__ = ("_inner", "_outer", "size")

    def __init__(self, hash_name, key):
        block = transforms.HASH_BLOCK[hash_name]
        if len(key) > block:
            key = hashlib.new(hash_name, key).digest()
        key = key + b"\x00" * (block - len(key))
        self._inner = hashlib.new(hash_name, bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.new(hash_name, bytes(b ^ 0x5C for b in key))
        self.size = transforms.HASH_SIZE[hash_name]

    def __repr__(self):
        return "<HmacState>"

    def digest(self, *parts):
        h = self._inner.copy()
        for p in parts:
            h.update(p)
        o = self._outer.copy()
        o.update(h.digest())
        return o.digest()


def _no_rng(n):
    raise ValueError("this transform was built without an rng: it can open but not seal")


class CbcHmacTransform:
    """ESP encryption with a CBC cipher and HMAC integrity, encrypt-then-MAC (RFC 4303 3.3.2, 3.4.4)."""

    __slots__ = ("name", "block", "iv_len", "icv_len", "_enc", "_dec", "_alg", "_mac", "_iv")

    def __init__(self, name, enc_key, auth_key, rng):
        _, cipher, _, integ, icv, _ = transforms.esp_spec(name)
        self.name = name
        self._alg, self.block = _block_cipher(cipher, enc_key)
        zero = bytes(self.block)
        self._enc = Cipher(self._alg, modes.CBC(zero)).encryptor()
        self._dec = Cipher(self._alg, modes.CBC(zero)).decryptor()
        self.iv_len = self.block
        self.icv_len = icv
        self._mac = HmacState(transforms.INTEG[integ][0], auth_key)
        self._iv = IvSource(rng).take if rng else _no_rng

    def __repr__(self):
        return "<CbcHmacTransform %s>" % self.name

    def seal(self, hdr, plaintext):
        """hdr (SPI || seq, 8 bytes) || IV || ciphertext || ICV; len(plaintext) % block == 0."""
        body = self._enc.update(self._iv(self.block) + plaintext)  # IV || C, see module doc
        return b"".join((hdr, body, self._mac.digest(hdr, body)[:self.icv_len]))

    def open(self, packet):
        """Plaintext (padding included) of a whole ESP packet, or None when the ICV does not match.

        The caller has checked that the ciphertext is a positive multiple of the block size.
        """
        mv = memoryview(packet)
        end = len(mv) - self.icv_len
        if end < 8 + self.block or (end - 8) % self.block:
            # A partial block would stay buffered in the long-lived decryptor and shift every later packet.
            raise ValueError("CBC ciphertext is not whole blocks")
        if not ct_equal(self._mac.digest(mv[:end])[:self.icv_len], mv[end:]):
            return None
        # A bytes slice is cheaper for cryptography than a memoryview (its bytes fast path; measured).
        return self._dec.update(packet[8:end] if type(packet) is bytes else mv[8:end])[self.block:]

    # Lower-level primitives (IKE-style explicit IV); not used on the per-packet path.
    def encrypt(self, iv, data):
        e = Cipher(self._alg, modes.CBC(iv)).encryptor()
        return e.update(data) + e.finalize()

    def decrypt(self, iv, data):
        d = Cipher(self._alg, modes.CBC(iv)).decryptor()
        return d.update(data) + d.finalize()

    def mac(self, data):
        return self._mac.digest(data)[:self.icv_len]


class GcmTransform:
    """ESP with AES-GCM (RFC 4106): nonce = salt || explicit IV, AAD = SPI || sequence number (RFC 4106 5).

    The 8- and 12-byte ICV variants seal with the reused AESGCM and truncate the tag; opening them needs
    a GCM context per packet (AESGCM only verifies full tags), which makes them the slow GCM variants.
    """

    __slots__ = ("name", "block", "iv_len", "icv_len", "_aead", "_salt", "_nonce0", "_key")

    def __init__(self, name, enc_key, salt, icv=16):
        self.name = name
        self.block = 4
        self.iv_len = 8
        self.icv_len = icv
        self._aead = AESGCM(enc_key)
        self._salt = bytes(salt)
        self._nonce0 = self._salt + _IV_HIGH  # salt || the explicit IV's first four octets, per SA
        self._key = None if icv == 16 else algorithms.AES(enc_key)

    def __repr__(self):
        return "<GcmTransform %s>" % self.name

    def seal(self, hdr, plaintext):
        """hdr (SPI || seq, exactly 8 bytes) || IV || ciphertext || ICV; plaintext bytes or a memoryview."""
        seq = hdr[4:8]  # explicit IV = 0000 || sequence number: unique per SA (RFC 4106 3.1)
        if _AEAD_TAKES_VIEWS:
            ct = self._aead.encrypt(self._nonce0 + seq, plaintext, hdr)
        else:
            seq = bytes(seq)
            ct = self._aead.encrypt(self._nonce0 + seq, bytes(plaintext), bytes(hdr))
        if self._key is not None:
            ct = ct[:len(ct) - 16 + self.icv_len]
        return b"".join((hdr, _IV_HIGH, seq, ct))

    def open(self, packet):
        if self._key is None and type(packet) is bytes:
            # bytes slices: AESGCM.decrypt takes bytes faster than memoryviews, even at the cost of the
            # ciphertext copy (about 0.5 us of 2.5 per 1400-byte packet, measured with cryptography 51).
            try:
                return self._aead.decrypt(self._salt + packet[8:16], packet[16:], packet[:8])
            except InvalidTag:
                return None
        mv = memoryview(packet)
        if self._key is None:
            try:
                if _AEAD_TAKES_VIEWS:
                    return self._aead.decrypt(self._salt + mv[8:16], mv[16:], mv[:8])
                return self._aead.decrypt(self._salt + bytes(mv[8:16]), bytes(mv[16:]), bytes(mv[:8]))
            except InvalidTag:
                return None
        end = len(mv) - self.icv_len
        d = Cipher(self._key, modes.GCM(self._salt + mv[8:16], bytes(mv[end:]), min_tag_length=self.icv_len)).decryptor()
        d.authenticate_additional_data(mv[:8])
        out = d.update(mv[16:end])
        try:
            return out + d.finalize()
        except InvalidTag:
            return None


_IV_HIGH = b"\x00\x00\x00\x00"


def _aead_takes_views():
    """cryptography before 39 (Debian 12 ships 38) wants bytes, not memoryviews, in AESGCM.decrypt."""
    a = AESGCM(bytes(16))
    ct = a.encrypt(bytes(12), b"x", b"")
    try:
        return a.decrypt(memoryview(bytes(12)), memoryview(ct), memoryview(b"")) == b"x"
    except TypeError:
        return False


_AEAD_TAKES_VIEWS = _aead_takes_views()


def esp_transform(name, enc_key, auth_key=b"", salt=b"", rng=None):
    """The per-SA ESP primitive for a transform name (see sluice.hal.crypto.transforms)."""
    spec = transforms.esp_spec(name)
    transforms.check_keys(name, enc_key, auth_key, salt)
    if spec[0] == "gcm":
        return GcmTransform(name, enc_key, salt, spec[4])
    return CbcHmacTransform(name, enc_key, auth_key, rng)


def supports(name):
    try:
        transforms.esp_spec(name)
    except ValueError:
        return False
    return True


# --- IKE primitives -------------------------------------------------------------------------------

def hash(name, data):  # noqa: A001 - the HAL's vocabulary
    if name not in transforms.HASH_SIZE:
        raise UnsupportedAlgorithm("hash %r" % (name,))
    return hashlib.new(name, data).digest()


def prf(name, key, data):
    """HMAC-<name> (RFC 2104), IKEv1's PRF for every hash it negotiates (RFC 2409 4)."""
    if name not in transforms.HASH_SIZE:
        raise UnsupportedAlgorithm("prf %r" % (name,))
    return _hmac.digest(key, data, name)


class IkeCipher:
    """CBC with an explicit IV and no padding of its own (IKEv1 pads itself, RFC 2409 Appendix B)."""

    __slots__ = ("name", "block", "_alg")

    def __init__(self, name, key):
        if name == "aes-cbc":
            if len(key) not in (16, 24, 32):
                raise ValueError("AES needs a 16, 24 or 32-byte key")
            self._alg, self.block = _block_cipher("aes", key)
        elif name == "3des-cbc":
            if len(key) != 24:
                raise ValueError("3DES needs a 24-byte key")
            self._alg, self.block = _block_cipher("3des", key)
        else:
            raise UnsupportedAlgorithm("cipher %r" % (name,))
        self.name = name

    def __repr__(self):
        return "<IkeCipher %s>" % self.name

    def _check(self, iv, data):
        if len(iv) != self.block or len(data) % self.block:
            raise ValueError("CBC needs a one-block IV and whole blocks")

    def encrypt(self, iv, data):
        self._check(iv, data)
        e = Cipher(self._alg, modes.CBC(iv)).encryptor()
        return e.update(data) + e.finalize()

    def decrypt(self, iv, data):
        self._check(iv, data)
        d = Cipher(self._alg, modes.CBC(iv)).decryptor()
        return d.update(data) + d.finalize()


def cipher(name, key):
    return IkeCipher(name, key)


_CURVES = {19: ec.SECP256R1, 20: ec.SECP384R1}


class EcpDh:
    """ECDH over P-256/P-384 (RFC 5903): public x || y, shared secret x."""

    __slots__ = ("group", "_curve", "_n", "_len", "_key", "public")

    def __init__(self, group):
        if group not in _CURVES:
            raise UnsupportedAlgorithm("DH group %r" % (group,))
        self.group = group
        self._curve = _CURVES[group]()
        self._n = groups.ecp(group)[5]
        self._len = groups.ECP_BYTES[group]
        self._key = None
        self.public = None

    def __repr__(self):
        return "<EcpDh group %d>" % self.group

    def generate(self, rng):
        d = int.from_bytes(rng(self._len + 8), "big") % (self._n - 1) + 1
        return self.set_private(d)

    def set_private(self, d):
        """Use a given private scalar (known-answer tests)."""
        self._key = ec.derive_private_key(d, self._curve)
        nums = self._key.public_key().public_numbers()
        self.public = nums.x.to_bytes(self._len, "big") + nums.y.to_bytes(self._len, "big")
        return self.public

    def shared(self, peer_public):
        n = self._len
        if len(peer_public) != 2 * n:
            raise DhError("ECP public value has the wrong length")
        x = int.from_bytes(peer_public[:n], "big")
        y = int.from_bytes(peer_public[n:], "big")
        try:
            peer = ec.EllipticCurvePublicNumbers(x, y, self._curve).public_key()
        except ValueError:
            raise DhError("ECP public value is not a point on the curve")
        return self._key.exchange(ec.ECDH(), peer)


def dh(group):
    if group in groups.MODP_BITS:
        return ModpDh(group)
    if group in _CURVES:
        return EcpDh(group)
    raise UnsupportedAlgorithm("DH group %r" % (group,))


# --- RSA signatures and X.509 (IKEv1 RSA-SIG authentication, RFC 2409 5.1) -----------------------------

def load_certificate(data):
    """An X.509 certificate from PEM or DER bytes."""
    from cryptography import x509
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise SignatureError("not an X.509 certificate")


def load_certificates(pem):
    """Every certificate in a PEM bundle, in file order."""
    from cryptography import x509
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise SignatureError("no X.509 certificate in the bundle")


def load_private_key(data, password=None):
    """An RSA private key from PEM or DER (errors never echo the key)."""
    from cryptography.hazmat.primitives import serialization
    try:
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password)
        return serialization.load_der_private_key(data, password)
    except (ValueError, TypeError):
        raise SignatureError("cannot load the private key (wrong format or password)")


def _digest_alg(name):
    from cryptography.hazmat.primitives import hashes
    return {"md5": hashes.MD5, "sha1": hashes.SHA1, "sha256": hashes.SHA256,
            "sha384": hashes.SHA384, "sha512": hashes.SHA512}[name]()


def rsa_sign(private_key, data, hash_name=None):
    """PKCS#1 v1.5 signature (RFC 8017 8.2).

    hash_name None signs `data` as is, without a DigestInfo: IKEv1 signs HASH_I/HASH_R raw
    (RFC 2409 5.1; what racoon, Windows and strongSwan's "EMSA_PKCS1_NULL" do). Otherwise `data` is hashed.
    """
    from cryptography.hazmat.primitives.asymmetric import padding
    if hash_name is not None:
        return private_key.sign(data, padding.PKCS1v15(), _digest_alg(hash_name))
    nums = private_key.private_numbers()
    n = nums.public_numbers.n
    k = (n.bit_length() + 7) // 8
    if len(data) > k - 11:
        raise SignatureError("data too long for the RSA key")
    em = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + bytes(data)
    m = int.from_bytes(em, "big")
    # CRT with the key's own parameters (RFC 8017 5.1.2); control-plane only, a few signatures per SA.
    s1 = pow(m % nums.p, nums.dmp1, nums.p)
    s2 = pow(m % nums.q, nums.dmq1, nums.q)
    s = s2 + nums.q * ((nums.iqmp * (s1 - s2)) % nums.p)
    if pow(s, nums.public_numbers.e, n) != m:  # fault check before anything leaves
        raise SignatureError("RSA signature self-check failed")
    return s.to_bytes(k, "big")


def rsa_verify(public_key, signature, data, hash_name=None):
    """Raise SignatureError unless signature is a PKCS#1 v1.5 signature of data (see rsa_sign)."""
    from cryptography.hazmat.primitives.asymmetric import padding
    if hasattr(public_key, "public_key") and not hasattr(public_key, "public_numbers"):
        public_key = public_key.public_key()  # a certificate or a private key
    if hash_name is not None:
        try:
            public_key.verify(signature, data, padding.PKCS1v15(), _digest_alg(hash_name))
        except InvalidSignature:
            raise SignatureError("RSA signature does not verify")
        return
    nums = public_key.public_numbers()
    k = (nums.n.bit_length() + 7) // 8
    if len(signature) != k:
        raise SignatureError("RSA signature has the wrong length")
    s = int.from_bytes(signature, "big")
    if s >= nums.n:
        raise SignatureError("RSA signature out of range")
    em = pow(s, nums.e, nums.n).to_bytes(k, "big")
    expected = b"\x00\x01" + b"\xff" * (k - 3 - len(data)) + b"\x00" + bytes(data)
    if len(data) > k - 11 or not ct_equal(em, expected):
        raise SignatureError("RSA signature does not verify")


def verify_chain(leaf, intermediates, trusted, now):
    """Check leaf -> intermediates -> one of trusted: signatures, issuer names and validity at `now`.

    `now` is a timezone-aware datetime (the caller owns the clock). Returns the trusted anchor.
    Path building is by issuer name, depth at most 8; basicConstraints CA is required above the leaf.
    """
    from cryptography import x509
    pool = list(intermediates)
    cert = leaf
    for _ in range(8):
        _check_validity(cert, now)
        for anchor in trusted:
            if anchor.subject == cert.issuer and _issued_by(cert, anchor):
                _check_validity(anchor, now)
                return anchor
        nxt = None
        for cand in pool:
            if cand.subject == cert.issuer and _issued_by(cert, cand):
                nxt = cand
                break
        if nxt is None:
            raise SignatureError("certificate chain does not reach a trusted CA")
        try:
            bc = nxt.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise SignatureError("an intermediate certificate is not a CA")
        pool.remove(nxt)
        cert = nxt
    raise SignatureError("certificate chain too long")


def _issued_by(cert, issuer):
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _check_validity(cert, now):
    if now < cert.not_valid_before_utc or now > cert.not_valid_after_utc:
        raise SignatureError("certificate not valid at this time")


class Aead:
    """AES-GCM with 96-bit nonces and 16-byte tags (SP 800-38D), for known-answer tests and IKE users."""

    __slots__ = ("_a",)

    def __init__(self, key):
        self._a = AESGCM(key)

    def __repr__(self):
        return "<Aead aes-gcm>"

    def encrypt(self, nonce, plaintext, aad):
        return self._a.encrypt(nonce, plaintext, aad)

    def decrypt(self, nonce, data, aad):
        """The plaintext, or None when the tag does not verify."""
        try:
            return self._a.decrypt(nonce, data, aad)
        except InvalidTag:
            return None


def aead(name, key):
    if name != "aes-gcm":
        raise UnsupportedAlgorithm("AEAD %r" % (name,))
    return Aead(key)
