"""The pure-Python MD4/MD5/SHA-1/SHA-256/DES against independent implementations (hashlib/OpenSSL,
`cryptography`), on random inputs. The RFC/FIPS vectors live in tests/core/test_ppp_crypto_vectors.py."""

import hashlib
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sluice.hal.crypto.pure import des, md4, md5, sha1, sha256

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_hashes_match_hashlib(data):
    assert md5.digest(data) == hashlib.md5(data).digest()
    assert sha1.digest(data) == hashlib.sha1(data).digest()
    assert sha256.digest(data) == hashlib.sha256(data).digest()


def _openssl_cli_md4():
    """MD4 through the openssl command with the legacy provider (OpenSSL 3 keeps MD4 there), or None."""
    exe = shutil.which("openssl")
    if exe is None:
        return None
    cmd = [exe, "dgst", "-md4", "-provider", "legacy", "-provider", "default", "-binary"]

    def md4_cli(data):
        return subprocess.run(cmd, input=data, capture_output=True, timeout=30, check=True).stdout
    try:
        if md4_cli(b"abc") != bytes.fromhex("a448017aaf21d8525fc10ae87aa6729d"):
            return None
    except (OSError, subprocess.SubprocessError):
        return None
    return md4_cli


_MD4_CLI = _openssl_cli_md4()


@pytest.mark.skipif(_MD4_CLI is None, reason="no openssl command with the legacy provider (MD4) here")
def test_md4_matches_openssl_legacy_provider():
    # Lengths across the padding edges and several blocks, plus bytes that differ from ASCII text.
    for n in (0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 200, 513):
        data = bytes((i * 131 + n * 7) & 0xFF for i in range(n))
        assert md4.digest(data) == _MD4_CLI(data), n


@SETTINGS
@given(key=st.binary(min_size=8, max_size=8), block=st.binary(min_size=8, max_size=8))
def test_des_matches_cryptography(key, block):
    from cryptography.hazmat.primitives.ciphers import Cipher, modes
    try:
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:
        from cryptography.hazmat.primitives.ciphers.algorithms import TripleDES
    enc = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    assert des.encrypt_block(key, block) == enc.update(block) + enc.finalize()


def test_des_rejects_wrong_sizes():
    with pytest.raises(ValueError):
        des.encrypt_block(b"1234567", b"12345678")
    with pytest.raises(ValueError):
        des.encrypt_block(b"12345678", b"123456789")
