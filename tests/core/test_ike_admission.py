"""Issue 13: admission control for half-open Main Mode (items 2, 12), replay protection and peer moves (item 3),
the counters (item 11) and internal errors kept apart from malformed input (issue 9), under a fixed clock.

The flood figures (3,000 message 1s per second, 10,000 sources) are in tests/unit/test_ike_flood.py.
"""

try:
    import ike_pair
    import harness
except ImportError:
    from tests.core import ike_pair, harness

from sluice.ike import constants as C
from sluice.ike.admission import UNVERIFIED, VERIFIED
from sluice.ike.table import IkeTable

MM, QM, INFO = C.EXCH_MAIN, C.EXCH_QUICK, C.EXCH_INFORMATIONAL
SERVER = (ike_pair.SERVER_IP, 500)


class Crowd:
    """One server and `n` clients behind the NAT address, client i at ports 40000+i (500) and 41000+i (4500)."""

    def __init__(self, n, server_cfg=None, seed=40):
        self.server = IkeTable(server_cfg or ike_pair.config("responder"), harness.SeededRng(seed), None)
        self.clients = []
        self.route = {}
        for i in range(n):
            t = IkeTable(ike_pair.config("initiator"), harness.SeededRng(seed + 1 + i), None)
            ports = {500: (ike_pair.NAT_IP, 40000 + i), 4500: (ike_pair.NAT_IP, 41000 + i)}
            self.clients.append((t, ports))
            for lp in ports:
                self.route[ports[lp]] = (t, lp)
        self.now = 0.0
        self.lost = 0

    def run(self):
        for _ in range(400):
            moved = False
            for t, ports in self.clients:
                for lp, peer, data in t.datagrams_to_send():
                    moved = True
                    self.server.datagram_received(data, (ike_pair.SERVER_IP, peer[1]), ports[lp], self.now)
            for lp, peer, data in self.server.datagrams_to_send():
                moved = True
                dst = self.route.get(peer)
                if dst is None:
                    self.lost += 1
                    continue
                dst[0].datagram_received(data, (ike_pair.CLIENT_IP, dst[1]), (ike_pair.SERVER_IP, lp), self.now)
            if not moved:
                return
        raise AssertionError("did not settle")

    def up(self):
        n = 0
        for t, ports in self.clients:
            e = t.next_event()
            while e is not None:
                if type(e).__name__ == "ChildSaUp":
                    n += 1
                e = t.next_event()
        return n


def _spoofed_first_messages(server, count, sources, now, seed=7, first=1):
    """`count` genuine message 1s with fresh cookies from `sources` addresses that never answer."""
    t = IkeTable(ike_pair.config("initiator"), harness.SeededRng(seed), None)
    t.initiate(SERVER, 0.0)
    m1 = t.datagrams_to_send()[0][2]
    for k in range(count):
        n = k % sources
        data = (k + first).to_bytes(8, "big") + m1[8:]
        server.datagram_received(data, SERVER, ("198.18.%d.%d" % (n >> 8, n & 0xFF), 500), now)
    return len(server.datagrams_to_send())


def test_many_clients_behind_one_address_queue_instead_of_drop():
    # Issue 13 item 12. Per-source limit 4, six clients behind one NAT address dial at the same instant.
    # Before: the fifth and sixth message 1 were dropped (half_open_limit 2) and waited for a retransmission.
    c = Crowd(6, ike_pair.config("responder", half_open_per_ip=4))
    for t, ports in c.clients:
        t.initiate(SERVER, 0.0)
    c.run()
    k = c.server.counters()
    assert c.up() == 6
    assert k["half_open_drops"] == 0 and k["queued"] == 2 and k["waiting"] == 0 and k["half_open"] == 0
    assert k["half_open_peak"] == 4


