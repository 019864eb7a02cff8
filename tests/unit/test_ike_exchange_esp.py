"""After a two-party negotiation, the ChildSaUp keys build sluice.esp SAs that interoperate crosswise, and
scapy's SecurityAssociation (an independent ESP implementation) opens what our sender sealed with the keys the
*receiver* was given: an outside check of KEYMAT direction and key order (RFC 2409 5.5, RFC 4106 8.1)."""

import os
import sys

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.ipsec import ESP, SecurityAssociation
from scapy.packet import Raw

from sluice.esp import Inbound, Outbound
from sluice.hal import crypto
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import ike_pair  # noqa: E402

SCAPY_AUTH = {"sha1": "HMAC-SHA1-96", "sha256": "SHA2-256-128", "md5": "HMAC-MD5-96"}


def _negotiate(esp):
    p = ike_pair.Pair(client_cfg=ike_pair.config("initiator", esp=esp, ike="aes128-sha256-ecp256"),
                      server_cfg=ike_pair.config("responder", esp=esp, ike="aes128-sha256-ecp256"),
                      backend=crypto.backend("openssl"))
    p.connect()
    return p.events("client")[1], p.events("server")[1]


def _scapy_sa(ev, inbound):
    """A scapy SA for one direction of `ev` (the receiving side's keys when inbound)."""
    spi = ev.spi_in if inbound else ev.spi_out
    enc = ev.enc_in if inbound else ev.enc_out
    auth = ev.auth_in if inbound else ev.auth_out
    salt = ev.salt_in if inbound else ev.salt_out
    if "gcm" in ev.transform:
        return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=enc + salt)
    cipher, integ = ev.transform.split("-")
    return SecurityAssociation(ESP, spi=spi, crypt_algo="3DES" if cipher == "3des" else "AES-CBC", crypt_key=enc,
                               auth_algo=SCAPY_AUTH[integ], auth_key=auth)


@pytest.mark.parametrize("esp", ["aes256-sha1", "aes128-sha256", "aes256gcm16", "3des-sha1", "aes128-sha1-modp2048"])
def test_child_keys_interoperate_and_match_scapy(esp):
    c, s = _negotiate(esp)
    assert c.transform == s.transform
    rng = ike_pair.harness.SeededRng(5)
    out_c = Outbound(c.spi_out, c.transform, c.enc_out, c.auth_out, c.salt_out, rng=rng)
    in_s = Inbound(s.spi_in, s.transform, s.enc_in, s.auth_in, s.salt_in)
    l2tp = bytes(UDP(sport=1701, dport=1701) / Raw(b"\xc8\x02" + b"hello L2TP" * 5))
    pkt = out_c.seal(l2tp)
    payload, nh = in_s.open(pkt)
    assert payload == l2tp and nh == 17
    # scapy decrypts the client's packet with the server's inbound keys.
    ip = IP(bytes(IP(src=ike_pair.CLIENT_IP, dst=ike_pair.SERVER_IP, proto=50) / Raw(pkt)))
    plain = _scapy_sa(s, inbound=True).decrypt(ip)
    assert bytes(plain[UDP]) == l2tp
    # The reverse direction: our server seals, scapy opens with the client's inbound keys.
    out_s = Outbound(s.spi_out, s.transform, s.enc_out, s.auth_out, s.salt_out, rng=rng)
    pkt2 = out_s.seal(l2tp)
    ip2 = IP(bytes(IP(src=ike_pair.SERVER_IP, dst=ike_pair.CLIENT_IP, proto=50) / Raw(pkt2)))
    assert bytes(_scapy_sa(c, inbound=True).decrypt(ip2)[UDP]) == l2tp
    # scapy seals toward the server; our inbound opens it.
    sealed = _scapy_sa(c, inbound=False).encrypt(seq_num=100, pkt=IP(src=ike_pair.CLIENT_IP, dst=ike_pair.SERVER_IP) /
                                                 UDP(sport=1701, dport=1701) / Raw(b"from scapy"))
    esp_bytes = bytes(sealed[ESP])
    got, nh = in_s.open(esp_bytes)
    assert got[8:] == b"from scapy" and nh == 17
