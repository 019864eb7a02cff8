"""Two IkeTables (client = initiator, server = responder) wired in memory, optionally through a NAT.

MicroPython subset. Used by tests/core/test_ike_*.py. `Pair.run()` moves datagrams until both sides are quiet
and records every datagram in `trace` as (direction, local_port, exchange, message_id, length), so a test can
assert the sequence chart. Addresses are documentation addresses (RFC 5737).
"""

try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

from sluice.ike.proposals import ProposalSet
from sluice.ike.table import IkeConfig, IkeTable

SERVER_IP = "192.0.2.1"
CLIENT_IP = "198.51.100.7"      # the client's own address (private side when NATed)
NAT_IP = "203.0.113.5"          # the NAT's public address
PSK = b"correct horse battery staple"

# Fast groups for the pure backend under MicroPython: MODP1024 (one DH per side per test).
IKE = "aes256-sha1-modp1024"
ESP = "aes256-sha1"


def config(role, **kw):
    base = dict(role=role, psk=PSK, ike=ProposalSet.parse(kw.pop("ike", IKE), "ike"),
                esp=ProposalSet.parse(kw.pop("esp", ESP), "esp"),
                local_ip=SERVER_IP if role == "responder" else CLIENT_IP)
    base.update(kw)
    return IkeConfig(**base)


class Pair:
    """client <-> [NAT] <-> server. With `nat`, the client's ports 500/4500 appear as 40500/44500 on NAT_IP."""

    def __init__(self, client_cfg=None, server_cfg=None, nat=False, seed=11, backend=None, nat_ports=None,
                 server=None):
        self.client = IkeTable(client_cfg or config("initiator"), harness.SeededRng(seed), backend)
        self.server = server or IkeTable(server_cfg or config("responder"), harness.SeededRng(seed + 1), backend)
        self.nat = nat
        self.ports = nat_ports or {500: 40500, 4500: 44500}
        self.now = 0.0
        self.trace = []
        self.drop = None        # callable(direction, data) -> True to lose a datagram
        self.tamper = None      # callable(direction, data) -> datagrams delivered just before this one
        self.log = []           # every datagram: (direction, src, dst, data)

    def client_public(self, port):
        if self.nat:
            return (NAT_IP, self.ports[port])
        return (CLIENT_IP, port)

    def _c2s(self, lp, peer, data):
        src = self.client_public(lp)
        self.log.append(("c>s", src, peer, data))
        self._note("c>s", lp, data)
        if self.drop is not None and self.drop("c>s", data):
            return
        for extra in (self.tamper("c>s", data) if self.tamper is not None else ()):
            self.server.datagram_received(extra, (SERVER_IP, peer[1]), src, self.now)
        self.server.datagram_received(data, (SERVER_IP, peer[1]), src, self.now)

    def _s2c(self, lp, peer, data):
        self.log.append(("s>c", (SERVER_IP, lp), peer, data))
        self._note("s>c", lp, data)
        if self.drop is not None and self.drop("s>c", data):
            return
        port = peer[1]
        if self.nat:
            back = [k for k in self.ports if self.ports[k] == peer[1]]
            if peer[0] != NAT_IP or not back:
                return      # the NAT has no mapping: lost
            port = back[0]
        for extra in (self.tamper("s>c", data) if self.tamper is not None else ()):
            self.client.datagram_received(extra, (CLIENT_IP, port), (SERVER_IP, lp), self.now)
        self.client.datagram_received(data, (CLIENT_IP, port), (SERVER_IP, lp), self.now)

    def _note(self, direction, lp, data):
        mid = int.from_bytes(data[20:24], "big")
        self.trace.append((direction, lp, data[18], mid, len(data)))

    def run(self, limit=40):
        """Deliver until both sides are quiet (bounded)."""
        for _ in range(limit):
            moved = False
            for lp, peer, data in self.client.datagrams_to_send():
                moved = True
                self._c2s(lp, peer, data)
            for lp, peer, data in self.server.datagrams_to_send():
                moved = True
                self._s2c(lp, peer, data)
            if not moved:
                assert self.client.stats["internal_error"] == 0 and self.server.stats["internal_error"] == 0
                return
        raise AssertionError("the exchange did not settle in %d rounds" % limit)

    def advance(self, to, step=None):
        """Move the clock to `to`, firing both sides' timers in order (bounded), delivering as we go."""
        for _ in range(10000):
            tc = self.client.get_timer()
            ts = self.server.get_timer()
            nxt = min([t for t in (tc, ts) if t is not None] or [to])
            if nxt > to:
                break
            self.now = max(self.now, nxt)
            if tc is not None and tc <= self.now:
                self.client.handle_timer(self.now)
            if ts is not None and ts <= self.now:
                self.server.handle_timer(self.now)
            self.run()
        self.now = to
        self.run()

    def connect(self):
        self.client.initiate((SERVER_IP, 500), self.now)
        self.run()

    def events(self, side):
        t = self.client if side == "client" else self.server
        out = []
        e = t.next_event()
        while e is not None:
            out.append(e)
            e = t.next_event()
        return out


def names(events):
    return [type(e).__name__ for e in events]
