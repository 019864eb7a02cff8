"""The LNS endpoint: every decision of an L2TP/IPsec server, with no IO.

Theory of operation. One `ServerEndpoint` composes the IPsec layer (`sluice.endpoint.ipsec`, absent for
plain L2TP), the L2TP tunnel table (`sluice.l2tp.demux.TunnelTable`), one PPP server link per session, the
address pool and the user table. Inputs:

    ike_received(data, local, peer, now)   a datagram from UDP 500/4500 (marker removed), local=(ip, port)
    l2tp_received(data, key, now)          a UDP/1701 payload the data plane did not carry itself: control
                                           messages, PPP control frames, data for a session not yet up
    esp_from(spi_in, outer, now)           authenticated ESP from a new outer port (NAT re-mapping)
    traffic_seen(peer, now), sa_expiring(spi_in, hard, now)
    handle_timer(now); commands start, shutdown, finish, reload, rekey, disconnect

Outputs are pulled: `actions()` (sluice.endpoint.actions, in order), `get_timer()`.

Sessions. A session exists from the LAC's ICRQ; it counts toward `max_sessions` only once PPP has
authenticated its user (`TunnelTable.authenticate`). Before that the tunnel table bounds it per tunnel, per
source and in total and closes it after its pre-authentication timeout (sluice.l2tp.admission), so a PSK
holder without an account cannot hold the server's capacity. The address is
decided here when the user has authenticated (a static address, or the pool), then handed to the link
(`set_peer_address`); a user who redials while the older session still holds a static address gets it and
the older session closes, after the frame that authenticated the new one has been processed.

Peers. With IPsec the L2TP peer key is (outer ip, outer port, inner UDP port), so several clients behind
one NAT are distinct tunnels; when IKE or ESP says a peer moved, `TunnelTable.move_peer` re-keys each of its
tunnels and the data plane is told with `MovePeer`.
"""

from sluice.endpoint import actions as A
from sluice.endpoint.ipsec import IpsecFront
from sluice.endpoint.pool import IpPool, PoolExhausted
from sluice.endpoint.text import peer_text, why  # noqa: F401 (also this module's names, as before)
from sluice.l2tp import events as l2ev
from sluice.l2tp.data import DataEncoder, parse_data
from sluice.l2tp.admission import DeadlineHeap, TableLimits
from sluice.l2tp.demux import TunnelTable
from sluice.l2tp.errors import L2tpError
from sluice.ppp import events as pppev
from sluice.ppp.config import PppConfig
from sluice.ppp.framing import PROTO_IP, PROTO_IPV6, PppError, protocol_at
from sluice.ppp.link import PppLink

CDN_ADMIN = 3        # RFC 2661 4.4.2: call disconnected for administrative reasons
CDN_NO_RESOURCES = 4  # temporary lack of facilities
STOPCCN_SHUTDOWN = 6  # "requester is being shut down"


def _no_counters(key):
    return (0, 0, 0, 0)


def _cause(reason):
    """RADIUS Acct-Terminate-Cause for a PPP LinkDown reason (RFC 2866 5.10)."""
    from sluice.endpoint import aaa as AAA

    r = reason or ""
    if "dead peer" in r or "did not answer" in r:
        return AAA.TERM_LOST_CARRIER
    return AAA.TERM_USER_REQUEST


_TERM_USER = 1  # RFC 2866 5.10 User Request
# RFC 5176 3: attributes that identify the NAS or the session (and Message-Authenticator, Proxy-State,
# Event-Timestamp): a CoA carrying only these and Session-Timeout is one we can apply.
_DAE_IDENTIFIERS = (1, 4, 5, 8, 30, 31, 32, 33, 44, 50, 55, 80, 87, 95)


