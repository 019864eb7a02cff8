"""The LNS table's admission counters always match what it holds (issue 13, items 1 and 4).

Seeded random mixes of floods, real clients, sessions, authentication, closes, peer moves and time jumps; after
every step the per-source and total counts kept incrementally are recomputed from the tunnels themselves.
"""

import random

import pytest

from sluice.l2tp.admission import TableLimits
from sluice.l2tp.demux import TunnelTable
from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig
from tests.core.harness import SeededRng
from tests.core.test_l2tp_admission import pump, sccrq


def check(table, moved_to=()):
    src = {}
    half = pending = auth = 0
    for tid, t in table.by_id.items():
        e = table.entries[tid]
        assert e.tunnel is t and t.owner is table
        c = src.setdefault(e.source, [0, 0, 0, 0])
        c[0] += 1
        if e.half_open:
            assert t.state in ("idle", "wait-ctl-conn")
            c[1] += 1
            half += 1
        for s in t.sessions.values():
            c[2] += 1
            if s.authenticated:
                auth += 1
            else:
                c[3] += 1
                pending += 1
        assert t.pending == sum(1 for s in t.sessions.values() if not s.authenticated)
    assert table.by_source == src
    assert (table.half_open, table.pending, table.authenticated) == (half, pending, auth)
    lim = table.limits
    assert lim.max_tunnels is None or len(table.by_id) <= lim.max_tunnels
    assert lim.max_half_open is None or half <= lim.max_half_open
    assert lim.max_pending is None or pending <= lim.max_pending
    assert lim.max_sessions is None or auth <= lim.max_sessions
    for s, c in src.items():
        if s in moved_to:
            continue  # a tunnel that moved brings its sessions along: limits apply to what is admitted
        assert lim.max_half_open_per_source is None or c[1] <= lim.max_half_open_per_source
        assert lim.max_pending_per_source is None or c[3] <= lim.max_pending_per_source


@pytest.mark.parametrize("seed", range(6))
def test_counts_match_what_the_table_holds(seed):
    r = random.Random(seed)
    limits = TableLimits(max_tunnels=40, max_tunnels_per_source=8, max_half_open=20, max_half_open_per_source=5,
                         max_sessions=6, max_pending=10, max_pending_per_source=4, half_open_timeout=5.0,
                         half_open_timeout_pressure=1.0, preauth_timeout=30.0, preauth_timeout_pressure=10.0)
    table = TunnelTable(SeededRng(seed + 1), TunnelConfig(hello_interval=3.0), limits=limits)
    clients = []  # (peer, lac)
    moved_to = set()
    now = 0.0
    for step in range(1500):
        op = r.random()
        if op < 0.3:
            table.datagram_received(sccrq(r.randrange(1, 100)), ("198.51.100.%d" % r.randrange(1, 12), 1701), now)
        elif op < 0.4 and len(clients) < 30:
            peer = ("203.0.113.%d" % r.randrange(1, 8), 2000 + step)
            lac = Tunnel(LAC, r.randrange(1, 65535), SeededRng(step + 7), TunnelConfig(hello_interval=3.0))
            lac.start(now)
            for _ in range(r.randrange(0, 6)):
                lac.open_session(now)
            clients.append([peer, lac])
        elif op < 0.5 and clients:
            peer, lac = r.choice(clients)
            if lac.state == "established":
                try:
                    lac.open_session(now)
                except ValueError:
                    pass
        elif op < 0.6:
            ts = table.tunnels()
            if ts:
                t = r.choice(ts)
                if t.sessions:
                    table.authenticate(t, r.choice(list(t.sessions)), now)
        elif op < 0.65:
            ts = table.tunnels()
            if ts:
                t = r.choice(ts)
                if t.sessions and r.random() < 0.5:
                    t.close_session(r.choice(list(t.sessions)), now)
                elif r.random() < 0.3:
                    t.close(now)
        elif op < 0.68 and clients:
            c = r.choice(clients)
            t = [x for x in table.tunnels() if x.peer == c[0]]
            if t:
                new = ("203.0.113.%d" % r.randrange(8, 12), c[0][1])
                table.move_peer(t[0], new)
                moved_to.add(new[0])
                c[0] = new
        else:
            now += r.random() * 1.5
            d = table.get_timer()
            if d is not None and d <= now:
                table.handle_timer(now)
            for peer, lac in clients:
                d = lac.get_timer()
                if d is not None and d <= now:
                    lac.handle_timer(now)
        # the wire, both ways, in one go
        for peer, lac in clients:
            for d in lac.datagrams_to_send():
                table.datagram_received(d, peer, now)
        by_peer = dict((tuple(p), lac) for p, lac in clients)
        for peer, d in pump(table):
            lac = by_peer.get(peer)
            if lac is not None:
                lac.datagram_received(d, now)
        for _, lac in clients:
            while lac.next_event() is not None:
                pass
        clients = [c for c in clients if c[1].state != "closed"]
        check(table, moved_to)
    # Everything ends: quiet clients, time runs out.
    for _ in range(200):
        now += 5.0
        table.handle_timer(now)
        pump(table)
        check(table, moved_to)
    assert all(t.state == "established" for t in table.tunnels())
