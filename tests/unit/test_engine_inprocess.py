"""Server and client engines in one process: loopback UDP, TUN twins, the real L2TP and PPP machines.

No root needed, so this runs everywhere; tests/integration does the same with namespaces and kernel TUNs.
"""

import io
import struct

import pytest
from scapy.layers.inet import ICMP, IP

from sluice.config import loads
from sluice.engine.client import Client
from sluice.engine.log import Log
from sluice.engine.loop import EventLoop, monotonic
from sluice.engine.server import Server
from sluice.hal.net.tun import PairTun
from sluice.hal.net.udp import bind_udp

CONF = """
config server 'main'
    option listen '127.0.0.1'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list dns '10.77.0.53'
    list auth '%(auth)s'
    option ipsec '0'
    option ifname 'sls0'

config user
    option username 'alice'
    option password 'Secr3t-password-horse'

config client 'office'
    option server '127.0.0.1'
    option username 'alice'
    option password '%(password)s'
    option ipsec '0'
    option ifname 'slc0'
    option redial '0'
    list routes '10.77.0.0/24'
"""


class Pair:
    def __init__(self, auth="mschapv2", password="Secr3t-password-horse"):
        self.config = loads(CONF % {"auth": auth, "password": password}, name="test.conf")
        self.loop = EventLoop()
        self.logbuf = io.StringIO()
        log = Log("test", stream=self.logbuf)
        self.stun, self.ctun = PairTun("sls0"), PairTun("slc0")
        ssock = bind_udp("127.0.0.1", 0)
        csock = bind_udp("127.0.0.1", 0)
        csock.connect(ssock.getsockname())
        self.server = Server(self.config, self.config.servers[0], self.loop, log, tun=self.stun, sock=ssock,
                             configure_host=False)
        self.client = Client(self.config, self.config.clients[0], self.loop, log, tun=self.ctun, sock=csock,
                             configure_host=False)
        self.server.start()
        self.client.start(monotonic())

    def run(self, until, limit=300):
        for _ in range(limit):
            if until():
                return True
            self.loop.run_once(max_wait=0.02)
        return until()

    def close(self):
        self.client.close()
        self.server.close()
        self.loop.close()


@pytest.fixture
def pair():
    p = Pair()
    yield p
    p.close()


def test_session_comes_up_and_carries_packets_both_ways(pair):
    assert pair.run(lambda: pair.client.state == "up"), pair.logbuf.getvalue()
    assert pair.client.local_ip == "10.77.0.10" and pair.client.peer_ip == "10.77.0.1"
    assert pair.client.dns == ["10.77.0.53"]
    up = bytes(IP(src="10.77.0.10", dst="10.77.0.1") / ICMP(id=1, seq=1) / (b"x" * 100))
    pair.ctun.kernel_send(up)
    got = []
    assert pair.run(lambda: got.extend(pair.stun.kernel_pending()) or got)
    assert got == [up]
    down = bytes(IP(src="10.77.0.1", dst="10.77.0.10") / ICMP(type=0, id=1, seq=1) / (b"y" * 1300))
    pair.stun.kernel_send(down)
    got = []
    assert pair.run(lambda: got.extend(pair.ctun.kernel_pending()) or got)
    assert got == [down]
    st = pair.server.status()
    s = st["tunnels"][0]["sessions"][0]
    assert (s["user"], s["ip"], s["rx_packets"], s["tx_packets"]) == ("alice", "10.77.0.10", 1, 1)
    assert "Secr3t" not in pair.logbuf.getvalue()


def test_server_drops_packets_with_a_spoofed_source(pair):
    assert pair.run(lambda: pair.client.state == "up")
    pair.ctun.kernel_send(bytes(IP(src="10.77.0.99", dst="10.77.0.1") / ICMP()))
    assert pair.run(lambda: pair.server.counters["spoofed"] == 1)
    assert pair.stun.kernel_pending() == []


