"""The pure backend's MicroPython `cryptolib` path (NativeAes), exercised on CPython through a stand-in
module with MicroPython's documented API (cryptolib.aes(key, mode[, iv]) with mode 1 = ECB, 2 = CBC; an
object encrypts or decrypts, never both), backed by OpenSSL. The wasm MicroPython port has no cryptolib,
so this is where that code runs in the suite; the KATs must pass through it."""

import importlib
import sys
import types

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


class _FakeAes:
    def __init__(self, key, mode, iv=None):
        assert mode in (1, 2) and len(key) in (16, 24, 32)
        m = modes.ECB() if mode == 1 else modes.CBC(iv)
        self._c = Cipher(algorithms.AES(key), m)
        self._used = None

    def _run(self, kind, data):
        assert len(data) % 16 == 0
        if self._used is None:
            self._used = kind
            self._ctx = self._c.encryptor() if kind == "e" else self._c.decryptor()
        assert self._used == kind, "a cryptolib.aes object cannot switch direction"
        return self._ctx.update(bytes(data))

    def encrypt(self, data):
        return self._run("e", data)

    def decrypt(self, data):
        return self._run("d", data)


def test_native_aes_is_used_and_passes_kats():
    from sluice.hal.crypto import kat
    from sluice.hal.crypto.pure import aes, backend
    fake = types.ModuleType("cryptolib")
    fake.aes = _FakeAes
    sys.modules["cryptolib"] = fake
    try:
        importlib.reload(aes)
        importlib.reload(backend)  # rebind its Aes to the reloaded module
        assert isinstance(aes.Aes(bytes(16)), aes.NativeAes)
        results = kat.run(backend, names=("aes", "aes-cbc", "aes-gcm", "esp-cbc-hmac", "esp-gcm"))
        assert all(r[2] == kat.PASS for r in results), results
    finally:
        sys.modules.pop("cryptolib", None)
        importlib.reload(aes)
        importlib.reload(backend)
    assert isinstance(aes.Aes(bytes(16)), aes.PureAes)