class ServerSession:
    """One PPP session inside one L2TP tunnel."""

    __slots__ = ("tunnel", "peer", "tid", "sid", "peer_sid", "link", "enc", "ip", "username", "started",
                 "authed", "up_since", "closed", "sequencing", "close_reason", "close_cause")

    def __init__(self, tunnel, tid, sid, peer_sid, sequencing, started):
        self.tunnel = tunnel
        self.peer = tunnel.peer
        self.tid = tid
        self.sid = sid
        self.peer_sid = peer_sid
        self.sequencing = sequencing
        self.link = None
        self.enc = DataEncoder(tunnel.peer_tunnel_id, peer_sid, sequencing)
        self.ip = None
        self.username = None
        self.started = started
        self.authed = False
        self.up_since = None
        self.closed = False
        self.close_reason = None  # why we are closing it (sent to the peer), while PPP terminates
        self.close_cause = None   # the RADIUS Acct-Terminate-Cause for it


class ServerEndpoint(IpsecFront):
    def __init__(self, section, users, rng, tunnel_config, ike=None, lifetime_bytes=None, aaa=None):
        self.srv = section
        self.rng = rng
        self.q = A.Queue()
        self.users = {}
        self.set_users(users)
        self.pool = IpPool(section.pool_start, section.pool_end, reserved=self._reserved(users))
        self.table = TunnelTable(rng, tunnel_config, limits=TableLimits(max_sessions=section.max_sessions))
        self.ipsec = None
        if ike is not None:
            from sluice.endpoint.ipsec import IpsecLayer

            self.ipsec = IpsecLayer(ike, self, self.q, lifetime_bytes)
        self.aaa = aaa      # sluice.endpoint.aaa.Aaa when RADIUS is configured
        if aaa is not None:
            aaa.q = self.q
        self.counters_of = _no_counters  # (tid, sid) -> (in_octets, out_octets, in_packets, out_packets),
        # read from the data plane (its in-memory counters) for accounting and Idle-Timeout
        self.sessions = {}  # (tid, sid) -> ServerSession
        self.link_heap = DeadlineHeap()  # (deadline, (tid, sid)) of the sessions' PPP timers, lazily deleted
        self.link_sched = {}  # (tid, sid) -> the deadline last pushed for it (what makes a heap entry current)
        self.by_ip = {}     # client address (str) -> ServerSession
        self.authed = 0     # sessions past authentication (what max_sessions bounds)
        self.authed_by_user = {}    # username -> its authenticated sessions (max_sessions_per_user, O(1))
        self.counters = {"malformed": 0, "unknown_session": 0, "wrong_peer": 0, "early_data": 0,
                         "sessions_total": 0, "auth_failures": 0, "rejected_full": 0, "rejected_user_limit": 0, "dhcp_informs": 0}
        self.last_error = None
        self.stopping = False
        self.v6 = self._make_v6()  # ServerIpv6 when option ipv6 is on, else None

    # -- set-up and commands -------------------------------------------------------------------------------

    def set_users(self, users):
        self.users = dict((u.username, u) for u in users if getattr(u, "enabled", True))

    def _reserved(self, users):
        # Users' static addresses are never handed out dynamically, even when they sit inside the pool.
        return [self.srv.local_ip] + [u.ip for u in users if getattr(u, "ip", None) and getattr(u, "enabled", True)]

    def start(self, now):
        srv = self.srv
        ifname = srv.ifname
        self.q.add(A.Host("addr_flush", ifname))
        self.q.add(A.Host("addr_add", ifname, srv.local_ip, None))
        self.q.add(A.Host("link_up", ifname, srv.mtu))
        self.q.add(A.Host("forwarding"))
        if self.v6 is not None:
            self.q.add(A.Host("forwarding6", ifname))
        where = ("IKE on %s:500/4500, L2TP only inside IPsec" % srv.listen if self.ipsec is not None
                 else "L2TP on %s:%d" % (srv.listen, srv.port))
        self.q.log("info", "server up: %s, TUN %s %s, pool %s-%s, auth %s", where, ifname, srv.local_ip,
                   srv.pool_start, srv.pool_end, ",".join(srv.auth))

    def _make_v6(self):
        srv = self.srv
        if not getattr(srv, "ipv6", False) or not getattr(srv, "ip6prefix", None):
            return None
        from sluice.endpoint.ipv6 import ServerIpv6

        return ServerIpv6(srv, self.q, self.rng)

    def actions(self):
        return self.q.drain()

    def reload(self, section, users, now):
        """Users and passwords apply to new authentications; address settings need a restart."""
        self.set_users(users)
        self.pool.reserved = IpPool(section.pool_start, section.pool_end, self._reserved(users)).reserved
        old = self.srv
        for opt in ("listen", "port", "ifname", "local_ip", "pool_start", "pool_end", "ipsec", "psk", "cert",
                    "key", "ca", "ike", "esp", "legacy", "dpd_delay", "dpd_timeout", "lifetime", "ike_lifetime",
                    "tunnel_secret", "hello_interval"):
            if getattr(old, opt, None) != getattr(section, opt, None):
                self.q.log("warning", "option %s changed: restart the server for it to take effect", opt)
        for opt in ("auth", "dns", "mtu", "max_sessions", "lcp_echo_interval", "lcp_echo_failure"):
            setattr(old, opt, getattr(section, opt))
        self.table.limits.max_sessions = section.max_sessions
        self._reload_v6(old, section)
        self.q.log("info", "configuration reloaded: %d users", len(self.users))

    def _reload_v6(self, old, section):
        """dns6 applies from the next Router Advertisement; turning IPv6 on or off, or its prefix, needs a restart."""
        for opt in ("ipv6", "ip6prefix"):
            if getattr(old, opt, None) != getattr(section, opt, None):
                self.q.log("warning", "option %s changed: restart the server for it to take effect", opt)
        old.dns6 = getattr(section, "dns6", None) or []
        if self.v6 is not None:
            self.v6.set_dns(old.dns6)

    def disconnect(self, now, user=None, tunnel_id=None, session_id=None):
        """Close the sessions of `user`, or one session by its ids; returns how many were closed."""
        n = 0
        for s in list(self.sessions.values()):
            if (user is not None and s.username == user) or (tunnel_id == s.tid and session_id == s.sid):
                self._close_session(s, now, "disconnected by the administrator")
                n += 1
        return n

    def shutdown(self, now):
        """LCP Terminate and CDN for every session, StopCCN for every tunnel."""
        self.stopping = True
        for sess in list(self.sessions.values()):
            if sess.link is not None:
                sess.link.close(now, "server shutting down")
                self._pump_link(sess, now)
        for tunnel in self.table.tunnels():
            if tunnel.is_active():
                tunnel.close(now, STOPCCN_SHUTDOWN, "server shutting down")
        self._pump_table(now)

    def finish(self, now):
        """After the L2TP goodbyes: IPsec DELETE notifications for every SA."""
        if self.ipsec is not None:
            self.ipsec.delete_all(now)

    def idle(self):
        return not self.sessions and not any(t.is_active() for t in self.table.tunnels())

    # -- network input -------------------------------------------------------------------------------------
    # (IKE, ESP-driven moves, SA expiry: IpsecFront)

    def l2tp_received(self, data, key, now):
        n = len(data)
        if n >= 2 and data[0] & 0x80:
            self.table.datagram_received(data, key, now)
            self._pump_table(now)
            return
        try:
            tid, sid, _ns, p, end = parse_data(data, 0, n)
            proto, _q = protocol_at(data, p, end)
        except (L2tpError, PppError):
            self.counters["malformed"] += 1
            return
        sess = self.sessions.get((tid, sid))
        if sess is None:
            self.counters["unknown_session"] += 1
            return
        if sess.peer != key:
            self.counters["wrong_peer"] += 1
            return
        if proto == PROTO_IPV6 and self.v6 is not None and (sess.tid, sess.sid) in self.v6.links:
            self.v6.frame_in(sess, data, _q, end, now)  # link-local / multicast: RS, echo to our link-local
            return
        if proto == PROTO_IP or proto == PROTO_IPV6:
            self.counters["early_data"] += 1  # before IPCP is up the data plane has no route for it
            return
        if sess.link is not None:
            sess.link.frame_received(data[p:end], now)
            self._pump_link(sess, now)

    # -- RADIUS and DHCP -----------------------------------------------------------------------------------

    def radius_received(self, which, data, src, now):
        if self.aaa is not None:
            self.aaa.datagram_received(which, data, src, now)
            self._aaa_events(now)

    def _aaa_events(self, now):
        self._verdicts(now)
        for key, cause, reason in self.aaa.expired():
            s = self.sessions.get(key)
            if s is not None:
                self.q.log("info", "closing the session of %s: %s", s.username, reason)
                self._close_session(s, now, reason, tell_peer=True, cause=cause)
        for ref, kind, pkt, keys in self.aaa.dae_requests():
            self._dae(ref, kind, pkt, keys, now)

    def _verdicts(self, now):
        if self.aaa is None:
            return
        for key, v in self.aaa.verdicts():
            s = self.sessions.get(key)
            if s is None or s.link is None:
                continue
            if v.ok and v.address:
                holder = self.by_ip.get(v.address)
                if holder is not None and holder.username != (v.question.username if v.question else None):
                    v.ok = False
                    v.reason = "Framed-IP-Address %s from RADIUS is in use by another session" % v.address
            if not v.ok:
                self.q.log("warning", "RADIUS login from %s refused: %s", peer_text(s.peer), v.reason)
            s.link.auth_result(now, **v.auth_result_kwargs())
            self._pump_link(s, now)

    def _dae(self, ref, kind, pkt, keys, now):
        """RFC 5176: Disconnect closes the named sessions at once; CoA may change Session-Timeout only."""
        from sluice.endpoint import aaa as AAA

        if not keys:
            self.aaa.answer(ref, False, AAA.ERR_SESSION_NOT_FOUND, now)
            return
        if kind == "disconnect":
            for key in keys:
                s = self.sessions.get(key)
                if s is not None:
                    self.q.log("info", "RADIUS Disconnect-Request: closing the session of %s", s.username)
                    self._close_session(s, now, "disconnected by the RADIUS server", tell_peer=True,
                                        cause=AAA.TERM_ADMIN_RESET)
            self.aaa.answer(ref, True, None, now)
            return
        timeout = pkt.get_int(AAA.SESSION_TIMEOUT)
        others = [t for t, _v in pkt.attrs if t != AAA.SESSION_TIMEOUT and t not in _DAE_IDENTIFIERS]
        if timeout is None or others:
            self.aaa.answer(ref, False, AAA.ERR_UNSUPPORTED_ATTRIBUTE, now)
            return
        secs = timeout
        for key in keys:
            self.aaa.sessions.set_session_timeout(key, secs, now)
        self.aaa.answer(ref, True, None, now)

    def dhcp_inform(self, key, packet, now):
        """A session's DHCPINFORM (Windows and macOS ask for routes this way): answer with the routes and DNS
        of this server (options 121/249, 6, 15), into the same session; never forwarded."""
        s = self.sessions.get(key)
        srv = self.srv
        if s is None or s.ip is None:
            return
        from sluice.dhcp.inform import answer_inform

        reply = answer_inform(packet, srv.local_ip, list(getattr(srv, "client_routes", ()) or ()), list(srv.dns),
                              getattr(srv, "domain", None), client_ip=s.ip)
        if reply is not None:
            self.counters["dhcp_informs"] += 1
            self.q.add(A.SendToSession(key, reply))

    # -- IPsec layer callbacks -----------------------------------------------------------------------------

    def ipsec_sa_up(self, peer, now, round_trip=None):
        pass  # a client dials L2TP through it; nothing to do until it does

    def ipsec_failed(self, peer, reason, now):
        self.last_error = reason

    def ipsec_peer_moved(self, old, new, now):
        for t in self.table.tunnels():
            if isinstance(t.peer, tuple) and len(t.peer) == 3 and t.peer[:2] == old:
                self.table.move_peer(t, (new[0], new[1], t.peer[2]))
                for sess in self.sessions.values():
                    if sess.tunnel is t:
                        sess.peer = t.peer

    def ipsec_peer_down(self, peer, reason, now):
        """Every SA of the peer is gone: its tunnels cannot be reached any more."""
        for t in self.table.tunnels():
            if isinstance(t.peer, tuple) and t.peer[:2] == peer:
                for sess in [s for s in self.sessions.values() if s.tunnel is t]:
                    self._drop_session(sess, now, notify_l2tp=False)
                if t.is_active():
                    # StopCCN cannot reach the peer now; the tunnel gives up after its retransmissions.
                    t.close(now, STOPCCN_SHUTDOWN, "IPsec SA lost")
        self._pump_table(now)

    # -- timers --------------------------------------------------------------------------------------------

    def get_timer(self):
        best = self.table.get_timer()
        if self.aaa is not None:
            d = self.aaa.get_timer()
            if d is not None and (best is None or d < best):
                best = d
        if self.ipsec is not None:
            d = self.ipsec.get_timer()
            if d is not None and (best is None or d < best):
                best = d
        heap, sched = self.link_heap, self.link_sched
        while True:
            top = heap.first()
            if top is None:
                break
            if sched.get(top[1]) != top[0]:
                heap.pop()  # stale: the session is gone or its deadline moved
                continue
            if best is None or top[0] < best:
                best = top[0]
            break
        d = self.v6.get_timer() if self.v6 is not None else None
        if d is not None and (best is None or d < best):
            best = d
        return best

    def handle_timer(self, now):
        if self.ipsec is not None:
            self.ipsec.handle_timer(now)
        if self.aaa is not None:
            self.aaa.handle_timer(now, self.counters_of)
            self._aaa_events(now)
        if self.v6 is not None:
            self.v6.handle_timer(now)
        d = self.table.get_timer()
        if d is not None and d <= now:
            self.table.handle_timer(now)
        self._pump_table(now)
        heap, sched = self.link_heap, self.link_sched
        for _ in range(len(heap)):  # each pass pops one entry: bounded by the heap's size on entry
            top = heap.first()
            if top is None or top[0] > now:
                break
            heap.pop()
            d, key = top
            if sched.get(key) != d:
                continue
            del sched[key]
            s = self.sessions.get(key)
            if s is None or s.closed or s.link is None:
                continue
            s.link.handle_timer(now)
            self._pump_link(s, now)  # re-arms it

    # -- L2TP ----------------------------------------------------------------------------------------------

    def _pump_table(self, now):
        table = self.table
        for key, data in table.datagrams_to_send():
            self.q.add(A.SendL2tp(key, data))
        while True:
            item = table.next_event()
            if item is None:
                break
            tunnel, ev = item
            self._tunnel_event(tunnel, ev, now)

    def _tunnel_event(self, tunnel, ev, now):
        if isinstance(ev, l2ev.SessionUp):
            self._session_up(tunnel, ev, now)
        elif isinstance(ev, l2ev.SessionDown):
            sess = self.sessions.get((ev.tunnel_id, ev.session_id))
            if sess is not None:
                self.q.log("info", "session %d/%d closed by peer or tunnel: %s", ev.tunnel_id, ev.session_id,
                           why(ev))
                self._drop_session(sess, now, notify_l2tp=False)
        elif isinstance(ev, l2ev.TunnelUp):
            self.q.log("info", "tunnel %d up with %s (%s)", ev.tunnel_id, peer_text(tunnel.peer),
                       ev.peer_host_name)
        elif isinstance(ev, l2ev.TunnelDown):
            for sess in [s for s in self.sessions.values() if s.tid == ev.tunnel_id]:
                self._drop_session(sess, now, notify_l2tp=False)
            self.q.log("info", "tunnel %d down: %s", ev.tunnel_id, why(ev))

    def _refuse(self, tunnel, ev, now, counter, reason):
        self.counters[counter] += 1
        self.q.log("warning", "refusing a session from %s: %s", peer_text(tunnel.peer), reason)
        tunnel.close_session(ev.session_id, now, CDN_NO_RESOURCES, "server is full")
        self._pump_table(now)

    def _session_up(self, tunnel, ev, now):
        if self.stopping:
            tunnel.close_session(ev.session_id, now, CDN_ADMIN, "server shutting down")
            self._pump_table(now)
            return
        # Sessions waiting to authenticate are bounded (per tunnel, per source, in total) and timed out by the
        # tunnel table (sluice.l2tp.admission); here only the authenticated ones count (max_sessions).
        if self.authed >= self.srv.max_sessions:
            self._refuse(tunnel, ev, now, "rejected_full", "max_sessions (%d) reached" % self.srv.max_sessions)
            return
        sess = ServerSession(tunnel, ev.tunnel_id, ev.session_id, ev.peer_session_id, ev.sequencing, now)
        self.sessions[(sess.tid, sess.sid)] = sess
        self.counters["sessions_total"] += 1
        srv = self.srv
        cfg = PppConfig(
            mru=srv.mtu, auth=tuple(srv.auth), get_password=self._password_for, assign_address=None,
            local_ip=srv.local_ip, dns=list(srv.dns), echo_interval=srv.lcp_echo_interval,
            echo_failure=srv.lcp_echo_failure, ipv6=self.v6 is not None and self.v6.available(),
            external_auth=self.aaa is not None and self.aaa.logins is not None,
        )
        sess.link = PppLink("server", cfg, self.rng)
        self.q.add(A.SessionOpen((sess.tid, sess.sid), sess.peer, tunnel.peer_tunnel_id, sess.peer_sid,
                                 sess.sequencing))
        sess.link.open(now)
        self._pump_link(sess, now)

    def _password_for(self, username):
        u = self.users.get(username)
        return u.password if u is not None else None

    # -- PPP -----------------------------------------------------------------------------------------------

    def _pump_link(self, sess, now):
        link = sess.link
        if link is None:
            return
        for frame in link.frames_to_send():
            self.q.add(A.SendL2tp(sess.peer, sess.enc.next_header() + frame))
        while not sess.closed:
            ev = link.next_event()
            if ev is None:
                break
            self._link_event(sess, ev, now)
        self._rearm(sess)

    def _rearm(self, sess):
        """Put a session's PPP deadline on the heap after its link was touched (every touch ends in _pump_link):
        the loop's next deadline then costs O(log n) for n sessions, not a scan of them all per datagram."""
        key = (sess.tid, sess.sid)
        d = sess.link.get_timer() if sess.link is not None and not sess.closed else None
        sched = self.link_sched
        if d == sched.get(key):
            return
        if d is None:
            sched.pop(key, None)
            return
        sched[key] = d
        heap = self.link_heap
        heap.push(d, key)
        if len(heap) > 2 * len(sched) + 64:  # stale entries pile up with lazy deletion: shed them, O(n) per n pushes
            heap.rebuild([(v, k) for k, v in sched.items()])

    def _link_event(self, sess, ev, now):
        if isinstance(ev, pppev.VerifyCredentials):
            # A user not in the local table: RADIUS decides; the verdict comes back through _verdicts.
            peer = sess.peer[0] if isinstance(sess.peer, tuple) else None
            self.aaa.ask((sess.tid, sess.sid), ev, now, sess.sid, peer)
            self._verdicts(now)
        elif isinstance(ev, pppev.Authenticated):
            self._authenticated(sess, ev.username, now)
        elif isinstance(ev, pppev.AuthFailed):
            self.counters["auth_failures"] += 1
            self.last_error = ev.reason
            self.q.log("warning", "authentication failed from %s: %s", peer_text(sess.peer), ev.reason)
        elif isinstance(ev, pppev.IpUp):
            self._ip_up(sess, ev, now)
        elif isinstance(ev, pppev.Ipv6Up):
            if self.v6 is not None and sess.authed:
                self.v6.ipv6_up(sess, ev, now)
        elif isinstance(ev, pppev.LinkDown):
            self.q.log("info", "PPP down for %s: %s", sess.username or peer_text(sess.peer), ev.reason)
            self._drop_session(sess, now, notify_l2tp=True, cause=sess.close_cause or _cause(ev.reason))

    def _authenticated(self, sess, username, now):
        if sess.authed:
            # LCP renegotiated and the peer authenticated again (RFC 1661 allows it): the same user keeps its
            # place and address; another name on the same session would inherit them, so it is refused.
            if username != sess.username:
                self.counters["auth_failures"] += 1
                self.q.log("warning", "session of %s from %s re-authenticated as %s: closing it", sess.username,
                           peer_text(sess.peer), username)
                self._close_session(sess, now, "user changed on re-authentication", tell_peer=True)
                return
            sess.link.set_peer_address(sess.ip)
            return
        sess.username = username
        self.q.log("info", "user %s authenticated from %s", username, peer_text(sess.peer))
        u = self.users.get(username)
        if u is None and "\\" in username:
            u = self.users.get(username[username.rfind("\\") + 1:])  # MS-CHAPv2 sends DOMAIN\user
        static = getattr(u, "ip", None) if u is not None else None
        v = self.aaa.verdict_of.get((sess.tid, sess.sid)) if self.aaa is not None else None
        if v is not None and v.address:
            static = v.address  # Framed-IP-Address from RADIUS
        if static:
            # A user who redials before the old session timed out gets the address back at once.
            old = self.by_ip.get(static)
            if old is None:
                old = [s for s in self.sessions.values() if s is not sess and s.ip == static]
                old = old[0] if old else None
            if old is not None and old is not sess and old.username == username:
                self.q.log("info", "user %s reconnected: closing the older session at %s", username, static)
                self._drop_session(old, now, notify_l2tp=True)
        limit = getattr(self.srv, "max_sessions_per_user", 0) or 0
        if limit:
            mine = self.authed_by_user.get(username, 0)
            if mine >= limit:
                self.counters["rejected_user_limit"] += 1
                why_ = "user %s already has %d session%s (max_sessions_per_user %d)" % (
                    username, mine, "" if mine == 1 else "s", limit)
                self.q.log("warning", "refusing %s from %s: %s", username, peer_text(sess.peer), why_)
                self._close_session(sess, now, why_, tell_peer=True)
                return
        if self.authed >= self.srv.max_sessions or not self.table.authenticate(sess.tunnel, sess.sid, now):
            self.counters["rejected_full"] += 1
            self.q.log("warning", "refusing user %s from %s: max_sessions (%d) reached", username,
                       peer_text(sess.peer), self.srv.max_sessions)
            self._close_session(sess, now, "server is full", tell_peer=True)
            return
        sess.authed = True
        self.authed += 1
        self.authed_by_user[username] = self.authed_by_user.get(username, 0) + 1
        try:
            sess.ip = self.pool.allocate(static, owner=username)
        except PoolExhausted as e:
            self.last_error = str(e)
            self.q.log("warning", "no address for user %s: %s", username, e)
            sess.link.set_peer_address(None)
            return
        sess.link.set_peer_address(sess.ip)

    def _ip_up(self, sess, ev, now):
        ip = ev.peer_ip
        if not ip or ip != sess.ip:
            self.q.log("warning", "PPP for %s came up without its address: closing it", sess.username)
            self._close_session(sess, now, "no address was agreed")
            return
        old = self.by_ip.get(ip)
        if old is sess and sess.up_since is not None:
            return      # IPCP renegotiated with the same address: the session, its route and accounting stay
        if old is not None and old is not sess:
            self.q.log("warning", "address %s moved from an older session of %s", ip, old.username)
            self._drop_session(old, now, notify_l2tp=True)
        self.by_ip[ip] = sess
        sess.up_since = now
        srv = self.srv
        u = self.users.get(sess.username)
        kbit = (getattr(u, "rate_kbit", 0) if u is not None else 0) or getattr(srv, "rate_kbit", 0) or 0
        self.q.add(A.SessionUp((sess.tid, sess.sid), sess.peer, sess.enc.header, sess.sequencing, ip, srv.ifname,
                               kbit * 125 if kbit else None, sess.link.send_mtu(srv.mtu)))
        self.q.add(A.Host("route_add", ip + "/32", srv.ifname, srv.local_ip))
        if self.aaa is not None:
            self.aaa.started((sess.tid, sess.sid), sess.username, ip, now, self.counters_of((sess.tid, sess.sid)))
        self.q.log("info", "session up: %s at %s from %s (%.2f s)", sess.username, ip, peer_text(sess.peer),
                   now - sess.started)
        if self.v6 is not None:
            self.v6.ip_up(sess, now)

    def _close_session(self, sess, now, reason, tell_peer=False, cause=None):
        if sess.link is not None and tell_peer:
            # The words go in LCP Terminate-Request (RFC 1661 5.5: pppd and Sluice show them) and, once PPP is
            # down (its LinkDown, bounded by the link's own timer), in the CDN's result message.
            sess.close_reason = reason
            sess.close_cause = cause
            sess.link.close(now, reason, reason.encode()[:200])
            self._pump_link(sess, now)
            return
        if sess.link is not None:
            sess.link.close(now, reason)
            self._pump_link(sess, now)
        if not sess.closed:
            self._drop_session(sess, now, notify_l2tp=True, cause=cause, message=reason)

    def _drop_session(self, sess, now, notify_l2tp, cause=None, message=None):
        if sess.closed:
            return
        sess.closed = True
        key = (sess.tid, sess.sid)
        self.sessions.pop(key, None)
        self.link_sched.pop(key, None)
        if self.aaa is not None:
            self.aaa.forget(key)
            if sess.up_since is not None:
                self.aaa.stopped(key, now, self.counters_of(key), cause or _TERM_USER)
        if self.v6 is not None:
            self.v6.down(sess)
        if sess.authed:
            self.authed -= 1
            n = self.authed_by_user.get(sess.username, 0) - 1
            if n > 0:
                self.authed_by_user[sess.username] = n
            else:
                self.authed_by_user.pop(sess.username, None)
        if sess.ip is not None:
            if self.by_ip.get(sess.ip) is sess:
                del self.by_ip[sess.ip]
                self.q.add(A.SessionDown((sess.tid, sess.sid)))
                self.q.add(A.Host("route_del", sess.ip + "/32", self.srv.ifname))
            self.pool.release(sess.ip)
        sess.link = None
        if notify_l2tp and sess.tunnel.is_active():
            msg = message or sess.close_reason or "PPP link closed"
            sess.tunnel.close_session(sess.sid, now, CDN_ADMIN, msg[:120])
            self._pump_table(now)

    # -- status --------------------------------------------------------------------------------------------

    def status(self, now):
        tunnels = []
        by_tunnel = {}
        for s in self.sessions.values():
            by_tunnel.setdefault(s.tid, []).append(s)
        for t in self.table.tunnels():
            st = t.status()
            st["peer"] = peer_text(t.peer)
            st["sessions"] = [self._session_status(s, now) for s in by_tunnel.get(t.local_tunnel_id, ())]
            tunnels.append(st)
        srv = self.srv
        return {
            "role": "server",
            "listen": ("%s:500/4500 (IPsec)" % srv.listen if self.ipsec is not None else "%s:%d" % (srv.listen,
                                                                                                 srv.port)),
            "tunnels": tunnels,
            "sessions": len(self.sessions),
            "authenticated": self.authed,
            "pool": {"start": self.srv.pool_start, "end": self.srv.pool_end, "used": self.pool.used()},
            "counters": dict(self.counters),
            "l2tp": {"counters": dict(self.table.stats), "admission": self.table.admission()},
            "ipsec": self._ipsec_status(),
            "radius": self.aaa.status() if self.aaa is not None else None,
            "ipv6": self.v6.summary() if self.v6 is not None else None,
            "last_error": self.last_error,
        }

    def _ipsec_status(self):
        if self.ipsec is None:
            return None
        st = {"sas": self.ipsec.status(), "ike": self.ipsec.ike.counters()}
        st["ike"].update(self.ipsec.counters)
        return st

    def _session_status(self, s, now):
        return {
            "tunnel_id": s.tid, "session_id": s.sid, "user": s.username, "ip": s.ip, "peer": peer_text(s.peer),
            "state": "up" if s.up_since is not None else ("authenticated" if s.authed else "negotiating"),
            "since": s.started, "uptime": round(now - s.up_since, 1) if s.up_since is not None else 0,
            "ppp": s.link.status() if s.link is not None else None,
            "ipv6": self.v6.status(s) if self.v6 is not None else None,
        }
