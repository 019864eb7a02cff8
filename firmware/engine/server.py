"""The LNS side: accepts L2TP tunnels, runs one PPP server link per session, forwards IP via one TUN.

Sessions are keyed by our (tunnel id, session id) for data messages from the network and by the client's
assigned address for packets from the TUN. The peer of a tunnel is an opaque key (today the outer address
and port; with IPsec, the SA as well), so several clients behind one NAT are distinct tunnels.
"""

import os
import socket

from sluice.engine import datapath
from sluice.engine.datapath import DataError, PPP_IP
from sluice.engine.plain import PlainUdp
from sluice.engine.pool import IpPool, PoolExhausted
from sluice.engine.reasons import peer_str as _peer_str, why as _why
from sluice.engine.timers import TimerSlot
from sluice.hal.net import iproute
from sluice.hal.net.udp import bind_udp
from sluice.l2tp import events as l2ev
from sluice.l2tp.data import DataEncoder
from sluice.l2tp.demux import TunnelTable
from sluice.l2tp.tunnel import TunnelConfig
from sluice.ppp import events as pppev
from sluice.ppp.config import PppConfig
from sluice.ppp.link import PppLink

BUF_SIZE = 65535
CDN_ADMIN = 3  # RFC 2661 4.4.2: call disconnected for administrative reasons
CDN_NO_RESOURCES = 4  # temporary lack of facilities
STOPCCN_SHUTDOWN = 6  # "requester is being shut down"


class ServerSession:
    """One PPP session inside one L2TP tunnel."""

    __slots__ = (
        "tunnel", "peer", "tid", "sid", "peer_sid", "link", "timer", "ip", "ip_key", "username",
        "hdr", "enc", "started", "up_since", "closed",
        "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "spoofed",
    )

    def __init__(self, tunnel, peer, tid, sid, peer_sid, sequencing, started):
        self.tunnel = tunnel
        self.peer = peer
        self.tid = tid
        self.sid = sid
        self.peer_sid = peer_sid
        self.link = None
        self.timer = None
        self.ip = None
        self.ip_key = None
        self.username = None
        self.enc = DataEncoder(tunnel.peer_tunnel_id, peer_sid, sequencing)
        self.hdr = datapath.session_headers(self.enc)  # None: the peer wants Ns on every data message
        self.started = started
        self.up_since = None
        self.closed = False
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = self.spoofed = 0


