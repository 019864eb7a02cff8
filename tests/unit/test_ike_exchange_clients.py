"""The client profiles of docs/clients.md (Windows, Apple, Android, NetworkManager) offered by our initiator,
with their proposal lists and vendor IDs, against our responder with the default and the `legacy` sets."""

import os
import sys

import pytest

from sluice.hal import crypto
from sluice.ike import vendor as V
from sluice.ike.proposals import default_esp, default_ike

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import ike_pair  # noqa: E402

# clients.md "Windows 10/11": phase 1 in this order; ESP AES-256/AES-128/3DES with SHA-1; no PFS; NATed.
WINDOWS = ("aes256-sha1-ecp384,aes128-sha1-ecp256,aes256-sha1-modp2048,3des-sha1-modp2048,3des-sha1-modp1024",
           "aes256-sha1,aes128-sha1,3des-sha1", [V.MS_NT5 + b"\x00\x00\x00\x09", V.FRAGMENTATION])
# clients.md "macOS / iOS": 14 phase 1 transforms; ESP AES-256/128/3DES x SHA1/MD5.
APPLE = ("aes256-sha256-modp2048,aes256-sha1-modp2048,aes256-md5-modp2048,aes256-sha512-modp2048,"
         "aes256-sha256-modp1536,aes256-sha1-modp1536,aes256-md5-modp1536,"
         "aes256-sha256-modp1024,aes256-sha1-modp1024,aes256-md5-modp1024,aes128-sha1-modp1024,"
         "aes128-md5-modp1024,3des-sha1-modp1024,3des-md5-modp1024",
         "aes256-sha1,aes128-sha1,3des-sha1,aes256-md5,aes128-md5,3des-md5", [])
# clients.md "Android up to 11": every phase 1 proposal MODP1024.
ANDROID = ("aes256-sha1-modp1024,aes256-md5-modp1024,aes128-sha1-modp1024,aes128-md5-modp1024,"
           "3des-sha1-modp1024,3des-md5-modp1024", "aes256-sha1,aes128-sha1,3des-sha1,aes256-md5", [])
# clients.md "Linux NetworkManager-l2tp".
NM = ("aes256-sha256-modp2048,aes256-sha1-modp2048,aes256-sha1-ecp384,aes128-sha1-ecp256,3des-sha1-modp2048",
      "aes256-sha1,aes128-sha1,3des-sha1", [])


def _run(profile, legacy=False, nat=True):
    ike, esp, vids = profile
    client = ike_pair.config("initiator", ike=ike, esp=esp, vendor_ids=vids)
    server = ike_pair.config("responder")
    server.ike = default_ike(legacy)
    server.esp = default_esp(legacy)
    p = ike_pair.Pair(client_cfg=client, server_cfg=server, nat=nat, backend=crypto.backend("openssl"))
    p.connect()
    return p, p.events("client"), p.events("server")


@pytest.mark.parametrize("profile, ike_choice, esp_choice", [
    (WINDOWS, "aes256-sha1-ecp384", "aes256-sha1"),
    (APPLE, "aes256-sha256-modp2048", "aes256-sha1"),
    (NM, "aes256-sha256-modp2048", "aes256-sha1"),
])
def test_modern_clients_connect_to_the_default_set(profile, ike_choice, esp_choice):
    p, ce, se = _run(profile)
    assert ike_pair.names(se) == ["IkeSaUp", "ChildSaUp"] and ike_pair.names(ce) == ["IkeSaUp", "ChildSaUp"]
    sa = list(p.server._sas.values())[0]
    # RFC 2409 5: the responder takes the first of the client's transforms it accepts.
    assert sa.algs.name() == ike_choice
    assert se[1].transform == esp_choice and se[1].encap and se[0].nat_remote


def test_android_needs_legacy_and_is_told_so():
    p, ce, se = _run(ANDROID)
    assert ike_pair.names(se) == ["NegotiationFailed"]
    assert "only MODP1024" in se[0].reason and "enable `legacy`" in se[0].reason
    assert ike_pair.names(ce) == ["NegotiationFailed"] and "NO-PROPOSAL-CHOSEN" in ce[0].reason
    p, ce, se = _run(ANDROID, legacy=True)
    assert ike_pair.names(se) == ["IkeSaUp", "ChildSaUp"]
    assert se[1].transform == "aes256-sha1"


def test_esp_prefers_sha1_over_sha256_when_both_are_offered():
    # clients.md: SHA-256 truncation differs between Android 6/7 and Apple; SHA-1 is the safe pick.
    profile = ("aes256-sha1-modp2048", "aes256-sha256,aes256-sha1", [])
    p, ce, se = _run(profile, nat=False)
    assert se[1].transform == "aes256-sha1" and ce[1].transform == "aes256-sha1"
    assert not se[1].encap


def test_shorter_server_lifetime_wins():
    ike, esp, vids = WINDOWS
    client = ike_pair.config("initiator", ike=ike, esp=esp, esp_lifetime=28800)
    server = ike_pair.config("responder", esp_lifetime=3600)
    server.ike = default_ike()
    server.esp = default_esp()
    p = ike_pair.Pair(client_cfg=client, server_cfg=server, backend=crypto.backend("openssl"))
    p.connect()
    # RFC 2407 4.6.3.1 RESPONDER-LIFETIME tells the client the smaller value.
    assert p.events("server")[1].lifetime_s == 3600
    assert p.events("client")[1].lifetime_s == 3600


def test_sha2_384_and_512_phase_1_through_nat():
    # NAT-D is hashed with the negotiated phase 1 hash (RFC 3947 3.2), SHA-384/512 included.
    for ike in ("aes256-sha384-ecp384", "aes256-sha512-modp2048"):
        p, ce, se = _run((ike, "aes256-sha1", []), nat=True)
        assert ike_pair.names(se) == ["IkeSaUp", "ChildSaUp"] and se[0].nat_remote and ce[0].nat_local
        assert ce[1].enc_in == se[1].enc_out
