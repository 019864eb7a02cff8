"""Issue 13, items 2 and 12: half-open Main Mode admission under a first-message flood and behind one NAT.

Simulated in memory under a fixed clock (nothing sleeps): a responder IkeTable, a flood of genuine Main Mode
first messages (each with its own initiator cookie) from many addresses, and real initiators whose datagrams
take `delay` seconds each way. A real initiator that fails starts again at once (the engine would add its
redial back-off). The figures the tests assert are the ones the issue reports, measured the same way on the
code before the fix (see the docstring of each test).
"""

import heapq
import os
import sys

from sluice.hal import crypto
from sluice.ike import events as ev
from sluice.ike.table import IkeTable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "core"))
import harness  # noqa: E402
import ike_pair  # noqa: E402

BE = crypto.backend("openssl")
SERVER = (ike_pair.SERVER_IP, 500)


def first_message(seed=77):
    t = IkeTable(ike_pair.config("initiator"), harness.SeededRng(seed), BE)
    t.initiate(SERVER, 0.0)
    return t.datagrams_to_send()[0][2]


def flood_source(k, addresses):
    n = k % addresses
    return ("198.18.%d.%d" % (n >> 8, n & 0xFF), 500)


class Sim:
    """One responder, real initiators (each with its own public (ip, port) per local port) and a flood."""

    def __init__(self, server_cfg=None, delay=0.025, tick=0.01):
        self.server = IkeTable(server_cfg or ike_pair.config("responder"), harness.SeededRng(2), BE)
        self.delay = delay
        self.tick = tick
        self.now = 0.0
        self.heap = []
        self.seq = 0
        self.clients = []       # [table, {local_port: public (ip, port)}, up_at, failures]
        self.route = {}         # public (ip, port) -> (client index, local port)
        self.flood_in = self.flood_out = 0
        self.flood_replies = 0
        self.server_events = 0

    def add_client(self, public_ip, ports, seed):
        t = IkeTable(ike_pair.config("initiator"), harness.SeededRng(seed), BE)
        i = len(self.clients)
        self.clients.append([t, ports, None, 0])
        for lp, pub in ports.items():
            self.route[pub] = (i, lp)
        return i

    def _push(self, t, what, args):
        self.seq += 1
        heapq.heappush(self.heap, (t, self.seq, what, args))

    def start(self, i, at):
        self._push(at, "start", (i,))

    def _server_out(self):
        for lp, peer, data in self.server.datagrams_to_send():
            dst = self.route.get(peer)
            if dst is None:
                self.flood_out += len(data)
                self.flood_replies += 1
                continue
            self._push(self.now + self.delay, "to_client", (dst[0], dst[1], (ike_pair.SERVER_IP, lp), data))
        e = self.server.next_event()
        while e is not None:
            self.server_events += 1
            e = self.server.next_event()

    def _client_out(self, i):
        c = self.clients[i]
        t = c[0]
        for lp, peer, data in t.datagrams_to_send():
            self._push(self.now + self.delay, "to_server", (c[1][lp], peer[1], data))
        e = t.next_event()
        while e is not None:
            if isinstance(e, ev.ChildSaUp) and c[2] is None:
                c[2] = self.now
            elif isinstance(e, ev.NegotiationFailed) and c[2] is None:
                c[3] += 1
                t.initiate(SERVER, self.now)     # redial at once
                for lp, peer, data in t.datagrams_to_send():
                    self._push(self.now + self.delay, "to_server", (c[1][lp], peer[1], data))
            e = t.next_event()

    def run(self, until, flood_rate=0, addresses=64, flood_from=0.0, stop_when_up=True):
        m1 = first_message()
        k = 0
        next_flood = flood_from if flood_rate else None
        next_tick = self.now
        srv = self.server
        while True:
            cands = [next_tick]
            if next_flood is not None:
                cands.append(next_flood)
            if self.heap:
                cands.append(self.heap[0][0])
            t = min(cands)
            if t > until:
                break
            self.now = t
            if next_flood is not None and t == next_flood:
                k += 1
                data = k.to_bytes(8, "big") + m1[8:]
                self.flood_in += len(data)
                srv.datagram_received(data, SERVER, flood_source(k, addresses), t)
                self._server_out()
                next_flood = flood_from + k / float(flood_rate)
                continue
            if self.heap and t == self.heap[0][0]:
                _, _, what, args = heapq.heappop(self.heap)
                if what == "start":
                    c = self.clients[args[0]]
                    c[0].initiate(SERVER, t)
                    self._client_out(args[0])
                elif what == "to_server":
                    src, dport, data = args
                    srv.datagram_received(data, (ike_pair.SERVER_IP, dport), src, t)
                    self._server_out()
                else:
                    i, lp, src, data = args
                    self.clients[i][0].datagram_received(data, (ike_pair.CLIENT_IP, lp), src, t)
                    self._client_out(i)
                continue
            # Timers, as an event loop would fire them (every `tick`).
            d = srv.get_timer()
            if d is not None and d <= t:
                srv.handle_timer(t)
                self._server_out()
            for i in range(len(self.clients)):
                ct = self.clients[i][0]
                d = ct.get_timer()
                if d is not None and d <= t:
                    ct.handle_timer(t)
                    self._client_out(i)
            next_tick = t + self.tick
            if stop_when_up and self.clients and all(c[2] is not None for c in self.clients):
                break
        return self


