"""Informational exchanges (RFC 2409 5.7): DELETE of ESP and ISAKMP SAs, INITIAL-CONTACT (RFC 2407 4.6.3.3),
and Quick Mode retransmission with the cached reply (RFC 2408 leaves the timing to implementations)."""

try:
    import ike_pair
except ImportError:
    from tests.core import ike_pair

from sluice.ike import constants as C

MM, QM, INFO = C.EXCH_MAIN, C.EXCH_QUICK, C.EXCH_INFORMATIONAL


def test_delete_peer_sends_esp_then_isakmp_delete():
    p = ike_pair.Pair()
    p.connect()
    p.events("client")
    se = p.events("server")
    n = len(p.trace)
    p.client.delete_peer((ike_pair.SERVER_IP, 500), p.now)
    p.run()
    #   HDR*, HASH(1), D(ESP, spi_in)    -->
    #   HDR*, HASH(1), D(ISAKMP, CKY-I|CKY-R)  -->
    assert [(d, ex) for d, port, ex, mid, ln in p.trace[n:]] == [("c>s", INFO), ("c>s", INFO)]
    mids = [mid for d, port, ex, mid, ln in p.trace[n:]]
    assert mids[0] != mids[1] and 0 not in mids     # a fresh message id per informational exchange
    down_c, down_s = p.events("client"), p.events("server")
    assert ike_pair.names(down_c) == ["ChildSaDown", "IkeSaDown"]
    assert ike_pair.names(down_s) == ["ChildSaDown", "IkeSaDown"]
    assert down_s[0].spi_in == se[1].spi_in and down_s[0].reason == "deleted by the peer"
    assert down_s[1].reason == "deleted by the peer"
    assert p.server._children == {} and p.server.get_timer() is None


def test_close_deletes_everything():
    p = ike_pair.Pair()
    p.connect()
    p.events("client"), p.events("server")
    p.server.close(p.now)
    p.run()
    assert ike_pair.names(p.events("server")) == ["ChildSaDown", "IkeSaDown"]
    assert ike_pair.names(p.events("client")) == ["ChildSaDown", "IkeSaDown"]


def test_initial_contact_replaces_a_restarted_clients_sas():
    p = ike_pair.Pair(nat=True)
    p.connect()
    old = p.events("server")
    # The client reboots (new table, new cookies) and comes back through the same NAT mapping.
    again = ike_pair.Pair(nat=True, seed=99, server=p.server)
    again.now = 5.0
    again.connect()
    se = again.events("server")
    assert ike_pair.names(se) == ["ChildSaDown", "IkeSaDown", "IkeSaUp", "ChildSaUp"]
    assert se[0].spi_in == old[1].spi_in and "INITIAL-CONTACT" in se[0].reason
    assert se[3].rekey_of is None
    assert list(p.server._children) == [se[3].spi_in]


def test_lost_quick_mode_message_3_server_resends_message_2():
    p = ike_pair.Pair()
    lost = []

    def drop(direction, data):
        if direction == "c>s" and data[18] == QM and not lost and len(data) < 80:
            lost.append(data)   # HASH(3) is the short one
            return True
        return False

    p.drop = drop
    p.connect()
    assert lost
    assert ike_pair.names(p.events("server")) == ["IkeSaUp"]
    assert ike_pair.names(p.events("client")) == ["IkeSaUp", "ChildSaUp"]
    n = len(p.trace)
    p.advance(1.0)
    # <-- HDR*, HASH(2) ... (again);  HDR*, HASH(3) --> (the cached bytes)
    assert [(d, ex) for d, port, ex, mid, ln in p.trace[n:]] == [("s>c", QM), ("c>s", QM)]
    assert p.log[-1][3] == lost[0]
    assert ike_pair.names(p.events("server")) == ["ChildSaUp"]
    assert p.events("client") == []


def test_lost_quick_mode_message_1_is_retransmitted():
    p = ike_pair.Pair()
    lost = []
    p.drop = lambda d, data: d == "c>s" and data[18] == QM and not lost and not lost.append(1)
    p.connect()
    p.advance(1.0)
    ce, se = p.events("client"), p.events("server")
    assert ike_pair.names(ce) == ["IkeSaUp", "ChildSaUp"]
    assert ike_pair.names(se) == ["IkeSaUp", "ChildSaUp"]
    # The Quick Mode's round trip (what the client's L2TP waits on) counts from the first message 1: the lost
    # one's retransmission wait is in it. The responder measures none.
    assert ce[1].round_trip == p.now > 0 and se[1].round_trip is None


def test_forged_informational_is_ignored():
    p = ike_pair.Pair()
    p.connect()
    p.events("server")
    p.client.delete_peer((ike_pair.SERVER_IP, 500), p.now)
    real = [d for lp, peer, d in p.client.datagrams_to_send()]
    assert len(real) == 2
    # Flip a bit in the encrypted DELETE: HASH(1) cannot verify, nothing is deleted.
    bad = real[0][:-1] + bytes((real[0][-1] ^ 0x80,))
    p.server.datagram_received(bad, (ike_pair.SERVER_IP, 500), (ike_pair.CLIENT_IP, 500), p.now)
    assert p.events("server") == [] and len(p.server._children) == 1
    assert p.server.stats["malformed"] == 1


def test_initial_contact_in_a_later_informational_like_racoon():
    # racoon (Apple, Android) sends INITIAL-CONTACT in its own Informational right after phase 1.
    from sluice.ike import informational as info
    p = ike_pair.Pair(nat=True, client_cfg=ike_pair.config("initiator", initial_contact=False))
    p.connect()
    old = p.events("server")
    again = ike_pair.Pair(nat=True, seed=99, server=p.server,
                          client_cfg=ike_pair.config("initiator", initial_contact=False))
    again.now = 5.0
    again.connect()
    se = again.events("server")
    # A live SA of the same peer: the new pair counts as its renewal (the inbound half comes with message 2).
    assert ike_pair.names(se) == ["IkeSaUp", "ChildSaInbound", "ChildSaUp"] and se[2].rekey_of == old[1].spi_in
    sa = [s for s in again.client._sas.values() if s.established][0]
    info.notify(sa, C.N_INITIAL_CONTACT)
    again.run()
    down = again.events("server")
    assert ike_pair.names(down) == ["ChildSaDown", "IkeSaDown"]
    assert down[0].spi_in == old[1].spi_in
    assert list(p.server._children) == [se[1].spi_in]
