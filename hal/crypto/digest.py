"""Hashes and the one block cipher the control plane needs (MD4/DES for MS-CHAP, MD5 for CHAP and hidden AVPs).

Each name uses the platform's C implementation when it exists and falls back to `sluice.hal.crypto.pure`
otherwise: MicroPython's WebAssembly build has only sha256, OpenSSL 3 hides MD4 behind the legacy provider.
"""

try:
    import hashlib as _hashlib
except ImportError:  # pragma: no cover - every MicroPython port we target has hashlib
    _hashlib = None

try:
    from hmac import compare_digest as _compare_digest
except ImportError:  # MicroPython: no hmac module
    _compare_digest = None


def ct_equal(a, b):
    """True when a == b, taking the same time whatever byte differs (ICVs, hashes, passwords).

    The one constant-time compare of the project: C's compare_digest where the port has it, else a loop
    with no early exit. The lengths are not secret.
    """
    if _compare_digest is not None:
        return _compare_digest(a, b)
    if len(a) != len(b):
        return False
    r = 0
    for i in range(len(a)):
        r |= a[i] ^ b[i]
    return r == 0


if _compare_digest is not None:
    # The C function itself where the port has it: ct_equal runs once per CBC packet (the ICV), and the
    # Python wrapper around it measured 0.1-0.3 us there. Same function, same contract.
    ct_equal = _compare_digest  # noqa: F811


def _native(name):
    if _hashlib is None:
        return None
    ctor = getattr(_hashlib, name, None)
    if ctor is None:
        return None
    try:
        ctor(b"").digest()
    except Exception:  # OpenSSL 3 without the legacy provider raises on md4
        return None
    return ctor


def _pick(name, pure_module):
    ctor = _native(name)
    if ctor is not None:
        return lambda data: ctor(data).digest()
    box = []

    def pure(data):
        # Imported on first use so that a port which never needs this hash never loads it.
        if not box:
            mod = __import__("sluice.hal.crypto.pure." + pure_module, None, None, [pure_module])
            box.append(mod.digest)
        return box[0](data)

    return pure


md4 = _pick("md4", "md4")
md5 = _pick("md5", "md5")
sha1 = _pick("sha1", "sha1")
sha256 = _pick("sha256", "sha256")

_BLOCK = {"md5": 64, "sha1": 64, "sha256": 64, "md4": 64}
_HASH = {"md5": md5, "sha1": sha1, "sha256": sha256, "md4": md4}


def hmac(name, key, msg):
    """RFC 2104 HMAC over the hashes above (the stdlib hmac module is absent on MicroPython)."""
    h = _HASH[name]
    block = _BLOCK[name]
    if len(key) > block:
        key = h(key)
    key = key + b"\x00" * (block - len(key))
    ipad = bytes(b ^ 0x36 for b in key)
    opad = bytes(b ^ 0x5C for b in key)
    return h(opad + h(ipad + msg))


def _des_pure():
    from sluice.hal.crypto.pure import des
    return des.encrypt_block


_des = None


def des_encrypt_block(key8, block8):
    """Single-DES encryption of one 8-byte block with an 8-byte key (parity bits ignored).

    The pure implementation comes first: MS-CHAP needs three blocks per login, and loading OpenSSL through
    `cryptography` for them would cost a plain-L2TP daemon about 7 MB resident.
    """
    global _des
    if _des is None:
        _des = _des_pure()
    return _des(key8, block8)
