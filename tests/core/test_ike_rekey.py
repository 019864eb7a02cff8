"""Rekeying: Quick Mode before the ESP lifetime ends (either side), grace period for the old SA, and a new
Main Mode under live ESP SAs (RFC 2409 5.5 leaves the timing to implementations; see sluice.ike.table)."""

try:
    import ike_pair
except ImportError:
    from tests.core import ike_pair

from sluice.ike import constants as C

QM, INFO, MM = C.EXCH_QUICK, C.EXCH_INFORMATIONAL, C.EXCH_MAIN


def _pair(esp_life=100, ike_life=28800, **kw):
    return ike_pair.Pair(client_cfg=ike_pair.config("initiator", esp_lifetime=esp_life, ike_lifetime=ike_life,
                                                    dpd_delay=0),
                         server_cfg=ike_pair.config("responder", esp_lifetime=esp_life, ike_lifetime=ike_life,
                                                    dpd_delay=0), **kw)


def test_client_rekeys_quick_mode_before_expiry():
    p = _pair()
    p.connect()
    c0, s0 = p.events("client")[1], p.events("server")[1]
    p.advance(84.0)
    assert p.events("client") == [] and p.events("server") == []
    n = len(p.trace)
    p.advance(91.0)        # soft lifetime: 85-90 % of 100 s for the side that initiated
    assert [(d, ex) for d, port, ex, mid, ln in p.trace[n:]] == [("c>s", QM), ("s>c", QM), ("c>s", QM)]
    c1, s1 = p.events("client"), p.events("server")
    # The responder's inbound half first (with its message 2), then the pair (message 3).
    assert ike_pair.names(c1) == ["ChildSaUp"] and ike_pair.names(s1) == ["ChildSaInbound", "ChildSaUp"]
    assert s1[0].spi_in == s1[1].spi_in and s1[0].enc_in == s1[1].enc_in
    s1 = s1[1:]
    assert c1[0].rekey_of == c0.spi_in and s1[0].rekey_of == s0.spi_in
    assert c1[0].spi_in not in (c0.spi_in, c0.spi_out) and c1[0].enc_in != c0.enc_in
    # The old pair stays usable for the grace period (30 s, cut short by its own hard lifetime), then goes.
    p.advance(99.0)
    assert p.events("client") == [] and p.events("server") == []
    p.advance(100.0)
    down_c, down_s = p.events("client"), p.events("server")
    assert ike_pair.names(down_c) == ["ChildSaDown"] and down_c[0].spi_in == c0.spi_in
    assert ike_pair.names(down_s) == ["ChildSaDown"] and down_s[0].spi_in == s0.spi_in
    assert sorted(p.client._children) == [c1[0].spi_in]
    assert sorted(p.server._children) == [s1[0].spi_in]


def test_server_rekeys_when_the_client_does_not():
    p = _pair()
    p.connect()
    c0, s0 = p.events("client")[1], p.events("server")[1]
    p.client._children[c0.spi_in].soft_at = 1e9     # a client that never rekeys
    n = len(p.trace)
    p.advance(96.0)       # the responder side steps in at 94-95 %
    assert [(d, ex) for d, port, ex, mid, ln in p.trace[n:]][:3] == [("s>c", QM), ("c>s", QM), ("s>c", QM)]
    c1, s1 = p.events("client"), p.events("server")
    assert ike_pair.names(c1) == ["ChildSaInbound", "ChildSaUp"] and c1[0].spi_in == c1[1].spi_in
    c1 = c1[1:]
    assert c1[0].rekey_of == c0.spi_in
    assert ike_pair.names(s1) == ["ChildSaUp"] and s1[0].rekey_of == s0.spi_in
    assert c1[0].spi_out == s1[0].spi_in and c1[0].enc_out == s1[0].enc_in


def test_expiry_without_rekey_takes_the_sa_down():
    p = _pair()
    p.connect()
    c0 = p.events("client")[1]
    p.events("server")
    p.drop = lambda d, data: data[18] == QM       # rekeys are lost
    p.advance(101.0)
    down = [e for e in p.events("client") if type(e).__name__ == "ChildSaDown"]
    assert down and down[0].spi_in == c0.spi_in and down[0].reason == "lifetime expired"


