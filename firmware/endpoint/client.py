"""The LAC endpoint: every decision of an L2TP/IPsec client, with no IO.

Theory of operation. The client dials one server and keeps one session up while the user wants it
(`connect` / `disconnect`). Its life is an explicit state, named for what it waits for:

    IDLE        the user does not want the tunnel (or redial is off and the last dial failed)
    TRANSPORT   OpenTransport sent: the engine resolves the server and opens the sockets
    IPSEC       Main Mode and Quick Mode with the server (L2TP waits for the SA, RFC 3193)
    SA_SETTLE   the SA is up; L2TP starts `settle_time` later (a kernel-based responder installs its own SAs
                a moment after our last Quick Mode message; L2TP sent before that is lost or answered in the clear)
    L2TP        SCCRQ .. ICCN, then PPP up to IPCP
    UP          IPCP is up: addresses, routes and the hook are applied
    BACKOFF     the last attempt failed; the next dial is due at `redial_at` (redial_delay, doubling, <= 300 s)

Any loss (IPsec, tunnel, session, PPP, the connect deadline) goes through `_fail`: the session is torn down,
the hook hears `disconnect` if the session was up, and BACKOFF starts (or IDLE). Closing is polite the way
pppd and xl2tpd close: LCP Terminate first, StopCCN once PPP is down, and the IPsec SAs only after the server
acknowledged StopCCN or LINGER s passed. The closing tunnel is a `Closing` record that lives beside a new dial.

Inputs and outputs as for the server endpoint (`sluice.endpoint.server`), plus `transport_ready(address,
local_ip, now)` / `transport_failed(reason, now)` answering OpenTransport.
"""

from sluice.endpoint import actions as A
from sluice.endpoint.ipsec import IpsecFront
from sluice.endpoint.text import peer_text, why
from sluice.l2tp import events as l2ev
from sluice.l2tp.data import DataEncoder, parse_data
from sluice.l2tp.errors import L2tpError
from sluice.l2tp.tunnel import LAC, Tunnel
from sluice.ppp import events as pppev
from sluice.ppp.config import PppConfig
from sluice.ppp.framing import PROTO_IP, PROTO_IPV6, PppError, protocol_at
from sluice.ppp.link import PppLink

IDLE = "idle"
TRANSPORT = "transport"
IPSEC = "ipsec"
SA_SETTLE = "sa-settle"
L2TP = "l2tp"
UP = "up"
BACKOFF = "backoff"

CONNECT_TIMEOUT = 60.0
L2TP_AFTER_SA = 0.3      # the longest wait between the SA and L2TP (settle_time)
L2TP_AFTER_SA_MIN = 0.05
LINGER = 3.0
MAX_BACKOFF = 300
QUICK_REDIAL = 1.0  # the first redial after losing a session that was up
STOPCCN_SHUTDOWN = 6
EXIT_AUTH_FAILED = 3  # under netifd: the handler reports AUTH_FAILED and blocks restarts (ppp.sh's way)
L2TP_PORT = 1701
IKE_PORT = 500


def settle_time(round_trip):
    """Seconds between our Quick Mode message 3 and the SCCRQ. The responder installs its SAs and policies when
    message 3 arrives; an SCCRQ ahead of them is dropped (a retransmission, 1 s later) or, between its inbound
    SA and its outbound policy, answered in the clear. Its message 2 took `round_trip`: the network both ways
    plus work (SPI, proposal, keys) of the size message 3 asks for; three times that, within
    [L2TP_AFTER_SA_MIN, L2TP_AFTER_SA] (L2TP_AFTER_SA when unknown)."""
    if round_trip is None or round_trip < 0:
        return L2TP_AFTER_SA
    return min(L2TP_AFTER_SA, max(L2TP_AFTER_SA_MIN, 3 * round_trip))


class Closing:
    """A tunnel we are closing politely, kept until the server acknowledged it or LINGER ran out."""

    __slots__ = ("tunnel", "link", "enc", "key", "reason", "until", "ppp_until", "then_delete_sas")

    def __init__(self, tunnel, link, enc, key, reason, now):
        self.tunnel = tunnel
        self.link = link
        self.enc = enc
        self.key = key
        self.reason = reason
        self.until = now + LINGER
        self.ppp_until = now + LINGER / 2
        self.then_delete_sas = False