def time_to_get_in(flood_rate, addresses, start, limit, delay=0.025, server_cfg=None):
    """Seconds from the client's first message 1 to its ESP SA, under the flood (None: not within `limit`)."""
    s = Sim(server_cfg, delay)
    s.add_client(ike_pair.CLIENT_IP, {500: (ike_pair.CLIENT_IP, 500), 4500: (ike_pair.CLIENT_IP, 4500)}, 3)
    s.start(0, start)
    s.run(start + limit, flood_rate=flood_rate, addresses=addresses)
    up = s.clients[0][2]
    return (None if up is None else up - start), s


def test_client_gets_in_under_a_fast_first_message_flood():
    """3,000 message 1s per second from 64 addresses (the issue's flood), client from its own address, 50 ms RTT.

    Before: the table (256, 16 per source, 45 s each, no eviction) is full after 0.09 s; the client was not in
    after 60 s (one attempt failed after 31 s; the issue measured 47.7 s with a real client and the engine's
    back-off). After: 0.20 s, as without a flood (four round trips: Main Mode and Quick Mode)."""
    took, s = time_to_get_in(3000, 64, start=1.0, limit=4.0)
    assert took is not None and took < 0.5, took
    srv = s.server
    assert len(srv.half_open) <= srv.cfg.half_open_total
    assert srv.counters()["evictions"] > 0
    # Replies toward unverified sources stay within a small factor of what they sent.
    assert s.flood_out <= 2 * s.flood_in, (s.flood_out, s.flood_in)


def test_client_gets_in_under_a_slow_trickle():
    """20 message 1s per second from 64 addresses: enough to keep the old table full (256 x 45 s > 20/s).

    Before: the table is full from 12.8 s on and the client needed 31.2 s (the issue: 32.6 s instead of 1.2 s).
    After: 0.20 s."""
    took, s = time_to_get_in(20, 64, start=15.0, limit=4.0)
    assert took is not None and took < 0.5, took


def test_client_gets_in_under_a_flood_from_10000_spoofed_sources():
    """3,000 message 1s per second, each from another of 10,000 (spoofed) addresses: no per-source limit helps,
    eviction is random; a client with a 50 ms round trip still gets in at the first try.

    Before: not in after 60 s. After: 0.20 s."""
    took, s = time_to_get_in(3000, 10000, start=1.0, limit=4.0)
    assert took is not None and took < 1.0, took
    assert s.clients[0][3] == 0


def test_many_clients_behind_one_address_all_get_in_first_time():
    """100 clients behind one NAT address start together (per-source limit 16), 10 ms each way.

    Before: message 1s beyond the 16th were dropped; 20 of 100 clients failed their first attempt (the
    issue: 18 of 100) and the last was up after 32.1 s. After: the extra message 1s wait in a short queue;
    none fails and all 100 are up after 0.32 s."""
    s = Sim(delay=0.010)
    for i in range(100):
        s.add_client(ike_pair.CLIENT_IP, {500: (ike_pair.NAT_IP, 20000 + i), 4500: (ike_pair.NAT_IP, 30000 + i)},
                     100 + i)
        s.start(i, 0.0)
    s.run(60.0)
    failed = [c for c in s.clients if c[3]]
    last = max(c[2] for c in s.clients if c[2] is not None)
    assert len(failed) == 0, len(failed)
    assert all(c[2] is not None for c in s.clients)
    assert last < 1.0, last


