"""Main Mode with RSA signatures over X.509 certificates (RFC 2409 5.1), certificates made here with
`cryptography`'s builder and a fixed clock; and a certificate-sized message 5 arriving in type-132 fragments.

The client checks the server certificate's name and extended key usage the way Windows does ("verify the
name and usage attributes"); the server checks the client's chain to the CA.
"""

import datetime
import os
import sys

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sluice.hal import crypto
from sluice.ike import constants as C
from sluice.ike.fragments import fragment_message

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import ike_pair  # noqa: E402

NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
IKE_INTERMEDIATE = x509.ObjectIdentifier("1.3.6.1.5.5.8.2.2")


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sluice Test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(key, cn, ca_key, ca_name, ca=False, san=None, eku=None, days=(-10, 365)):
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(NOW + datetime.timedelta(days=days[0]))
         .not_valid_after(NOW + datetime.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return b.sign(ca_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki():
    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)]
    ca_key, srv_key, cli_key, rogue_key = keys
    ca = _issue(ca_key, "Sluice Test CA", ca_key, _name("Sluice Test CA"), ca=True)
    rogue_ca = _issue(rogue_key, "Rogue CA", rogue_key, _name("Rogue CA"), ca=True)
    return dict(
        ca=_pem(ca), rogue_ca=_pem(rogue_ca),
        srv=lambda **kw: _pem(_issue(srv_key, kw.pop("cn", "vpn.example.com"), ca_key, ca.subject, **kw)),
        srv_key=_key_pem(srv_key),
        cli=_pem(_issue(cli_key, "router-7", ca_key, ca.subject, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])),
        cli_key=_key_pem(cli_key),
        rogue_cli=_pem(_issue(cli_key, "router-7", rogue_key, rogue_ca.subject)),
    )


