"""Hashes and the one block cipher the control plane needs (MD4/DES for MS-CHAP, MD5 for CHAP and hidden AVPs).

Each name uses the platform's C implementation when it exists and falls back to `sluice.hal.crypto.pure`
otherwise: MicroPython's WebAssembly build has only sha256, OpenSSL 3 hides MD4 behind the legacy provider.
"""

try:
    # CPython's compare_digest itself, without the hmac module: that one imports hashlib, and CPython's
    # hashlib maps OpenSSL's libcrypto (about 4 MB resident) even when no hash of it is used.
    from _operator import _compare_digest
except ImportError:
    try:
        from hmac import compare_digest as _compare_digest
    except ImportError:  # MicroPython: no hmac module
        _compare_digest = None

# CPython's built-in hash modules (HACL*, no OpenSSL), tried before hashlib for the memory above: name ->
# (module, constructor), the 3.12+ module first, then 3.11's.
_BUILTIN = {"md5": (("_md5", "md5"),), "sha1": (("_sha1", "sha1"),),
            "sha256": (("_sha2", "sha256"), ("_sha256", "sha256")),
            "sha384": (("_sha2", "sha384"), ("_sha512", "sha384")),
            "sha512": (("_sha2", "sha512"), ("_sha512", "sha512"))}
_hashlib = []  # [module or None] once imported: only when no built-in module has the hash


def _from_hashlib(name):
    if not _hashlib:
        try:
            import hashlib
        except ImportError:  # pragma: no cover - every MicroPython port we target has hashlib
            hashlib = None
        _hashlib.append(hashlib)
    return getattr(_hashlib[0], name, None) if _hashlib[0] is not None else None


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
    """The platform's C constructor for name (a built-in module, else hashlib), or None."""
    ctor = None
    for mod, attr in _BUILTIN.get(name, ()):
        try:
            ctor = getattr(__import__(mod), attr)
            break
        except (ImportError, AttributeError):
            continue
    if ctor is None:
        ctor = _from_hashlib(name)
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
    return _pure_only(pure_module)  # imported on first use: a port that never needs it never loads it


def _pure_only(pure_module):
    box = []

    def pure(data):
        if not box:
            mod = __import__("sluice.hal.crypto.pure." + pure_module, None, None, [pure_module])
            box.append(mod.digest)
        return box[0](data)

    return pure


# MD4 (MS-CHAP, once per login) is always the pure one: OpenSSL 3 hides it behind the legacy provider, and
# asking hashlib would map libcrypto for nothing.
md4 = _pure_only("md4")
md5 = _pick("md5", "md5")
sha1 = _pick("sha1", "sha1")
sha256 = _pick("sha256", "sha256")


def native(name):
    """A one-shot C hash function (data -> digest) for md5, sha1, sha256, sha384, sha512, or None."""
    ctor = _native(name)
    return (lambda data: ctor(data).digest()) if ctor is not None else None

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
