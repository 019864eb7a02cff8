"""Cost of one L2TP control datagram at the LNS as the tunnel table grows (issue 13, item 4).

In process, no sockets: a TunnelTable holds N established tunnels (16, 256, 1,024, 4,096 by default, each
from its own 198.51.100.x/203.0.113.x source), and one control datagram is handed to it the way the server
engine does it: `datagram_received`, then `datagrams_to_send`, `next_event` until None and `get_timer` (the
server's `_pump_table`). Three kinds of datagram are timed:

- `hello`:   a HELLO to an established tunnel (the steady state: keepalives, session set-up);
- `sccrq`:   an SCCRQ from a new source that creates a tunnel (what a flood sends; the new tunnel is removed
             again outside the timed part, so N stays N);
- `unknown`: a message for a tunnel id nobody holds (dropped and counted).

Figures are microseconds per datagram, the median of `--repeat` rounds of `--count` datagrams. The figure
should stay flat as N grows; before issue 13 every datagram walked every tunnel. Not a test: nothing is
asserted, the numbers are printed (and with --json, printed as JSON).

    .venv/bin/python bench/l2tp_table_bench.py [--sizes 16,256,1024,4096] [--count 2000] [--repeat 5] [--json]
"""

import argparse
import json
import sys
import time

from sluice.l2tp import avp as A
from sluice.l2tp import message as M
from sluice.l2tp.demux import TunnelTable
from sluice.l2tp.header import encode_control
from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig


class Rng:
    """xorshift32 rng(n) -> bytes: deterministic, so every run builds the same table."""

    def __init__(self, seed):
        self.s = seed or 1

    def __call__(self, n):
        out = bytearray(n)
        s = self.s
        for i in range(n):
            s ^= (s << 13) & 0xFFFFFFFF
            s ^= s >> 17
            s ^= (s << 5) & 0xFFFFFFFF
            out[i] = s & 0xFF
        self.s = s
        return bytes(out)


def source(i):
    """A distinct documentation address and port per tunnel (RFC 5737)."""
    net = ("198.51.100.%d", "203.0.113.%d")[(i >> 8) & 1]
    return (net % (1 + (i & 0xFF) % 254), 1701 + (i >> 9))


def pump(table):
    """What the server does after each control datagram."""
    table.datagrams_to_send()
    while table.next_event() is not None:
        pass
    return table.get_timer()


def build(n, now):
    table = TunnelTable(Rng(7), TunnelConfig(host_name="lns.example", hello_interval=60.0), max_tunnels=65535)
    lacs = []
    for i in range(n):
        peer = source(i)
        lac = Tunnel(LAC, 1 + (i % 65000), Rng(1000 + i), TunnelConfig(host_name="lac%d" % i))
        lac.start(now)
        for d in lac.datagrams_to_send():
            table.datagram_received(d, peer, now)
        for p, d in table.datagrams_to_send():
            lac.datagram_received(d, now)
        for d in lac.datagrams_to_send():
            table.datagram_received(d, peer, now)
        pump(table)
        lacs.append((peer, lac))
    up = sum(1 for t in table.tunnels() if t.state == "established")
    if up != n:
        raise SystemExit("only %d of %d tunnels came up" % (up, n))
    return table, lacs


def hello_for(lac):
    """A HELLO as `lac` would send it next (its Ns/Nr), ready to hand to the table."""
    ch = lac.channel
    body = M.build(M.HELLO, [])
    d = encode_control(ch.peer_tunnel_id, 0, ch.ns, ch.nr, body)
    ch.ns = (ch.ns + 1) & 0xFFFF
    ch.nr = ch.nr  # the LNS acks it; the LAC never sees that, which does not matter here
    return d


def sccrq(peer_tid):
    return encode_control(0, 0, 0, 0, M.build(M.SCCRQ, [
        (A.PROTOCOL_VERSION, (1, 0)), (A.HOST_NAME, "flood"), (A.FRAMING_CAPABILITIES, 3),
        (A.ASSIGNED_TUNNEL_ID, peer_tid)]))


def drop(table, peer, now):
    """Remove the tunnel a timed SCCRQ created (not timed), so that the table keeps its size."""
    for t in table.tunnels():
        if t.peer == peer:
            if hasattr(t, "abandon"):
                t.abandon(now, "bench")
                pump(table)
            else:  # the table before issue 13 had no way to drop a half-open tunnel silently
                del table.by_id[t.local_tunnel_id]
                table.by_peer.pop((t.peer, t.peer_tunnel_id), None)


def measure(n, count, repeat):
    now = 1000.0
    table, lacs = build(n, now)
    out = {}
    # hello: round-robin over the tunnels, each HELLO in sequence for its tunnel
    rounds = []
    for r in range(repeat):
        items = []
        for k in range(count):
            peer, lac = lacs[(r * count + k) % n]
            items.append((hello_for(lac), peer))
        t0 = time.perf_counter()
        for d, peer in items:
            table.datagram_received(d, peer, now)
            pump(table)
        rounds.append((time.perf_counter() - t0) / count)
    out["hello"] = sorted(rounds)[len(rounds) // 2]
    # sccrq: a new source each time; the tunnel it made is dropped outside the timed part
    rounds = []
    serial = 0
    for r in range(repeat):
        total = 0.0
        for k in range(count):
            serial += 1
            peer = ("192.0.2.%d" % (1 + serial % 250), 10000 + serial % 50000)
            d = sccrq(1 + serial % 65000)
            t0 = time.perf_counter()
            table.datagram_received(d, peer, now)
            pump(table)
            total += time.perf_counter() - t0
            drop(table, peer, now)
        rounds.append(total / count)
    out["sccrq"] = sorted(rounds)[len(rounds) // 2]
    # unknown tunnel id
    rounds = []
    used = set(t.local_tunnel_id for t in table.tunnels())
    free = next(i for i in range(1, 65536) if i not in used)
    d = encode_control(free, 0, 0, 0, M.build(M.HELLO, []))
    for r in range(repeat):
        t0 = time.perf_counter()
        for k in range(count):
            table.datagram_received(d, ("192.0.2.99", 1701), now)
            pump(table)
        rounds.append((time.perf_counter() - t0) / count)
    out["unknown"] = sorted(rounds)[len(rounds) // 2]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="16,256,1024,4096")
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    sizes = [int(s) for s in a.sizes.split(",")]
    rows = {}
    for n in sorted(set(sizes)):
        # the sccrq row walks the table after every datagram to remove the new tunnel: keep it affordable
        count = a.count if n <= 1024 else max(200, a.count // 4)
        rows[n] = measure(n, count, a.repeat)
    if a.json:
        print(json.dumps({str(n): dict((k, round(v * 1e6, 2)) for k, v in r.items()) for n, r in rows.items()}))
        return 0
    print("%8s %12s %12s %12s   (microseconds per control datagram, median of %d rounds)"
          % ("tunnels", "hello", "sccrq", "unknown", a.repeat))
    for n in sizes:
        r = rows[n]
        print("%8d %12.1f %12.1f %12.1f" % (n, r["hello"] * 1e6, r["sccrq"] * 1e6, r["unknown"] * 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
