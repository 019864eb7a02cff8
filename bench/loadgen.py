"""Load generator: N plain-L2TP clients (LAC tunnel + PPP client link each) driven from ONE process.

Used by bench/run.py to measure the server's memory per session without paying for N client daemons. Each
session has its own UDP socket, so the server sees N tunnels from N source ports, as it would from N routers
behind one NAT. The protocol machines are Sluice's own sans-IO ones (sluice.l2tp.tunnel.Tunnel as LAC and
sluice.ppp.link.PppLink as client); this file only moves their datagrams and drives their timers.

    python bench/loadgen.py SERVER_IP N USER PASSWORD [--bind ADDR] [--timeout S] [--seed K]

Prints `up K T` (K sessions with IPCP up after T seconds) when all are up or the timeout passes, then holds
the sessions until a line arrives on stdin (or stdin closes), closes every tunnel (StopCCN) and prints `done`.
"""

import argparse
import random
import select
import socket
import sys
import time

from sluice.l2tp import events as l2ev
from sluice.l2tp.data import DataEncoder
from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig
from sluice.ppp import events as pppev
from sluice.ppp.config import PppConfig
from sluice.ppp.link import PppLink

try:
    from sluice.l2tp.data import parse_data
except ImportError:  # a tree before the endpoint layer (bench against an older revision): its header parser
    from sluice.l2tp.data import parse_header

    def parse_data(buf, start, n):
        _ctl, tid, sid, p, ns = parse_header(bytes(buf[start:n]))
        return tid, sid, ns, start + p, n


class Client:
    """One tunnel with one session and its PPP link, on its own UDP socket."""

    def __init__(self, i, server, bind, user, password, rng):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.sock.connect((server, 1701))
        self.sock.setblocking(False)
        self.user, self.password, self.rng = user, password, rng
        self.tunnel = Tunnel(LAC, i + 1, rng, TunnelConfig(host_name="loadgen%d" % i))
        self.sid = None
        self.link = None
        self.enc = None
        self.ip = None
        self.failed = None

    def start(self, now):
        self.tunnel.start(now)
        self.sid = self.tunnel.open_session(now)
        self.pump(now)

    def received(self, data, now):
        if len(data) >= 2 and data[0] & 0x80:  # T bit: control (RFC 2661 3.1)
            self.tunnel.datagram_received(data, now)
        else:
            try:
                _tid, sid, _ns, p, end = parse_data(data, 0, len(data))
            except ValueError:
                return
            if self.link is not None and sid == self.sid:
                self.link.frame_received(data[p:end], now)
        self.pump(now)

    def timers(self, now):
        for m in (self.tunnel, self.link):
            if m is not None:
                d = m.get_timer()
                if d is not None and d <= now:
                    m.handle_timer(now)
        self.pump(now)

    def deadline(self):
        ds = [d for d in (self.tunnel.get_timer(), self.link.get_timer() if self.link else None) if d is not None]
        return min(ds) if ds else None

    def pump(self, now):
        for data in self.tunnel.datagrams_to_send():
            self._send(data)
        while True:
            ev = self.tunnel.next_event()
            if ev is None:
                break
            if isinstance(ev, l2ev.SessionUp) and ev.session_id == self.sid:
                self.enc = DataEncoder(self.tunnel.peer_tunnel_id, ev.peer_session_id, ev.sequencing)
                self.link = PppLink("client", PppConfig(username=self.user, password=self.password,
                                                        echo_interval=3600), self.rng)
                self.link.open(now)
            elif isinstance(ev, (l2ev.SessionDown, l2ev.TunnelDown)):
                self.failed = type(ev).__name__
        if self.link is not None:
            for frame in self.link.frames_to_send():
                self._send(self.enc.next_header() + frame)
            while True:
                ev = self.link.next_event()
                if ev is None:
                    break
                if isinstance(ev, pppev.IpUp):
                    self.ip = ev.local_ip
                elif isinstance(ev, (pppev.AuthFailed, pppev.LinkDown)):
                    self.failed = type(ev).__name__

    def _send(self, data):
        try:
            self.sock.send(data)
        except OSError:
            pass  # a full socket buffer: the machines retransmit


def run_until(clients, cond, timeout):
    """Move datagrams and fire timers until cond() or the timeout; bounded by wall time."""
    by_fd = {c.sock.fileno(): c for c in clients}
    end = time.monotonic() + timeout
    while not cond():
        now = time.monotonic()
        if now >= end:
            return False
        ds = [d for d in (c.deadline() for c in clients) if d is not None]
        wait = max(0.0, min([end] + ds) - now)
        r, _, _ = select.select(list(by_fd), [], [], min(wait, 0.2))
        now = time.monotonic()
        for fd in r:
            c = by_fd[fd]
            for _ in range(64):
                try:
                    data = c.sock.recv(4096)
                except OSError:
                    break
                c.received(data, now)
        for c in clients:
            d = c.deadline()
            if d is not None and d <= now:
                c.timers(now)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("server")
    ap.add_argument("n", type=int)
    ap.add_argument("user")
    ap.add_argument("password")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    r = random.Random(a.seed)
    rng = lambda n: bytes(r.getrandbits(8) for _ in range(n))  # noqa: E731  (deterministic, not secret)
    t0 = time.monotonic()
    clients = [Client(i, a.server, a.bind, a.user, a.password, rng) for i in range(a.n)]
    # Start them a few at a time, as real routers would arrive, and to keep the server's queue short.
    for i, c in enumerate(clients):
        c.start(time.monotonic())
        if i % 10 == 9:
            run_until(clients, lambda: False, 0.05)
    run_until(clients, lambda: all(c.ip or c.failed for c in clients), a.timeout)
    up = sum(1 for c in clients if c.ip)
    print("up %d %.3f" % (up, time.monotonic() - t0), flush=True)
    # Hold the sessions (answering the server's control traffic) until told to stop.
    import threading

    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    run_until(clients, stop.is_set, 600)
    now = time.monotonic()
    for c in clients:
        c.tunnel.close(now, 1, "load generator done")
        c.pump(now)
    run_until(clients, lambda: False, 0.3)
    print("done", flush=True)
    return 0 if up == a.n else 1


if __name__ == "__main__":
    sys.exit(main())
