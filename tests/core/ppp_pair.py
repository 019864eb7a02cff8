"""Two PppLinks wired back to back in memory, with a simulated clock and optional seeded loss/duplication.

MicroPython subset. Used by tests/core/test_ppp_*.py; reads like a sequence chart through `trace`.
"""

from sluice.ppp.config import PppConfig
from sluice.ppp.framing import split, parse_packet
from sluice.ppp.link import PppLink
try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

SeededRng = harness.SeededRng

USERS = {"alice": "correct horse", "bob": "hunter2", "DOM\\carol": "pa55"}


def server_config(**kw):
    base = dict(get_password=USERS.get, assign_address=lambda u: "198.51.100.10", local_ip="198.51.100.1",
                dns=["192.0.2.53", "192.0.2.54"])
    base.update(kw)
    return PppConfig(**base)


def client_config(**kw):
    base = dict(username="alice", password="correct horse")
    base.update(kw)
    return PppConfig(**base)


class Pair:
    def __init__(self, client_cfg=None, server_cfg=None, seed=7, loss=0.0, dup=0.0):
        self.rng = SeededRng(seed)
        self.net = SeededRng(seed + 1000)
        self.client = PppLink("client", client_cfg or client_config(), self.rng)
        self.server = PppLink("server", server_cfg or server_config(), SeededRng(seed + 1))
        self.loss = loss
        self.dup = dup
        self.now = 0.0
        self.trace = []  # (who, protocol, code) of every frame that crossed
        self.events = {"client": [], "server": []}
        self.dropped = 0
        self.tamper = None  # tamper(direction, frame) -> frame or None (drop), for targeted tests

    def open(self):
        self.client.open(self.now)
        self.server.open(self.now)

    def _carry(self, src, dst, name):
        moved = 0
        for f in src.frames_to_send():
            assert f[0] == 0xFF and f[1] == 0x03, "frames we send start with FF 03"
            if self.tamper is not None:
                f = self.tamper(name, f)
                if f is None:
                    continue
            proto, off = split(f)
            code = parse_packet(f, off)[0] if proto >= 0x8000 else None
            if self.loss and self.net.random() < self.loss:
                self.dropped += 1
                continue
            self.trace.append((name, proto, code))
            copies = 2 if (self.dup and self.net.random() < self.dup) else 1
            for _ in range(copies):
                dst.frame_received(f, self.now)
            moved += 1
        return moved

    def _drain_events(self):
        for name, link in (("client", self.client), ("server", self.server)):
            while True:
                ev = link.next_event()
                if ev is None:
                    break
                self.events[name].append(ev)

    def pump(self, max_rounds=200):
        """Deliver frames both ways until both are quiet; no time passes."""
        for _ in range(max_rounds):
            a = self._carry(self.client, self.server, "c>s")
            b = self._carry(self.server, self.client, "s>c")
            self._drain_events()
            if not a and not b and not self.client._out and not self.server._out:
                return
        raise AssertionError("links never went quiet")

    def run(self, until, max_steps=2000):
        """Pump, then jump the clock to the next timer, until `until` seconds or both links idle."""
        self.pump()
        for _ in range(max_steps):
            timers = [t for t in (self.client.get_timer(), self.server.get_timer()) if t is not None]
            if not timers:
                return
            t = min(timers)
            if t > until:
                self.now = until
                return
            self.now = max(self.now, t)
            for link in (self.client, self.server):
                d = link.get_timer()
                if d is not None and d <= self.now:
                    link.handle_timer(self.now)
            self.pump()
        raise AssertionError("timers never settled")

    def kinds(self, who):
        return [type(e).__name__ for e in self.events[who]]

    def first(self, who, kind):
        for e in self.events[who]:
            if type(e).__name__ == kind:
                return e
        return None
