"""Fuzz: Inbound.open on random bytes, and on valid packets with random damage, raises only the
EspError family (never IndexError, struct errors, crypto library exceptions) and never moves the
replay window unless the packet authenticated. UDP/4500 classification likewise."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.esp import EspError, Inbound, Outbound, udpencap
from sluice.hal.crypto import transforms

NAMES = ["aes128-sha1", "aes256-sha512", "3des-md5", "aes128gcm16", "aes256-sha256_96"]
FUZZ = settings(max_examples=150, deadline=None, derandomize=True)


def _pair(name, backend):
    rnd = random.Random(name)
    ek, ak, sl = transforms.esp_key_lengths(name)
    keys = (rnd.randbytes(ek), rnd.randbytes(ak), rnd.randbytes(sl))
    return (Outbound(0x4242, name, *keys, rng=rnd.randbytes, backend=backend),
            Inbound(0x4242, name, *keys, backend=backend))


@pytest.mark.parametrize("backend", ["openssl", "pure"])
@pytest.mark.parametrize("name", NAMES)
def test_random_bytes(name, backend):
    _, inb = _pair(name, backend)

    @FUZZ
    @given(st.one_of(st.binary(max_size=200), st.binary(max_size=120).map(lambda b: b"\x00\x00\x42\x42" + b)))
    def run(data):
        try:
            inb.open(data)
        except EspError:
            pass
        assert inb.window.top == 0

    run()


@pytest.mark.parametrize("backend", ["openssl", "pure"])
@pytest.mark.parametrize("name", NAMES)
def test_damaged_valid_packets(name, backend):
    out, inb = _pair(name, backend)
    packets = [out.seal(bytes([i]) * (i * 7), 17) for i in range(8)]

    @FUZZ
    @given(st.integers(0, 7), st.lists(st.tuples(st.integers(0, 400), st.integers(1, 255)), min_size=1, max_size=4),
           st.integers(-40, 40))
    def run(which, flips, resize):
        pkt = bytearray(packets[which])
        for pos, val in flips:
            if pos < len(pkt):
                pkt[pos] ^= val
        if resize < 0:
            pkt = pkt[:resize]
        else:
            pkt += bytes(resize)
        if bytes(pkt) == packets[which]:
            return
        top = inb.window.top
        try:
            inb.open(bytes(pkt))
        except EspError:
            assert inb.window.top == top
            return
        raise AssertionError("damaged packet accepted")

    run()
    for p in packets:  # the genuine ones still open afterwards
        inb.open(p)


@FUZZ
@given(st.binary(max_size=64))
def test_classify_never_crashes(data):
    try:
        kind = udpencap.classify(data)
    except EspError:
        return
    assert kind in (udpencap.ESP, udpencap.IKE, udpencap.KEEPALIVE_KIND)


@pytest.mark.parametrize("backend", ["openssl", "pure"])
@pytest.mark.parametrize("name", NAMES)
def test_buffer_types(name, backend):
    # The engine hands over recv_into() buffers: memoryview and bytearray must work like bytes.
    out, inb = _pair(name, backend)
    for payload in (b"abc" * 30, bytearray(b"xyz" * 9)):
        pkt = out.seal(payload, 17)
        buf = bytearray(2048)
        buf[:len(pkt)] = pkt
        got, nh = inb.open(memoryview(buf)[:len(pkt)])
        assert (bytes(got), nh) == (bytes(payload), 17)
    pkt = out.seal(b"q", 17)
    assert bytes(inb.open(bytearray(pkt))[0]) == b"q"
