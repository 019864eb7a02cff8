"""An SCCRQ flood against the LNS tunnel table, in memory under a fixed clock (issue 13, item 4).

3,000 SCCRQs per second from 64 addresses (what the namespace attack sent) or from 10,000, each never followed
by an SCCCN, while a real LAC dials in with a 50 ms round trip. Before issue 13 the table filled its 4,096
tunnels in 1.4 s and refused the real client for as long as the flood lasted, walked every tunnel on each
datagram, and answered each 53-octet SCCRQ with 552 octets (the SCCRP and its five retransmissions).
Figures are printed (`pytest -s`) for the before/after note.
"""

import pytest

from sluice.l2tp import avp as A
from sluice.l2tp import message as M
from sluice.l2tp.demux import TunnelTable
from sluice.l2tp.header import encode_control
from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig
from tests.core.harness import SeededRng

RATE = 3000  # SCCRQs per second
RTT = 0.05


def sccrq(peer_tid):
    return encode_control(0, 0, 0, 0, M.build(M.SCCRQ, [
        (A.PROTOCOL_VERSION, (1, 0)), (A.HOST_NAME, "flood"), (A.FRAMING_CAPABILITIES, 3),
        (A.ASSIGNED_TUNNEL_ID, peer_tid)]))


def flood(sources, seconds=6.0, client_at=2.0, client_window=4.0):
    table = TunnelTable(SeededRng(1), TunnelConfig(host_name="lns.example"))
    real = ("198.51.100.7", 1701)
    lac = Tunnel(LAC, 0x4242, SeededRng(2), TunnelConfig(host_name="real"))
    in_flight = []  # (arrival, to_table?, data)
    rx = tx = 0
    most = 0
    up_at = None
    step = 0.001
    n = 0
    now = 0.0
    per_tid = {}
    for k in range(int((client_at + client_window) / step) + 1):
        now = k * step
        # the flood, spread evenly
        while n < RATE * min(now, seconds):
            i = n % sources
            tid = per_tid.get(i, 0) % 65535 + 1
            per_tid[i] = tid
            d = sccrq(tid)
            src = "2001:db8::%x" % (i + 1) if sources > 250 else "203.0.113.%d" % (1 + i % 250)
            table.datagram_received(d, (src, 1701), now)
            rx += len(d)
            n += 1
            for peer, out in table.datagrams_to_send():
                if peer == real:
                    in_flight.append((now + RTT / 2, False, out))
                else:
                    tx += len(out)
            while table.next_event() is not None:
                pass
        if k == int(client_at / step):
            lac.start(now)
        if lac.get_timer() is not None and lac.get_timer() <= now:
            lac.handle_timer(now)
        for d in lac.datagrams_to_send():
            in_flight.append((now + RTT / 2, True, d))
        due = [x for x in in_flight if x[0] <= now]
        in_flight = [x for x in in_flight if x[0] > now]
        for _, to_table, d in due:
            if to_table:
                table.datagram_received(d, real, now)
            else:
                lac.datagram_received(d, now)
        d = table.get_timer()
        if d is not None and d <= now:
            table.handle_timer(now)
        for peer, out in table.datagrams_to_send():
            if peer == real:
                in_flight.append((now + RTT / 2, False, out))
            else:
                tx += len(out)
        while table.next_event() is not None:
            pass
        table.get_timer()
        most = max(most, len(table.tunnels()))
        if up_at is None and lac.state == "established":
            up_at = now - client_at
    return {"sources": sources, "sccrq": n, "held_max": most, "client_up_after": up_at,
            "amplification": round(tx / float(rx), 2), "counters": dict(table.stats)}


@pytest.mark.parametrize("sources", [64, 10000])
def test_sccrq_flood_stays_bounded_and_a_real_client_gets_in(sources):
    r = flood(sources)
    print("\nSCCRQ flood, %d sources: %s" % (sources, r))
    assert r["client_up_after"] is not None and r["client_up_after"] <= 2 * RTT, r
    assert r["held_max"] <= 1024 + 1, r
    assert r["amplification"] <= 3.0, r
