"""RSA PKCS#1 v1.5 signatures and X.509 chain checks (OpenSSL backend only; IKEv1 RSA-SIG, RFC 2409 5.1).

Raw (no DigestInfo) signatures as IKEv1 uses them are checked with OpenSSL's own
`recover_data_from_signature` (an independent PKCS#1 v1.5 decoder); hashed ones with OpenSSL's verify.
Certificates are made here with cryptography's builder, with a fixed clock."""

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from sluice.hal.crypto import openssl
from sluice.hal.crypto.errors import SignatureError

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject_key, subject, issuer_key, issuer, ca, days=(-10, 365)):
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(subject_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW + datetime.timedelta(days=days[0]))
         .not_valid_after(NOW + datetime.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return b.sign(issuer_key, hashes.SHA256())


def test_raw_signature_is_pkcs1_type1_without_digestinfo(keys):
    data = bytes(range(20))  # an IKEv1 HASH_I (SHA-1 sized)
    sig = openssl.rsa_sign(keys[0], data)
    assert keys[0].public_key().recover_data_from_signature(sig, padding.PKCS1v15(), None) == data
    openssl.rsa_verify(keys[0].public_key(), sig, data)
    with pytest.raises(SignatureError):
        openssl.rsa_verify(keys[0].public_key(), sig, data[:-1] + b"\x00")
    with pytest.raises(SignatureError):
        openssl.rsa_verify(keys[1].public_key(), sig, data)


def test_hashed_signature(keys):
    sig = openssl.rsa_sign(keys[0], b"message", "sha256")
    keys[0].public_key().verify(sig, b"message", padding.PKCS1v15(), hashes.SHA256())
    openssl.rsa_verify(keys[0].public_key(), sig, b"message", "sha256")
    with pytest.raises(SignatureError):
        openssl.rsa_verify(keys[0].public_key(), sig, b"messagE", "sha256")


def test_chain(keys):
    ca_key, mid_key, leaf_key = keys
    ca = _cert(ca_key, "Sluice Test CA", ca_key, "Sluice Test CA", True)
    mid = _cert(mid_key, "Sluice Intermediate", ca_key, "Sluice Test CA", True)
    leaf = _cert(leaf_key, "vpn.example", mid_key, "Sluice Intermediate", False)
    assert openssl.verify_chain(leaf, [mid], [ca], NOW) is ca
    with pytest.raises(SignatureError):
        openssl.verify_chain(leaf, [], [ca], NOW)  # missing intermediate
    with pytest.raises(SignatureError):
        openssl.verify_chain(leaf, [mid], [ca], NOW + datetime.timedelta(days=400))  # expired
    forged = _cert(leaf_key, "vpn.example", leaf_key, "Sluice Intermediate", False)  # self-signed, claims mid
    with pytest.raises(SignatureError):
        openssl.verify_chain(forged, [mid], [ca], NOW)
    not_ca = _cert(mid_key, "Sluice Intermediate", ca_key, "Sluice Test CA", False)
    with pytest.raises(SignatureError):
        openssl.verify_chain(leaf, [not_ca], [ca], NOW)


def test_loaders(keys):
    ca = _cert(keys[0], "CA", keys[0], "CA", True)
    pem = ca.public_bytes(serialization.Encoding.PEM)
    assert openssl.load_certificate(pem) == ca
    assert openssl.load_certificate(ca.public_bytes(serialization.Encoding.DER)) == ca
    assert openssl.load_certificates(pem + pem) == [ca, ca]
    key_pem = keys[0].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.BestAvailableEncryption(b"pw"))
    assert openssl.load_private_key(key_pem, b"pw").private_numbers() == keys[0].private_numbers()
    with pytest.raises(SignatureError) as e:
        openssl.load_private_key(key_pem, b"wrong")
    assert b"pw" not in str(e.value).encode()
    with pytest.raises(SignatureError):
        openssl.load_certificate(b"garbage")
