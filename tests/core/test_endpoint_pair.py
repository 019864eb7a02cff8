"""The client and server endpoints wired to each other in memory, actions routed by hand: no engine, no
data plane, a fixed clock. Runs under MicroPython too (the endpoints are in the subset).

The chart each test checks:

    client                                      server
    OpenTransport -> transport_ready
    [IKE MM1..MM6, QM1..QM3 -->  <--]           InstallSa / OutboundSa on both sides
    SCCRQ -->                                   <-- SCCRP
    SCCCN, ICRQ -->                             <-- ICRP
    ICCN -->                                    SessionUp (L2TP)
    LCP, auth, IPCP <-->                        Authenticated -> address from the pool -> IpUp
    SessionUp + Host steps + RunHook(connect)   SessionUp + Host route_add
"""

try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

from sluice.endpoint.client import ClientEndpoint
from sluice.endpoint.server import ServerEndpoint
from sluice.l2tp.tunnel import TunnelConfig

SERVER_IP = "192.0.2.1"
CLIENT_IP = "198.51.100.7"


class Section:
    def __init__(self, **kw):
        for k in kw:
            setattr(self, k, kw[k])


class User:
    def __init__(self, username, password, ip=None):
        self.username = username
        self.password = password
        self.ip = ip
        self.enabled = True


def server_section():
    return Section(name="main", listen=SERVER_IP, port=1701, local_ip="10.77.0.1", pool_start="10.77.0.10",
                   pool_end="10.77.0.20", dns=["10.77.0.53"], auth=["mschapv2"], mtu=1400, max_sessions=4,
                   lcp_echo_interval=30, lcp_echo_failure=4, ifname="sls0", ipv6=False)


def client_section(password="Secr3t-password-horse", ipsec=False):
    return Section(name="office", server="vpn.example.net", port=1701, username="alice", password=password,
                   auth=["mschapv2"], mtu=1400, ifname="slc0", ipsec=ipsec, routes=["10.77.0.0/24"],
                   defaultroute=False, peerdns=True, redial=True, redial_delay=10, lcp_echo_interval=30,
                   lcp_echo_failure=4, ipv6=False)


class Pair:
    def __init__(self, password="Secr3t-password-horse", users=None):
        rng = harness.SeededRng(7)
        self.server = ServerEndpoint(server_section(), users or [User("alice", "Secr3t-password-horse")], rng,
                                     TunnelConfig(host_name="lns"))
        self.client = ClientEndpoint(client_section(password), rng, TunnelConfig(host_name="lac"))
        self.now = 100.0
        self.chart = []
        self.server_acts = []
        self.client_acts = []

    def pump(self, limit=200):
        """Route actions until both sides are quiet; returns False if it never settled."""
        for _ in range(limit):
            moved = False
            for a in self.client.actions():
                moved = True
                self.client_acts.append(a)
                if a.kind == "open_transport":
                    self.client.transport_ready((SERVER_IP, 1701), CLIENT_IP, self.now)
                elif a.kind == "send_l2tp":
                    self.chart.append(("c>s", a.data[:2]))
                    self.server.l2tp_received(a.data, (CLIENT_IP, 1701), self.now)
            for a in self.server.actions():
                moved = True
                self.server_acts.append(a)
                if a.kind == "send_l2tp":
                    self.chart.append(("s>c", a.data[:2]))
                    self.client.l2tp_received(a.data, (SERVER_IP, 1701), self.now)
            if not moved:
                return True
        return False

    def advance(self, seconds):
        """Let time pass in timer steps, firing whichever endpoint is due."""
        end = self.now + seconds
        for _ in range(1000):
            due = [d for d in (self.client.get_timer(), self.server.get_timer()) if d is not None]
            nxt = min(due) if due else end
            if nxt > end:
                break
            self.now = max(self.now, nxt)
            self.client.handle_timer(self.now)
            self.server.handle_timer(self.now)
            self.pump()
        self.now = end


def kinds(acts, kind):
    return [a for a in acts if a.kind == kind]


def test_plain_pair_comes_up_with_pulled_address_and_host_steps():
    p = Pair()
    p.server.start(p.now)
    p.client.start(p.now)
    assert p.pump()
    assert p.client.state == "up"
    s = list(p.server.sessions.values())[0]
    assert s.ip == "10.77.0.10" and s.authed and p.server.authed == 1
    ups = kinds(p.server_acts, "session_up")
    assert len(ups) == 1 and ups[0].address == "10.77.0.10" and ups[0].key == (s.tid, s.sid)
    ops = [a.op for a in kinds(p.client_acts, "host")]
    assert ops == ["addr_flush", "addr_add", "link_up", "route_add"]
    hooks = kinds(p.client_acts, "hook")
    assert len(hooks) == 1 and hooks[0].env["reason"] == "connect"
    assert hooks[0].env["INTERNAL_IP4_ADDRESS"] == "10.77.0.10"


