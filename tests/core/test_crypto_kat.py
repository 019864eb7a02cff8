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


def test_select_report_on_pure_only():
    # What `sluice crypto` / select.choose() do on a port with only the pure backend.
    from sluice.hal.crypto import select
    rows = select.report(budget=0.001, names=("pure",))
    assert len(rows) == 1 and rows[0].kat_ok and rows[0].chosen
    for size in select.SIZES:
        assert rows[0].speed[("aes128gcm16", size)] > 0
    text = select.report_text(rows)
    assert "pure" in text and "auto" in text
