"""The LAC side: dials one server, runs the PPP client link, and routes chosen prefixes through a TUN.

The client owns its redial policy: any loss (tunnel, session or PPP) tears the session down, reports
`disconnect` to the hook, and dials again after `redial_delay` unless the user asked it to stay down.
"""

import os
import socket
import subprocess

from sluice.engine import datapath
from sluice.engine.datapath import DataError, PPP_IP
from sluice.engine.plain import PlainUdp
from sluice.engine.reasons import why as _why
from sluice.engine.timers import TimerSlot
from sluice.hal.net import iproute
from sluice.hal.net.udp import bind_udp
from sluice.l2tp import events as l2ev
from sluice.l2tp.data import DataEncoder
from sluice.l2tp.tunnel import Tunnel, TunnelConfig, LAC
from sluice.ppp import events as pppev
from sluice.ppp.config import PppConfig
from sluice.ppp.link import PppLink

BUF_SIZE = 65535
CONNECT_TIMEOUT = 60.0
# After Quick Mode our SAs are in place at once, but a kernel-based responder (libreswan, strongSwan) installs
# its own a moment after our last message; L2TP sent before that is answered in the clear or not at all.
L2TP_AFTER_SA = 0.3
# How long a closing tunnel waits for the server to acknowledge StopCCN before the IPsec SAs are deleted.
LINGER = 3.0
STOPCCN_SHUTDOWN = 6
CDN_ADMIN = 3
EXIT_AUTH_FAILED = 3  # the daemon's exit status after a refused login (netifd hands it to teardown as ERROR)


