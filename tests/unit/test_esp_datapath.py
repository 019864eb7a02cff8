"""The per-packet path builds nothing per packet: after the SA exists, no cipher, AEAD or hash object is
constructed by seal/open (the ~5-15 us a fresh cipher context costs is paid once per SA), checked by
making the constructors explode once the SAs are built. Also packets keep opening across many
packets and a rejected one, which the OpenSSL backend's long-lived CBC contexts must survive."""

import random

import pytest

from sluice.esp import EspAuthError, Inbound, Outbound
from sluice.hal.crypto import openssl, transforms


def _boom(*a, **k):
    raise AssertionError("object constructed on the per-packet path")


@pytest.mark.parametrize("name", sorted(transforms.ESP))
def test_no_per_packet_construction(name, monkeypatch):
    rnd = random.Random(name)
    ek, ak, sl = transforms.esp_key_lengths(name)
    keys = (rnd.randbytes(ek), rnd.randbytes(ak), rnd.randbytes(sl))
    out = Outbound(0x5000, name, *keys, rng=rnd.randbytes, backend="openssl")
    inb = Inbound(0x5000, name, *keys, backend="openssl")
    monkeypatch.setattr(openssl, "Cipher", _boom)
    monkeypatch.setattr(openssl, "AESGCM", _boom)
    monkeypatch.setattr(openssl.hashlib, "new", _boom)
    payloads = [rnd.randbytes(n) for n in (0, 1, 15, 16, 17, 64, 1400)]
    packets = [out.seal(p, 17) for p in payloads]
    if name.endswith(("gcm8", "gcm12")):
        # Documented exception (openssl.GcmTransform): AESGCM verifies only 16-byte tags, so opening a
        # truncated-ICV packet builds a GCM context. Sealing above still built nothing.
        monkeypatch.undo()
    bad = bytearray(packets[3])
    bad[-1] ^= 1
    with pytest.raises(EspAuthError):
        inb.open(bytes(bad))
    for p, pkt in zip(payloads, packets):
        got, nh = inb.open(pkt)
        assert bytes(got) == p and nh == 17


def test_cbc_ivs_differ_and_are_not_chained():
    # RFC 3602 3: IVs must be unpredictable. The long-lived encryptor must not leak CBC chaining
    # (the next IV must not be the previous packet's last ciphertext block).
    rnd = random.Random(1)
    out = Outbound(0x5001, "aes128-sha1", rnd.randbytes(16), rnd.randbytes(20), rng=rnd.randbytes, backend="openssl")
    prev = None
    ivs = set()
    for _ in range(200):
        pkt = out.seal(b"x" * 30)
        iv = pkt[8:24]
        assert iv not in ivs
        ivs.add(iv)
        if prev is not None:
            assert iv != prev[-12 - 16:-12]
        prev = pkt


def test_transform_refuses_partial_blocks_and_keeps_working():
    rnd = random.Random(2)
    t = openssl.esp_transform("aes128-sha1", rnd.randbytes(16), rnd.randbytes(20), b"", rnd.randbytes)
    hdr = b"\x00\x00\x50\x00\x00\x00\x00\x01"
    pkt = t.seal(hdr, bytes(32))
    with pytest.raises(ValueError):
        t.open(pkt[:-13])  # ciphertext one byte short of whole blocks
    assert t.open(pkt) == bytes(32)


@pytest.mark.parametrize("name", sorted(transforms.ESP))
def test_seal_view_and_memoryview_open_match_the_bytes_path(name):
    # What the per-session data path does: the payload sits in a big buffer with room after it, the
    # trailer is written in place, and the receive side opens a memoryview of its receive buffer.
    rnd = random.Random(name)
    ek, ak, sl = transforms.esp_key_lengths(name)
    keys = (rnd.randbytes(ek), rnd.randbytes(ak), rnd.randbytes(sl))
    a = Outbound(0x5002, name, *keys, rng=random.Random(9).randbytes, backend="openssl")
    b = Outbound(0x5002, name, *keys, rng=random.Random(9).randbytes, backend="openssl")
    inb = Inbound(0x5002, name, *keys, backend="openssl")
    buf = bytearray(2048)
    view = memoryview(buf)
    rx = bytearray(2048)
    for n in (0, 1, 15, 16, 17, 64, 1400):
        payload = rnd.randbytes(n)
        view[40:40 + n] = payload
        got = b.seal_view(view, 40, 40 + n, 17)
        assert got == a.seal(payload, 17)  # same keys, IVs and sequence: the same packet
        rx[3:3 + len(got)] = got
        pl, nh = inb.open(memoryview(rx)[3:3 + len(got)])
        assert bytes(pl) == payload and nh == 17
