"""The kernel data plane: ESP in XFRM, L2TP data and PPP data in the kernel, Sluice on the control plane.

The same interface as `userplane.UserPlane` (the runner cannot tell them apart), built on
`sluice.hal.net.kernel_path.KernelPath`:

- IKE stays in user space: UDP 500 and 4500, with UDP_ENCAP_ESPINUDP on 4500 so that the kernel takes the
  ESP-in-UDP packets there and hands up only IKE (non-ESP marker). There is no raw ESP socket: esp4 takes
  plain ESP itself.
- `InstallSa` becomes an inbound + outbound XFRM SA; the first SA of a client (IKE peer: address and NAT-T
  port) also installs its outbound UDP/1701 policy, the first of an address the inbound one (reqids from
  Sluice's range, so leftovers are found after a crash: one per address, for the inbound SAs and policy and the
  first client's outbound ones; one more per further client behind the same NAT). The server marks each
  client's outbound SA and policy, and its tunnel socket (SO_MARK), with the client's outbound reqid. A rekey is
  a new SA with the same reqids: the kernel sends on the newest, accepts on both; `RemoveSa` deletes the old
  pair; a client's last `RemoveSa` takes its outbound policy, the address's last client the inbound one.
  When the peer renews the pair, `InstallSaInbound` (our Quick Mode message 2) puts the new inbound SA in
  first: the peer sends on the new pair as soon as it has message 2; `InstallSa` (message 3) then updates it
  and adds the outbound. `OutboundSa` only records the choice (the kernel's is the newest SA, which is the
  endpoint's too).
- Several clients at one address (behind one NAT): their decrypted L2TP comes from one address and inner port,
  on the listener or any of their tunnel sockets; `_attribute` tells them apart by our tunnel ID, an SCCRQ
  (no tunnel ID yet) by the mark its inbound SA set: the server gives the inbound SAs of every client at an
  address but the first a set-mark, the client's outbound mark (its reqid), which the kernel writes into
  skb->mark of what they decrypt, and reads it with SO_RCVMARK (Linux 5.19+; 0: the first client); without
  it, a guess from the SAs' counters. Their data
  is the kernel's from Linux 6.11 on; on older kernels only the first client at an address has kernel
  sessions, the later ones' L2TP/PPP data runs in user space over their kernel SAs (`usersessions`,
  `shared_address_user`).
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

- Server, what IP data must reach Sluice: a session's DHCPINFORM (UDP to port 67) and its ICMPv6 Router
  Solicitations. Each unit gets one AF_PACKET socket with a BPF filter that passes only those
  (`sluice.hal.net.unit_packet`), opened when the session needs it (SessionUp with DHCPINFORM answers on,
  Session6Up) and closed with the session; what it reads goes to the endpoint as the user-space plane hands it
  (`on_dhcp`, or an L2TP data message with the IPv6 packet), and the answers (DHCPACK by `send_to_session`,
  RAs and link-local echo replies by `send_l2tp`) go out of the unit as IP packets on that socket.
- Server IPv6 (Session6Up): fe80::<our IPv6CP id>/64 on the unit (as pppd does), and `host_step` points the
  session's /64 route at the unit as it does the /32.
- Source checks (server): what the user-space plane checks per packet is one nftables table here (`start`,
  `host.nft_argvs`): a strict reverse-path `fib` rule on every unit, so a session sends only from addresses
  routed back to its unit (its /32, its /64, link-local), IPv4 and IPv6 alike; removed at `finish`.

A client's unit gets the same socket with a filter for Router Advertisements only (its IPv6 is applied by the
client endpoint, as on the user-space path; the unit's accept_ra is 0). A NAT-T
port move of an established SA is followed with UPDSA (new encap port); a move to another address cannot be
(the address is part of the SA's identity): counted as `moves_not_followed`, the next rekey carries the new
address.
"""

import os
import sys

from sluice.engine.loop import monotonic
from sluice.hal.net.sockets import socket

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
_SO_MARK = getattr(socket, "SO_MARK", 36)          # also the type of the SO_RCVMARK control message
_SO_RCVMARK = getattr(socket, "SO_RCVMARK", 75)    # Linux 5.19
_MARK_SPACE = socket.CMSG_SPACE(4)
_FF03 = b"\xff\x03"
PROTO_CHANNEL = 0xC000     # protocols at or above this go to the channel fd (LCP, PAP, CHAP, EAP)
_BYTEORDER = sys.byteorder  # the SO_MARK control message is a native u32


def unit_name(base, sid):
    """A server session's ppp unit: `<ifname>-<session id>`, the name cut to fit IFNAMSIZ (15 characters)."""
    tail = "-%d" % sid
    return base[:15 - len(tail)] + tail