def test_wrong_password_backs_off_with_doubling_delays():
    p = Pair(password="not-the-password")
    p.client.start(p.now)
    p.pump()
    p.advance(5)
    assert p.client.state == "backoff" and p.client.last_error
    first = p.client.deadline - p.now
    assert 0 < first <= 10
    assert p.server.authed == 0 and p.server.counters["auth_failures"] == 1
    p.advance(first + 1)  # the redial fails the same way
    p.advance(5)
    assert p.client.failures == 2 and p.client.deadline - p.now > first


def test_disconnect_closes_politely_then_goes_idle():
    p = Pair()
    p.client.start(p.now)
    p.pump()
    assert p.client.state == "up"
    p.client.disconnect(p.now)
    p.pump()
    p.advance(4)
    assert p.client.state == "idle" and p.client.idle()
    assert not p.server.sessions and p.server.pool.used() == 0
    hooks = kinds(p.client_acts, "hook")
    assert [h.env["reason"] for h in hooks] == ["connect", "disconnect"]


def _up_with_stalled_sessions(n):
    """A pair that is up, whose client then opens `n` more sessions on its tunnel that never authenticate."""
    p = Pair()
    p.client.start(p.now)
    p.pump()
    t = p.client.tunnel
    for _ in range(n):
        t.open_session(p.now)
    p.client._pump_tunnel(p.now)
    p.pump()
    return p


def test_unauthenticated_sessions_do_not_hold_the_server():
    # A tunnel that opens sessions and never authenticates: bounded per tunnel, closed after the pre-auth
    # timeout, and not counted toward max_sessions.
    p = _up_with_stalled_sessions(8)
    pre = [s for s in p.server.sessions.values() if not s.authed]
    assert len(pre) <= 4 and len(p.server.sessions) <= 5  # 8 asked: at most 4 wait, besides the real one
    p.advance(40)
    assert [s for s in p.server.sessions.values() if not s.authed] == []
    assert p.server.table.stats["pending_expired"] >= 1
    assert p.server.authed == 1 and p.client.state == "up"  # the real session was never at risk


def test_lcp_renegotiation_keeps_one_place_and_one_address():
    # RFC 1661 lets a peer renegotiate LCP on an open link; authentication and IPCP then run again on the same
    # session. That must not count the session twice toward max_sessions, take a second pool address, or
    # announce the session a second time (a client looping this would fill the server).
    p = Pair()
    p.client.start(p.now)
    assert p.pump()
    s = list(p.server.sessions.values())[0]
    for _ in range(3):
        lcp = p.client.link.lcp
        lcp.down(p.now)
        lcp.up(p.now)
        assert p.pump()
        p.advance(5)
    assert p.client.state == "up" and list(p.server.sessions.values()) == [s]
    assert p.server.authed == 1 and p.server.authed_by_user == {"alice": 1}
    assert p.server.pool.used() == 1 and s.ip == "10.77.0.10"
    assert len(kinds(p.server_acts, "session_up")) == 1
    p.client.disconnect(p.now)
    p.pump()
    p.advance(4)
    assert p.server.authed == 0 and p.server.authed_by_user == {} and p.server.pool.used() == 0


def test_the_sessions_ppp_timers_come_from_a_heap_that_agrees_with_every_link():
    # get_timer takes the sessions' PPP deadlines from a lazily pruned heap (a per-datagram scan of every
    # session was O(n)); at every step it must equal the brute-force minimum over the links, through sessions
    # that negotiate, stall before authentication and get closed, and a session that stays up on LCP echoes.
    p = _up_with_stalled_sessions(4)
    srv = p.server

    def brute():
        ds = [s.link.get_timer() for s in srv.sessions.values() if s.link is not None]
        ds.append(srv.table.get_timer())
        ds = [d for d in ds if d is not None]
        return min(ds) if ds else None

    assert len(srv.sessions) == 5
    steps = 0
    end = p.now + 300
    while p.now < end and steps < 500:
        assert srv.get_timer() == brute()
        p.advance(min(7.0, end - p.now))
        steps += 1
    assert srv.get_timer() == brute()
    assert [s for s in srv.sessions.values() if not s.authed] == [] and len(srv.sessions) == 1
    assert p.client.state == "up" and srv.authed == 1
    assert len(srv.link_sched) == 1 and len(srv.link_heap) <= 2 * 1 + 64
