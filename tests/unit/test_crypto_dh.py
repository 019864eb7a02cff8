"""Diffie-Hellman across backends: the pure and OpenSSL implementations must agree with each other
(independent arithmetic for ECP: our ladder vs OpenSSL), and both must refuse unsafe peer values."""

import random

import pytest

from sluice.hal import crypto
from sluice.hal.crypto import groups
from sluice.hal.crypto.errors import DhError

PAIRS = [("openssl", "pure"), ("pure", "openssl")]


@pytest.mark.parametrize("group", [2, 14, 19, 20])
@pytest.mark.parametrize("a_name,b_name", PAIRS)
def test_agreement_across_backends(group, a_name, b_name):
    rnd = random.Random(group)
    a = crypto.backend(a_name).dh(group)
    b = crypto.backend(b_name).dh(group)
    pa = a.generate(rnd.randbytes)
    pb = b.generate(rnd.randbytes)
    assert len(pa) == len(pb) == groups.public_len(group)
    s1, s2 = a.shared(pb), b.shared(pa)
    assert s1 == s2
    assert len(s1) == (groups.public_len(group) if group in groups.MODP_BITS else groups.ECP_BYTES[group])


@pytest.mark.parametrize("backend", ["openssl", "pure"])
def test_pure_ecp_public_matches_openssl(backend):
    from cryptography.hazmat.primitives.asymmetric import ec
    rnd = random.Random(5)
    for group, curve in ((19, ec.SECP256R1()), (20, ec.SECP384R1())):
        d = rnd.randrange(1, groups.ecp(group)[5])
        pub = crypto.backend(backend).dh(group).set_private(d)
        nums = ec.derive_private_key(d, curve).public_key().public_numbers()
        n = groups.ECP_BYTES[group]
        assert pub == nums.x.to_bytes(n, "big") + nums.y.to_bytes(n, "big")


@pytest.mark.parametrize("backend", ["openssl", "pure"])
def test_unsafe_peer_values_refused(backend):
    rnd = random.Random(9)
    m = crypto.backend(backend).dh(14)
    m.generate(rnd.randbytes)
    p, _ = groups.modp(14)
    for bad in (0, 1, p - 1, p, p + 1):
        with pytest.raises(DhError):
            m.shared(bad.to_bytes(257, "big")[-256:] if bad < (1 << 2048) else b"\xff" * 256)
    with pytest.raises(DhError):
        m.shared(b"\x02" * 255)
    e = crypto.backend(backend).dh(19)
    pub = bytearray(e.generate(rnd.randbytes))
    pub[-1] ^= 1  # off the curve
    with pytest.raises(DhError):
        e.shared(bytes(pub))
    with pytest.raises(DhError):
        e.shared(bytes(64))
    with pytest.raises(DhError):
        e.shared(bytes(pub[:-1]))
