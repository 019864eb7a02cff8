"""Admission control at the LNS tunnel table (issue 13, items 1 and 4), in memory under a fixed clock.

Hostile peers send SCCRQs (tunnels) and ICRQs (sessions) and never finish; the table must stay bounded per
source and in total, make room by evicting the oldest half-open tunnel or pending session, time them out
(sooner under pressure), answer an unverified source with at most a small multiple of what it sent, and
cost O(1) per datagram however many tunnels it holds. MicroPython subset only (docs/design.md).
"""

from sluice.l2tp import avp as A
from sluice.l2tp import header as H
from sluice.l2tp import message as M
from sluice.l2tp.admission import DeadlineHeap, Fifo, TableLimits
from sluice.l2tp.demux import TunnelTable
from sluice.l2tp.events import SessionDown, TunnelDown, TunnelUp
from sluice.l2tp.header import encode_control
from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig

try:
    from harness import SeededRng
except ImportError:
    from tests.core.harness import SeededRng


def sccrq(peer_tid, host="flood"):
    return encode_control(0, 0, 0, 0, M.build(M.SCCRQ, [
        (A.PROTOCOL_VERSION, (1, 0)), (A.HOST_NAME, host), (A.FRAMING_CAPABILITIES, 3),
        (A.ASSIGNED_TUNNEL_ID, peer_tid)]))


def src(i):
    """A documentation address per i (RFC 3849); only hashed by the table."""
    return ("2001:db8::%x" % (i + 1), 1701)


def pump(table, sink=None):
    """What the server engine does after each datagram; returns the datagrams sent."""
    out = table.datagrams_to_send()
    events = []
    while True:
        item = table.next_event()
        if item is None:
            break
        events.append(item)
    table.get_timer()
    if sink is not None:
        sink.extend(events)
    return out


def run_timers(table, until, now, sink=None):
    """Fire the table's timers up to `until`; returns every datagram sent. Bounded."""
    out = []
    for _ in range(100000):
        d = table.get_timer()
        if d is None or d > until:
            break
        now = max(now, d)
        table.handle_timer(now)
        out += pump(table, sink)
    return out


class Client:
    """A real LAC dialing the table: returns once its tunnel is up (or after `limit` exchanges)."""

    def __init__(self, peer, seed=5, sessions=0):
        self.peer = peer
        self.lac = Tunnel(LAC, 0x4242, SeededRng(seed), TunnelConfig(host_name="real"))
        self.events = []
        self.sids = []
        self.sessions = sessions

    def start(self, table, now, sink=None):
        self.lac.start(now)
        for _ in range(self.sessions):
            self.sids.append(self.lac.open_session(now))
        self.exchange(table, now, sink)

    def exchange(self, table, now, sink=None):
        for _ in range(20):
            moved = False
            for d in self.lac.datagrams_to_send():
                table.datagram_received(d, self.peer, now)
                moved = True
            for peer, d in pump(table, sink):
                if peer == self.peer:
                    self.lac.datagram_received(d, now)
                    moved = True
            while True:
                ev = self.lac.next_event()
                if ev is None:
                    break
                self.events.append(ev)
            if not moved:
                return

    def up(self):
        return self.lac.state == "established"


# -- tunnels --------------------------------------------------------------------------------------------


def test_one_source_holds_at_most_its_share_of_half_open_tunnels():
    table = TunnelTable(SeededRng(1), TunnelConfig(), limits=TableLimits(max_half_open_per_source=16))
    for i in range(200):
        table.datagram_received(sccrq(1 + i), src(0), 0.0)
        pump(table)
    assert len(table.tunnels()) == 16
    assert table.stats["source_limit"] == 184
    # Another source is not affected.
    table.datagram_received(sccrq(1), src(1), 0.0)
    pump(table)
    assert len(table.tunnels()) == 17 and table.admission()["half_open"] == 17


