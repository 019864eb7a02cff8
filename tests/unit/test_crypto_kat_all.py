"""The known-answer tests (sluice.hal.crypto.kat, each vector citing its RFC/FIPS source) on every backend.

A backend that cannot run here is skipped with its own stated reason (AF_ALG: this kernel has none; it
runs in the QEMU guest lab)."""

import pytest

from sluice.hal import crypto
from sluice.hal.crypto import kat


def _backend(name):
    try:
        mod = crypto.load(name)
    except ImportError as e:
        pytest.skip("%s backend cannot be imported: %s" % (name, e))
    why = mod.available()
    if why is not None:
        pytest.skip("%s backend unavailable here: %s" % (name, why))
    return mod


@pytest.mark.parametrize("backend", crypto.NAMES)
@pytest.mark.parametrize("vector", [k[0] for k in kat.KATS])
def test_kat(backend, vector):
    mod = _backend(backend)
    (name, source, result, detail), = kat.run(mod, names=(vector,))
    if result == kat.SKIP:
        pytest.skip("%s: %s" % (source, detail))
    assert result == kat.PASS, "%s on %s (%s): %s" % (name, backend, source, detail)


def test_kat_catches_a_wrong_backend():
    # A KAT that cannot fail proves nothing: a backend with a subtly broken AES must fail.
    real = crypto.load("openssl")

    class Broken:
        def __getattr__(self, attr):
            return getattr(real, attr)

        def cipher(self, name, key):
            c = real.cipher(name, key)

            class C:
                def encrypt(self, iv, data):
                    out = bytearray(c.encrypt(iv, data))
                    out[0] ^= 1
                    return bytes(out)

                def decrypt(self, iv, data):
                    return c.decrypt(iv, data)
            return C()

        def aead(self, name, key):
            a = real.aead(name, key)

            class A:
                def encrypt(self, nonce, pt, aad):
                    return a.encrypt(nonce, pt, aad + b"x")

                def decrypt(self, nonce, data, aad):
                    return a.decrypt(nonce, data, aad)
            return A()

    results = dict((r[0], r[2]) for r in kat.run(Broken()))
    assert results["aes"] == kat.FAIL
    assert results["aes-cbc"] == kat.FAIL
    assert results["aes-gcm"] == kat.FAIL
    assert results["hmac"] == kat.PASS
    assert not kat.ok(kat.run(Broken()))