class Client:
    def __init__(self, config, section, loop, log, hook=None, tun=None, sock=None, rng=os.urandom,
                 configure_host=True, interface=None):
        self.config = config
        self.cli = section
        self.loop = loop
        self.log = log
        self.hook = hook
        self.interface = interface or section.name
        self.rng = rng
        self.configure_host = configure_host
        self.tun = tun
        self.transport = None
        self.l2tp_peer = None  # None: the plain socket is connected; with IPsec, the server's key
        self.ipsec_up = False
        self.fixed_transport = sock is not None  # tests hand in a socket; daemons build their own per dial
        if sock is not None:
            self.transport = PlainUdp(sock, self._l2tp_in)
        self.server_addr = None
        self.tunnel = None
        self.sid = None
        self.link = None
        self.hdr = None
        self.enc = None
        self.state = "idle"
        self.wanted = True  # the user wants the tunnel up (connect/disconnect commands)
        self.local_ip = None
        self.peer_ip = None
        self.dns = []
        self.ip_key = None
        self.installed = []  # routes we added, removed on teardown
        self.dial_started = None
        self.up_since = None
        self.failures = 0
        self.last_error = None
        # Under netifd (`--netifd`) a refused login ends the daemon with EXIT_AUTH_FAILED, as pppd does: netifd then
        # runs the handler's teardown with ERROR=<exit code>, which reports AUTH_FAILED and blocks the restart.
        self.stop_on_auth_failure = False
        self.exit_code = None
        self.tunnel_timer = TimerSlot(loop, self._tunnel_timer)
        self.link_timer = TimerSlot(loop, self._link_timer)
        self.redial_timer = TimerSlot(loop, self._redial_due)
        self.lingering = None  # a tunnel we closed, kept until the server acknowledges StopCCN
        self.linger_link = None  # its PPP link, until the server acknowledges LCP Terminate
        self.linger_enc = None
        self.linger_reason = ""
        self.linger_until = self.linger_ppp_until = 0.0
        self.linger_timer = TimerSlot(loop, self._linger_step)
        self.delete_sas_after_linger = False
        self.buf = bytearray(BUF_SIZE)
        self.view = memoryview(self.buf)
        self.tbuf = bytearray(BUF_SIZE)
        self.tview = memoryview(self.tbuf)
        self.counters = {"malformed": 0, "unknown_session": 0, "rx_packets": 0, "rx_bytes": 0,
                         "tx_packets": 0, "tx_bytes": 0, "connects": 0, "spoofed": 0}

    # -- set-up ------------------------------------------------------------------------------------------

    def start(self, now):
        c = self.cli
        if self.tun is None:
            from sluice.hal.net.tun import TunDevice

            self.tun = TunDevice(c.ifname)
        if self.fixed_transport:
            self.transport.attach(self.loop)
        self.loop.add_reader(self.tun, self._tun_readable)
        self.dial(now)

    def _ensure_transport(self):
        """Resolve the server and (re)build the transport when its address changed.

        Done at every dial, not once at start: at boot the WAN may not be up yet, and a dynamic-DNS server
        name or our own WAN address may change between connections.
        """
        c = self.cli
        addr = _resolve(c.server, c.port)
        if self.transport is not None and addr == self.server_addr:
            return
        if self.transport is not None:
            self.log.info("server %s now resolves to %s", c.server, addr[0])
            self.transport.close(self.loop)
            self.transport = None
            self.ipsec_up = False
        if c.ipsec:
            from sluice.engine.ipsec import IpsecTransport, crypto_choice, initiator_config

            transport = IpsecTransport(self.loop, self.log, initiator_config(c, addr[0]), "0.0.0.0",
                                       self._l2tp_in, self._ipsec_event, self.rng,
                                       backend=crypto_choice(self.config))
        else:
            sock = bind_udp("0.0.0.0", 1701, fallback_ephemeral=True)
            try:
                sock.connect(addr)
            except OSError:
                sock.close()
                raise
            transport = PlainUdp(sock, self._l2tp_in)
        transport.attach(self.loop)
        self.transport = transport
        self.server_addr = addr

    def _ipsec_event(self, kind, ike_peer, now, reason=None):
        if kind == "sa-up":
            if not self.ipsec_up:
                self.ipsec_up = True
                self.l2tp_peer = (ike_peer[0], ike_peer[1], 1701)
                self.log.info("IPsec SA up with %s:%d", ike_peer[0], ike_peer[1])
                self.loop.call_at(now + L2TP_AFTER_SA, self.dial)
        elif kind == "peer-moved":
            self.l2tp_peer = (reason[0], reason[1], self.l2tp_peer[2] if self.l2tp_peer else 1701)
        elif kind == "peer-down":
            self.ipsec_up = False
            if self.tunnel is not None or self.state == "connecting":
                self._fail(now, "IPsec lost: %s" % (reason or "the server stopped answering"), notify=False,
                           tunnel_gone=True)
        elif kind == "failed":
            if self.state == "up":
                # A rekey that failed while the current SA still carries the session: keep going, the
                # machines retry before the SA expires (and DPD or expiry ends it if they cannot).
                self.log.warning("IPsec renegotiation failed (the session stays up): %s", reason)
                self.last_error = "IPsec renegotiation failed: %s" % reason
                return
            self._fail(now, "IPsec negotiation failed: %s" % reason, notify=False, tunnel_gone=True)

    def dial(self, now):
        if self.tunnel is not None or not self.wanted:
            return
        c = self.cli
        if self.state != "connecting":
            self.dial_started = now
        self.state = "connecting"
        if not self.fixed_transport:
            try:
                self._ensure_transport()
            except (RuntimeError, OSError) as e:
                self._fail(now, "cannot reach server %s: %s" % (c.server, getattr(e, "strerror", None) or e),
                           notify=False, tunnel_gone=True)
                return
        if c.ipsec and not self.ipsec_up:
            # L2TP waits for the IPsec SA (RFC 3193): nothing goes to UDP 1701 in the clear.
            self.log.info("negotiating IPsec with %s", c.server)
            self.transport.initiate(now)
            self.loop.call_at(now + CONNECT_TIMEOUT, self._connect_deadline)
            return
        self.log.info("connecting to %s:%d as %s", c.server, c.port, c.username)
        tid = 0
        while tid == 0:
            tid = int.from_bytes(self.rng(2), "big")
        self.tunnel = Tunnel(LAC, tid, self.rng, TunnelConfig(
            host_name=c.hostname or socket.gethostname() or "sluice",
            secret=(getattr(c, "tunnel_secret", None) or None),
            hello_interval=getattr(c, "hello_interval", 60),
        ))
        self.tunnel.start(now)
        self.sid = self.tunnel.open_session(now)
        self.loop.call_at(now + CONNECT_TIMEOUT, self._connect_deadline)
        self._pump_tunnel(now)

    def _connect_deadline(self, now):
        if self.state == "connecting" and self.dial_started is not None and now - self.dial_started >= CONNECT_TIMEOUT - 0.01:
            self._fail(now, "no answer from %s within %d s" % (self.cli.server, CONNECT_TIMEOUT))

    # -- network side ------------------------------------------------------------------------------------

    def _l2tp_in(self, buf, start, n, peer, now):
        """One UDP/1701 payload from the server (plain UDP, or decrypted ESP)."""
        tunnel = self.tunnel
        if n - start >= 2 and buf[start] & 0x80:
            lt = self.lingering
            if lt is not None and n - start >= 6:
                # Control for the tunnel we are closing (its StopCCN acknowledgement), not the new one.
                i = start + (4 if buf[start] & 0x40 else 2)
                if ((buf[i] << 8) | buf[i + 1]) == lt.local_tunnel_id:
                    lt.datagram_received(bytes(buf[start:n]), now)
                    self._linger_step(now)
                    return
            if tunnel is not None:
                tunnel.datagram_received(bytes(buf[start:n]), now)
                self._pump_tunnel(now)
            return
        try:
            tid, sid, p, end = datapath.parse_data(buf, n, start)
            lt = self.lingering
            if lt is not None and self.linger_link is not None and tid == lt.local_tunnel_id:
                self.linger_link.frame_received(bytes(buf[p:end]), now)  # its LCP Terminate-Ack
                self._linger_step(now)
                return
            if tunnel is None:
                return
            if sid != self.sid or tid != tunnel.local_tunnel_id:
                self.counters["unknown_session"] += 1
                return
            proto, q = datapath.ppp_protocol(buf, p, end)
            if proto == PPP_IP:
                if self.ip_key is None:
                    return
                self.counters["rx_packets"] += 1
                self.counters["rx_bytes"] += end - q
                self.tun.write(memoryview(buf)[q:end])
            elif self.link is not None:
                self.link.frame_received(bytes(buf[p:end]), now)
                self._pump_link(now)
        except DataError:
            self.counters["malformed"] += 1

    def _tun_readable(self, now):
        tview, send, peer = self.tview, self.transport.send, self.l2tp_peer
        counters = self.counters
        for _ in range(64):
            n = self.tun.read_into(self.tbuf)
            if n <= 0:
                return
            if self.ip_key is None or n < 20 or self.tbuf[0] >> 4 != 4:
                continue
            counters["tx_packets"] += 1
            counters["tx_bytes"] += n
            hdr = self.hdr
            if hdr is not None:
                send(peer, (hdr, tview[:n]))
            else:
                send(peer, (self.enc.next_header(), datapath.PPP_IP_HEADER, tview[:n]))

    # -- machines ----------------------------------------------------------------------------------------

    def _tunnel_timer(self, now):
        t = self.tunnel
        if t is None:
            return
        d = t.get_timer()
        if d is not None and d <= now:
            t.handle_timer(now)
        self._pump_tunnel(now)

    def _pump_tunnel(self, now):
        t = self.tunnel
        if t is None:
            return
        for data in t.datagrams_to_send():
            self.transport.send(self.l2tp_peer, (data,))
        while self.tunnel is t:
            ev = t.next_event()
            if ev is None:
                break
            self._tunnel_event(ev, now)
        if self.tunnel is t:
            self.tunnel_timer.arm(t.get_timer())

    def _tunnel_event(self, ev, now):
        if isinstance(ev, l2ev.TunnelUp):
            self.log.info("L2TP tunnel up (peer %s)", ev.peer_host_name)
        elif isinstance(ev, l2ev.SessionUp):
            if ev.session_id != self.sid:
                return
            t = self.tunnel
            self.enc = DataEncoder(t.peer_tunnel_id, ev.peer_session_id, ev.sequencing)
            self.hdr = datapath.session_headers(self.enc)
            c = self.cli
            self.link = PppLink("client", PppConfig(
                mru=c.mtu, auth=tuple(c.auth), username=c.username, password=c.password,
                echo_interval=getattr(c, "lcp_echo_interval", 30), echo_failure=getattr(c, "lcp_echo_failure", 4),
                ipv6=bool(getattr(c, "ipv6", False)),
            ), self.rng)
            self.link.open(now)
            self._pump_link(now)
        elif isinstance(ev, l2ev.SessionDown):
            if ev.session_id == self.sid:
                # The tunnel is still up: close it properly (StopCCN) rather than leave it to time out.
                self._fail(now, "the server closed the L2TP session (%s)" % _why(ev))
        elif isinstance(ev, l2ev.TunnelDown):
            self._fail(now, "the L2TP tunnel went down (%s)" % _why(ev), notify=False, tunnel_gone=True)

    def _link_timer(self, now):
        link = self.link
        if link is None:
            return
        d = link.get_timer()
        if d is not None and d <= now:
            link.handle_timer(now)
        self._pump_link(now)

    def _pump_link(self, now):
        link = self.link
        if link is None:
            return
        for frame in link.frames_to_send():
            self.transport.send(self.l2tp_peer, (self.enc.next_header(), frame))
        while self.link is link:
            ev = link.next_event()
            if ev is None:
                break
            self._link_event(ev, now)
        if self.link is link:
            self.link_timer.arm(link.get_timer())

    def _link_event(self, ev, now):
        if isinstance(ev, pppev.Authenticated):
            self.log.info("authenticated to the server")
        elif isinstance(ev, pppev.AuthFailed):
            self.last_error = ev.reason
            self.log.error("authentication failed: %s", ev.reason)
            if self.stop_on_auth_failure:
                self.wanted = False  # no redial: the same credentials would fail again
                self.exit_code = EXIT_AUTH_FAILED
        elif isinstance(ev, pppev.IpUp):
            self._ip_up(ev, now)
        elif isinstance(ev, pppev.LinkDown):
            self._fail(now, "PPP link down: %s" % ev.reason)

    def _ip_up(self, ev, now):
        c = self.cli
        self.local_ip, self.peer_ip = ev.local_ip, ev.peer_ip
        self.dns = list(ev.dns or [])
        routes = list(c.routes)
        if self.configure_host:
            try:
                iproute.addr_flush(self.tun.name)
                iproute.addr_add(self.tun.name, self.local_ip, peer=self.peer_ip)
                iproute.link_up(self.tun.name, c.mtu)
                if c.defaultroute:
                    self._install_default_route()
                for r in routes:
                    iproute.route_add(r, self.tun.name, src=self.local_ip)
                    self.installed.append(r)
            except iproute.IpError as e:
                self.log.error("cannot configure %s: %s", self.tun.name, e)
        self.ip_key = socket.inet_aton(self.local_ip)
        self.state = "up"
        self.up_since = now
        self.failures = 0
        self.counters["connects"] += 1
        self.last_error = None
        self.log.info("connected: %s, peer %s, DNS %s, %.2f s", self.local_ip, self.peer_ip,
                      " ".join(self.dns) or "none", now - self.dial_started)
        self._run_hook(self._hook_env("connect"))

    def _install_default_route(self):
        # Keep the path to the server outside the tunnel, then cover the whole space with two /1 routes
        # so the original default route stays for when the tunnel goes.
        server = self.server_addr[0] if self.server_addr else self.cli.server
        via = iproute.route_get(server)
        if via.get("via"):
            iproute.route_via(server + "/32", via["via"], via.get("dev"))
            self.installed.append(server + "/32")
        for r in ("0.0.0.0/1", "128.0.0.0/1"):
            iproute.route_add(r, self.tun.name, src=self.local_ip)
            self.installed.append(r)

    def _fail(self, now, reason, notify=True, tunnel_gone=False):
        """Tear the session and tunnel down after a loss, and schedule the redial."""
        was_up = self.state == "up"
        self.last_error = reason
        self.log.warning("%s", reason)
        env = self._hook_env("disconnect") if was_up else None
        self._teardown(now, notify_peer=notify and not tunnel_gone, reason=reason)
        self._run_hook(env)
        self.failures += 1
        if self.wanted and self.cli.redial:
            delay = min(self.cli.redial_delay * (2 ** min(self.failures - 1, 4)), 300)
            self.state = "waiting"
            self.log.info("redialling in %d s", delay)
            self.redial_timer.arm(now + delay)
        else:
            self.state = "idle"

    def _teardown(self, now, notify_peer, reason):
        t = self.tunnel
        if notify_peer and t is not None:
            # Close the way pppd and xl2tpd do: LCP Terminate first, StopCCN once it is acknowledged, and the
            # IPsec SAs only after that (bounded). Deleting the SAs first makes a kernel peer's answers (its
            # LCP Terminate-Ack, the ZLB for our StopCCN) cross the wire in the clear.
            link = self.link
            self.lingering = t
            self.linger_link = link
            self.linger_enc = self.enc
            self.linger_reason = reason
            self.linger_until = now + LINGER
            if link is not None:
                self.linger_ppp_until = now + LINGER / 2
                link.close(now, reason)
            else:
                self._linger_stop_l2tp(now)
            self.linger_timer.arm(now)
        self.link = None
        self.tunnel = None
        self.hdr = self.enc = None
        self.ip_key = None
        self.up_since = None
        if self.configure_host:
            for r in reversed(self.installed):
                iproute.route_del(r)
            if self.tun is not None and self.local_ip:
                iproute.addr_flush(self.tun.name)
        self.installed = []
        self.local_ip = self.peer_ip = None

    def _linger_stop_l2tp(self, now):
        self.linger_link = None
        try:
            self.lingering.close(now, STOPCCN_SHUTDOWN, self.linger_reason[:64])
        except Exception:  # pragma: no cover - a machine must not stop the client from closing
            pass

    def _linger_step(self, now):
        t = self.lingering
        if t is None:
            return
        link = self.linger_link
        if link is not None:
            d = link.get_timer()
            if d is not None and d <= now:
                link.handle_timer(now)
            for frame in link.frames_to_send():
                self.transport.send(self.l2tp_peer, (self.linger_enc.next_header(), frame))
            down = False
            while True:
                ev = link.next_event()
                if ev is None:
                    break
                down = down or isinstance(ev, pppev.LinkDown)
            if down or now >= self.linger_ppp_until:
                self._linger_stop_l2tp(now)
        d = t.get_timer()
        if d is not None and d <= now:
            t.handle_timer(now)
        for data in t.datagrams_to_send():
            self.transport.send(self.l2tp_peer, (data,))
        while t.next_event() is not None:
            pass  # the session was already torn down on our side
        if t.is_active() and now < self.linger_until:
            nxt = [self.linger_until, t.get_timer()]
            if self.linger_link is not None:
                nxt += [self.linger_ppp_until, self.linger_link.get_timer()]
            self.linger_timer.arm(min(x for x in nxt if x is not None))
            return
        self.lingering = self.linger_link = self.linger_enc = None
        if self.delete_sas_after_linger:
            self.delete_sas_after_linger = False
            self.transport.shutdown(now)

    def _redial_due(self, now):
        if self.state == "waiting" and self.wanted:
            self.dial(now)

    def _hook_env(self, reason):
        """The hook's environment, taken while the session still has its addresses (also for disconnect)."""
        if not self.hook:
            return None
        env = dict(os.environ)
        env.update({
            "reason": reason,
            "INTERFACE": self.interface,
            "TUNDEV": self.tun.name,
            "INTERNAL_IP4_ADDRESS": self.local_ip or "",
            "INTERNAL_IP4_PEER": self.peer_ip or "",
            "INTERNAL_IP4_DNS": " ".join(self.dns) if self.cli.peerdns else "",
            "INTERNAL_IP4_MTU": str(self.cli.mtu),
            "ROUTES": " ".join(self.cli.routes),
            "DEFAULTROUTE": "1" if self.cli.defaultroute else "0",
            "VPNGATEWAY": self.server_addr[0] if self.server_addr else "",
        })
        return env

    def _run_hook(self, env):
        if env is None:
            return
        reason = env["reason"]
        try:
            p = subprocess.run([self.hook], env=env, timeout=15, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if p.returncode != 0:
                self.log.warning("hook %s %s exited %d: %s", self.hook, reason, p.returncode,
                                 p.stdout.decode(errors="replace").strip()[-200:])
        except (OSError, subprocess.TimeoutExpired) as e:
            self.log.warning("hook %s %s failed: %s", self.hook, reason, e)

    # -- control -----------------------------------------------------------------------------------------

    def connect(self, now):
        self.wanted = True
        if self.tunnel is None:
            self.failures = 0
            self.dial(now)

    def disconnect(self, now, reason="disconnected by the user"):
        self.wanted = False
        if self.tunnel is not None:
            env = self._hook_env("disconnect") if self.state == "up" else None
            self._teardown(now, notify_peer=True, reason=reason)
            self._run_hook(env)
        if self.ipsec_up:
            self.ipsec_up = False
            if self.lingering is not None:
                self.delete_sas_after_linger = True
            else:
                self.transport.shutdown(now)
        self.state = "idle"

    def shutdown(self, now):
        self.disconnect(now, "client shutting down")

    def reload(self, config, section):
        """SIGHUP: credentials, routes and timers apply from the next connection; the session stays up."""
        changed = [o for o in section.__slots__ if getattr(self.cli, o, None) != getattr(section, o, None)]
        self.config = config
        self.cli = section
        if changed:
            self.log.info("configuration reloaded (%s changed): applies from the next connection; "
                          "`sluice disconnect` then `sluice connect` to apply it now", ", ".join(changed))
        else:
            self.log.info("configuration reloaded: nothing changed")

    def idle(self):
        return self.tunnel is None and self.lingering is None

    def finish(self, now):
        """The daemon is about to exit: whatever is still open with the server is deleted now."""
        if self.lingering is not None:
            self.linger_until = now
            self._linger_step(now)

    def status(self):
        from sluice.engine.loop import monotonic

        now = monotonic()
        t = self.tunnel
        tunnels = []
        if t is not None:
            st = t.status()
            st["peer"] = "%s:%d" % self.server_addr if self.server_addr else self.cli.server
            st["sessions"] = [{
                "session_id": self.sid, "ip": self.local_ip, "peer_ip": self.peer_ip, "dns": self.dns,
                "state": "up" if self.state == "up" else "negotiating",
                "uptime": round(now - self.up_since, 1) if self.up_since is not None else 0,
                "ppp": self.link.status() if self.link is not None else None,
            }]
            tunnels.append(st)
        return {
            "role": "client",
            "server": "%s:%d" % (self.cli.server, self.cli.port),
            "ifname": self.tun.name if self.tun is not None else None,
            "state": self.state,
            "wanted": self.wanted,
            "tunnels": tunnels,
            "counters": dict(self.counters),
            "transport": self.transport.status() if self.transport is not None else None,
            "last_error": self.last_error,
        }

    def close(self):
        if self.configure_host:
            for r in reversed(self.installed):
                iproute.route_del(r)
        self.installed = []
        if self.transport is not None:
            self.transport.close(self.loop)
        if self.tun is not None:
            if self.tun.fileno() >= 0:
                self.loop.remove_reader(self.tun)
            self.tun.close()


def _resolve(host, port):
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise RuntimeError("cannot resolve server %r: %s" % (host, e))
    return infos[0][4]