class ClientEndpoint(IpsecFront):
    def __init__(self, section, rng, tunnel_config, make_ike=None, lifetime_bytes=None, interface=None):
        self.cli = section
        self.rng = rng
        self.tunnel_config = tunnel_config
        self.make_ike = make_ike  # (local_ip, server_ip) -> IkeTable, for each new server address
        self.lifetime_bytes = lifetime_bytes
        self.interface = interface or section.name
        self.q = A.Queue()
        self.state = IDLE
        self.wanted = True
        self.server = None      # (ip, port) the name resolved to for this dial
        self.ipsec = None       # IpsecLayer for the current server address
        self.key = None         # the L2TP peer key of the server
        self.tunnel = None
        self.sid = None
        self.link = None
        self.enc = None
        self.closing = None
        self.local_ip = self.peer_ip = None
        self.mtu = None         # the device's MTU while up: option mtu capped by the server's MRU
        self.dns = []
        self.installed = []     # routes we added, removed on teardown
        self.dial_started = None
        self.deadline = None    # connect deadline, or the SA_SETTLE / BACKOFF due time
        self.up_since = None
        self.failures = 0
        self.last_error = None
        self.counters = {"connects": 0, "malformed": 0, "unknown_session": 0, "early_data": 0}
        self.stop_on_auth_failure = False  # netifd: a refused login ends the daemon (no redial)
        self.exit_code = None              # what the daemon should exit with, once set
        self.v6 = None
        if getattr(section, "ipv6", False):
            from sluice.endpoint.ipv6 import ClientIpv6

            self.v6 = ClientIpv6(section, self.q)

    def actions(self):
        return self.q.drain()

    # -- commands ------------------------------------------------------------------------------------------

    def start(self, now):
        self.dial(now)

    def connect(self, now):
        self.wanted = True
        if self.state in (IDLE, BACKOFF):
            self.failures = 0
            self.dial(now)

    def disconnect(self, now, reason="disconnected by the user"):
        self.wanted = False
        if self.tunnel is not None:
            env = self._hook_env("disconnect") if self.state == UP else None
            self._teardown(now, True, reason)
            if env is not None:
                self.q.add(A.RunHook(env))
        if self.ipsec is not None and self.ipsec.peers():
            if self.closing is not None:
                self.closing.then_delete_sas = True
            else:
                self.ipsec.delete_all(now)
        self.state = IDLE
        self.deadline = None

    def shutdown(self, now):
        self.disconnect(now, "client shutting down")

    def finish(self, now):
        """The daemon is about to exit: whatever is still open with the server is deleted now."""
        if self.closing is not None:
            self.closing.until = now
            self._closing_step(now)

    def idle(self):
        return self.tunnel is None and self.closing is None

    def reload(self, section, now):
        """Credentials, routes and timers apply from the next connection; the session stays up."""
        changed = [o for o in section.__slots__ if getattr(self.cli, o, None) != getattr(section, o, None)]
        self.cli = section
        if changed:
            self.q.log("info", "configuration reloaded (%s changed): applies from the next connection; "
                       "`sluice disconnect` then `sluice connect` to apply it now", ", ".join(changed))
        else:
            self.q.log("info", "configuration reloaded: nothing changed")

    # -- dialling ------------------------------------------------------------------------------------------

    def dial(self, now):
        if self.tunnel is not None or not self.wanted:
            return
        if self.state not in (TRANSPORT, IPSEC, SA_SETTLE, L2TP):
            self.dial_started = now
        self.state = TRANSPORT
        self.deadline = now + CONNECT_TIMEOUT
        c = self.cli
        self.q.add(A.OpenTransport(c.server, c.port, bool(c.ipsec)))

    def transport_ready(self, address, local_ip, now):
        """The engine resolved the server to `address` and has its sockets; `local_ip` is our source."""
        if self.state != TRANSPORT:
            return
        if address != self.server:
            if self.server is not None:
                self.q.log("info", "server %s now resolves to %s", self.cli.server, address[0])
            self.server = address
            self.ipsec = None
            if self.cli.ipsec:
                from sluice.endpoint.ipsec import IpsecLayer

                self.ipsec = IpsecLayer(self.make_ike(local_ip, address[0]), self, self.q, self.lifetime_bytes)
        if self.ipsec is not None:
            if self.key is not None and self.ipsec.peers():
                self._start_l2tp(now)  # the SA outlived the last session: L2TP goes through it at once
                return
            self.state = IPSEC
            self.q.log("info", "negotiating IPsec with %s", self.cli.server)
            self.ipsec.initiate((address[0], IKE_PORT), now)
            return
        self.key = address
        self._start_l2tp(now)

    def transport_failed(self, reason, now):
        if self.state == TRANSPORT:
            self._fail(now, "cannot reach server %s: %s" % (self.cli.server, reason), notify=False)

    def _start_l2tp(self, now):
        c = self.cli
        self.state = L2TP
        self.q.log("info", "connecting to %s:%d as %s", c.server, c.port, c.username)
        tid = 0
        while tid == 0:
            tid = int.from_bytes(self.rng(2), "big")
        self.tunnel = Tunnel(LAC, tid, self.rng, self.tunnel_config)
        self.tunnel.peer = self.key
        self.tunnel.start(now)
        self.sid = self.tunnel.open_session(now)
        self._pump_tunnel(now)

    # -- IPsec layer callbacks -----------------------------------------------------------------------------

    def ipsec_sa_up(self, peer, now, round_trip=None):
        self.key = (peer[0], peer[1], L2TP_PORT)
        if self.state == IPSEC:
            self.q.log("info", "IPsec SA up with %s", peer_text(peer))
            self.state = SA_SETTLE
            self.deadline = now + settle_time(round_trip)

    def ipsec_peer_moved(self, old, new, now):
        if self.key is not None and self.key[:2] == old:
            self.key = (new[0], new[1], self.key[2])
            if self.tunnel is not None:
                self.tunnel.peer = self.key

    def ipsec_peer_down(self, peer, reason, now):
        if self.key is not None and self.key[:2] != peer:
            return
        self.key = None
        if self.tunnel is not None or self.state in (IPSEC, SA_SETTLE):
            self._fail(now, "IPsec lost: %s" % (reason or "the server stopped answering"), notify=False)

    def ipsec_failed(self, peer, reason, now):
        if self.state == UP:
            # A rekey that failed while the current SA still carries the session: keep going, the machines
            # retry before the SA expires (and DPD or expiry ends it if they cannot).
            self.q.log("warning", "IPsec renegotiation failed (the session stays up): %s", reason)
            self.last_error = "IPsec renegotiation failed: %s" % reason
            return
        if self.state in (IPSEC, SA_SETTLE, L2TP):
            self._fail(now, "IPsec negotiation failed: %s" % reason, notify=False)

    # -- network input -------------------------------------------------------------------------------------
    # (IKE, ESP-driven moves, SA expiry: IpsecFront)

    def l2tp_received(self, data, key, now):
        n = len(data)
        cl = self.closing
        if n >= 2 and data[0] & 0x80:
            if cl is not None and n >= 6:
                # Control for the tunnel we are closing (its StopCCN acknowledgement), not the new one.
                i = 4 if data[0] & 0x40 else 2
                if ((data[i] << 8) | data[i + 1]) == cl.tunnel.local_tunnel_id:
                    cl.tunnel.datagram_received(data, now)
                    self._closing_step(now)
                    return
            if self.tunnel is not None:
                self.tunnel.datagram_received(data, now)
                self._pump_tunnel(now)
            return
        try:
            tid, sid, _ns, p, end = parse_data(data, 0, n)
            proto, _q = protocol_at(data, p, end)
        except (L2tpError, PppError):
            self.counters["malformed"] += 1
            return
        if cl is not None and cl.link is not None and tid == cl.tunnel.local_tunnel_id:
            cl.link.frame_received(data[p:end], now)  # its LCP Terminate-Ack
            self._closing_step(now)
            return
        t = self.tunnel
        if t is None or sid != self.sid or tid != t.local_tunnel_id:
            self.counters["unknown_session"] += 1
            return
        if proto == PROTO_IPV6 and self.v6 is not None and self.v6.started:
            if self.v6.frame_in(data, _q, end, now) and self.state == UP:
                self.q.add(A.RunHook(self._hook_env("connect")))  # netifd hears the IPv6 address and routes
            return
        if proto == PROTO_IP or proto == PROTO_IPV6:
            self.counters["early_data"] += 1
            return
        if self.link is not None:
            self.link.frame_received(data[p:end], now)
            self._pump_link(now)

    # -- timers --------------------------------------------------------------------------------------------

    def get_timer(self):
        cands = [self.deadline]
        if self.ipsec is not None:
            cands.append(self.ipsec.get_timer())
        if self.tunnel is not None:
            cands.append(self.tunnel.get_timer())
        if self.link is not None:
            cands.append(self.link.get_timer())
        if self.v6 is not None:
            cands.append(self.v6.get_timer())
        cl = self.closing
        if cl is not None:
            cands += [cl.until, cl.tunnel.get_timer()]
            if cl.link is not None:
                cands += [cl.ppp_until, cl.link.get_timer()]
        best = None
        for d in cands:
            if d is not None and (best is None or d < best):
                best = d
        return best

    def handle_timer(self, now):
        if self.ipsec is not None:
            self.ipsec.handle_timer(now)
        t = self.tunnel
        if t is not None:
            d = t.get_timer()
            if d is not None and d <= now:
                t.handle_timer(now)
            self._pump_tunnel(now)
        link = self.link
        if link is not None:
            d = link.get_timer()
            if d is not None and d <= now:
                link.handle_timer(now)
            self._pump_link(now)
        if self.closing is not None:
            self._closing_step(now)
        if self.v6 is not None:
            self.v6.handle_timer(now)
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            if self.state == SA_SETTLE:
                self._start_l2tp(now)
                self.deadline = self.dial_started + CONNECT_TIMEOUT
            elif self.state == BACKOFF:
                if self.wanted:
                    self.dial(now)
                else:
                    self.state = IDLE
            elif self.state in (TRANSPORT, IPSEC, L2TP):
                self._fail(now, "no answer from %s within %d s" % (self.cli.server, CONNECT_TIMEOUT))

    # -- L2TP and PPP --------------------------------------------------------------------------------------

    def _pump_tunnel(self, now):
        t = self.tunnel
        if t is None:
            return
        for data in t.datagrams_to_send():
            self.q.add(A.SendL2tp(self.key, data))
        while self.tunnel is t:
            ev = t.next_event()
            if ev is None:
                break
            self._tunnel_event(ev, now)

    def _tunnel_event(self, ev, now):
        if isinstance(ev, l2ev.TunnelUp):
            self.q.log("info", "L2TP tunnel up (peer %s)", ev.peer_host_name)
        elif isinstance(ev, l2ev.SessionUp):
            if ev.session_id != self.sid:
                return
            self.enc = DataEncoder(self.tunnel.peer_tunnel_id, ev.peer_session_id, ev.sequencing)
            c = self.cli
            self.link = PppLink("client", PppConfig(
                mru=c.mtu, auth=tuple(c.auth), username=c.username, password=c.password,
                echo_interval=getattr(c, "lcp_echo_interval", 30), echo_failure=getattr(c, "lcp_echo_failure", 4),
                ipv6=bool(getattr(c, "ipv6", False)),
            ), self.rng)
            self.q.add(A.SessionOpen((self.tunnel.local_tunnel_id, self.sid), self.key, self.tunnel.peer_tunnel_id,
                                     ev.peer_session_id, ev.sequencing))
            self.link.open(now)
            self._pump_link(now)
        elif isinstance(ev, l2ev.SessionDown):
            if ev.session_id == self.sid:
                # The tunnel is still up: close it properly (StopCCN) rather than leave it to time out.
                self._fail(now, "the server closed the L2TP session (%s)" % why(ev))
        elif isinstance(ev, l2ev.TunnelDown):
            self._fail(now, "the L2TP tunnel went down (%s)" % why(ev), notify=False)

    def _pump_link(self, now):
        link = self.link
        if link is None:
            return
        for frame in link.frames_to_send():
            self.q.add(A.SendL2tp(self.key, self.enc.next_header() + frame))
        while self.link is link:
            ev = link.next_event()
            if ev is None:
                break
            self._link_event(ev, now)

    def _link_event(self, ev, now):
        if isinstance(ev, pppev.Authenticated):
            self.q.log("info", "authenticated to the server")
        elif isinstance(ev, pppev.AuthFailed):
            self.last_error = ev.reason
            self.q.log("error", "authentication failed: %s", ev.reason)
            if self.stop_on_auth_failure:
                self.wanted = False
                self.exit_code = EXIT_AUTH_FAILED
        elif isinstance(ev, pppev.IpUp):
            self._ip_up(ev, now)
        elif isinstance(ev, pppev.Ipv6Up):
            if self.v6 is not None:
                t = self.tunnel
                self.v6.ipv6_up(ev, t.local_tunnel_id if t is not None else 0, self.sid)
                self._v6_start(now)
        elif isinstance(ev, pppev.LinkDown):
            self._fail(now, "PPP link down: %s" % ev.reason)

    def _ip_up(self, ev, now):
        c = self.cli
        self.local_ip, self.peer_ip = ev.local_ip, ev.peer_ip
        self.dns = list(ev.dns or [])
        ifname = c.ifname
        q = self.q
        q.add(A.Host("addr_flush", ifname))
        q.add(A.Host("addr_add", ifname, self.local_ip, self.peer_ip))
        self.mtu = self.link.send_mtu(c.mtu)
        q.add(A.Host("link_up", ifname, self.mtu))
        if c.defaultroute:
            # Keep the path to the server outside the tunnel, then cover the whole space with two /1 routes
            # so the original default route stays for when the tunnel goes.
            server = self.server[0] if self.server else c.server
            q.add(A.Host("pin_route", server + "/32", server))
            self.installed.append(server + "/32")
            for r in ("0.0.0.0/1", "128.0.0.0/1"):
                q.add(A.Host("route_add", r, ifname, self.local_ip))
                self.installed.append(r)
        for r in c.routes:
            q.add(A.Host("route_add", r, ifname, self.local_ip))
            self.installed.append(r)
        t = self.tunnel
        q.add(A.SessionUp((t.local_tunnel_id, self.sid), self.key, self.enc.header, self.enc.sequencing,
                          self.local_ip, ifname, mtu=self.mtu))
        self.state = UP
        self.deadline = None
        self.up_since = now
        self.failures = 0
        self.counters["connects"] += 1
        self.last_error = None
        q.log("info", "connected: %s, peer %s, DNS %s, %.2f s", self.local_ip, self.peer_ip,
              " ".join(self.dns) or "none", now - self.dial_started)
        q.add(A.RunHook(self._hook_env("connect")))
        self._v6_start(now)

    def _v6_start(self, now):
        """IPv6 once both IPCP and IPv6CP are up (the data plane carries a session from SessionUp on)."""
        if self.v6 is not None and self.state == UP and self.tunnel is not None:
            self.v6.start(self.key, self.tunnel.local_tunnel_id, self.sid, self.enc, now)

    # -- losses and closing --------------------------------------------------------------------------------

    def _fail(self, now, reason, notify=True):
        """Tear the session and tunnel down after a loss, and schedule the redial."""
        was_up = self.state == UP
        over_sa = self.state in (L2TP, UP) and self.ipsec is not None and self.key is not None
        self.last_error = reason
        self.q.log("warning", "%s", reason)
        env = self._hook_env("disconnect") if was_up else None
        self._teardown(now, notify, reason)
        if env is not None:
            self.q.add(A.RunHook(env))
        if over_sa and self.ipsec.peers():
            # L2TP or PPP died over a live-looking SA: perhaps the server restarted and lost it. Ask IKE to
            # check at once (DPD) rather than redial into a dead SA for a minute.
            self.ipsec.suspect((self.key[0], self.key[1]), now)
        self.failures += 1
        if self.wanted and self.cli.redial:
            if was_up and self.failures == 1:
                delay = QUICK_REDIAL  # a session that was up: try again at once, then back off
            else:
                delay = min(self.cli.redial_delay * (2 ** min(self.failures - 1, 4)), MAX_BACKOFF)
            self.state = BACKOFF
            self.deadline = now + delay
            self.q.log("info", "redialling in %g s", delay)
        else:
            self.state = IDLE
            self.deadline = None

    def _teardown(self, now, notify_peer, reason):
        t = self.tunnel
        if self.v6 is not None:
            self.v6.down(t.local_tunnel_id if t is not None else 0, self.sid)
        if t is not None:
            self.q.add(A.SessionDown((t.local_tunnel_id, self.sid)))
            if notify_peer and t.is_active():
                cl = Closing(t, self.link, self.enc, self.key, reason, now)
                self.closing = cl
                if cl.link is not None:
                    cl.link.close(now, reason)
                else:
                    self._closing_stop_l2tp(now)
                self._closing_step(now)
        self.link = None
        self.tunnel = None
        self.enc = None
        self.up_since = None
        ifname = self.cli.ifname
        for r in reversed(self.installed):
            self.q.add(A.Host("route_del", r, None))
        if self.local_ip:
            self.q.add(A.Host("addr_flush", ifname))
        self.installed = []
        self.local_ip = self.peer_ip = None
        self.mtu = None

    def _closing_stop_l2tp(self, now):
        cl = self.closing
        cl.link = None
        if cl.tunnel.is_active():
            cl.tunnel.close(now, STOPCCN_SHUTDOWN, cl.reason[:64])

    def _closing_step(self, now):
        cl = self.closing
        if cl is None:
            return
        link = cl.link
        if link is not None:
            d = link.get_timer()
            if d is not None and d <= now:
                link.handle_timer(now)
            for frame in link.frames_to_send():
                self.q.add(A.SendL2tp(cl.key, cl.enc.next_header() + frame))
            down = False
            while True:
                ev = link.next_event()
                if ev is None:
                    break
                down = down or isinstance(ev, pppev.LinkDown)
            if down or now >= cl.ppp_until:
                self._closing_stop_l2tp(now)
        t = cl.tunnel
        d = t.get_timer()
        if d is not None and d <= now:
            t.handle_timer(now)
        for data in t.datagrams_to_send():
            self.q.add(A.SendL2tp(cl.key, data))
        while t.next_event() is not None:
            pass  # the session was already torn down on our side
        if t.is_active() and now < cl.until:
            return
        self.closing = None
        if cl.then_delete_sas and self.ipsec is not None:
            self.ipsec.delete_all(now)

    # -- hook and status -----------------------------------------------------------------------------------

    def _hook_env(self, reason):
        """The hook's variables, taken while the session still has its addresses (also for disconnect)."""
        c = self.cli
        env = {
            "reason": reason,
            "INTERFACE": self.interface,
            "TUNDEV": c.ifname,
            "INTERNAL_IP4_ADDRESS": self.local_ip or "",
            "INTERNAL_IP4_PEER": self.peer_ip or "",
            "INTERNAL_IP4_DNS": " ".join(self.dns) if c.peerdns else "",
            "INTERNAL_IP4_MTU": str(self.mtu or c.mtu),
            "ROUTES": " ".join(c.routes),
            "DEFAULTROUTE": "1" if c.defaultroute else "0",
            "VPNGATEWAY": self.server[0] if self.server else "",
        }
        if self.v6 is not None:
            env.update(self.v6.hook_env())
        return env

    def status(self, now):
        t = self.tunnel
        tunnels = []
        if t is not None:
            st = t.status()
            st["peer"] = "%s:%d" % self.server if self.server else self.cli.server
            st["sessions"] = [{
                "session_id": self.sid, "ip": self.local_ip, "peer_ip": self.peer_ip, "mtu": self.mtu, "dns": self.dns,
                "state": "up" if self.state == UP else "negotiating",
                "uptime": round(now - self.up_since, 1) if self.up_since is not None else 0,
                "ppp": self.link.status() if self.link is not None else None,
                "ipv6": self.v6.status() if self.v6 is not None else None,
            }]
            tunnels.append(st)
        ipsec = None
        if self.ipsec is not None:
            ipsec = {"sas": self.ipsec.status(), "ike": self.ipsec.ike.counters()}
            ipsec["ike"].update(self.ipsec.counters)
        return {
            "role": "client",
            "server": "%s:%d" % (self.cli.server, self.cli.port),
            "state": "up" if self.state == UP else ("idle" if self.state == IDLE else (
                "waiting" if self.state == BACKOFF else "connecting")),
            "phase": self.state,
            "wanted": self.wanted,
            "tunnels": tunnels,
            "counters": dict(self.counters),
            "ipsec": ipsec,
            "last_error": self.last_error,
        }