def test_client_shutdown_frees_the_server_session(pair):
    assert pair.run(lambda: pair.client.state == "up")
    assert len(pair.server.sessions) == 1
    pair.client.shutdown(monotonic())
    assert pair.run(lambda: not pair.server.sessions)
    assert pair.server.pool.used() == 0


def test_wrong_password_fails_with_a_reason_and_no_secret():
    p = Pair(password="wrong-password-entirely")
    try:
        assert p.run(lambda: p.client.last_error is not None and p.client.state != "connecting", limit=600)
        assert p.client.state != "up"
        assert p.server.counters["auth_failures"] >= 1
        log = p.logbuf.getvalue()
        assert "wrong-password" not in log and "Secr3t" not in log
    finally:
        p.close()


@pytest.mark.parametrize("auth", ["pap", "chap"])
def test_other_auth_methods(auth):
    p = Pair(auth=auth)
    try:
        assert p.run(lambda: p.client.state == "up"), p.logbuf.getvalue()
    finally:
        p.close()


def test_client_deletes_ipsec_sas_only_after_stopccn_is_acknowledged(pair):
    # Interop finding: deleting the SAs right after StopCCN made a kernel peer's acknowledgements (ZLB, LCP
    # Terminate-Ack) cross the wire in the clear. The client must keep the closing tunnel until it is acked.
    assert pair.run(lambda: pair.client.state == "up")
    tunnel = pair.client.tunnel
    deleted = []

    class RecordingTransport:
        """The real transport, but records when the client would delete its IPsec SAs."""

        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def shutdown(self, now):
            deleted.append((tunnel.is_active(), now))

    pair.client.ipsec_up = True  # as if the SAs were up
    pair.client.transport = RecordingTransport(pair.client.transport)
    t0 = monotonic()
    pair.client.disconnect(t0)
    assert deleted == []  # StopCCN is on its way, not acknowledged yet
    assert pair.run(lambda: deleted)
    active, when = deleted[0]
    assert active is False  # the server's acknowledgement closed the tunnel
    assert when - t0 < 1.0  # long before the bounded wait would have given up
    assert not pair.server.sessions


def test_disabled_user_cannot_log_in():
    conf = CONF.replace("    option username 'alice'\n    option password 'Secr3t-password-horse'\n",
                        "    option username 'alice'\n    option password 'Secr3t-password-horse'\n"
                        "    option enabled '0'\n", 1)
    q = Pair()
    try:
        q.server._load_users(loads(conf % {"auth": "mschapv2", "password": "Secr3t-password-horse"}, name="t"))
        assert q.run(lambda: q.client.last_error is not None and q.client.state != "connecting", limit=600)
        assert q.client.state != "up" and q.server.counters["auth_failures"] >= 1
    finally:
        q.close()


def test_server_drops_ipv6_in_an_ipv4_ppp_frame(pair):
    # An IPv6 packet whose bytes 12-15 equal the client's IPv4 address must not pass the source check.
    assert pair.run(lambda: pair.client.state == "up")
    sess = next(iter(pair.server.sessions.values()))
    v6 = bytearray(40)
    v6[0] = 0x60
    v6[12:16] = sess.ip_key
    frame = struct.pack("!HHH", 2, sess.tid, sess.sid) + b"\xff\x03\x00\x21" + bytes(v6)
    pair.server._l2tp_in(frame, 0, len(frame), sess.peer, monotonic())
    assert pair.stun.kernel_pending() == []
    assert pair.server.counters["spoofed"] == 1


def test_failed_renegotiation_keeps_a_working_session(pair):
    assert pair.run(lambda: pair.client.state == "up")
    pair.client._ipsec_event("failed", ("127.0.0.1", 500), monotonic(), "no answer to Quick Mode")
    assert pair.client.state == "up" and pair.client.tunnel is not None
    assert "renegotiation" in pair.client.last_error
