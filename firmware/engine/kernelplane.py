"""The kernel data plane: ESP in XFRM, L2TP data and PPP data in the kernel, Sluice on the control plane.

The same interface as `userplane.UserPlane` (the runner cannot tell them apart), built on
`sluice.hal.net.kernel_path.KernelPath`:

- IKE stays in user space: UDP 500 and 4500, with UDP_ENCAP_ESPINUDP on 4500 so that the kernel takes the
  ESP-in-UDP packets there and hands up only IKE (non-ESP marker). There is no raw ESP socket: esp4 takes
  plain ESP itself.
- `InstallSa` becomes an inbound + outbound XFRM SA; the first SA of a peer address also installs the two
  UDP/1701 transport policies (one reqid per peer address, from Sluice's range, so leftovers are found after
  a crash). A rekey is a new SA with the same reqid: the kernel sends on the newest, accepts on both;
  `RemoveSa` deletes the old pair; the peer's last `RemoveSa` takes its policies. When the peer renews the
  pair, `InstallSaInbound` (our Quick Mode message 2) puts the new inbound SA in first: the peer sends on the
  new pair as soon as it has message 2; `InstallSa` (message 3) then updates it and adds the outbound. `OutboundSa` only records
  the choice (the kernel's is the newest SA, which is the endpoint's too).
- L2TP: one UDP socket per L2TP peer, bound to :1701 and connected to the peer (the server also keeps an
  unconnected :1701 listener for the first SCCRQ); L2TP control messages go out and come in on it, inside
  the XFRM policy. `SessionOpen` (the L2TP session is established, PPP starts) creates the kernel tunnel on
  first use, the PPPoL2TP session and its ppp unit: client `ifname`, server `<ifname>-<session id>`.
  PPP frames the endpoint sends (a data message in `send_l2tp`) go to the channel fd (LCP/auth) or the unit
  fd (NCPs) without the L2TP header and FF 03; frames read there are wrapped back into an L2TP data message
  for `on_l2tp`. IP data never reaches Sluice.
- The ppp unit stays down until IPCP opens: the client's `Host` steps name it (it is called `ifname`); the
  server's steps name its TUN device, so the plane addresses each session's unit itself at `SessionUp` and
  `host_step` points the session's /32 route at the unit.
- Liveness: every POLL seconds the inbound SAs' kernel counters are read: bytes that grew are traffic
  (`on_traffic`, which DPD and idle detection use). Soft/hard EXPIRE events from the kernel (byte limits
  from `InstallSa`) become `on_expiring`; MAPPING events (a NAT moved the peer's ESP port) `on_esp_from`.
- Nothing left behind: `KernelPath.start()` removes SAs and policies of Sluice's reqid range at start (after
  a crash); `close()` removes everything installed; kernel tunnels, sessions and units die with their fds.

Not carried in this mode (the runner keeps the user-space plane for them): IPv6 in the tunnel, the server's
DHCPINFORM answers. A NAT-T port move of an established SA is followed with UPDSA (new encap port); a move to
another address cannot be (the address is part of the SA's identity): counted as `moves_not_followed`, the
next rekey carries the new address.
"""

import os
import socket

from sluice.engine.loop import monotonic

IKE_PORT = 500
NATT_PORT = 4500
L2TP_PORT = 1701
POLL = 5.0                 # seconds between reads of the kernel's SA counters (DPD, idle)
EARLY_INBOUND_S = 60       # hard lifetime of an inbound SA taken at Quick Mode message 2 until its InstallSa
LOCAL_FOR_MAX = 1024
SOL_UDP = 17
UDP_ENCAP = 100
UDP_ENCAP_ESPINUDP = 2
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_PKTINFO_SPACE = socket.CMSG_SPACE(12)
_FF03 = b"\xff\x03"
PROTO_CHANNEL = 0xC000     # protocols at or above this go to the channel fd (LCP, PAP, CHAP, EAP)


