"""Backend selection and the `sluice crypto` report: KATs decide eligibility, timings decide the winner,
an unavailable backend carries its reason, and a backend failing a KAT is never chosen."""

import json

from sluice.hal import crypto
from sluice.hal.crypto import kat, select


def test_report_rows_and_choice():
    rows = select.report(budget=0.002)
    by = dict((r.backend, r) for r in rows)
    assert set(by) == set(crypto.NAMES)
    assert by["openssl"].kat_ok and by["pure"].kat_ok
    if by["afalg"].unavailable is None:
        assert by["afalg"].kats
    else:
        assert "AF_ALG" in by["afalg"].unavailable
    chosen = [r for r in rows if r.chosen]
    assert len(chosen) == 1
    # OpenSSL in C beats pure Python by orders of magnitude; the measurement must see that.
    assert by["pure"].speed[("aes128gcm16", 1400)] > by["openssl"].speed[("aes128gcm16", 1400)]
    assert chosen[0].backend != "pure"
    for (tname, size), us in by["openssl"].speed.items():
        assert size in select.SIZES and us > 0


def test_choose_sets_default():
    name = select.choose(budget=0.001)
    assert name in ("openssl", "afalg")
    assert crypto.backend("auto") is crypto.load(name)


def test_failing_backend_never_chosen(monkeypatch):
    real = kat.run

    def rigged(mod, names=None):
        out = real(mod, names)
        if mod.NAME == "openssl":
            out[0] = (out[0][0], out[0][1], kat.FAIL, "rigged")
        return out

    monkeypatch.setattr(kat, "run", rigged)
    rows = select.report(budget=0.001, names=("openssl", "pure"))
    by = dict((r.backend, r) for r in rows)
    assert not by["openssl"].kat_ok and not by["openssl"].chosen
    assert by["pure"].chosen
    assert "KAT FAIL" in select.report_text(rows)


def test_main_text_and_json(capsys):
    assert select.main(["--time", "0.001"]) == 0
    out = capsys.readouterr().out
    assert "openssl" in out and "pure" in out and "1400 B" in out and "pkt/s" in out
    assert "RFC 3602" in out
    assert select.main(["--json", "--time", "0.001"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["backend"] for d in data} == set(crypto.NAMES)
    assert select.main(["--bogus"]) == 2


def test_every_ike_esp_proposal_has_a_transform():
    # The IKE layer's default and legacy ESP sets (sluice.ike.proposals) map onto transforms we implement.
    import pytest
    proposals = pytest.importorskip("sluice.ike.proposals")
    from sluice.hal.crypto import transforms
    for t in proposals.default_esp(legacy=True):
        name = transforms.from_proposal(t.name())
        assert crypto.backend("openssl").supports(name), name
    assert transforms.from_proposal("aes128-sha256-modp2048", sha256_96=True) == "aes128-sha256_96"
    assert transforms.from_proposal("aes256gcm16-ecp384") == "aes256gcm16"