def test_queue_is_bounded_and_a_retransmission_is_not_queued_twice():
    srv = IkeTable(ike_pair.config("responder", half_open_per_ip=2, half_open_queue=3, half_open_timeout=8.0),
                   harness.SeededRng(3), None)
    t = IkeTable(ike_pair.config("initiator"), harness.SeededRng(4), None)
    t.initiate(SERVER, 0.0)
    m1 = t.datagrams_to_send()[0][2]
    src = (ike_pair.NAT_IP, 40000)
    for k in range(8):
        srv.datagram_received((k + 1).to_bytes(8, "big") + m1[8:], SERVER, src, 0.0)
    srv.datagram_received((3).to_bytes(8, "big") + m1[8:], SERVER, src, 0.5)    # the third again: waiting
    k = srv.counters()
    assert k["half_open"] == 2 and k["waiting"] == 3 and k["half_open_drops"] == 3 and k["queued"] == 3
    assert len(srv.datagrams_to_send()) == 2                # nothing answered for a waiting message
    # The two half-open SAs expire (their sources never answer): two waiting message 1s are let in.
    srv.handle_timer(8.0)
    k = srv.counters()
    assert k["half_open"] == 2 and k["waiting"] == 1 and k["half_open_expired"] == 2
    assert len(srv.datagrams_to_send()) == 2
    # A waiting message older than half_open_queue_wait (10 s) is dropped instead of answered.
    srv.handle_timer(16.0)
    k = srv.counters()
    assert k["half_open"] == 0 and k["waiting"] == 0 and k["queue_expired"] == 1
    assert srv.get_timer() is None and srv.next_event() is None


def test_full_table_evicts_and_a_real_client_still_gets_in():
    # Issue 13 item 2. Before: a full table dropped every new message 1 for 45 s (half_open_limit).
    p = ike_pair.Pair(server_cfg=ike_pair.config("responder", half_open_total=8, half_open_per_ip=4))
    _spoofed_first_messages(p.server, 8, 2, 0.0)
    assert p.server.counters()["half_open"] == 8
    p.connect()
    assert ike_pair.names(p.events("client")) == ["IkeSaUp", "ChildSaUp"]
    k = p.server.counters()
    assert k["evictions"] == 1 and k["half_open"] == 7 and k["half_open_drops"] == 0
    assert ike_pair.names(p.events("server")) == ["IkeSaUp", "ChildSaUp"]   # evictions are silent


def test_victims_come_from_the_heaviest_source_and_unverified_first():
    srv = IkeTable(ike_pair.config("responder", half_open_total=8, half_open_per_ip=8), harness.SeededRng(5), None)
    _spoofed_first_messages(srv, 7, 1, 0.0)                     # one address holds 7
    lone = ike_pair.Pair(server=srv, nat=True)
    lone.drop = lambda d, data: d == "c>s" and data[18] == MM and data[19] & C.FLAG_E   # stops after message 3
    lone.connect()
    mine = [s for s in srv._sas.values() if s.peer[0] == ike_pair.NAT_IP][0]
    assert mine.admit == VERIFIED
    for k in range(50):
        _spoofed_first_messages(srv, 1, 1, 0.1, first=100 + k)  # each evicts one
    assert mine.admit == VERIFIED and srv._sas.get(mine.spi()) is mine
    assert srv.counters()["evictions"] == 50 and srv.counters()["half_open"] == 8


def test_unverified_expire_silently_and_pressure_shortens_the_timeout():
    srv = IkeTable(ike_pair.config("responder", half_open_total=8), harness.SeededRng(5), None)
    _spoofed_first_messages(srv, 6, 6, 0.0)
    # The first three went in before the table was half full (45 s); from the fourth on it is busy (5 s).
    assert [int(s.half_open_until) for s in srv._sas.values() if s.admit == UNVERIFIED].count(5) == 3
    assert srv.counters()["under_pressure"]
    assert srv.get_timer() == 5.0
    srv.handle_timer(5.0)
    assert srv.counters()["half_open"] == 3 and srv.counters()["half_open_expired"] == 3
    srv.handle_timer(45.0)
    assert srv.counters()["half_open"] == 0 and not srv.counters()["under_pressure"]
    assert srv.next_event() is None and srv.get_timer() is None and srv._sas == {} and srv._resp_index == {}


def test_a_verified_negotiation_that_stalls_is_reported():
    p = ike_pair.Pair()
    p.drop = lambda d, data: d == "c>s" and data[18] == MM and data[19] & C.FLAG_E
    p.connect()
    p.server.handle_timer(44.0)
    assert p.events("server") == []
    p.server.handle_timer(45.0)
    se = p.events("server")
    assert ike_pair.names(se) == ["NegotiationFailed"] and "did not complete" in se[0].reason


