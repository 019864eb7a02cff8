"""The Linux kernel crypto API backend, over AF_ALG sockets (Documentation/crypto/userspace-if.rst).

Why: on routers whose kernel still routes AF_ALG to the SoC's crypto engine, ESP runs there. Upstream
has deprecated that route, so this backend is never assumed: `available()` says why it cannot run
(no AF_ALG in the kernel, algorithm missing), and `select` only picks it when it passes the same
known-answer tests as the others and is measured faster.

One ESP packet is one sendmsg + one recv on a socket accepted once per SA:
- AES-GCM: `rfc4106(gcm(aes))`, key = key || salt, authsize 16. The kernel wants the 8-byte explicit
  IV at the end of the associated data (crypto/gcm.c, crypto_ipsec_check_assoclen: assoclen 16), so
  the ESP header || IV is the AD and the packet on the wire is exactly AD || ciphertext || tag.
- CBC + HMAC: `authenc(hmac(H),cbc(C))`, key = rtattr(CRYPTO_AUTHENC_KEYA_PARAM, be32 enc key length)
  || auth key || enc key (include/crypto/authenc.h), authsize = the ICV length; AD = SPI || seq || IV,
  so the HMAC covers exactly what RFC 4303 3.3.2 says and the output is again the ESP packet.
Decryption failures come back as EBADMSG. DH has no AF_ALG interface: `dh` uses the pure code.
"""

import errno
import socket
import struct

from sluice.hal.crypto import groups, transforms
from sluice.hal.crypto.errors import BackendUnavailable, UnsupportedAlgorithm
from sluice.hal.crypto.ivs import IvSource
from sluice.hal.crypto.modp import ModpDh

NAME = "afalg"

_SOL_ALG = getattr(socket, "SOL_ALG", 279)
_ALG_SET_KEY = getattr(socket, "ALG_SET_KEY", 1)
_ALG_SET_AEAD_AUTHSIZE = getattr(socket, "ALG_SET_AEAD_AUTHSIZE", 5)
_ENCRYPT = getattr(socket, "ALG_OP_ENCRYPT", 1)
_DECRYPT = getattr(socket, "ALG_OP_DECRYPT", 0)
_CRYPTO_AUTHENC_KEYA_PARAM = 1

_KCIPHER = {"aes": "cbc(aes)", "3des": "cbc(des3_ede)"}
_KHASH = {"md5": "md5", "sha1": "sha1", "sha256": "sha256", "sha384": "sha384", "sha512": "sha512"}

_why = []
_supported = {}


def _bind(kind, alg):
    if not hasattr(socket, "AF_ALG"):
        raise BackendUnavailable("this Python has no socket.AF_ALG")
    s = socket.socket(socket.AF_ALG, socket.SOCK_SEQPACKET, 0)
    try:
        s.bind((kind, alg))
    except OSError:
        s.close()
        raise
    return s


def available():
    """None when AF_ALG works here, else the reason (cached)."""
    if not _why:
        try:
            _bind("skcipher", "cbc(aes)").close()
            _why.append(None)
        except BackendUnavailable as e:
            _why.append(str(e))
        except OSError as e:
            _why.append("kernel AF_ALG unavailable: bind(skcipher, cbc(aes)) failed: %s"
                        % (errno.errorcode.get(e.errno, e.errno),))
    return _why[0]


def _esp_alg(name):
    kind, cipher, _, integ, _, _ = transforms.esp_spec(name)
    if kind == "gcm":
        return "rfc4106(gcm(aes))"
    return "authenc(hmac(%s),%s)" % (_KHASH[transforms.INTEG[integ][0]], _KCIPHER[cipher])


def supports(name):
    if name not in _supported:
        ok = False
        if available() is None:
            try:
                _bind("aead", _esp_alg(name)).close()
                ok = True
            except (OSError, ValueError, KeyError):
                ok = False
        _supported[name] = ok
    return _supported[name]


def _op_socket(kind, alg, key, authsize=None):
    s = _bind(kind, alg)
    try:
        s.setsockopt(_SOL_ALG, _ALG_SET_KEY, key)
        if authsize is not None:
            s.setsockopt(_SOL_ALG, _ALG_SET_AEAD_AUTHSIZE, None, authsize)
        op, _ = s.accept()
    finally:
        s.close()
    return op


def _authenc_key(enc_key, auth_key):
    # struct rtattr { u16 rta_len; u16 rta_type; } in host order, then __be32 enckeylen.
    return struct.pack("=HH", 8, _CRYPTO_AUTHENC_KEYA_PARAM) + struct.pack(">I", len(enc_key)) + auth_key + enc_key


