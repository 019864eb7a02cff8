"""Backends against each other on random inputs (Hypothesis, derandomized): the pure AES/GCM/3DES/HMAC
code must give OpenSSL's bytes for every length and key size, and ESP transforms built by one backend
must open what the other sealed. The KATs pin both to the published vectors; this covers the rest."""

from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.hal import crypto
from sluice.hal.crypto import transforms

OSSL = crypto.backend("openssl")
PURE = crypto.backend("pure")
FAST = settings(max_examples=40, deadline=None, derandomize=True)


@FAST
@given(st.sampled_from([16, 24, 32]), st.data())
def test_aes_cbc_matches(klen, data):
    key = data.draw(st.binary(min_size=klen, max_size=klen))
    iv = data.draw(st.binary(min_size=16, max_size=16))
    blocks = data.draw(st.integers(0, 6))
    pt = data.draw(st.binary(min_size=16 * blocks, max_size=16 * blocks))
    ct = OSSL.cipher("aes-cbc", key).encrypt(iv, pt)
    assert PURE.cipher("aes-cbc", key).encrypt(iv, pt) == ct
    assert PURE.cipher("aes-cbc", key).decrypt(iv, ct) == pt


@FAST
@given(st.binary(min_size=24, max_size=24), st.binary(min_size=8, max_size=8), st.integers(0, 4), st.data())
def test_3des_cbc_matches(key, iv, blocks, data):
    pt = data.draw(st.binary(min_size=8 * blocks, max_size=8 * blocks))
    ct = OSSL.cipher("3des-cbc", key).encrypt(iv, pt)
    assert PURE.cipher("3des-cbc", key).encrypt(iv, pt) == ct
    assert PURE.cipher("3des-cbc", key).decrypt(iv, ct) == pt


@FAST
@given(st.sampled_from([16, 32]), st.binary(max_size=80), st.binary(max_size=40), st.data())
def test_gcm_matches(klen, pt, aad, data):
    key = data.draw(st.binary(min_size=klen, max_size=klen))
    nonce = data.draw(st.binary(min_size=12, max_size=12))
    ct = OSSL.aead("aes-gcm", key).encrypt(nonce, pt, aad)
    assert PURE.aead("aes-gcm", key).encrypt(nonce, pt, aad) == ct
    assert PURE.aead("aes-gcm", key).decrypt(nonce, ct, aad) == pt


@FAST
@given(st.sampled_from(sorted(transforms.HASH_SIZE)), st.binary(max_size=200), st.binary(max_size=300))
def test_prf_and_hash_match(name, key, data):
    assert PURE.prf(name, key, data) == OSSL.prf(name, key, data)
    assert PURE.hash(name, data) == OSSL.hash(name, data)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.sampled_from(sorted(transforms.ESP)), st.binary(max_size=100), st.data())
def test_esp_transforms_interoperate(name, payload, data):
    ek, ak, sl = transforms.esp_key_lengths(name)
    ekey = data.draw(st.binary(min_size=ek, max_size=ek))
    akey = data.draw(st.binary(min_size=ak, max_size=ak))
    salt = data.draw(st.binary(min_size=sl, max_size=sl))
    seq = data.draw(st.integers(1, 0xFFFFFFFE))
    hdr = b"\x00\x00\x10\x00" + seq.to_bytes(4, "big")
    rng = iter(range(1 << 30))
    counter = lambda n: bytes([next(rng) & 0xFF]) * n  # noqa: E731
    _, _, block = transforms.esp_overhead(name)
    pt = payload + bytes(-len(payload) % block)
    for a, b in ((OSSL, PURE), (PURE, OSSL)):
        ta = a.esp_transform(name, ekey, akey, salt, counter)
        tb = b.esp_transform(name, ekey, akey, salt, counter)
        assert tb.open(ta.seal(hdr, pt)) == pt