class Server:
    def __init__(self, config, section, loop, log, tun=None, sock=None, rng=os.urandom, configure_host=True,
                 transport=None):
        self.config = config
        self.srv = section
        self.loop = loop
        self.log = log
        self.rng = rng
        self.configure_host = configure_host
        self.users = {}
        self._load_users(config)
        self.pool = self._make_pool(section, config)
        self.sessions = {}  # (tid, sid) -> ServerSession
        self.by_ip = {}  # 4-byte address -> ServerSession
        self.table = TunnelTable(rng, self._tunnel_config())
        self.table_timer = TimerSlot(loop, self._table_timer)
        self.tun = tun
        self.transport = transport
        if transport is None and sock is not None:
            self.transport = PlainUdp(sock, self._l2tp_in)
        self.tbuf = bytearray(BUF_SIZE)
        self.tview = memoryview(self.tbuf)
        self.counters = {
            "malformed": 0, "unknown_session": 0, "no_route": 0, "spoofed": 0, "wrong_peer": 0,
            "sessions_total": 0, "auth_failures": 0, "rejected_full": 0,
        }
        self.last_error = None
        self.stopping = False

    # -- set-up ------------------------------------------------------------------------------------------

    def _load_users(self, config):
        self.users = dict((u.username, u) for u in config.users if getattr(u, "enabled", True))

    @staticmethod
    def _make_pool(section, config):
        # Users' static addresses are never handed out dynamically, even when they sit inside the pool.
        reserved = [section.local_ip] + [u.ip for u in config.users if getattr(u, "ip", None)
                                         and getattr(u, "enabled", True)]
        return IpPool(section.pool_start, section.pool_end, reserved=reserved)

    def _tunnel_config(self):
        srv = self.srv
        return TunnelConfig(
            host_name=srv.hostname or socket.gethostname() or "sluice",
            secret=(srv.tunnel_secret or None),
            hello_interval=srv.hello_interval,
        )

    def start(self):
        srv = self.srv
        if self.tun is None:
            from sluice.hal.net.tun import TunDevice

            self.tun = TunDevice(srv.ifname)
        if self.configure_host:
            iproute.addr_flush(self.tun.name)
            iproute.addr_add(self.tun.name, srv.local_ip)
            iproute.link_up(self.tun.name, srv.mtu)
            if iproute.enable_forwarding():
                self.log.info("enabled IPv4 forwarding (net.ipv4.ip_forward=1)")
        if self.transport is None:
            self.transport = self._make_transport()
        self.transport.attach(self.loop)
        self.loop.add_reader(self.tun, self._tun_readable)
        where = ("IKE on %s:500/4500, L2TP only inside IPsec" % srv.listen if srv.ipsec
                 else "L2TP on %s:%d" % (srv.listen, srv.port))
        self.log.info("server up: %s, TUN %s %s, pool %s-%s, auth %s", where, self.tun.name, srv.local_ip,
                      srv.pool_start, srv.pool_end, ",".join(srv.auth))

    def _make_transport(self):
        srv = self.srv
        if not srv.ipsec:
            return PlainUdp(bind_udp(srv.listen, srv.port), self._l2tp_in)
        from sluice.engine.ipsec import IpsecTransport, crypto_choice, responder_config

        return IpsecTransport(self.loop, self.log, responder_config(srv, self.config), srv.listen,
                              self._l2tp_in, self._ipsec_event, self.rng, backend=crypto_choice(self.config))

    def _ipsec_event(self, kind, ike_peer, now, reason=None):
        """The IPsec layer lost every SA of a peer (its L2TP tunnels cannot be reached any more), or the
        peer's NAT mapping moved (`reason` is then the new (ip, port): the tunnels follow it)."""
        if kind == "peer-moved":
            new = reason
            for t in self.table.tunnels():
                if isinstance(t.peer, tuple) and t.peer[:2] == ike_peer:
                    t.peer = (new[0], new[1], t.peer[2])
                    for sess in self.sessions.values():
                        if sess.tunnel is t:
                            sess.peer = t.peer
            return
        if kind == "peer-down":
            for t in self.table.tunnels():
                if isinstance(t.peer, tuple) and t.peer[:2] == ike_peer:
                    for sess in [s for s in self.sessions.values() if s.tunnel is t]:
                        self._drop_session(sess, now, notify_l2tp=False)
                    # StopCCN cannot reach the peer now; the tunnel gives up after its retransmissions.
                    t.close(now, STOPCCN_SHUTDOWN, "IPsec SA lost")
            self._pump_table(now)

    # -- network side ------------------------------------------------------------------------------------

    def _l2tp_in(self, buf, start, n, peer, now):
        """One UDP/1701 payload from `peer` (plain UDP, or decrypted ESP: the transport decides)."""
        if n - start >= 2 and buf[start] & 0x80:
            self.table.datagram_received(bytes(buf[start:n]), peer, now)
            self._pump_table(now)
            return
        try:
            tid, sid, p, end = datapath.parse_data(buf, n, start)
            sess = self.sessions.get((tid, sid))
            if sess is None:
                self.counters["unknown_session"] += 1
                return
            if sess.peer != peer:
                self.counters["wrong_peer"] += 1
                return
            proto, q = datapath.ppp_protocol(buf, p, end)
            if proto == PPP_IP:
                # Only the address this session was given may appear as the source (no spoofing through us),
                # and only IPv4: the TUN takes the version from the packet itself.
                if sess.ip_key is None or end - q < 20 or buf[q] >> 4 != 4 or buf[q + 12:q + 16] != sess.ip_key:
                    sess.spoofed += 1
                    self.counters["spoofed"] += 1
                    return
                sess.rx_packets += 1
                sess.rx_bytes += end - q
                self.tun.write(memoryview(buf)[q:end])
            elif sess.link is not None:
                sess.link.frame_received(bytes(buf[p:end]), now)
                self._pump_link(sess, now)
        except DataError:
            self.counters["malformed"] += 1

    def _tun_readable(self, now):
        tview, send, by_ip = self.tview, self.transport.send, self.by_ip
        for _ in range(64):
            n = self.tun.read_into(self.tbuf)
            if n <= 0:
                return
            if n < 20 or self.tbuf[0] >> 4 != 4:
                continue
            sess = by_ip.get(bytes(tview[16:20]))
            if sess is None:
                self.counters["no_route"] += 1
                continue
            sess.tx_packets += 1
            sess.tx_bytes += n
            if sess.hdr is not None:
                send(sess.peer, (sess.hdr, tview[:n]))
            else:
                send(sess.peer, (sess.enc.next_header(), datapath.PPP_IP_HEADER, tview[:n]))

    # -- machines ----------------------------------------------------------------------------------------

    def _table_timer(self, now):
        d = self.table.get_timer()
        if d is not None and d <= now:
            self.table.handle_timer(now)
        self._pump_table(now)

    def _pump_table(self, now):
        table = self.table
        for peer, data in table.datagrams_to_send():
            self.transport.send(peer, (data,))
        while True:
            item = table.next_event()
            if item is None:
                break
            tunnel, ev = item
            self._tunnel_event(tunnel, ev, now)
        self.table_timer.arm(table.get_timer())

    def _tunnel_event(self, tunnel, ev, now):
        if isinstance(ev, l2ev.SessionUp):
            self._session_up(tunnel, ev, now)
        elif isinstance(ev, l2ev.SessionDown):
            sess = self.sessions.get((ev.tunnel_id, ev.session_id))
            if sess is not None:
                self.log.info("session %d/%d closed by peer or tunnel: %s", ev.tunnel_id, ev.session_id, _why(ev))
                self._drop_session(sess, now, notify_l2tp=False)
        elif isinstance(ev, l2ev.TunnelUp):
            self.log.info("tunnel %d up with %s (%s)", ev.tunnel_id, _peer_str(tunnel.peer), ev.peer_host_name)
        elif isinstance(ev, l2ev.TunnelDown):
            for sess in [s for s in self.sessions.values() if s.tid == ev.tunnel_id]:
                self._drop_session(sess, now, notify_l2tp=False)
            self.log.info("tunnel %d down: %s", ev.tunnel_id, _why(ev))

    def _session_up(self, tunnel, ev, now):
        if len(self.sessions) >= self.srv.max_sessions:
            self.counters["rejected_full"] += 1
            self.log.warning("refusing a session from %s: max_sessions (%d) reached", _peer_str(tunnel.peer),
                             self.srv.max_sessions)
            tunnel.close_session(ev.session_id, now, CDN_NO_RESOURCES, "server is full")
            self._pump_table(now)
            return
        sess = ServerSession(tunnel, tunnel.peer, ev.tunnel_id, ev.session_id, ev.peer_session_id,
                             ev.sequencing, now)
        self.sessions[(sess.tid, sess.sid)] = sess
        self.counters["sessions_total"] += 1
        srv = self.srv
        cfg = PppConfig(
            mru=srv.mtu,
            auth=tuple(srv.auth),
            get_password=self._password_for,
            assign_address=lambda username, s=sess: self._assign(s, username),
            local_ip=srv.local_ip,
            dns=list(srv.dns),
            echo_interval=srv.lcp_echo_interval,
            echo_failure=srv.lcp_echo_failure,
            ipv6=bool(getattr(srv, "ipv6", False)),
        )
        sess.link = PppLink("server", cfg, self.rng)
        sess.timer = TimerSlot(self.loop, lambda t, s=sess: self._link_timer(s, t))
        sess.link.open(now)
        self._pump_link(sess, now)

    def _password_for(self, username):
        u = self.users.get(username)
        return u.password if u is not None else None

    def _assign(self, sess, username):
        if sess.ip is not None:
            return sess.ip
        u = self.users.get(username)
        static = getattr(u, "ip", None) if u is not None else None
        if static:
            # A user who redials before the old session timed out gets the address back at once.
            old = self.by_ip.get(socket.inet_aton(static))
            if old is not None and old is not sess and old.username == username:
                self.log.info("user %s reconnected: closing the older session at %s", username, static)
                self._drop_session(old, self.loop_now(), notify_l2tp=True)
        try:
            sess.ip = self.pool.allocate(static, owner=username)
        except PoolExhausted as e:
            self.last_error = str(e)
            self.log.warning("no address for user %s: %s", username, e)
            return None
        return sess.ip

    def _link_timer(self, sess, now):
        if sess.closed or sess.link is None:
            return
        d = sess.link.get_timer()
        if d is not None and d <= now:
            sess.link.handle_timer(now)
        self._pump_link(sess, now)

    def _pump_link(self, sess, now):
        link = sess.link
        if link is None:
            return
        for frame in link.frames_to_send():
            self.transport.send(sess.peer, (sess.enc.next_header(), frame))
        while True:
            ev = link.next_event()
            if ev is None:
                break
            self._link_event(sess, ev, now)
            if sess.closed:
                return
        sess.timer.arm(link.get_timer())

    def _link_event(self, sess, ev, now):
        if isinstance(ev, pppev.Authenticated):
            sess.username = ev.username
            self.log.info("user %s authenticated from %s", ev.username, _peer_str(sess.peer))
        elif isinstance(ev, pppev.AuthFailed):
            self.counters["auth_failures"] += 1
            self.last_error = ev.reason
            self.log.warning("authentication failed from %s: %s", _peer_str(sess.peer), ev.reason)
        elif isinstance(ev, pppev.IpUp):
            self._ip_up(sess, ev, now)
        elif isinstance(ev, pppev.LinkDown):
            self.log.info("PPP down for %s: %s", sess.username or _peer_str(sess.peer), ev.reason)
            self._drop_session(sess, now, notify_l2tp=True)

    def _ip_up(self, sess, ev, now):
        ip = ev.peer_ip
        if not ip:
            self.log.warning("PPP for %s came up without an address for the client: closing it", sess.username)
            if sess.link is not None:
                sess.link.close(now, "no address was agreed")
                self._pump_link(sess, now)
            return
        key = socket.inet_aton(ip)
        old = self.by_ip.get(key)
        if old is not None and old is not sess:
            self.log.warning("address %s moved from an older session of %s", ip, old.username)
            self._drop_session(old, now, notify_l2tp=True)
        sess.ip = ip
        sess.ip_key = key
        self.by_ip[key] = sess
        sess.up_since = now
        if self.configure_host:
            try:
                iproute.route_add(ip + "/32", self.tun.name, src=self.srv.local_ip)
            except iproute.IpError as e:
                self.log.error("cannot route %s to %s: %s", ip, self.tun.name, e)
        self.log.info("session up: %s at %s from %s (%.2f s)", sess.username, ip, _peer_str(sess.peer),
                      now - sess.started)

    def _drop_session(self, sess, now, notify_l2tp):
        if sess.closed:
            return
        sess.closed = True
        if sess.timer is not None:
            sess.timer.cancel()
        self.sessions.pop((sess.tid, sess.sid), None)
        if sess.ip_key is not None and self.by_ip.get(sess.ip_key) is sess:
            del self.by_ip[sess.ip_key]
            if self.configure_host:
                iproute.route_del(sess.ip + "/32", self.tun.name)
        self.pool.release(sess.ip)
        sess.link = None
        if notify_l2tp:
            try:
                sess.tunnel.close_session(sess.sid, now, CDN_ADMIN, "PPP link closed")
            except Exception:
                pass  # the tunnel may already be gone
            self._pump_table(now)

    # -- control -----------------------------------------------------------------------------------------

    def reload(self, config, section):
        """SIGHUP: users and passwords take effect for new authentications; address settings need a restart."""
        self._load_users(config)
        self.pool.reserved = self._make_pool(section, config).reserved
        old = self.srv
        for opt in ("listen", "port", "ifname", "local_ip", "pool_start", "pool_end", "ipsec", "psk", "cert",
                    "key", "ca", "ike", "esp", "legacy", "dpd_delay", "dpd_timeout", "lifetime", "ike_lifetime",
                    "tunnel_secret", "hello_interval"):
            if getattr(old, opt, None) != getattr(section, opt, None):
                self.log.warning("option %s changed: restart the server for it to take effect", opt)
        for opt in ("auth", "dns", "mtu", "max_sessions", "lcp_echo_interval", "lcp_echo_failure"):
            setattr(old, opt, getattr(section, opt))
        self.config = config
        self.log.info("configuration reloaded: %d users", len(self.users))

    def disconnect_user(self, username, now):
        """`sluice disconnect --user NAME`: close every session of that user (LCP Terminate, then CDN) as an
        administrator would; returns how many were closed. The client may dial again (change the password or
        disable the user to keep it out)."""
        closed = 0
        for sess in [s for s in self.sessions.values() if s.username == username]:
            self.log.info("disconnecting user %s at %s by request", username, sess.ip or "-")
            if sess.link is not None:
                sess.link.close(now, "disconnected by the administrator")
                self._pump_link(sess, now)
            self._drop_session(sess, now, notify_l2tp=True)
            closed += 1
        return closed

    def shutdown(self, now):
        """SIGTERM: LCP Terminate and CDN for every session, StopCCN for every tunnel."""
        self.stopping = True
        for sess in list(self.sessions.values()):
            if sess.link is not None:
                sess.link.close(now, "server shutting down")
                self._pump_link(sess, now)
        for tunnel in self.table.tunnels():
            try:
                tunnel.close(now, STOPCCN_SHUTDOWN, "server shutting down")
            except Exception:
                pass
        self._pump_table(now)

    def finish(self, now):
        """After the L2TP goodbyes were acknowledged (or the grace time ran out): IPsec DELETE notifications."""
        self.transport.shutdown(now)

    def idle(self):
        return not self.sessions and not any(t.is_active() for t in self.table.tunnels())

    def status(self):
        now = self.loop_now()
        tunnels = []
        for t in self.table.tunnels():
            st = t.status()
            st["peer"] = _peer_str(t.peer)
            st["sessions"] = [self._session_status(s, now) for s in self.sessions.values() if s.tunnel is t]
            tunnels.append(st)
        return {
            "role": "server",
            "listen": ("%s:500/4500 (IPsec)" % self.srv.listen if self.srv.ipsec
                       else "%s:%d" % (self.srv.listen, self.srv.port)),
            "ifname": self.tun.name if self.tun is not None else None,
            "pool": {"start": self.srv.pool_start, "end": self.srv.pool_end, "used": self.pool.used()},
            "tunnels": tunnels,
            "sessions": len(self.sessions),
            "counters": dict(self.counters),
            "transport": self.transport.status() if self.transport is not None else None,
            "last_error": self.last_error,
        }

    def _session_status(self, s, now):
        return {
            "tunnel_id": s.tid, "session_id": s.sid, "user": s.username, "ip": s.ip,
            "state": "up" if s.up_since is not None else "negotiating",
            "uptime": round(now - s.up_since, 1) if s.up_since is not None else 0,
            "rx_packets": s.rx_packets, "rx_bytes": s.rx_bytes, "tx_packets": s.tx_packets, "tx_bytes": s.tx_bytes,
            "spoofed": s.spoofed, "ppp": s.link.status() if s.link is not None else None,
        }

    @staticmethod
    def loop_now():
        from sluice.engine.loop import monotonic

        return monotonic()

    def close(self):
        for sess in list(self.sessions.values()):
            if sess.ip_key is not None and self.configure_host:
                iproute.route_del(sess.ip + "/32", self.tun.name)
        if self.transport is not None:
            self.transport.close(self.loop)
        if self.tun is not None:
            if self.tun.fileno() >= 0:
                self.loop.remove_reader(self.tun)
            self.tun.close()