def test_replies_to_unverified_sources_stay_small():
    from sluice.ike.message import Message
    from sluice.ike.proposals import ProposalSet, ike_sa_payload
    one = ProposalSet.parse(ike_pair.IKE, "ike")
    bare = Message.build(b"\x05" * 8, b"\x00" * 8, MM, [ike_sa_payload(one, C.AUTH_PSK, 28800)]).encode()
    srv = IkeTable(ike_pair.config("responder"), harness.SeededRng(5), None)
    srv.datagram_received(bare, SERVER, ("198.18.0.1", 500), 0.0)
    out = srv.datagrams_to_send()
    assert len(out) == 1 and len(out[0][2]) <= 2 * len(bare), (len(out[0][2]), len(bare))
    # A repeated message 1 gets the same single reply, never more.
    srv.datagram_received(bare, SERVER, ("198.18.0.1", 500), 0.5)
    assert [len(d) for lp, peer, d in srv.datagrams_to_send()] == [len(out[0][2])]


def test_counters_are_one_dict():
    p = ike_pair.Pair()
    p.connect()
    k = p.server.counters()
    for name in ("malformed", "refused", "half_open_drops", "evictions", "replays", "internal_errors",
                 "half_open", "waiting", "under_pressure", "ike_sas", "esp_sas"):
        assert name in k, name
    assert k["ike_sas"] == 1 and k["esp_sas"] == 1 and k["half_open"] == 0
    p.server.datagram_received(b"\x00" * 27, SERVER, (ike_pair.CLIENT_IP, 500), p.now)
    assert p.server.counters()["malformed"] == 1


# --- internal errors (issue 9) ---------------------------------------------------------------------------------

def test_a_bug_of_ours_is_an_internal_error_not_malformed_input():
    def boom(*args):
        raise KeyError("a bug")

    srv = IkeTable(ike_pair.config("responder"), harness.SeededRng(5), None)
    srv._main_mode = boom
    t = IkeTable(ike_pair.config("initiator"), harness.SeededRng(6), None)
    t.initiate(SERVER, 0.0)
    m1 = t.datagrams_to_send()[0][2]
    srv.datagram_received(m1, SERVER, (ike_pair.CLIENT_IP, 500), 0.0)
    k = srv.counters()
    # Before: counted as malformed (IndexError and KeyError were taken for bad input) and never reported.
    assert k["internal_errors"] == 1 and k["malformed"] == 0
    ev = [srv.next_event(), srv.next_event()]
    assert [type(e).__name__ for e in ev] == ["InternalError", "NegotiationFailed"]
    assert isinstance(ev[0].error, KeyError) and ev[0].peer == (ike_pair.CLIENT_IP, 500)
    assert srv.errors == [ev[0].error]
    assert srv.counters()["half_open"] == 0 and srv._sas == {}      # consistent again
    strict = IkeTable(ike_pair.config("responder", strict=True), harness.SeededRng(5), None)
    strict._main_mode = boom
    harness.raises(KeyError, strict.datagram_received, m1, SERVER, (ike_pair.CLIENT_IP, 500), 0.0)
    assert strict.counters()["internal_errors"] == 1


# --- replay protection and peer moves (item 3) -----------------------------------------------------------------

def _dpd_pair(**kw):
    p = ike_pair.Pair(nat=True, client_cfg=ike_pair.config("initiator", dpd_delay=30),
                      server_cfg=ike_pair.config("responder", dpd_delay=0, **kw))
    p.connect()
    p.events("client"), p.events("server")
    return p


def _sent(p, direction, exchange):
    return [x[3] for x in p.log if x[0] == direction and x[3][18] == exchange]


def test_a_replayed_dpd_message_from_another_port_does_not_move_the_peer():
    # Issue 13 item 3. Before: the replay was answered and the server followed the peer to the attacker's port.
    p = _dpd_pair()
    p.advance(31.0)                                 # the client probes the idle server once
    rut = _sent(p, "c>s", INFO)
    assert len(rut) == 1
    n = len(p.log)
    p.server.datagram_received(rut[0], (ike_pair.SERVER_IP, 4500), (ike_pair.NAT_IP, 50000), p.now)
    assert p.events("server") == [] and p.server.datagrams_to_send() == []
    assert p.server.counters()["replays"] == 1
    assert p.server._children[list(p.server._children)[0]].peer == (ike_pair.NAT_IP, 44500)
    assert len(p.log) == n


def test_an_old_dpd_message_is_a_replay_even_after_its_id_is_forgotten():
    p = _dpd_pair(seen_message_ids=1)
    p.advance(31.0)
    p.advance(62.0)
    rut = _sent(p, "c>s", INFO)
    assert len(rut) == 2
    p.server.datagram_received(rut[0], (ike_pair.SERVER_IP, 4500), (ike_pair.NAT_IP, 50000), p.now)
    assert p.events("server") == [] and p.server.datagrams_to_send() == []
    assert p.server.counters()["replays"] == 1


