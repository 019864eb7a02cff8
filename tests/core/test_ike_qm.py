"""Quick Mode details (RFC 2409 5.5, RFC 2407 4.6.2 / 4.6.3.1, RFC 3193): PFS, selectors, lifetimes, refusals."""

try:
    import ike_pair
    import harness
except ImportError:
    from tests.core import ike_pair, harness

from sluice.ike import constants as C
from sluice.ike.payloads import IdPayload
from sluice.ike.quick_mode import QuickModeFailed, _check_ids


def test_pfs_quick_mode():
    # HDR*, HASH(1), SA, Ni, KE, IDci, IDcr -->  <-- HDR*, HASH(2), SA, Nr, KE, IDci, IDcr ;  HDR*, HASH(3) -->
    p = ike_pair.Pair(client_cfg=ike_pair.config("initiator", esp="aes128-sha1-modp1024"),
                      server_cfg=ike_pair.config("responder", esp="aes128-sha1-modp1024"))
    p.connect()
    c, s = p.events("client")[1], p.events("server")[1]
    assert c.transform == s.transform == "aes128-sha1"        # the PFS group is not part of the ESP transform
    assert (c.enc_in, c.auth_in) == (s.enc_out, s.auth_out) and (c.enc_out, c.auth_out) == (s.enc_in, s.auth_in)


def test_esp_mismatch_is_refused_with_words_on_both_sides():
    p = ike_pair.Pair(server_cfg=ike_pair.config("responder", esp="aes128-sha256"))
    p.connect()
    se, ce = p.events("server"), p.events("client")
    assert ike_pair.names(se) == ["IkeSaUp", "NegotiationFailed"]
    assert "no acceptable esp proposal" in se[1].reason and "aes256-sha1" in se[1].reason
    assert ike_pair.names(ce) == ["IkeSaUp", "NegotiationFailed"]
    assert "NO-PROPOSAL-CHOSEN" in ce[1].reason
    assert p.server._children == {} and p.client._children == {}


def test_responder_lifetime_is_the_smaller():
    p = ike_pair.Pair(client_cfg=ike_pair.config("initiator", esp_lifetime=3600),
                      server_cfg=ike_pair.config("responder", esp_lifetime=600))
    p.connect()
    assert p.events("server")[1].lifetime_s == 600
    assert p.events("client")[1].lifetime_s == 600           # told by RESPONDER-LIFETIME (RFC 2407 4.6.3.1)


def test_l2tp_selectors():
    # RFC 3193 5: UDP/1701 between the two addresses; a client may use any source port (port 0 in its ID).
    a = IdPayload.ipv4("198.51.100.7", 17, 1701)
    b = IdPayload.ipv4("192.0.2.1", 17, 1701)
    assert _check_ids([a, b]) == [a, b]
    assert _check_ids([IdPayload.ipv4("198.51.100.7", 17, 0), b])
    assert _check_ids([]) is None                                   # implied: the phase 1 addresses
    harness.raises(QuickModeFailed, _check_ids, [a])
    harness.raises(QuickModeFailed, _check_ids, [IdPayload.ipv4("198.51.100.7", 6, 1701), b])
    harness.raises(QuickModeFailed, _check_ids, [IdPayload.ipv4("198.51.100.7", 17, 500), b])
    e = harness.raises(QuickModeFailed, _check_ids,
                       [IdPayload.ipv4_subnet("198.51.100.0", "255.255.255.0", 17, 1701), b])
    assert "1701" in str(e)
    assert C.ID_IPV4_ADDR == a.id_type