def test_a_full_half_open_table_evicts_its_oldest_entry_and_a_real_client_gets_in():
    limits = TableLimits(max_half_open=64, max_half_open_per_source=4, max_tunnels=128)
    table = TunnelTable(SeededRng(2), TunnelConfig(), limits=limits)
    now = 0.0
    for i in range(1000):  # 1,000 sources, 4 each would be 4,000 half-open tunnels
        now = i * 0.001
        table.datagram_received(sccrq(1 + i % 4), src(i // 4 + 10), now)
        pump(table)
        assert table.half_open <= 64 and len(table.tunnels()) <= 64
    assert table.stats["half_open_evicted"] == 1000 - 64
    # The evicted ones left without a word: no StopCCN to an unverified source.
    client = Client(src(0))
    client.start(table, now)
    assert client.up()
    lns = [t for t in table.tunnels() if t.peer == src(0)][0]
    assert lns.state == "established" and table.half_open == 63


def test_half_open_tunnels_time_out_sooner_under_pressure():
    limits = TableLimits(max_half_open=100, half_open_timeout=20.0, half_open_timeout_pressure=3.0,
                         pressure=0.5, max_half_open_per_source=None)
    table = TunnelTable(SeededRng(3), TunnelConfig(), limits=limits)
    for i in range(10):
        table.datagram_received(sccrq(1 + i), src(i), 0.0)
        pump(table)
    # Not under pressure: the 20 s timeout (the SCCRP retransmissions run their course meanwhile).
    assert table.get_timer() is not None
    run_timers(table, 19.0, 0.0)
    assert table.half_open == 10
    run_timers(table, 20.5, 19.0)
    assert table.half_open == 0 and table.stats["half_open_expired"] == 10 and table.tunnels() == []
    # Under pressure (50 of 100): half-open tunnels get 3 s until the pressure is off, then 20 s again.
    for i in range(60):
        table.datagram_received(sccrq(1 + i), src(i), 30.0)
        pump(table)
    assert table.admission()["tunnel_pressure"] is True
    run_timers(table, 32.9, 30.0)
    assert table.half_open == 60
    run_timers(table, 33.1, 32.9)
    assert table.half_open == 49 and table.admission()["tunnel_pressure"] is False
    run_timers(table, 50.1, 33.1)
    assert table.half_open == 0 and table.tunnels() == []


def test_replies_to_an_unverified_source_stay_within_three_times_what_it_sent():
    # One 53-octet SCCRQ from a spoofed source, never followed up: everything the LNS ever sends toward it.
    table = TunnelTable(SeededRng(4), TunnelConfig(host_name="lns.example"))
    d = sccrq(7)
    table.datagram_received(d, src(0), 0.0)
    sent = pump(table) + run_timers(table, 120.0, 0.0)
    octets = sum(len(x) for _, x in sent)
    assert table.tunnels() == []
    assert octets <= 3 * len(d), (octets, len(d))
    # A retransmitted SCCRQ earns another reply.
    table.datagram_received(d, src(1), 200.0)
    first = pump(table)
    table.datagram_received(d, src(1), 201.0)
    again = pump(table) + run_timers(table, 320.0, 201.0)
    assert sum(len(x) for _, x in first + again) <= 3 * 2 * len(d)
    # A verified peer (it acknowledged our SCCRP) is not limited.
    client = Client(src(2))
    client.start(table, 400.0)
    lns = [t for t in table.tunnels() if t.peer == src(2)][0]
    assert lns.verified and lns.stats["unverified_held"] == 0


def test_per_datagram_work_does_not_grow_with_the_table():
    # 512 established tunnels; a HELLO to one of them must not make the table look at the others.
    table = TunnelTable(SeededRng(5), TunnelConfig(), limits=TableLimits(max_tunnels_per_source=None))
    clients = []
    for i in range(512):
        c = Client(src(i), seed=100 + i)
        c.start(table, 0.0)
        assert c.up()
        clients.append(c)
    pump(table)
    looked = [0]

    def counting(t):
        real = t.get_timer

        def get_timer():
            looked[0] += 1
            return real()
        return get_timer

    for t in table.tunnels():
        t.get_timer = counting(t)
    for c in clients[:50]:
        c.lac.channel.send(0, M.build(M.HELLO, []), 1.0)
        c.exchange(table, 1.0)
    assert looked[0] <= 50 * 4, looked[0]


# -- sessions -------------------------------------------------------------------------------------------


def established(table, peer, seed=9, sessions=0):
    c = Client(peer, seed=seed, sessions=sessions)
    c.start(table, 0.0)
    assert c.up()
    return c, [t for t in table.tunnels() if t.peer == peer][0]


def test_a_tunnel_holds_at_most_four_sessions_that_never_authenticate():
    table = TunnelTable(SeededRng(6), TunnelConfig())
    c, lns = established(table, src(0), sessions=100)
    for _ in range(60):
        c.exchange(table, 0.0)
    assert len(lns.sessions) == 4 and lns.pending == 4
    assert lns.stats["sessions_refused"] == 96
    downs = [e for e in c.events if isinstance(e, SessionDown)]
    assert len(downs) == 96 and downs[0].result_code == 4
    # Authenticated sessions make room for new ones and count toward max_sessions instead.
    sid = list(lns.sessions)[0]
    assert table.authenticate(lns, sid, 1.0) is True
    assert table.admission()["authenticated_sessions"] == 1 and table.admission()["pending_sessions"] == 3


def test_unauthenticated_sessions_time_out_and_authenticated_ones_do_not():
    limits = TableLimits(preauth_timeout=30.0, preauth_timeout_pressure=5.0)
    table = TunnelTable(SeededRng(7), TunnelConfig(hello_interval=None), limits=limits)
    c, lns = established(table, src(0), sessions=2)
    sids = sorted(lns.sessions)
    assert table.authenticate(lns, sids[0], 1.0)
    sink = []
    run_timers(table, 29.0, 1.0, sink)
    assert len(lns.sessions) == 2
    run_timers(table, 31.0, 29.0, sink)
    assert list(lns.sessions) == [sids[0]]
    down = [e for _, e in sink if isinstance(e, SessionDown)]
    assert len(down) == 1 and down[0].session_id == sids[1] and "not authenticated" in down[0].message
    assert table.stats["pending_expired"] == 1


def test_max_sessions_counts_only_authenticated_sessions():
    table = TunnelTable(SeededRng(8), TunnelConfig(), limits=TableLimits(max_sessions=2))
    c1, t1 = established(table, src(0), seed=11, sessions=3)
    c2, t2 = established(table, src(1), seed=12, sessions=1)
    assert len(t1.sessions) == 3 and len(t2.sessions) == 1  # none of them counts yet
    a, b, x = sorted(t1.sessions)
    assert table.authenticate(t1, a) and table.authenticate(t2, list(t2.sessions)[0])
    assert table.authenticate(t1, b) is False  # full: the endpoint closes it ("server is full")
    assert table.stats["sessions_full"] == 1
    t1.close_session(a, 2.0)
    pump(table)
    assert table.authenticate(t1, b) is True


def test_many_tunnels_from_one_address_share_a_pending_budget_and_the_oldest_is_evicted_in_total():
    limits = TableLimits(max_pending_per_source=6, max_pending=10, max_tunnels_per_source=None)
    table = TunnelTable(SeededRng(9), TunnelConfig(), limits=limits)
    # One address, four tunnels (ports), four sessions each: only six pending sessions in all.
    held = 0
    for k in range(4):
        c, t = established(table, ("2001:db8::1", 2000 + k), seed=20 + k, sessions=4)
        held += len(t.sessions)
    assert held == 6 and table.pending == 6
    # Other addresses push the total over 10: the oldest pending sessions are evicted (with a CDN).
    victims = []
    for k in range(3):
        c, t = established(table, src(50 + k), seed=40 + k, sessions=2)
        victims += [e for e in c.events if isinstance(e, SessionDown)]
    assert table.pending == 10 and table.stats["pending_evicted"] == 2


def test_a_tunnel_that_moves_takes_its_counts_along():
    table = TunnelTable(SeededRng(12), TunnelConfig())
    c, t = established(table, src(0), sessions=2)
    assert table.by_source[src(0)[0]] == [1, 0, 2, 2]
    table.move_peer(t, src(1))
    assert src(0)[0] not in table.by_source and table.by_source[src(1)[0]] == [1, 0, 2, 2]
    assert t.peer == src(1)
    # Datagrams now come from the new address; the old one is a stranger.
    c.peer = src(1)
    c.lac.close(1.0)
    c.exchange(table, 1.0)
    assert table.pending == 0 and table.by_source[src(1)[0]] == [1, 0, 0, 0]
    run_timers(table, 40.0, 1.0)  # the StopCCN hold (RFC 2661 5.7)
    assert table.tunnels() == [] and table.by_source == {}


# -- the small structures -------------------------------------------------------------------------------


def test_deadline_heap_orders_and_fifo_compacts():
    h = DeadlineHeap()
    rng = SeededRng(3)
    vals = []
    for i in range(500):
        d = rng.random() * 100
        vals.append((d, i))
        h.push(d, i)
    out = [h.pop() for _ in range(500)]
    assert out == sorted(vals) and h.first() is None
    q = Fifo()
    for i in range(1000):
        q.append(i)
    for i in range(990):
        assert q.first() == i
        q.pop()
    assert len(q) == 10 and len(q.items) < 1000


def test_peer_strings_in_events_and_status_are_single_lines():
    table = TunnelTable(SeededRng(10), TunnelConfig())
    evil = "lac\nsession up: admin at 10.0.0.1\x1b[2J"
    c = Client(src(0))
    c.lac.config.host_name = evil
    sink = []
    c.start(table, 0.0, sink)
    ups = [e for _, e in sink if isinstance(e, TunnelUp)]
    assert ups and "\n" not in ups[0].peer_host_name and "\x1b" not in ups[0].peer_host_name
    assert ups[0].peer_host_name == "lac\\nsession up: admin at 10.0.0.1\\x1b[2J"
    st = table.status()["tunnels"][0]
    assert st["peer_host_name"] == ups[0].peer_host_name
    # A StopCCN whose message forges a line is reported escaped.
    lns = table.tunnels()[0]
    c.lac.close(1.0, 2, "bye\nuser admin logged in", 0)
    c.exchange(table, 1.0, sink)
    downs = [e for _, e in sink if isinstance(e, TunnelDown)]
    assert downs and downs[0].message == "bye\\nuser admin logged in", downs[0].message
    assert lns.state in ("closing", "closed")
    assert H is not None