class AeadEspTransform:
    """Both ESP kinds: the kernel AEAD does IV-aware AD, encryption and ICV in one call."""

    __slots__ = ("name", "block", "iv_len", "icv_len", "_op", "_ad", "_rng", "_gcm")

    def __init__(self, name, enc_key, auth_key, salt, rng):
        kind, cipher, _, _, icv, _ = transforms.esp_spec(name)
        self.name = name
        self._gcm = kind == "gcm"
        if self._gcm:
            self.block, self.iv_len = 4, 8
            key = enc_key + salt
        else:
            self.block = self.iv_len = 16 if cipher == "aes" else 8
            key = _authenc_key(enc_key, auth_key)
        self.icv_len = icv
        self._ad = 8 + self.iv_len
        self._rng = IvSource(rng).take if rng else None  # CBC IVs: no syscall per packet (sluice.hal.crypto.ivs)
        try:
            self._op = _op_socket("aead", _esp_alg(name), key, icv)
        except OSError as e:
            raise UnsupportedAlgorithm("kernel refused %s: %s" % (name, errno.errorcode.get(e.errno, e.errno)))

    def __repr__(self):
        return "<afalg %s>" % self.name

    def close(self):
        self._op.close()

    def seal(self, hdr, plaintext):
        if self._gcm:
            iv = b"\x00\x00\x00\x00" + hdr[4:8]  # sequence number as IV (RFC 4106 3.1)
        else:
            iv = self._rng(self.iv_len)
        msg = hdr + iv + plaintext
        self._op.sendmsg_afalg([msg], op=_ENCRYPT, iv=iv, assoclen=self._ad)
        return self._op.recv(len(msg) + self.icv_len)

    def open(self, packet):
        ad = self._ad
        try:
            self._op.sendmsg_afalg([packet], op=_DECRYPT, iv=bytes(packet[8:ad]), assoclen=ad)
            out = self._op.recv(len(packet) - self.icv_len)
        except OSError as e:
            if e.errno == errno.EBADMSG:
                return None
            raise
        return out[ad:]


def esp_transform(name, enc_key, auth_key=b"", salt=b"", rng=None):
    transforms.check_keys(name, enc_key, auth_key, salt)
    why = available()
    if why is not None:
        raise BackendUnavailable(why)
    return AeadEspTransform(name, bytes(enc_key), bytes(auth_key or b""), bytes(salt or b""), rng)


# --- IKE primitives over the kernel ------------------------------------------------------------------

def hash(name, data):  # noqa: A001
    if name not in _KHASH:
        raise UnsupportedAlgorithm("hash %r" % (name,))
    s = _bind("hash", _KHASH[name])
    try:
        op, _ = s.accept()
        try:
            op.sendall(data)
            return op.recv(transforms.HASH_SIZE[name])
        finally:
            op.close()
    finally:
        s.close()


def prf(name, key, data):
    if name not in _KHASH:
        raise UnsupportedAlgorithm("prf %r" % (name,))
    op = _op_socket("hash", "hmac(%s)" % _KHASH[name], key)
    try:
        op.sendall(data)
        return op.recv(transforms.HASH_SIZE[name])
    finally:
        op.close()


class IkeCipher:
    """CBC with an explicit IV over skcipher."""

    __slots__ = ("name", "block", "_op")

    def __init__(self, name, key):
        if name == "aes-cbc":
            self.block = 16
            alg = "cbc(aes)"
        elif name == "3des-cbc":
            self.block = 8
            alg = "cbc(des3_ede)"
        else:
            raise UnsupportedAlgorithm("cipher %r" % (name,))
        self.name = name
        try:
            self._op = _op_socket("skcipher", alg, bytes(key))
        except OSError as e:
            raise UnsupportedAlgorithm("kernel refused %s: %s" % (alg, errno.errorcode.get(e.errno, e.errno)))

    def __repr__(self):
        return "<afalg IkeCipher %s>" % self.name

    def _run(self, op, iv, data):
        if len(iv) != self.block or len(data) % self.block:
            raise ValueError("CBC needs a one-block IV and whole blocks")
        self._op.sendmsg_afalg([data], op=op, iv=iv)
        return self._op.recv(len(data))

    def encrypt(self, iv, data):
        return self._run(_ENCRYPT, iv, data)

    def decrypt(self, iv, data):
        return self._run(_DECRYPT, iv, data)


def cipher(name, key):
    return IkeCipher(name, key)


class Aead:
    """gcm(aes) with a 96-bit nonce and 16-byte tag."""

    __slots__ = ("_op",)

    def __init__(self, key):
        self._op = _op_socket("aead", "gcm(aes)", bytes(key), 16)

    def __repr__(self):
        return "<afalg Aead aes-gcm>"

    def encrypt(self, nonce, plaintext, aad):
        self._op.sendmsg_afalg([aad + plaintext], op=_ENCRYPT, iv=nonce, assoclen=len(aad))
        return self._op.recv(len(aad) + len(plaintext) + 16)[len(aad):]

    def decrypt(self, nonce, data, aad):
        try:
            self._op.sendmsg_afalg([aad + data], op=_DECRYPT, iv=nonce, assoclen=len(aad))
            return self._op.recv(len(aad) + len(data) - 16)[len(aad):]
        except OSError as e:
            if e.errno == errno.EBADMSG:
                return None
            raise


def aead(name, key):
    if name != "aes-gcm":
        raise UnsupportedAlgorithm("AEAD %r" % (name,))
    return Aead(key)


def dh(group):
    # The kernel's KPP API is not reachable over AF_ALG: same arithmetic as the pure backend.
    if group in groups.MODP_BITS:
        return ModpDh(group)
    if group in groups.ECP_BYTES:
        from sluice.hal.crypto.pure.ecp import EcpDh
        return EcpDh(group)
    raise UnsupportedAlgorithm("DH group %r" % (group,))