def unit_pattern(base):
    """An nft iifname wildcard that every unit_name(base, sid) matches (session ids up to 65535 keep 9 chars of
    the name)."""
    return base + "-*" if len(base) <= 9 else base[:9] + "*"


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
                s.setsockopt(socket.SOL_SOCKET, _SO_MARK, mark)
            s.bind((address, port))
            if peer is not None:
                s.connect(peer)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        return s

    def mark_control(self, mark):
        """The SO_MARK control message for sendmsg (Linux 4.19+, CAP_NET_ADMIN): the datagram's mark picks the
        marked policy and SA, without a socket of its own. Built once per user-space session."""
        return [(socket.SOL_SOCKET, _SO_MARK, mark.to_bytes(4, _BYTEORDER))]

    def send_with(self, sock, parts, addr, anc):
        sock.sendmsg(parts, anc, 0, addr)

    def set_espinudp(self, sock):
        sock.setsockopt(SOL_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)

    def receive_marks(self, sock):
        """SO_RCVMARK: recvmsg hands up each datagram's skb->mark. False on a kernel without it (before 5.19)."""
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVMARK, 1)
            return True
        except OSError:
            return False

    def source_address(self, peer_ip):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.connect((peer_ip, IKE_PORT))
            return s.getsockname()[0]
        finally:
            s.close()

    def unit_packet(self, ifname, client=False):
        """The unit's AF_PACKET socket that sees only DHCP to port 67 and Router Solicitations (a server's), or
        only Router Advertisements (a client's)."""
        from sluice.hal.net import unit_packet as up

        return up.open_unit_socket(ifname, up.CLIENT_FILTER if client else up.FILTER)

    def no_router_advertisements(self, ifname):
        """net.ipv6.conf.<unit>.accept_ra = 0 (a unit without IPv6 has no such file: nothing to do)."""
        try:
            with open("/proc/sys/net/ipv6/conf/%s/accept_ra" % ifname, "w") as f:
                f.write("0")
        except OSError:
            pass

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

    def netdev6_stats(self, ifname):
        """(rx_bytes, tx_bytes, rx_packets, tx_packets) of a device's IPv6 packets: the kernel's per-interface
        IPv6 MIB (/proc/net/dev_snmp6, forwarded packets included; the device counters above do not tell the
        families apart), zeros when the device has no IPv6 or is gone."""
        out = [0, 0, 0, 0]
        try:
            with open("/proc/net/dev_snmp6/%s" % ifname) as f:
                for line in f:
                    parts = line.split()
                    i = _SNMP6.get(parts[0]) if len(parts) == 2 else None
                    if i is not None:
                        out[i] = int(parts[1])
        except (OSError, ValueError):
            return (0, 0, 0, 0)
        return tuple(out)


_SNMP6 = {"Ip6InOctets": 0, "Ip6OutOctets": 1, "Ip6InReceives": 2, "Ip6OutRequests": 3}


class _Sa:
    __slots__ = ("peer_ip", "local", "spi_in", "spi_out", "ike_peer", "rx_bytes", "child", "reqid", "limits", "owner")

    def __init__(self, peer_ip, local, spi_in, spi_out, ike_peer, child, reqid, limits, owner=None):
        self.peer_ip = peer_ip
        self.local = local
        self.spi_in = spi_in
        self.spi_out = spi_out
        self.ike_peer = ike_peer
        self.rx_bytes = 0
        self.child = child      # the ChildSaUp (keys: as the user-space plane's transforms hold them), for a NAT move
        self.reqid = reqid
        self.limits = limits
        self.owner = owner      # the _Peer


class _Peer:
    """One IKE peer (address, NAT-T port): its outbound reqid and mark, outbound policy, how many SA pairs."""

    __slots__ = ("reqid", "mark", "policy_key", "sas", "local", "ike", "addr", "user")

    def __init__(self, reqid, mark, local, ike, addr, user=False):
        self.reqid = reqid
        self.mark = mark        # (value, mask) on the outbound SA, policy and the tunnel sockets; None: unmarked
        self.policy_key = None
        self.sas = 0
        self.local = local
        self.ike = ike          # (ip, port) as IKE sees it (follows NAT port moves)
        self.addr = addr        # the _Addr it shares with other clients behind the same NAT
        self.user = user        # its L2TP/PPP data runs in user space (usersessions): the kernel cannot carry it


def _in_mark(p):
    """The set-mark of a client's inbound SAs: its outbound mark, which the kernel then writes into skb->mark of
    what they decrypt (`_attribute` reads it). Not for the first client at an address (reqid the address's):
    unmarked is its name, so a server whose clients have addresses of their own marks nothing it forwards."""
    if p is None or p.mark is None or p.reqid == p.addr.reqid:
        return None
    return p.mark


class _Addr:
    """One peer address: the inbound policy and reqid shared by every client behind it."""

    __slots__ = ("reqid", "policy_key", "clients", "local")

    def __init__(self, reqid, local):
        self.reqid = reqid      # the inbound SAs' and policy's reqid (the first client's outbound one, too)
        self.policy_key = None
        self.clients = []       # _Peer, oldest first
        self.local = local


class _Session:
    __slots__ = ("key", "peer", "ptid", "psid", "ks", "ifname", "address", "header", "pkt", "net6", "ll6")

    def __init__(self, key, peer, ptid, psid, ks, ifname):
        self.key = key          # (tid, sid)
        self.peer = peer        # the L2TP peer key
        self.ptid = ptid
        self.psid = psid
        self.ks = ks            # KernelSession
        self.ifname = ifname
        self.address = None
        self.pkt = None         # server: the unit's filtered AF_PACKET socket (DHCPINFORM, RS), once needed
        self.net6 = None        # server: the session's /64 ("2001:db8::/64") once Session6Up; client: "client"
        self.ll6 = None         # server: our link-local on the unit ("fe80::1/64")
        tid, sid = key
        self.header = bytes((0, 2, tid >> 8, tid & 255, sid >> 8, sid & 255)) + _FF03


