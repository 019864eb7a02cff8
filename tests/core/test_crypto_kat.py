"""Every known-answer test of sluice.hal.crypto.kat on the pure backend (RFC/FIPS vectors, each cited
in kat.py). Under MicroPython SHA-384/512 may be absent: those vectors skip, none may fail."""

from sluice.hal import crypto
from sluice.hal.crypto import kat


def test_pure_backend_passes_every_kat():
    results = kat.run(crypto.backend("pure"))
    failed = [r for r in results if r[2] == kat.FAIL]
    assert not failed, failed
    passed = [r[0] for r in results if r[2] == kat.PASS]
    for name in ("aes", "aes-cbc", "aes-gcm", "hmac", "esp-cbc-hmac", "esp-gcm", "modp"):
        assert name in passed, name