class KernelSockets:
    """Real sockets for the kernel plane (tests hand in fakes with the same methods)."""

    def udp(self, address, port, client):
        from sluice.hal.net.udp import bind_udp

        return bind_udp(address, port, fallback_ephemeral=client)

    def l2tp_udp(self, address, port, peer=None, mark=None):
        """UDP :1701 with SO_REUSEADDR (the listener and every tunnel's connected socket share the port)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if mark is not None:
                s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_MARK", 36), mark)
            s.bind((address, port))
            if peer is not None:
                s.connect(peer)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        return s

    def set_espinudp(self, sock):
        sock.setsockopt(SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)

    def source_address(self, peer_ip):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((peer_ip, IKE_PORT))
            return s.getsockname()[0]
        finally:
            s.close()

    def netdev_stats(self, ifname):
        """(rx_bytes, tx_bytes, rx_packets, tx_packets) of a network device, zeros when it is gone."""
        out = []
        for name in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets"):
            try:
                with open("/sys/class/net/%s/statistics/%s" % (ifname, name)) as f:
                    out.append(int(f.read()))
            except (OSError, ValueError):
                out.append(0)
        return tuple(out)


class _Sa:
    __slots__ = ("peer_ip", "local", "spi_in", "spi_out", "ike_peer", "rx_bytes", "child", "reqid", "limits")

    def __init__(self, peer_ip, local, spi_in, spi_out, ike_peer, child, reqid, limits):
        self.peer_ip = peer_ip
        self.local = local
        self.spi_in = spi_in
        self.spi_out = spi_out
        self.ike_peer = ike_peer
        self.rx_bytes = 0
        self.child = child      # the ChildSaUp (keys: as the user-space plane's transforms hold them), for a NAT move
        self.reqid = reqid
        self.limits = limits


class _Peer:
    """One peer address: its reqid, policies and how many SA pairs it has."""

    __slots__ = ("reqid", "policy_key", "sas", "local")

    def __init__(self, reqid, local):
        self.reqid = reqid
        self.policy_key = None
        self.sas = 0
        self.local = local


class _Session:
    __slots__ = ("key", "peer", "ptid", "psid", "ks", "ifname", "address", "header")

    def __init__(self, key, peer, ptid, psid, ks, ifname):
        self.key = key          # (tid, sid)
        self.peer = peer        # the L2TP peer key
        self.ptid = ptid
        self.psid = psid
        self.ks = ks            # KernelSession
        self.ifname = ifname
        self.address = None
        tid, sid = key
        self.header = bytes((0, 2, tid >> 8, tid & 255, sid >> 8, sid & 255)) + _FF03


class KernelPlane:
    datapath = "kernel"

    def __init__(self, loop, up, role, rng, ipsec, listen="0.0.0.0", sockets=None, kernel=None, host=None,
                 ifname=None, local_ip=None, mtu=1400, tun=None, log=None, port=L2TP_PORT):
        self.loop = loop
        self.up = up
        self.role = role
        self.rng = rng
        self.ipsec = ipsec
        self.listen = listen
        self.port = port
        self.sockets = sockets or KernelSockets()
        self.host = host              # the HostRunner (server: each session's unit is addressed here)
        self.ifname = ifname
        self.local_ip = local_ip      # server: the inner address on every unit
        self.mtu = mtu
        self.tun = tun                # server: the TUN device kept as the anchor of local_ip (no data on it)
        self.log = log
        self.backend = None
        if kernel is None:
            from sluice.hal.net.kernel_path import KernelPath

            kernel = KernelPath()
        self.kp = kernel
        self.removed_at_start = 0
        self.s500 = self.s4500 = self.listener = self.udp = None
        self.raw = None
        self.single = None
        self.dhcp = False
        self.tsocks = {}        # L2TP peer key -> connected UDP socket
        self.sas = {}           # spi_in -> _Sa
        self.out_spi = {}       # spi_out -> spi_in
        self.early_in = {}      # spi_in -> (local, peer ip): inbound SAs taken ahead of their InstallSa
        self.peers = {}         # peer ip -> _Peer
        self.ike_peer = {}      # peer ip -> IKE peer (ip, port)
        self.sessions = {}      # (tid, sid) -> _Session
        self.by_peer_ids = {}   # (peer key, ptid, psid) -> _Session
        self.unit_of = {}       # "a.b.c.d/32" -> unit ifname (server routes)
        self.local_for = {}
        self.next_reqid = 1
        self.polling = False
        self.closed = False
        self.counters = {"esp_in": 0, "esp_out": 0, "unknown_spi": 0, "esp_errors": 0, "not_l2tp": 0,
                         "no_sa": 0, "malformed": 0, "unknown_session": 0, "wrong_peer": 0, "no_route": 0,
                         "spoofed": 0, "send_errors": 0, "expired": 0, "not_ipsec": 0, "kernel_errors": 0,
                         "moves_not_followed": 0, "ppp_in": 0, "ppp_out": 0}

    # -- start / stop --------------------------------------------------------------------------------------

    def start(self):
        """Remove leftovers of an earlier run (our reqid range), subscribe to EXPIRE/MAPPING."""
        self.removed_at_start = self.kp.start()
        ev = self.kp.events
        if ev is not None:
            self.loop.add_reader(ev.fileno() if ev.fileno() >= 0 else ev, self._on_events)
        return self.removed_at_start

    def open_ipsec(self):
        client = self.role == "client"
        f = self.sockets
        self.s500 = f.udp(self.listen, IKE_PORT, client)
        self.s4500 = f.udp(self.listen, NATT_PORT, client)
        f.set_espinudp(self.s4500)   # the kernel takes ESP-in-UDP here; IKE (non-ESP marker) comes up
        if self.listen in ("0.0.0.0", "") and hasattr(self.s500, "setsockopt"):
            self.s500.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        self.loop.add_reader(self.s500, self._on_500)
        self.loop.add_reader(self.s4500, self._on_4500)
        if self.role == "server":
            self.listener = f.l2tp_udp(self.listen, self.port)
            self.loop.add_reader(self.listener, self._on_listener)
        self._arm_poll()

    def open_plain(self, sock):
        """Plain L2TP: the server's listener (SO_REUSEADDR), or the client's socket connected to the server."""
        if self.role == "server":
            self.listener = sock
            self.loop.add_reader(sock, self._on_listener)
        else:
            self.udp = sock
            peer = sock.getpeername()
            key = (peer[0], peer[1])
            self.tsocks[key] = sock
            self.loop.add_reader(sock, lambda now, k=key, s=sock: self._on_tunnel_sock(k, s, now))

    def attach_tun(self):
        pass  # no IP data through Sluice in this mode

    def close_sockets(self):
        for s in list(self.sessions.values()):
            self._close_session(s)
        for tid in list(self.kp.tunnels):
            self._kernel(self.kp.close_tunnel, tid)
        for s in list(self.tsocks.values()):
            self.loop.remove_reader(s)
            s.close()
        self.tsocks.clear()
        for s in (self.s500, self.s4500, self.listener):
            if s is not None:
                self.loop.remove_reader(s)
                s.close()
        self.s500 = self.s4500 = self.listener = self.udp = None
        for rec in list(self.sas.values()):
            self.remove_sa(rec.spi_in, rec.spi_out)
        for spi, (local, peer_ip) in list(self.early_in.items()):
            self._kernel(self.kp.xfrm.delete_sa, local, spi, None, peer_ip)
        self.early_in.clear()
        for p in self.peers.values():
            if p.policy_key is not None:
                self._kernel(self.kp.remove_policies, p.policy_key)
        self.peers.clear()

    def close(self):
        self.close_sockets()
        ev = self.kp.events
        if ev is not None:
            self.loop.remove_reader(ev.fileno() if ev.fileno() >= 0 else ev)
        self.kp.stop()
        self.closed = True
        if self.tun is not None:
            self.tun.close()

    def _kernel(self, fn, *args):
        try:
            fn(*args)
            return True
        except OSError as e:
            self.counters["kernel_errors"] += 1
            self._log("kernel refused %s: %s" % (getattr(fn, "__name__", "?"), e))
            return False

    def _log(self, text):
        if self.log is not None:
            self.log.warning("%s", text)

    # -- actions from the endpoint -------------------------------------------------------------------------

    def send_ike(self, port, peer, data):
        s = self.s4500 if port == NATT_PORT else self.s500
        if s is None:
            return
        try:
            s.sendto(data, peer)
        except OSError:
            self.counters["send_errors"] += 1

    def send_l2tp(self, key, data):
        """A control message (out of the peer's tunnel socket) or a PPP control frame (to the kernel's fds)."""
        if len(data) >= 6 and not data[0] & 0x80:
            sess = self._frame_session(key, data)
            if sess is not None:
                self._ppp_out(sess, data)
                return
        sock = self._tunnel_sock(key)
        if sock is None:
            self.counters["no_sa"] += 1
            return
        try:
            sock.send(data)
        except OSError:
            self.counters["send_errors"] += 1

    def _frame_session(self, key, data):
        from sluice.l2tp.data import parse_data
        from sluice.l2tp.errors import L2tpError

        try:
            tid, sid, _ns, p, end = parse_data(data, 0, len(data))
        except L2tpError:
            return None
        return self.by_peer_ids.get((key, tid, sid))

    def _ppp_out(self, sess, data):
        from sluice.l2tp.data import parse_data

        _tid, _sid, _ns, p, end = parse_data(data, 0, len(data))
        if data[p:p + 2] == _FF03:
            p += 2
        if end - p < 2:
            self.counters["malformed"] += 1
            return
        proto = (data[p] << 8) | data[p + 1]
        unit = sess.ks.unit
        fd = unit.chan_fd if proto >= PROTO_CHANNEL else unit.unit_fd
        try:
            os.write(fd, bytes(data[p:end]))
            self.counters["ppp_out"] += 1
        except OSError:
            self.counters["send_errors"] += 1

    def _udp_peer(self, key):
        """Where the L2TP datagrams of peer key go: inside IPsec (ip, port, inner port) -> (ip, inner port)."""
        return (key[0], key[2]) if len(key) == 3 else (key[0], key[1])

    def _tunnel_sock(self, key):
        s = self.tsocks.get(key)
        if s is not None:
            return s
        if self.role == "client" and self.udp is not None:
            return self.udp
        if self.ipsec and key[0] not in self.peers:
            return None     # no SA, no policy: nothing may leave in the clear
        try:
            s = self.sockets.l2tp_udp("0.0.0.0" if self.listen in ("", "0.0.0.0") else self.listen,
                                      self.port if self.role == "server" else L2TP_PORT, self._udp_peer(key))
        except OSError as e:
            self.counters["send_errors"] += 1
            self._log("cannot open the L2TP socket to %s: %s" % (key[0], e))
            return None
        self.tsocks[key] = s
        self.loop.add_reader(s, lambda now, k=key, s=s: self._on_tunnel_sock(k, s, now))
        return s

    def _local(self, peer_ip):
        if self.listen not in ("", "0.0.0.0"):
            return self.listen
        got = self.local_for.get(peer_ip)
        if got is None:
            got = self.sockets.source_address(peer_ip)
        return got

    def install_sa(self, a):
        from sluice.hal.net import xfrm

        e = a.child
        peer_ip = e.peer[0]
        p = self.peers.get(peer_ip)
        if p is None:
            p = _Peer(xfrm.REQID_BASE | (self.next_reqid & 0xFFFFFF), self._local(peer_ip))
            self.next_reqid += 1
        limits = None
        if a.soft_bytes or a.hard_bytes:
            limits = xfrm.Limits(soft_bytes=a.soft_bytes or None, hard_bytes=a.hard_bytes or None)
        early = self.early_in.pop(e.spi_in, None)
        try:
            if early is not None:   # the inbound SA is in since message 2: UPDSA gives it the pair's lifetime
                self.kp.install_child(p.local, e, p.reqid, None, limits, inbound_present=True)
            else:
                self.kp.install_child(p.local, e, p.reqid, None, limits)
        except (OSError, ValueError) as err:
            return "cannot install ESP SA %s with %s in the kernel: %s" % (e.transform, peer_ip, err)
        if p.policy_key is None:
            try:
                p.policy_key = self.kp.install_policies(p.local, peer_ip, p.reqid, None,
                                                        0 if self.role == "server" else L2TP_PORT)
            except OSError as err:
                self.kp.remove_child(p.local, peer_ip, e.spi_in, e.spi_out)
                return "cannot install the L2TP policies for %s in the kernel: %s" % (peer_ip, err)
        self.peers[peer_ip] = p
        p.sas += 1
        self.ike_peer[peer_ip] = e.peer
        self.sas[e.spi_in] = _Sa(peer_ip, p.local, e.spi_in, e.spi_out, e.peer, e if e.encap else None, p.reqid,
                                 limits)
        self.out_spi[e.spi_out] = e.spi_in
        return None

    def install_sa_inbound(self, a):
        """The inbound SA of a pair being renewed, at our Quick Mode message 2 (ChildSaInbound): the peer
        installs the pair on that message and sends on it at once, before our InstallSa (message 3) could put
        it in; without it those packets are dropped (XfrmInNoStates). Under the peer's reqid, with a short hard
        lifetime in case message 3 never comes; InstallSa updates it."""
        from sluice.hal.net import xfrm

        e = a.child
        p = self.peers.get(e.peer[0])
        if p is None or e.spi_in in self.sas or e.spi_in in self.early_in or len(self.early_in) >= 64:
            return
        spec = xfrm.SaSpec(e.peer[0], p.local, e.spi_in, e.transform, e.enc_in, e.auth_in, e.salt_in,
                           reqid=p.reqid, encap=(e.peer[1], NATT_PORT) if e.encap else None,
                           limits=xfrm.Limits(hard_seconds=EARLY_INBOUND_S))
        if self._kernel(self.kp.xfrm.add_sa, spec):
            self.early_in[e.spi_in] = (p.local, e.peer[0])

    def outbound_sa(self, peer, spi_out, encap):
        pass  # the kernel sends on the newest SA of the peer's reqid, as the endpoint chooses

    def remove_sa(self, spi_in, spi_out):
        rec = self.sas.pop(spi_in, None)
        self.out_spi.pop(spi_out, None)
        if rec is None:
            return
        self._kernel(self.kp.remove_child, rec.local, rec.peer_ip, spi_in, spi_out)
        p = self.peers.get(rec.peer_ip)
        if p is None:
            return
        p.sas -= 1
        if p.sas <= 0:
            # The peer's last SA: its sessions, tunnel sockets and policies go (nothing could pass any more).
            for s in [s for s in self.sessions.values() if s.peer[0] == rec.peer_ip]:
                self._close_session(s)
            for key in [k for k in self.tsocks if k[0] == rec.peer_ip]:
                self._close_tunnel_sock(key)
            if p.policy_key is not None:
                self._kernel(self.kp.remove_policies, p.policy_key)
            del self.peers[rec.peer_ip]
            self.ike_peer.pop(rec.peer_ip, None)

    def move_peer(self, old, new):
        """The peer's NAT mapping moved (same address, new port: RFC 3948): its ESP-in-UDP SAs follow (UPDSA
        with the new encap port; the kernel keeps keys and algorithms, takes the encap)."""
        if old[0] == new[0]:
            self.ike_peer[new[0]] = new
        for r in self.sas.values():
            if r.ike_peer != old:
                continue
            r.ike_peer = new
            if r.child is None or old[0] != new[0] or not self._follow(r, new[1]):
                self.counters["moves_not_followed"] += 1
                self._log("the peer %s moved to %s:%d: the kernel SA 0x%08x keeps the old port until the next rekey"
                          % (old[0], new[0], new[1], r.spi_in))
        for k in [k for k in self.tsocks if len(k) == 3 and (k[0], k[1]) == old]:
            self.tsocks[(new[0], new[1], k[2])] = self.tsocks.pop(k)
        for s in self.sessions.values():
            if len(s.peer) == 3 and (s.peer[0], s.peer[1]) == old:
                self._rekey_session(s, (new[0], new[1], s.peer[2]))

    def _follow(self, r, port):
        from sluice.hal.net import xfrm

        e = r.child
        inbound = xfrm.SaSpec(r.peer_ip, r.local, e.spi_in, e.transform, e.enc_in, e.auth_in, e.salt_in,
                              reqid=r.reqid, encap=(port, NATT_PORT), limits=r.limits)
        outbound = xfrm.SaSpec(r.local, r.peer_ip, e.spi_out, e.transform, e.enc_out, e.auth_out, e.salt_out,
                               reqid=r.reqid, encap=(NATT_PORT, port), limits=r.limits)
        return self._kernel(self.kp.xfrm.update_sa, inbound) and self._kernel(self.kp.xfrm.update_sa, outbound)

    def _rekey_session(self, s, peer):
        self.by_peer_ids.pop((s.peer, s.ptid, s.psid), None)
        s.peer = peer
        self.by_peer_ids[(peer, s.ptid, s.psid)] = s

    def session_open(self, a):
        """The L2TP session is established: kernel tunnel (first use), PPPoL2TP session, ppp unit."""
        old = self.sessions.get(a.key)
        if old is not None:
            self._close_session(old)
        sock = self._tunnel_sock(a.peer)
        if sock is None:
            self.counters["no_sa"] += 1
            return
        tid, sid = a.key
        if self.role == "client":
            ifname = self.ifname
        else:
            tail = "-%d" % sid
            ifname = (self.ifname or "sls")[:15 - len(tail)] + tail
        try:
            ks = self.kp.open_session(sock, tid, a.peer_tunnel_id, sid, a.peer_session_id, self._udp_peer(a.peer),
                                      ifname, self.mtu, self.role == "server")
        except (OSError, ValueError) as e:
            self.counters["kernel_errors"] += 1
            self._log("cannot open the kernel L2TP session %d/%d: %s" % (tid, sid, e))
            return
        s = _Session(a.key, a.peer, a.peer_tunnel_id, a.peer_session_id, ks, ks.unit.ifname)
        self.sessions[a.key] = s
        self.by_peer_ids[(a.peer, a.peer_tunnel_id, a.peer_session_id)] = s
        for fd in (ks.unit.chan_fd, ks.unit.unit_fd):
            self.loop.add_reader(fd, lambda now, s=s, fd=fd: self._on_ppp(s, fd, now))

    def _close_session(self, s):
        if self.sessions.get(s.key) is s:
            del self.sessions[s.key]
        if self.by_peer_ids.get((s.peer, s.ptid, s.psid)) is s:
            del self.by_peer_ids[(s.peer, s.ptid, s.psid)]
        for fd in (s.ks.unit.chan_fd, s.ks.unit.unit_fd):
            if fd is not None and fd >= 0:
                self.loop.remove_reader(fd)
        tid = s.ks.tunnel_id
        self.kp.close_session(s.ks)
        if self.kp.tunnels.get(tid) == 0:
            # The tunnel's last session: the kernel tunnel goes, the UDP socket stays for L2TP control.
            self._kernel(self.kp.close_tunnel, tid)

    def _close_tunnel_sock(self, key):
        s = self.tsocks.pop(key, None)
        if s is not None:
            self.loop.remove_reader(s)
            s.close()
            if s is self.udp:
                self.udp = None

    def session_up(self, a):
        s = self.sessions.get(a.key)
        if s is None:
            self.counters["unknown_session"] += 1
            return
        s.address = a.address
        if self.role == "server":
            self.unit_of[a.address + "/32"] = s.ifname
            if self.host is not None:
                self.host.host("addr_add", (s.ifname, self.local_ip, None))
                self.host.host("link_up", (s.ifname, self.mtu))
        else:
            self.single = s

    def session_down(self, key):
        s = self.sessions.get(key)
        if s is None:
            return None
        if self.single is s:
            self.single = None
        self._close_session(s)
        return s

    def session6_up(self, a):
        pass  # IPv6 is not carried in kernel mode (the runner keeps the user-space plane when ipv6 is on)

    def session6_down(self, key):
        pass

    def send_to_session(self, key, packet):
        self.counters["no_route"] += 1  # DHCPINFORM answers: user-space mode only

    def host_step(self, op, args):
        """The server's Host steps name its TUN; a session's route goes to its ppp unit instead."""
        if self.role == "server" and op in ("route_add", "route_del") and args and args[1] == self.ifname:
            unit = self.unit_of.get(args[0])
            if unit is not None:
                if op == "route_del":
                    del self.unit_of[args[0]]
                return op, (args[0], unit) + tuple(args[2:])
        return op, args

    # -- receive -------------------------------------------------------------------------------------------

    def _on_500(self, now):
        local_for = self.local_for
        for _ in range(16):
            try:
                data, anc, _flags, peer = self.s500.recvmsg(65535, _PKTINFO_SPACE)
            except OSError:
                return
            local = self.listen
            for level, _kind, cdata in anc:
                if level == socket.IPPROTO_IP and len(cdata) >= 12:
                    local = socket.inet_ntoa(cdata[8:12])
                    if local_for.get(peer[0]) != local:
                        if len(local_for) >= LOCAL_FOR_MAX:
                            del local_for[next(iter(local_for))]
                        local_for[peer[0]] = local
            self.up.on_ike(data, (local, IKE_PORT), peer, now)

    def _on_4500(self, now):
        for _ in range(16):
            try:
                data, peer = self.s4500.recvfrom(65535)
            except OSError:
                return
            if len(data) >= 8 and data[:4] == b"\0\0\0\0":
                local = self.local_for.get(peer[0], self.listen)
                self.up.on_ike(data[4:], (local, NATT_PORT), peer, now)
            # anything else: a keepalive, or ESP the kernel did not take (no SA): nothing for us

    def _key_from(self, addr):
        if not self.ipsec:
            return (addr[0], addr[1])
        ike = self.ike_peer.get(addr[0])
        if ike is None:
            return None
        return (ike[0], ike[1], addr[1])

    def _on_listener(self, now):
        for _ in range(16):
            try:
                data, addr = self.listener.recvfrom(65535)
            except OSError:
                return
            key = self._key_from(addr)
            if key is None:
                # L2TP from an address without IPsec SAs: refused as the user-space path refuses it.
                self.counters["not_ipsec"] += 1
                continue
            self.up.on_l2tp(data, key, now)

    def _on_tunnel_sock(self, key, sock, now):
        for _ in range(16):
            try:
                data = sock.recv(65535)
            except OSError:
                return
            # Control messages, and data for sessions not (yet) in the kernel: the endpoint's.
            self.up.on_l2tp(data, key, now)

    def _on_ppp(self, s, fd, now):
        for _ in range(8):
            try:
                frame = os.read(fd, 4096)
            except OSError:
                return
            if not frame:
                return
            self.counters["ppp_in"] += 1
            if self.sessions.get(s.key) is not s:
                return
            self.up.on_l2tp(s.header + frame, s.peer, now)

    def _on_events(self, now):
        from sluice.hal.net import xfrm

        ev = self.kp.events
        if ev is None:
            return
        try:
            events = ev.read()
        except OSError:
            return
        for e in events:
            if isinstance(e, xfrm.SaExpired):
                spi = e.sa.spi
                if e.hard and self.early_in.pop(spi, None) is not None:
                    continue  # an early inbound SA whose Quick Mode never completed
                spi_in = spi if spi in self.sas else self.out_spi.get(spi)
                if spi_in is None:
                    continue
                if e.hard:
                    self.counters["expired"] += 1
                self.up.on_expiring(spi_in, e.hard, now)
            elif isinstance(e, xfrm.SaMapping):
                if e.spi in self.sas:
                    self.up.on_esp_from(e.spi, (e.new_src, e.new_sport), now)

    # -- liveness ------------------------------------------------------------------------------------------

    def _arm_poll(self):
        if not self.polling:
            self.polling = True
            self.loop.call_at(monotonic() + POLL, self._poll)

    def _poll(self, now):
        if self.closed or (self.s500 is None and self.listener is None and not self.tsocks):
            self.polling = False
            return
        self.poll_counters(now)
        self.loop.call_at(now + POLL, self._poll)

    def poll_counters(self, now):
        """Inbound bytes that grew since the last read are traffic from that peer (DPD, idle)."""
        seen = set()
        for rec in list(self.sas.values()):
            c = self.kp.counters(rec.local, rec.peer_ip, rec.spi_in, rec.spi_out).get("in")
            if c is None:
                continue
            if c.bytes > rec.rx_bytes:
                rec.rx_bytes = c.bytes
                if rec.ike_peer not in seen:
                    seen.add(rec.ike_peer)
                    self.up.on_traffic(rec.ike_peer, now)

    # -- status --------------------------------------------------------------------------------------------

    def counters_of(self, key):
        """(in_octets, out_octets, in_packets, out_packets) of a session, "in" being from the user."""
        s = self.sessions.get(key)
        if s is None:
            return (0, 0, 0, 0)
        rx_b, tx_b, rx_p, tx_p = self.sockets.netdev_stats(s.ifname)
        return (rx_b, tx_b, rx_p, tx_p)

    def session_counters(self, key):
        s = self.sessions.get(key)
        if s is None:
            return None
        rx_b, tx_b, rx_p, tx_p = self.sockets.netdev_stats(s.ifname)
        return {"rx_packets": rx_p, "rx_bytes": rx_b, "tx_packets": tx_p, "tx_bytes": tx_b, "spoofed": 0,
                "rx6_packets": 0, "rx6_bytes": 0, "tx6_packets": 0, "tx6_bytes": 0, "unit": s.ifname}

    def sa_counters(self):
        out = {}
        for rec in self.sas.values():
            c = self.kp.counters(rec.local, rec.peer_ip, rec.spi_in, rec.spi_out)
            i, o = c.get("in"), c.get("out")
            out[rec.spi_in] = {"packets_in": i.packets if i else 0, "bytes_in": i.bytes if i else 0}
            out[rec.spi_out] = {"packets_out": o.packets if o else 0, "bytes_out": o.bytes if o else 0}
        return out