class KernelPlane:
    datapath = "kernel"

    def __init__(self, loop, up, role, rng, ipsec, listen="0.0.0.0", sockets=None, kernel=None, host=None,
                 ifname=None, local_ip=None, mtu=1400, tun=None, log=None, port=L2TP_PORT, multi_nat=None):
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
        self.peers = {}         # IKE peer (ip, port) -> _Peer
        self.addrs = {}         # peer ip -> _Addr
        self.ike_peer = {}      # peer ip -> IKE peer (ip, port) of its first client
        self.key_of_tid = {}    # our tunnel id -> L2TP peer key (several clients at one address)
        self.sccrq_key = {}     # (ip, inner port, peer's tunnel id) -> L2TP peer key of an SCCRQ we attributed
        # Several clients at one address: a kernel without the 6.11 l2tp_core change (None: probe) carries the
        # data of one; the others get user-space sessions (self.user, counted as shared_address_user).
        self.multi_nat = multi_nat
        self.user = None        # UserSessions: the sessions of clients whose L2TP data this kernel cannot carry
        self.user_peers = 0     # _Peers with user=True (the send path checks for them only when there are any)
        self.early_in = {}      # spi_in -> (local, peer ip): inbound SAs taken ahead of their InstallSa
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
                         "moves_not_followed": 0, "ppp_in": 0, "ppp_out": 0, "shared_address_clients": 0,
                         "shared_address_user": 0, "misattributed": 0}
        self.counters["unit_in"] = 0    # packets the units' filtered sockets passed up (DHCPINFORM, RS)
        self.counters["attributed_by_mark"] = 0   # SCCRQs of clients at a shared address told apart exactly
        self.rcvmark = False    # server: our L2TP sockets hand up the mark of the SA that decrypted a datagram

    # -- start / stop --------------------------------------------------------------------------------------

    def start(self):
        """Remove leftovers of an earlier run (our reqid range), subscribe to EXPIRE/MAPPING; a server also
        installs its source check (nftables, `host.nft_argvs`: what the user-space plane checks per packet)."""
        self.removed_at_start = self.kp.start()
        ev = self.kp.events
        if ev is not None:
            self.loop.add_reader(ev.fileno() if ev.fileno() >= 0 else ev, self._on_events)
        if self.role == "server" and self.host is not None:
            self.host.host("source_guard", (self._guard_table(), self._unit_pattern()))
        return self.removed_at_start

    def finish(self):
        """The daemon is stopping (its host steps still run): the source check goes with it."""
        if self.role == "server" and self.host is not None:
            self.host.host("source_guard_off", (self._guard_table(),))

    def _guard_table(self):
        from sluice.engine.host import guard_table

        return guard_table(self.ifname or "sls")

    def _unit_pattern(self):
        return unit_pattern(self.ifname or "sls")

    def esp_supported(self, names):
        """What of `names` (ESP transforms) the kernel can install: only those are negotiated (ikeconf)."""
        return self.kp.esp_supported(names)

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
            receive_marks = getattr(f, "receive_marks", None)
            self.rcvmark = receive_marks is not None and receive_marks(self.listener)
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
        if self.user is not None:
            self.user.close_all()
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
        for a in self.addrs.values():
            if a.policy_key is not None:
                self._kernel(self.kp.remove_policies, a.policy_key)
        self.peers.clear()
        self.addrs.clear()
        self.key_of_tid.clear()
        self.sccrq_key.clear()

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
        if self.user_peers:
            p = self._user_peer(key)
            if p is not None:
                if data[0] & 0x80:
                    self._learn_tid(key, data)
                # Control messages and PPP control frames: rare, their control message built each time.
                self._send_marked(self._udp_peer(key), (data,), self.sockets.mark_control(p.mark[0]))
                return
        if len(data) >= 6 and not data[0] & 0x80:
            sess = self._frame_session(key, data)
            if sess is not None:
                self._ppp_out(sess, data)
                return
        sock = self._tunnel_sock(key)
        if sock is None:
            self.counters["no_sa"] += 1
            return
        if len(key) == 3 and data[0] & 0x80:
            self._learn_tid(key, data)
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
        if sess.pkt is not None and proto in (0x0021, 0x0057):
            # An IP packet of ours (an RA, an echo reply): out of the unit as IP, where data goes too.
            self._send_ip(sess, bytes(data[p + 2:end]))
            return
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

    def _user_peer(self, key):
        """The _Peer of an L2TP peer key when its data runs in user space, else None."""
        p = self.peers.get((key[0], key[1])) if len(key) == 3 else None
        return p if p is not None and p.user else None

    def _send_marked(self, dest, parts, anc):
        """An L2TP message (buffers) for a user-space client, out of the listener to dest (address, inner port)
        with the client's mark (`anc`, its policy and SA take it): no connected socket of its own (see
        usersessions). True when sent."""
        if self.listener is None:
            return False
        try:
            self.sockets.send_with(self.listener, parts, dest, anc)
            return True
        except OSError:
            self.counters["send_errors"] += 1
            return False

    def _tunnel_sock(self, key):
        s = self.tsocks.get(key)
        if s is not None:
            return s
        if self.user_peers and self._user_peer(key) is not None:
            return None     # a user-space client: a connected socket would take the kernel client's pair
        if self.role == "client" and self.udp is not None:
            return self.udp
        p = self.peers.get((key[0], key[1])) if self.ipsec else None
        if self.ipsec and p is None:
            a = self.addrs.get(key[0])
            if a is not None and len(a.clients) == 1:
                p = a.clients[0]    # a lone client at the address, as before clients were told apart
        if self.ipsec and p is None:
            return None     # no SA, no policy: nothing may leave in the clear
        mark = p.mark[0] if p is not None and p.mark is not None else None
        try:
            s = self.sockets.l2tp_udp("0.0.0.0" if self.listen in ("", "0.0.0.0") else self.listen,
                                      self.port if self.role == "server" else L2TP_PORT, self._udp_peer(key),
                                      mark)
        except OSError as e:
            self.counters["send_errors"] += 1
            self._log("cannot open the L2TP socket to %s: %s" % (key[0], e))
            return None
        if self.rcvmark and not self.sockets.receive_marks(s):
            self.rcvmark = False
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
        """An SA pair in the kernel. Per client (IKE peer: address and NAT-T port) an outbound reqid, mark and
        policy; per address one inbound policy and reqid for every client behind it. The first client's
        outbound reqid is its address's (a lone client is set up as before the clients were told apart); the
        server marks its clients' outbound SAs and policies and their tunnel sockets (SO_MARK) so that each
        client's L2TP leaves through its own SA, and gives the inbound SAs of every client but the address's
        first the same value as set-mark so that what they decrypt names the client (`_in_mark`, `_attribute`). The inbound policy has no mark: it matches
        whatever mark the SA set."""
        from sluice.hal.net import xfrm

        e = a.child
        peer_ip = e.peer[0]
        ike = (e.peer[0], e.peer[1])
        p = self.peers.get(ike)
        addr = self.addrs.get(peer_ip)
        new_addr = addr is None
        if p is None:
            # A kernel before 6.11 carries the L2TP data of one client per address: the others' runs in user
            # space (usersessions), their ESP in the kernel as anyone's.
            user = (self.role == "server" and addr is not None and any(not c.user for c in addr.clients)
                    and not self._multi_nat_ok())
            if addr is None:
                addr = _Addr(xfrm.REQID_BASE | (self.next_reqid & 0xFFFFFF), self._local(peer_ip))
                self.next_reqid += 1
            if not addr.clients:
                reqid = addr.reqid
            else:
                reqid = xfrm.REQID_BASE | (self.next_reqid & 0xFFFFFF)
                self.next_reqid += 1
            mark = (reqid, 0xFFFFFFFF) if self.role == "server" else None
            p = _Peer(reqid, mark, addr.local, ike, addr, user)
        limits = None
        if a.soft_bytes or a.hard_bytes:
            limits = xfrm.Limits(soft_bytes=a.soft_bytes or None, hard_bytes=a.hard_bytes or None)
        early = self.early_in.pop(e.spi_in, None)
        try:
            self.kp.install_child(p.local, e, p.reqid, p.mark, limits, reqid_in=addr.reqid,
                                  inbound_present=early is not None, set_mark_in=_in_mark(p))
        except (OSError, ValueError) as err:
            return "cannot install ESP SA %s with %s in the kernel: %s" % (e.transform, peer_ip, err)
        peer_port = 0 if self.role == "server" else L2TP_PORT
        if addr.policy_key is None:
            try:
                addr.policy_key = self.kp.install_policies(addr.local, peer_ip, addr.reqid, None, peer_port,
                                                           addr.reqid, L2TP_PORT, "in")
            except OSError as err:
                self.kp.remove_child(p.local, peer_ip, e.spi_in, e.spi_out)
                return "cannot install the L2TP policies for %s in the kernel: %s" % (peer_ip, err)
        if p.policy_key is None:
            try:
                p.policy_key = self.kp.install_policies(p.local, peer_ip, p.reqid, p.mark, peer_port, addr.reqid,
                                                        L2TP_PORT, "out")
            except OSError as err:
                self.kp.remove_child(p.local, peer_ip, e.spi_in, e.spi_out)
                if new_addr:
                    self._kernel(self.kp.remove_policies, addr.policy_key)
                    addr.policy_key = None
                return "cannot install the L2TP policies for %s in the kernel: %s" % (peer_ip, err)
        if new_addr:
            self.addrs[peer_ip] = addr
        if p not in addr.clients:
            addr.clients.append(p)
            if len(addr.clients) > 1:
                self.counters["shared_address_clients"] += 1
                self._log("%d clients behind %s (IKE port %d joins): each has its own outbound SA, policy and mark "
                          "0x%x" % (len(addr.clients), peer_ip, ike[1], p.reqid))
            if p.user:
                self.user_peers += 1
                self.counters["shared_address_user"] += 1
                self._log("client %s:%d: its L2TP/PPP data runs in user space, its ESP in the kernel (%s)" % (
                    peer_ip, ike[1], self._multi_nat_why))
        self.peers[ike] = p
        p.sas += 1
        self.ike_peer[peer_ip] = addr.clients[0].ike
        self.sas[e.spi_in] = _Sa(peer_ip, p.local, e.spi_in, e.spi_out, e.peer, e if e.encap else None, p.reqid,
                                 limits, p)
        self.out_spi[e.spi_out] = e.spi_in
        return None

    _multi_nat_why = ""

    def _multi_nat_ok(self):
        if self.multi_nat is None:
            from sluice.hal.net.kernel_path import probe_multi_nat

            self.multi_nat, self._multi_nat_why = probe_multi_nat()
        elif not self.multi_nat and not self._multi_nat_why:
            self._multi_nat_why = "this kernel cannot carry two L2TP clients behind one NAT"
        return self.multi_nat

    def install_sa_inbound(self, a):
        """The inbound SA of a pair being renewed, at our Quick Mode message 2 (ChildSaInbound): the peer
        installs the pair on that message and sends on it at once, before our InstallSa (message 3) could put
        it in; without it those packets are dropped (XfrmInNoStates). Under the peer's reqid, with a short hard
        lifetime in case message 3 never comes; InstallSa updates it."""
        from sluice.hal.net import xfrm

        e = a.child
        p = self.peers.get((e.peer[0], e.peer[1]))
        if p is None or e.spi_in in self.sas or e.spi_in in self.early_in or len(self.early_in) >= 64:
            return
        spec = xfrm.SaSpec(e.peer[0], p.local, e.spi_in, e.transform, e.enc_in, e.auth_in, e.salt_in,
                           reqid=p.addr.reqid, encap=(e.peer[1], NATT_PORT) if e.encap else None,
                           limits=xfrm.Limits(hard_seconds=EARLY_INBOUND_S), set_mark=_in_mark(p))
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
        p = rec.owner
        if p is None or self.peers.get(p.ike) is not p:
            return
        p.sas -= 1
        if p.sas > 0:
            return
        # The client's last SA: its sessions, tunnel sockets and outbound policy go (nothing could pass any
        # more); the address's inbound policy goes with its last client.
        ike = p.ike
        for s in [s for s in self.sessions.values() if (s.peer[0], s.peer[1]) == ike]:
            self._close_session(s)
        if self.user is not None:
            for key in self.user.keys_of(ike):
                self.user.close(key)
        if p.user:
            self.user_peers -= 1
        for key in [k for k in self.tsocks if (k[0], k[1]) == ike]:
            self._close_tunnel_sock(key)
        for tid in [t for t, k in self.key_of_tid.items() if (k[0], k[1]) == ike]:
            del self.key_of_tid[tid]
        for k in [k for k, v in self.sccrq_key.items() if (v[0], v[1]) == ike]:
            del self.sccrq_key[k]
        if p.policy_key is not None:
            self._kernel(self.kp.remove_policies, p.policy_key)
        del self.peers[ike]
        addr = p.addr
        if p in addr.clients:
            addr.clients.remove(p)
        if addr.clients:
            if self.ike_peer.get(rec.peer_ip) == ike:
                self.ike_peer[rec.peer_ip] = addr.clients[0].ike
            return
        if addr.policy_key is not None:
            self._kernel(self.kp.remove_policies, addr.policy_key)
        if self.addrs.get(rec.peer_ip) is addr:
            del self.addrs[rec.peer_ip]
        self.ike_peer.pop(rec.peer_ip, None)

    def move_peer(self, old, new):
        """The peer's NAT mapping moved (same address, new port: RFC 3948): its ESP-in-UDP SAs follow (UPDSA
        with the new encap port; the kernel keeps keys and algorithms, takes the encap)."""
        if old[0] == new[0]:
            if self.ike_peer.get(old[0]) == old:
                self.ike_peer[new[0]] = new
            p = self.peers.get(old)
            if p is not None and new not in self.peers:
                del self.peers[old]
                p.ike = new
                self.peers[new] = p
            for table in (self.key_of_tid, self.sccrq_key):
                for k, v in list(table.items()):
                    if (v[0], v[1]) == old:
                        table[k] = (new[0], new[1], v[2])
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
        if self.user is not None:
            self.user.move_peer(old, new)

    def _follow(self, r, port):
        from sluice.hal.net import xfrm

        e = r.child
        p = r.owner
        inbound = xfrm.SaSpec(r.peer_ip, r.local, e.spi_in, e.transform, e.enc_in, e.auth_in, e.salt_in,
                              reqid=p.addr.reqid if p is not None else r.reqid, encap=(port, NATT_PORT),
                              limits=r.limits, set_mark=_in_mark(p))
        outbound = xfrm.SaSpec(r.local, r.peer_ip, e.spi_out, e.transform, e.enc_out, e.auth_out, e.salt_out,
                               reqid=r.reqid, encap=(NATT_PORT, port), limits=r.limits,
                               mark=p.mark if p is not None else None)
        return self._kernel(self.kp.xfrm.update_sa, inbound) and self._kernel(self.kp.xfrm.update_sa, outbound)

    def _rekey_session(self, s, peer):
        self.by_peer_ids.pop((s.peer, s.ptid, s.psid), None)
        s.peer = peer
        self.by_peer_ids[(peer, s.ptid, s.psid)] = s

    def session_open(self, a):
        """The L2TP session is established: kernel tunnel (first use), PPPoL2TP session, ppp unit; for a client
        whose data the kernel cannot carry, a user-space session (usersessions)."""
        old = self.sessions.get(a.key)
        if old is not None:
            self._close_session(old)
        p = self._user_peer(a.peer) if self.user_peers else None
        if p is not None:
            if self.user is None:
                from sluice.engine.usersessions import UserSessions

                self.user = UserSessions(self.loop, self.up, self.tun, self._send_marked, self.sockets.mark_control,
                                         self.counters)
            self.user.dhcp = self.dhcp
            self.user.open(a.key, a.peer, a.peer_tunnel_id, a.peer_session_id, a.sequencing, p.mark[0])
            self._remember_tid(a.key[0], a.peer)
            return
        sock = self._tunnel_sock(a.peer)
        if sock is None:
            self.counters["no_sa"] += 1
            return
        tid, sid = a.key
        if self.role == "client":
            ifname = self.ifname
        else:
            ifname = unit_name(self.ifname or "sls", sid)
        try:
            ks = self.kp.open_session(sock, tid, a.peer_tunnel_id, sid, a.peer_session_id, self._udp_peer(a.peer),
                                      ifname, self.mtu, self.role == "server")
        except (OSError, ValueError) as e:
            self.counters["kernel_errors"] += 1
            self._log("cannot open the kernel L2TP session %d/%d: %s" % (tid, sid, e))
            return
        s = _Session(a.key, a.peer, a.peer_tunnel_id, a.peer_session_id, ks, ks.unit.ifname)
        if len(a.peer) == 3:
            self._remember_tid(tid, a.peer)
        if self.role == "client":
            # Sluice applies the server's RAs (routes only as configured); the kernel must not also take them
            # (a default route through the tunnel that nobody asked for).
            no_ra = getattr(self.sockets, "no_router_advertisements", None)
            if no_ra is not None:
                no_ra(s.ifname)
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
        if s.pkt is not None:
            self.loop.remove_reader(s.pkt)
            s.pkt.close()
            s.pkt = None
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
            # A user-space session's /32 stays on the TUN (host_step finds no unit for it).
            if self.user is None or not self.user.session_up(a.key, a.address, a.rate):
                self.counters["unknown_session"] += 1
            return
        s.address = a.address
        if self.role == "server":
            self.unit_of[a.address + "/32"] = s.ifname
            if self.host is not None:
                self.host.host("addr_add", (s.ifname, self.local_ip, None))
                # The client's MRU caps what its unit sends (a shared TUN cannot do this per client).
                self.host.host("link_up", (s.ifname, a.mtu or self.mtu))
                if a.rate:
                    self.host.host("rate_limit", (s.ifname, a.rate))   # rate_kbit: tc on the unit, each way
            if self.dhcp:
                self._unit_sock(s)
        else:
            self.single = s

    def session_down(self, key):
        s = self.sessions.get(key)
        if s is None:
            if self.user is not None:
                self.user.close(key)
            return None
        if self.single is s:
            self.single = None
        self._close_session(s)
        return s

    def session6_up(self, a):
        """Server: the session's IPv6: our link-local on the unit, its /64 routed to the unit (host_step),
        Router Solicitations read from it. Client: the endpoint's Host steps put the link-local on the unit (it
        is `ifname`); Router Advertisements are read from it and go up as the user-space plane hands them, and
        its Router Solicitations go out of it."""
        s = self.sessions.get(a.key)
        if s is None:
            # A user-space session: its /64 is routed to the TUN (host_step finds no unit), read there.
            if self.user is None or not self.user.session6_up(a.key, a.prefix):
                self.counters["unknown_session"] += 1
            return
        if self.role == "client":
            s.net6 = "client"
            self._unit_sock(s)
            return
        if a.prefix is None:
            return
        from sluice.ip6 import addr as ip6

        s.net6 = ip6.text(bytes(a.prefix) + bytes(8)) + "/64"
        self.unit_of[s.net6] = s.ifname
        if a.local_ifid is not None and self.host is not None:
            s.ll6 = ip6.text(ip6.link_local(a.local_ifid)) + "/64"
            self.host.host("addr_add6", (s.ifname, s.ll6))
        self._unit_sock(s)

    def session6_down(self, key):
        s = self.sessions.get(key)
        if s is None and self.user is not None:
            self.user.session6_down(key)
        if s is None or s.net6 is None:
            return
        s.net6 = None
        if s.ll6 is not None and self.host is not None:
            self.host.host("addr_del6", (s.ifname, s.ll6))
        s.ll6 = None

    def send_to_session(self, key, packet):
        """An IPv4 packet of our own (a DHCPACK) out of the session's unit."""
        s = self.sessions.get(key)
        if s is None or s.pkt is None:
            if self.user is None or not self.user.send_to_session(key, packet):
                self.counters["no_route"] += 1
            return
        self._send_ip(s, packet)

    def _send_ip(self, s, packet):
        try:
            s.pkt.sendto(packet, (s.ifname, 0x86DD if packet[0] >> 4 == 6 else 0x0800))
            self.counters["ppp_out"] += 1
        except OSError:
            self.counters["send_errors"] += 1

    def _unit_sock(self, s):
        """The session's filtered packet socket, opened once (closed with the session)."""
        if s.pkt is None:
            try:
                s.pkt = (self.sockets.unit_packet(s.ifname, True) if self.role == "client" else
                         self.sockets.unit_packet(s.ifname))
            except OSError as e:
                self.counters["kernel_errors"] += 1
                self._log("cannot open the packet socket of %s (no DHCPINFORM/RS answers, no RAs there): %s" % (
                    s.ifname, e))
                return None
            self.loop.add_reader(s.pkt, lambda now, s=s: self._on_unit(s, now))
        return s.pkt

    def _on_unit(self, s, now):
        """What the unit's filter passed: a DHCP packet to port 67 or an ICMPv6 Router Solicitation (server), a
        Router Advertisement (client)."""
        for _ in range(8):
            try:
                pkt = s.pkt.recv(2048)
            except (OSError, AttributeError):
                return
            if self.sessions.get(s.key) is not s:
                return
            if len(pkt) < 28:
                self.counters["malformed"] += 1
                continue
            self.counters["unit_in"] += 1
            if pkt[0] >> 4 == 4:
                if not self.dhcp:
                    continue    # no DHCPINFORM answers configured: the kernel routes it as any packet
                if s.address is None or pkt[12:16] != socket.inet_aton(s.address):
                    self.counters["spoofed"] += 1   # as the user-space plane: only the session's own address
                    continue
                self.up.on_dhcp(s.key, pkt, now)
            elif s.net6 is not None:
                # As the user-space plane hands up a link-local IPv6 packet: an L2TP data message of the session.
                self.up.on_l2tp(s.header + b"\x00\x57" + pkt, s.peer, now)

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

    def _key_from(self, addr, data=None, mark=None):
        if not self.ipsec:
            return (addr[0], addr[1])
        ike = self.ike_peer.get(addr[0])
        if ike is None:
            return None
        a = self.addrs.get(addr[0])
        if a is not None and len(a.clients) > 1 and data is not None:
            return self._attribute(a, addr, data, mark) or (ike[0], ike[1], addr[1])
        return (ike[0], ike[1], addr[1])

    # -- several clients at one address --------------------------------------------------------------------
    #
    # Their L2TP arrives decrypted from one address and inner port on the listener or on any of their tunnel
    # sockets (the kernel picks one socket for one address/port pair): which client sent it is told by our
    # tunnel ID in the header (learned from the SCCRP we send, which assigns it, and from SessionOpen). An
    # SCCRQ (tunnel ID 0) goes to the client whose mark it carries: the set-mark of the inbound SA that
    # decrypted it (install_sa), read with SO_RCVMARK. Without one (a kernel before 5.19), a guess: the client
    # at the address that has no tunnel yet whose inbound SA counted new bytes since the last poll (the
    # SCCRQ's own), the oldest such client when that does not decide (counted as `misattributed`); its
    # retransmissions follow the first choice.

    def _remember_tid(self, tid, key):
        kt = self.key_of_tid
        if tid not in kt and len(kt) >= LOCAL_FOR_MAX:
            del kt[next(iter(kt))]
        kt[tid] = key

    def _learn_tid(self, key, data):
        """A control message we send: an SCCRP carries our tunnel ID in its Assigned Tunnel ID AVP."""
        if key[0] not in self.addrs:
            return
        tid = _avp_u16(data, 9, 2)      # Assigned Tunnel ID, in an SCCRP (message type 2)
        if tid:
            self._remember_tid(tid, key)

    def _attribute(self, a, addr, data, mark=None):
        from sluice.l2tp import header as H
        from sluice.l2tp.errors import L2tpError

        try:
            h = H.parse(data)
        except L2tpError:
            return None
        if h.tunnel_id:
            key = self.key_of_tid.get(h.tunnel_id)
            if key is None or key[0] != addr[0]:
                return None
            return key
        if not h.is_control:
            return None
        ptid = _avp_u16(data, 9, 1)     # the SCCRQ's Assigned Tunnel ID (the client's)
        k = (addr[0], addr[1], ptid)
        if mark is not None:
            for p in a.clients:
                m = _in_mark(p)
                if (m[0] if m is not None else 0) == mark:
                    self.counters["attributed_by_mark"] += 1
                    return self._sccrq_of(k, (p.ike[0], p.ike[1], addr[1]))
        key = self.sccrq_key.get(k)
        if key is not None:
            return key
        busy = set((v[0], v[1]) for v in self.key_of_tid.values()) | set((v[0], v[1])
                                                                          for v in self.sccrq_key.values())
        free = [p for p in a.clients if p.ike not in busy] or list(a.clients)
        grew = []
        for p in free:
            for rec in self.sas.values():
                if rec.owner is p:
                    c = self.kp.counters(rec.local, rec.peer_ip, rec.spi_in, rec.spi_out).get("in")
                    if c is not None and c.bytes > rec.rx_bytes:
                        grew.append(p)
                        break
        pick = grew[0] if len(grew) == 1 else free[0]
        if len(free) > 1 and len(grew) != 1:
            self.counters["misattributed"] += 1   # a guess: two clients at one address set up at once
        return self._sccrq_of(k, (pick.ike[0], pick.ike[1], addr[1]))

    def _sccrq_of(self, k, key):
        """Remember whom the SCCRQ (address, inner port, peer's tunnel ID) k went to: the guess keeps its
        retransmissions with the first choice and leaves that client out of the next guess."""
        if k not in self.sccrq_key and len(self.sccrq_key) >= LOCAL_FOR_MAX:
            del self.sccrq_key[next(iter(self.sccrq_key))]
        self.sccrq_key[k] = key
        return key

    def _recv(self, sock):
        """(data, source, mark) of one datagram: the mark (SO_RCVMARK) only where the kernel hands it up."""
        if not self.rcvmark:
            data, addr = sock.recvfrom(65535)
            return data, addr, None
        data, anc, _flags, addr = sock.recvmsg(65535, _MARK_SPACE)
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == _SO_MARK and len(cdata) >= 4:
                return data, addr, int.from_bytes(cdata[:4], _BYTEORDER)
        return data, addr, None

    def _on_listener(self, now):
        for _ in range(16):
            try:
                data, addr, mark = self._recv(self.listener)
            except OSError:
                return
            if self.user is not None and data and not data[0] & 0x80 and self.user.take(data, addr, mark, now):
                continue    # a user-space session's data (its IDs, source and mark checked there)
            key = self._key_from(addr, data, mark)
            if key is None:
                # L2TP from an address without IPsec SAs: refused as the user-space path refuses it.
                self.counters["not_ipsec"] += 1
                continue
            self.up.on_l2tp(data, key, now)

    def _on_tunnel_sock(self, key, sock, now):
        for _ in range(16):
            try:
                data, _addr, mark = self._recv(sock)
            except OSError:
                return
            # Control messages, and data for sessions not (yet) in the kernel: the endpoint's. With several
            # clients at the sending address, the message may be another client's (see _attribute); a
            # user-space session's data, passed up by the kernel tunnel of this socket, goes to its session.
            src = self._udp_peer(key)
            if self.user is not None and data and not data[0] & 0x80 and self.user.take(data, src, mark, now):
                continue
            got = key
            if len(key) == 3:
                a = self.addrs.get(key[0])
                if a is not None and len(a.clients) > 1:
                    got = self._attribute(a, src, data, mark) or key
            self.up.on_l2tp(data, got, now)

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
            c = self.kp.counters(rec.local, rec.peer_ip, rec.spi_in, rec.spi_out, self._mark(rec)).get("in")
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
            got = self.user.counters_of(key) if self.user is not None else None
            return got or (0, 0, 0, 0)
        rx_b, tx_b, rx_p, tx_p = self.sockets.netdev_stats(s.ifname)
        return (rx_b, tx_b, rx_p, tx_p)

    def session_counters(self, key):
        s = self.sessions.get(key)
        if s is None:
            if self.user is None:
                return None
            return self.user.session_counters(key, self.tun.name if self.tun is not None else self.ifname)
        rx_b, tx_b, rx_p, tx_p = self.sockets.netdev_stats(s.ifname)
        rx6_b, tx6_b, rx6_p, tx6_p = self.sockets.netdev6_stats(s.ifname)
        return {"rx_packets": rx_p, "rx_bytes": rx_b, "tx_packets": tx_p, "tx_bytes": tx_b, "spoofed": 0,
                "rx6_packets": rx6_p, "rx6_bytes": rx6_b, "tx6_packets": tx6_p, "tx6_bytes": tx6_b, "unit": s.ifname}

    def sa_counters(self):
        out = {}
        for rec in self.sas.values():
            c = self.kp.counters(rec.local, rec.peer_ip, rec.spi_in, rec.spi_out, self._mark(rec))
            i, o = c.get("in"), c.get("out")
            out[rec.spi_in] = {"packets_in": i.packets if i else 0, "bytes_in": i.bytes if i else 0}
            out[rec.spi_out] = {"packets_out": o.packets if o else 0, "bytes_out": o.bytes if o else 0}
        return out

    def _mark(self, rec):
        return rec.owner.mark if rec.owner is not None else None


def _avp_u16(data, avp_type, msg_type):
    """The 16-bit value of the first unhidden IETF AVP `avp_type` of an L2TP control message of type msg_type
    (RFC 2661 4.1), or None. Bounded by the message's length."""
    n = len(data)
    if n < 12 or not data[0] & 0x80:
        return None
    p = 12                       # flags, length, tunnel ID, session ID, Ns, Nr (control: L and S set)
    first = True
    for _ in range(64):
        if p + 6 > n:
            return None
        flags_len = (data[p] << 8) | data[p + 1]
        length = flags_len & 0x3FF
        if length < 6 or p + length > n:
            return None
        vendor = (data[p + 2] << 8) | data[p + 3]
        t = (data[p + 4] << 8) | data[p + 5]
        if first:
            if vendor or t != 0 or length < 8 or ((data[p + 6] << 8) | data[p + 7]) != msg_type:
                return None
            first = False
        elif vendor == 0 and t == avp_type and not flags_len & 0x4000 and length >= 8:
            return (data[p + 6] << 8) | data[p + 7]
        p += length
    return None