def _pair(pki, srv_cert=None, cli_cert=None, server_name="vpn.example.com", ca_for_client=None, **kw):
    if srv_cert is None:
        srv_cert = pki["srv"](san=["vpn.example.com"], eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    common = dict(psk=None, utc_now=lambda: NOW, ike="aes256-sha256-ecp256")
    s = ike_pair.config("responder", cert=srv_cert, key=pki["srv_key"], ca=pki["ca"], **common)
    c = ike_pair.config("initiator", cert=cli_cert or pki["cli"], key=pki["cli_key"],
                        ca=ca_for_client or pki["ca"], server_name=server_name, **common)
    return ike_pair.Pair(client_cfg=c, server_cfg=s, backend=crypto.backend("openssl"), **kw)


def test_certificates_main_mode_and_quick_mode(pki):
    p = _pair(pki)
    p.connect()
    ce, se = p.events("client"), p.events("server")
    assert ike_pair.names(ce) == ["IkeSaUp", "ChildSaUp"] and ike_pair.names(se) == ["IkeSaUp", "ChildSaUp"]
    assert ce[0].auth == "rsasig" and se[0].auth == "rsasig"
    assert ce[1].enc_in == se[1].enc_out
    # The server learnt the client's identity as its certificate's DN.
    sa = [x for x in p.server._sas.values()][0]
    assert sa.peer_id  # ID_DER_ASN1_DN, shown as hex


def test_server_without_server_auth_eku_is_refused(pki):
    p = _pair(pki, srv_cert=pki["srv"](san=["vpn.example.com"], eku=[ExtendedKeyUsageOID.CLIENT_AUTH]))
    p.connect()
    ce = p.events("client")
    assert ike_pair.names(ce) == ["NegotiationFailed"]
    assert "serverAuth" in ce[0].reason
    # The server had counted the SA as up after message 6; the client's protected DELETE takes it down.
    assert ike_pair.names(p.events("server")) == ["IkeSaUp", "IkeSaDown"]
    assert p.server._sas == {}


def test_server_with_ike_intermediate_eku_is_accepted(pki):
    p = _pair(pki, srv_cert=pki["srv"](san=["vpn.example.com"], eku=[IKE_INTERMEDIATE]))
    p.connect()
    assert ike_pair.names(p.events("client")) == ["IkeSaUp", "ChildSaUp"]


def test_server_name_mismatch_is_refused(pki):
    p = _pair(pki, server_name="other.example.com")
    p.connect()
    ce = p.events("client")
    assert ike_pair.names(ce) == ["NegotiationFailed"]
    assert "vpn.example.com" in ce[0].reason and "other.example.com" in ce[0].reason


def test_name_from_cn_when_there_is_no_san(pki):
    p = _pair(pki, srv_cert=pki["srv"](eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    p.connect()
    assert ike_pair.names(p.events("client")) == ["IkeSaUp", "ChildSaUp"]


def test_client_from_another_ca_is_refused(pki):
    p = _pair(pki, cli_cert=pki["rogue_cli"])
    p.connect()
    se = p.events("server")
    assert ike_pair.names(se) == ["NegotiationFailed"]
    assert "not trusted" in se[0].reason


def test_expired_server_certificate_is_refused(pki):
    p = _pair(pki, srv_cert=pki["srv"](san=["vpn.example.com"], eku=[ExtendedKeyUsageOID.SERVER_AUTH],
                                        days=(-400, -1)))
    p.connect()
    ce = p.events("client")
    assert ike_pair.names(ce) == ["NegotiationFailed"] and "not trusted" in ce[0].reason


def test_message_5_in_fragments_is_reassembled(pki):
    # Apple sends 1280-octet fragments; a 2048-bit certificate message does not fit 576 octets.
    p = _pair(pki)
    pieces = []

    def drop(direction, data):
        if direction == "c>s" and data[18] == C.EXCH_MAIN and data[19] & C.FLAG_E and not pieces:
            pieces.extend(fragment_message(data, 7, 576))
            return True
        return False

    p.drop = drop
    p.client.initiate((ike_pair.SERVER_IP, 500), 0.0)
    p.run()
    assert len(pieces) >= 3
    for piece in reversed(pieces):     # out of order, too
        p.server.datagram_received(piece, (ike_pair.SERVER_IP, 500), (ike_pair.CLIENT_IP, 500), 0.0)
    p.run()
    assert ike_pair.names(p.events("server")) == ["IkeSaUp", "ChildSaUp"]
    assert ike_pair.names(p.events("client")) == ["IkeSaUp", "ChildSaUp"]


def test_big_messages_go_out_in_fragments(pki):
    # Both sides announce FRAGMENTATION (sluice.ike.vendor); with a 576-octet limit the certificate messages 5 and
    # 6 are sent as type-132 fragments and reassembled on the other side.
    p = _pair(pki)
    p.client.cfg.fragment_size = 576
    p.server.cfg.fragment_size = 576
    p.connect()
    assert ike_pair.names(p.events("server")) == ["IkeSaUp", "ChildSaUp"]
    assert ike_pair.names(p.events("client")) == ["IkeSaUp", "ChildSaUp"]
    frags = [x for x in p.log if x[3][16] == C.PT_FRAGMENT]
    assert {x[0] for x in frags} == {"c>s", "s>c"} and all(len(x[3]) <= 576 for x in frags)
    assert p.server._frags.stats["complete"] >= 1 and p.client._frags.stats["complete"] >= 1


def _dn(*attrs):
    """DER of a Name encoded by `cryptography` (an independent encoder), attrs = (oid, value, ASN.1 type)."""
    from cryptography.x509.name import _ASN1Type
    return x509.Name([x509.NameAttribute(o, v, getattr(_ASN1Type, t)) for o, v, t in attrs]).public_bytes()


def test_dn_ids_compare_by_value_not_encoding():
    """RFC 5280 7.1: the same DN in PrintableString (how strongSwan encodes an ID typed as text) and in
    UTF8String (the certificate's subject) is the same name; case and white space runs do not matter."""
    from sluice.ike.certs import same_name
    O, CN = NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME
    cert = _dn((O, "Sluice Test", "UTF8String"), (CN, "vpn.example.net", "UTF8String"))
    assert same_name(_dn((O, "Sluice Test", "PrintableString"), (CN, "vpn.example.net", "PrintableString")), cert)
    assert same_name(_dn((O, "sluice  TEST", "PrintableString"), (CN, "VPN.example.net", "IA5String")), cert)
    assert same_name(_dn((O, "Sluice Test", "BMPString"), (CN, "vpn.example.net", "UTF8String")), cert)
    assert not same_name(_dn((O, "Sluice Test", "UTF8String"), (CN, "vpn.example.org", "UTF8String")), cert)
    assert not same_name(_dn((CN, "vpn.example.net", "UTF8String"), (O, "Sluice Test", "UTF8String")), cert)
    assert not same_name(_dn((O, "Sluice Test", "UTF8String")), cert)
    assert not same_name(b"\x30\x05\x31", cert)            # truncated: not a name, not a crash