def test_main_mode_rekey_keeps_esp_sas():
    p = _pair(esp_life=3600, ike_life=200)
    p.connect()
    c0, s0 = p.events("client")[1], p.events("server")[1]
    n = len(p.trace)
    p.advance(181.0)       # 85-90 % of 200 s
    chart = [(d, ex) for d, port, ex, mid, ln in p.trace[n:]]
    assert chart[:6] == [("c>s", MM), ("s>c", MM)] * 3
    assert chart[6:] == [("c>s", INFO)]                 # DELETE of the old ISAKMP SA
    ce, se = p.events("client"), p.events("server")
    assert ike_pair.names(ce) == ["IkeSaUp", "IkeSaDown"] and ce[1].reason == "replaced by a new ISAKMP SA"
    assert ike_pair.names(se) == ["IkeSaUp", "IkeSaDown"]
    assert list(p.client._children) == [c0.spi_in] and list(p.server._children) == [s0.spi_in]
    # The ESP SA's next rekey runs on the new ISAKMP SA.
    assert p.client._children[c0.spi_in].ike.established


def test_client_rekeys_esp_after_its_isakmp_sa_expired():
    # Phase 1 ends (and is not renewed in time: its rekey is lost), then the ESP SA reaches its soft lifetime:
    # the client runs a new Main Mode and the Quick Mode on it, as a rekey of the old ESP SA.
    p = _pair(esp_life=300, ike_life=100)
    p.connect()
    c0 = p.events("client")[1]
    p.events("server")
    p.drop = lambda d, data: p.now < 120 and data[18] == MM       # the phase 1 rekey at ~90 s is lost
    p.advance(200.0)
    ce = p.events("client")
    assert "IkeSaDown" in ike_pair.names(ce)                      # phase 1 lifetime ended
    p.drop = None
    p.advance(275.0)                                              # ESP soft lifetime: 85-90 % of 300 s
    ce = p.events("client")
    ups = [e for e in ce if type(e).__name__ == "ChildSaUp"]
    assert ups and ups[0].rekey_of == c0.spi_in, ike_pair.names(ce)
    assert "IkeSaUp" in ike_pair.names(ce)


def test_responder_announces_the_inbound_sa_of_a_rekey_before_message_3():
    # The initiator installs the new pair on our message 2 and sends on it at once (strongSwan does, before its
    # message 3 leaves): the inbound half comes out with message 2 so that the data plane can take it first.
    p = _pair()
    p.connect()
    c0, s0 = p.events("client")[1], p.events("server")[1]
    assert "ChildSaInbound" not in ike_pair.names(p.events("server"))   # a first SA carries no traffic yet
    sent = []

    def drop(d, data):      # the client's second Quick Mode message of the rekey (message 3) is lost
        if d == "c>s" and data[18] == QM:
            sent.append(1)
            return len(sent) >= 2
        return False

    p.drop = drop
    p.advance(91.0)
    s1 = p.events("server")
    assert ike_pair.names(s1) == ["ChildSaInbound"]       # message 2 sent, message 3 not in
    early = s1[0]
    assert early.spi_in not in (s0.spi_in, s0.spi_out) and early.peer == s0.peer
    c1 = [e for e in p.events("client") if type(e).__name__ == "ChildSaUp"]
    assert c1 and c1[0].spi_out == early.spi_in and c1[0].enc_out == early.enc_in
    assert (c1[0].auth_out, c1[0].salt_out, c1[0].transform) == (early.auth_in, early.salt_in, early.transform)
    p.drop = None
    p.advance(95.0)       # message 3 again (the server retransmits message 2, the client answers)
    up = [e for e in p.events("server") if type(e).__name__ == "ChildSaUp" and e.spi_in == early.spi_in]
    assert up and up[0].enc_in == early.enc_in and up[0].auth_in == early.auth_in