def test_a_fresh_dpd_message_from_a_new_mapping_moves_the_peer():
    p = _dpd_pair()
    p.ports[4500] = 45000                           # the NAT re-maps the client's 4500
    p.advance(31.0)
    se = p.events("server")
    assert ike_pair.names(se) == ["PeerMoved"] and se[0].new == (ike_pair.NAT_IP, 45000)
    assert len(_sent(p, "s>c", INFO)) == 1          # the ACK went to the new mapping and arrived
    assert p.client.get_timer() == 60.0              # acknowledged: the next probe only after 30 s idle


def test_a_replayed_quick_mode_message_is_dropped():
    p = _dpd_pair()
    qm1 = _sent(p, "c>s", QM)[0]
    p.server.datagram_received(qm1, (ike_pair.SERVER_IP, 4500), (ike_pair.NAT_IP, 50000), p.now)
    assert p.events("server") == [] and p.server.datagrams_to_send() == []
    assert p.server.counters()["replays"] == 1


def test_esp_above_the_window_from_a_new_port_moves_the_peer():
    p = _dpd_pair()
    spi = list(p.server._children)[0]
    srv = p.server
    assert not srv.esp_from_new_port(spi + 1, (ike_pair.NAT_IP, 45000), p.now)       # unknown SA
    assert not srv.esp_from_new_port(spi, ("203.0.113.99", 45000), p.now)           # another address
    assert srv.esp_from_new_port(spi, (ike_pair.NAT_IP, 45000), p.now)
    se = p.events("server")
    assert ike_pair.names(se) == ["PeerMoved"] and se[0].old == (ike_pair.NAT_IP, 44500)
    assert srv._children[spi].peer == (ike_pair.NAT_IP, 45000)
    assert [s.peer for s in srv._timed] == [(ike_pair.NAT_IP, 45000)]
    assert not srv.esp_from_new_port(spi, (ike_pair.NAT_IP, 45000), p.now)          # already there


def test_refusals_of_unverified_sources_are_marked_for_the_log():
    # Issue 13 item 14 lives in the engine's logger; the table says which failures may come from spoofed
    # sources (a refused message 1, Aggressive Mode) so that the engine can fold them.
    p = ike_pair.Pair(server_cfg=ike_pair.config("responder", ike="aes128-sha256-modp2048"))
    p.connect()
    se = p.events("server")
    assert ike_pair.names(se) == ["NegotiationFailed"] and not se[0].verified and "unverified" in repr(se[0])
    q = ike_pair.Pair(server_cfg=ike_pair.config("responder", psk=b"a different key entirely"))
    q.connect()
    se = q.events("server")
    assert ike_pair.names(se) == ["NegotiationFailed"] and se[0].verified


def test_a_flood_never_rescans_the_established_sas():
    # O(1) per packet: get_timer() after a message 1 or an unknown cookie pair does not walk the live SAs again
    # (before: every call walked every SA, half-open ones included, and every ESP SA).
    p = ike_pair.Pair(server_cfg=ike_pair.config("responder", half_open_total=16))
    p.connect()
    srv = p.server
    scans = []
    inner = srv._scan_deadline

    def counting():
        scans.append(1)
        return inner()

    srv._scan_deadline = counting
    srv.get_timer()
    _spoofed_first_messages(srv, 100, 100, p.now)
    m1 = [x[3] for x in p.log if x[0] == "c>s"][0]
    for k in range(100):
        srv.datagram_received((k + 500).to_bytes(8, "big") + b"\x01" * 8 + m1[16:], SERVER, ("198.18.1.1", 500),
                              p.now)
        srv.get_timer()
    assert len(scans) == 1 and srv.counters()["unknown_sa"] == 100 and srv.counters()["evictions"] == 84


def test_an_oversized_message_1_holds_no_state():
    from sluice.ike.table import MAX_MESSAGE_1
    from sluice.ike.message import Message
    from sluice.ike.payloads import VendorIdPayload
    big = Message.build(b"\x07" * 8, b"\x00" * 8, MM, [VendorIdPayload(bytes(1000))] * 9).encode()
    assert len(big) > MAX_MESSAGE_1
    srv = IkeTable(ike_pair.config("responder"), harness.SeededRng(5), None)
    srv.datagram_received(big, SERVER, ("198.18.0.1", 500), 0.0)
    assert srv.counters()["malformed"] == 1 and srv.counters()["half_open"] == 0 and srv.datagrams_to_send() == []
