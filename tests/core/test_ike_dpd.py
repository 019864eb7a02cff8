"""Dead Peer Detection (RFC 3706): idle-driven R-U-THERE, ACK, traffic resetting idleness, PeerDead."""

try:
    import ike_pair
except ImportError:
    from tests.core import ike_pair

from sluice.ike import constants as C
from sluice.ike.dpd import DEAD, PROBE, Dpd

INFO = C.EXCH_INFORMATIONAL


def _info_times(p, direction):
    return [t for t in p.sent if t[0] == direction]


def _pair(**kw):
    p = ike_pair.Pair(client_cfg=ike_pair.config("initiator", dpd_delay=0),
                      server_cfg=ike_pair.config("responder", dpd_delay=30, dpd_timeout=120), **kw)
    p.sent = []
    inner = p._note

    def note(direction, lp, data):
        if data[18] == INFO:
            p.sent.append((direction, p.now))
        inner(direction, lp, data)

    p._note = note
    return p


def test_idle_peer_is_probed_and_answers():
    p = _pair()
    p.connect()
    p.events("server"), p.events("client")
    p.advance(29.0)
    assert p.sent == []
    p.advance(31.0)
    # R-U-THERE at 30 s of silence; the client (DPD off for its own probes) still answers (RFC 3706 5.3).
    assert p.sent == [("s>c", 30.0), ("c>s", 30.0)]
    assert p.events("server") == []
    p.advance(61.0)
    assert [t for d, t in p.sent] == [30.0, 30.0, 60.0, 60.0]


def test_traffic_postpones_the_probe():
    p = _pair()
    p.connect()
    se = p.events("server")
    p.advance(25.0)
    p.server.traffic_seen(se[0].peer, 25.0)    # ESP arrived from the client
    p.advance(54.0)
    assert p.sent == []
    p.advance(56.0)
    assert p.sent == [("s>c", 55.0), ("c>s", 55.0)]


def test_silent_peer_is_declared_dead():
    p = _pair()
    p.connect()
    se = p.events("server")
    p.drop = lambda d, data: d == "c>s"
    p.advance(149.0)
    assert p.events("server") == []
    probes = [t for d, t in p.sent if d == "s>c"]
    assert probes[0] == 30.0 and probes[1] == 35.0            # repeated every 5 s while unanswered
    p.advance(151.0)
    down = p.events("server")
    assert ike_pair.names(down) == ["PeerDead", "ChildSaDown", "IkeSaDown"]
    assert down[0].peer == se[0].peer
    assert "DPD" in down[1].reason
    assert p.server.get_timer() is None


def test_dpd_state_alone():
    d = Dpd(10, 30, 0x7FFFFFFF, 0.0)
    assert d.deadline() == 10 and d.due(9.9) is None and d.due(10) == PROBE
    s1 = d.next_seq(10)
    assert d.due(12) is None and d.due(15) == PROBE
    s2 = d.next_seq(15)
    assert s2 == (s1 + 1) & 0xFFFFFFFF
    assert not d.ack(s1 + 5, 16)
    assert d.ack(s1, 16)            # an ACK of any outstanding probe counts
    assert d.due(20) is None and d.deadline() == 26
    d.next_seq(26)
    assert d.due(56) == DEAD