def figures():
    """The before/after figures of the report (python tests/unit/test_ike_flood.py)."""
    for rate, addrs, start in ((3000, 64, 1.0), (20, 64, 15.0), (3000, 10000, 1.0)):
        took, s = time_to_get_in(rate, addrs, start=start, limit=60.0)
        print("flood %d/s from %d addresses: client in after %s s (attempts failed %d), flood bytes in %d out %d"
              % (rate, addrs, "never" if took is None else "%.2f" % took, s.clients[0][3], s.flood_in,
                 s.flood_out))
    s = Sim(delay=0.010)
    for i in range(100):
        s.add_client(ike_pair.CLIENT_IP, {500: (ike_pair.NAT_IP, 20000 + i), 4500: (ike_pair.NAT_IP, 30000 + i)},
                     100 + i)
        s.start(i, 0.0)
    s.run(120.0)
    ups = [c[2] for c in s.clients if c[2] is not None]
    print("100 clients behind one address: %d failed their first attempt, %d up, last up at %.2f s"
          % (len([c for c in s.clients if c[3]]), len(ups), max(ups) if ups else -1))


if __name__ == "__main__":
    figures()


def _spray(server, count, source, now, first=1):
    m1 = first_message()
    for k in range(count):
        server.datagram_received((k + first).to_bytes(8, "big") + m1[8:], SERVER, source(k), now)
    return len(server.datagrams_to_send())


def test_10000_sources_stay_within_the_bounds_and_leave_nothing_behind():
    srv = IkeTable(ike_pair.config("responder"), harness.SeededRng(2), BE)
    answered = _spray(srv, 10000, lambda k: flood_source(k, 10000), 0.0)
    k = srv.counters()
    assert answered == 10000 and k["half_open"] == 256 and k["evictions"] == 10000 - 256
    sizes = srv.half_open.sizes()
    assert sizes["half_open"] == 256 and sizes["addresses"] == 256 and sizes["fifo_entries"] <= 2 * 256 + 64 * 2
    assert len(srv._sas) == 256 and len(srv._resp_index) == 256 and len(srv._timed) == 0
    srv.handle_timer(45.0)
    k = srv.counters()
    assert k["half_open"] == 0 and k["half_open_expired"] == 256 and srv.get_timer() is None
    assert srv._sas == {} and srv._resp_index == {} and srv.half_open.sizes()["fifo_entries"] == 0
    assert srv.next_event() is None     # nothing to log per spoofed source


def test_10000_messages_from_one_address_hold_16_slots_and_a_short_queue():
    srv = IkeTable(ike_pair.config("responder", half_open_timeout=8.0), harness.SeededRng(2), BE)
    answered = _spray(srv, 10000, lambda k: ("198.18.0.1", 500), 0.0)
    k = srv.counters()
    assert answered == 16 and k["half_open"] == 16 and k["waiting"] == 128
    assert k["half_open_drops"] == 10000 - 16 - 128 and k["evictions"] == 0
    # Another address is not affected.
    assert _spray(srv, 1, lambda k: ("198.18.0.2", 500), 0.0, first=20000) == 1
    # The waiting ones are answered as slots free up, within half_open_queue_wait (10 s).
    srv.handle_timer(8.0)
    assert len(srv.datagrams_to_send()) == 16 and srv.counters()["waiting"] == 112
    srv.handle_timer(16.0)      # these expire too; the rest waited more than 10 s and are dropped
    srv.handle_timer(24.0)
    assert srv.counters()["waiting"] == 0 and srv.counters()["half_open"] == 0 and srv.get_timer() is None


def test_a_message_1_into_a_full_table_evicts():
    """O(1) per packet: a message 1 into a full table (an eviction) costs about what one into an empty table
    costs (reported, not asserted). Before: each one scanned every half-open SA (list comprehensions over 256) and get_timer() every SA."""
    import time
    srv = IkeTable(ike_pair.config("responder", half_open_total=4096, half_open_per_ip=4096), harness.SeededRng(2),
                   BE)
    m1 = first_message()

    def batch(first, n):
        t0 = time.perf_counter()
        for k in range(n):
            srv.datagram_received((k + first).to_bytes(8, "big") + m1[8:], SERVER, flood_source(k + first, 60000),
                                  0.0)
            srv.get_timer()
        srv.datagrams_to_send()
        return (time.perf_counter() - t0) / n

    empty = batch(1, 200)
    batch(201, 4096 - 200)
    full = batch(10000, 200)
    assert srv.counters()["evictions"] >= 200
    # The figures are reported, not asserted (the house rule: no timed assertions; a busy CI host would make
    # this flaky). `python tests/unit/test_ike_flood.py` prints them side by side.
    print("message 1 + get_timer: empty table %.1f us, full table (evicting) %.1f us" % (empty * 1e6, full * 1e6))
