"""Known-answer tests for the hashes and DES behind CHAP and MS-CHAPv2, pure and through the facade.

MicroPython subset: plain asserts, no pytest. Each vector names its published source.
"""

from sluice.hal.crypto import digest
from sluice.hal.crypto.pure import des, md4, md5, sha1, sha256
from sluice.ppp import chap, mschapv2
try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

unhex = harness.unhex

_DIGITS = b"1234567890" * 8
_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

# RFC 1320 A.5, "Test suite"
MD4_VECTORS = (
    (b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
    (b"a", "bde52cb31de33e46245e05fbdbd6fb24"),
    (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
    (b"message digest", "d9130a8164549fe818874806e1c7014b"),
    (b"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
    (_ALNUM, "043f8582f241db351ce627e153e7f0e4"),
    (_DIGITS, "e33b4ddc9c38f2199c3e7b164fcc0536"),
)

# RFC 1321 A.5, "Test suite"
MD5_VECTORS = (
    (b"", "d41d8cd98f00b204e9800998ecf8427e"),
    (b"a", "0cc175b9c0f1b6a831c399e269772661"),
    (b"abc", "900150983cd24fb0d6963f7d28e17f72"),
    (b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
    (b"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
    (_ALNUM, "d174ab98d277d9f5a5611c2c9f419d9f"),
    (_DIGITS, "57edf4a22be3c955ac49da2e2107b67a"),
)

# FIPS 180-2 Appendix A.1 and A.2 (one-block and multi-block messages)
SHA1_VECTORS = (
    (b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
)

# FIPS 180-2 Appendix B.1 and B.2
SHA256_VECTORS = (
    (b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
)

DES_VECTORS = (
    # FIPS 81 Appendix B, Table B1 (ECB): key 0123456789abcdef, "Now is t"
    ("0123456789abcdef", "4e6f772069732074", "3fa40e8a984d4815"),
    # NIST SP 800-17 Table 1 (variable plaintext known answer test), first entry
    ("0101010101010101", "95f8a5e5dd31d900", "8000000000000000"),
    # The worked example of J. O. Grabbe, "The DES Algorithm Illustrated"
    ("133457799bbcdff1", "0123456789abcdef", "85e813540f0ab405"),
)


def _check(fn, vectors):
    for msg, want in vectors:
        assert fn(msg) == unhex(want), (msg, want)


def test_md4_rfc1320_pure_and_facade():
    _check(md4.digest, MD4_VECTORS)
    _check(digest.md4, MD4_VECTORS)


def test_md5_rfc1321_pure_and_facade():
    _check(md5.digest, MD5_VECTORS)
    _check(digest.md5, MD5_VECTORS)


def test_sha1_fips180_pure_and_facade():
    _check(sha1.digest, SHA1_VECTORS)
    _check(digest.sha1, SHA1_VECTORS)


def test_sha256_fips180_pure_and_facade():
    _check(sha256.digest, SHA256_VECTORS)
    _check(digest.sha256, SHA256_VECTORS)


def test_padding_boundaries_agree_between_pure_and_facade():
    # Lengths around the 55/56/64-octet padding edges, where hand-written padding usually breaks.
    for n in (54, 55, 56, 57, 63, 64, 65, 119, 120, 128):
        msg = bytes((i * 7 + n) & 0xFF for i in range(n))
        assert md4.digest(msg) == digest.md4(msg), n
        assert md5.digest(msg) == digest.md5(msg), n
        assert sha1.digest(msg) == digest.sha1(msg), n
        assert sha256.digest(msg) == digest.sha256(msg), n


def test_des_vectors_pure_and_facade():
    for key, pt, ct in DES_VECTORS:
        assert des.encrypt_block(unhex(key), unhex(pt)) == unhex(ct), key
        assert digest.des_encrypt_block(unhex(key), unhex(pt)) == unhex(ct), key


# RFC 2759 9.2, "Sample Data"
USER = "User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = unhex("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
PEER_CHALLENGE = unhex("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")
CHALLENGE = unhex("D0 2E 43 86 BC E9 12 26")
NT_RESPONSE = unhex("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")
PASSWORD_HASH = unhex("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE")
PASSWORD_HASH_HASH = unhex("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F")
AUTHENTICATOR_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"


def test_mschapv2_rfc2759_sample_data():
    assert mschapv2.nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert mschapv2.hash_nt_password_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH
    assert mschapv2.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE
    assert mschapv2.challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE
    assert mschapv2.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD) == NT_RESPONSE
    got = mschapv2.generate_authenticator_response(PASSWORD, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER)
    assert got == AUTHENTICATOR_RESPONSE


def test_mschapv2_domain_prefix_is_not_hashed():
    # RFC 2759 8.2: only the user name, without a prepended domain, enters ChallengeHash.
    assert mschapv2.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, "CORP\\User") == CHALLENGE


def test_mschapv2_success_check_rejects_a_wrong_authenticator():
    assert mschapv2.check_success((AUTHENTICATOR_RESPONSE + " M=ok").encode(), AUTHENTICATOR_RESPONSE)
    assert mschapv2.check_success(AUTHENTICATOR_RESPONSE.lower().replace("s=", "S=").encode(),
                                  AUTHENTICATOR_RESPONSE)
    wrong = AUTHENTICATOR_RESPONSE[:-1] + "7"
    assert not mschapv2.check_success(wrong.encode(), AUTHENTICATOR_RESPONSE)
    assert not mschapv2.check_success(b"S=", AUTHENTICATOR_RESPONSE)
    assert not mschapv2.check_success(b"\xff" * 50, AUTHENTICATOR_RESPONSE)


# PEAR Crypt_CHAP tests/chaptest.php ("CHAP-MD5 TEST" and "TEST 2"), an independent implementation's vectors.
CHAP_MD5_VECTORS = (
    (1, b"MyPw", "102DB5DF085D3041", "8f028814450d66d94c72331ef455a172"),
    (1, b"sepp", "102DB5DF085D3041", "d39bfaf5d6855a948c8c81a85947502c"),
)


def test_chap_md5_published_vectors():
    for ident, secret, challenge, want in CHAP_MD5_VECTORS:
        assert chap.md5_response(ident, secret, unhex(challenge)) == unhex(want)


# RFC 2202 2 (HMAC-MD5) and 3 (HMAC-SHA-1), test cases 1 and 2; RFC 4231 4.2 and 4.3 (HMAC-SHA-256).
HMAC_VECTORS = (
    ("md5", b"\x0b" * 16, b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
    ("md5", b"Jefe", b"what do ya want for nothing?", "750c783e6ab0b503eaa86e310a5db738"),
    ("sha1", b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
    ("sha1", b"Jefe", b"what do ya want for nothing?", "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    ("sha256", b"\x0b" * 20, b"Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    ("sha256", b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
)


def test_hmac_rfc2202_rfc4231_through_the_facade():
    for name, key, msg, want in HMAC_VECTORS:
        assert digest.hmac(name, key, msg) == unhex(want), (name, key)


def test_hmac_long_key_is_hashed_first():
    # RFC 2202 test case 6 (HMAC-SHA-1, 80-octet key): keys longer than the block are hashed (RFC 2104 2).
    got = digest.hmac("sha1", b"\xaa" * 80, b"Test Using Larger Than Block-Size Key - Hash Key First")
    assert got == unhex("aa4ae5e15272d00e95705637ce8a3b55ed402112")
