"""The user-space data plane: ESP and L2TP/PPP framing between UDP sockets and a TUN device.

One of the data-plane backends behind the endpoint seam (`sluice.endpoint.actions`): the endpoint decides
which SAs exist, which one carries a peer's traffic and which sessions carry IP; this module holds the
sockets, the TUN device, the ESP transforms and one bundle per session, and moves packets.

Per packet, outbound: one TUN read into a buffer that leaves room in front, one dict lookup (server: by the
destination address; client: the one session), the UDP/L2TP/PPP prefix written in front of the packet, one
`seal`, one `sendto`. Inbound: one `recvfrom_into`, one SPI lookup, one `open`, the one L2TP data parser
(`sluice.l2tp.data.parse_data`) and PPP protocol parser (`sluice.ppp.framing.protocol_at`) on the buffer in
place, one session lookup by (tunnel id, session id), one TUN write. Everything else (control messages, PPP
control frames, data for sessions not yet up) goes to the endpoint through the `up` object.

The bundle of a session refers to the route of its peer (`_Route`: outbound SA, encapsulation, destination,
soft byte mark); an SA change or a NAT move updates the route in place, so no bundle is rebuilt per packet.

What a packet costs, and what it does not: an IPv4 packet for an IPsec session is read at HEADROOM into `tbuf`,
its UDP/L2TP/PPP prefix (built once per session, only the UDP length patched) is written in front of it and the
ESP trailer after it (`Outbound.seal_view`), so it is not copied before the cipher reads it; a received ESP
packet's payload is parsed where `Inbound.open_in` decrypted it, without being copied out. One dict lookup per
packet each way finds the session (bytes key: the destination address or /64; int key: tunnel id << 16 |
session id), one more finds the inbound SA (bytes key: the SPI). The per-packet counters are integers in slots
(`esp_in`, `esp_out`), the rare ones a dict (`counters` shows both); nothing per packet logs.
"""

import struct

from sluice.engine.loop import monotonic
from sluice.engine.meter import Meter
from sluice.esp.errors import EspError, EspExpired
from sluice.esp.lifetime import Lifetime
from sluice.esp.sa import Inbound, NEXT_HEADER_UDP, Outbound
from sluice.hal.net.sockets import socket
from sluice.ip6.addr import on_link
from sluice.l2tp.data import DataEncoder, parse_data
from sluice.l2tp.errors import L2tpError
from sluice.ppp.framing import PROTO_IP, PROTO_IPV6, PppError, protocol_at

IKE_PORT = 500
NATT_PORT = 4500
L2TP_PORT = 1701
IPPROTO_ESP = 50
HEADROOM = 64  # room in front of a TUN packet for UDP (8) + L2TP (up to 16) + PPP (4) headers
TAILROOM = 32  # room after it for the ESP trailer (padding to a 16-byte block + pad length + next header)
MAX_PACKET = 65535
LOCAL_FOR_MAX = 1024  # remembered "which of our addresses did this peer reach" entries (wildcard listen)
_NEVER = 1 << 62
EARLY_S = 60.0      # an inbound SA taken at Quick Mode message 2 whose InstallSa never came goes after this
EARLY_MAX = 64      # such SAs at once (a peer cannot make us hold more)
_PPP_IP = b"\xff\x03\x00\x21"  # PPP address, control and protocol for IPv4 (RFC 1662 3.1)
_PPP_IP6 = b"\xff\x03\x00\x57"  # ... for IPv6 (RFC 5072 3)
_UDP = struct.Struct("!HHHH")
_PKTINFO_SPACE = socket.CMSG_SPACE(12)
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


class _Route:
    """Where a peer's packets go: the outbound SA, UDP encapsulation, destination."""

    __slots__ = ("peer", "dest", "sa", "spi_in", "encap", "soft", "told")

    def __init__(self, peer):
        self.peer = peer
        self.dest = (peer[0], 0)  # raw ESP's sendto address, built once (and on a move)
        self.sa = None       # Outbound
        self.spi_in = 0      # the inbound SPI of the same pair (how the endpoint names the SA)
        self.encap = False
        self.soft = _NEVER   # tell the endpoint once the SA has sealed this many bytes
        self.told = False


class _InSa:
    __slots__ = ("sa", "route", "encap", "last_rx", "soft", "told", "hard_told")

    def __init__(self, sa, route, encap, soft):
        self.sa = sa
        self.route = route
        self.encap = encap
        self.last_rx = -1e9
        self.soft = soft
        self.told = False
        self.hard_told = False


class Bundle:
    """One session's data path, built when it comes up."""

    __slots__ = ("key", "ids", "peer", "route", "sport", "prefix", "udp_prefix", "enc", "addr", "rx_packets",
                 "rx_bytes", "tx_packets", "tx_bytes", "spoofed", "net6", "prefix6", "rx6_packets", "rx6_bytes",
                 "tx6_packets", "tx6_bytes", "meter_in", "meter_out")

    def __init__(self, key, peer, route, header, sequencing, addr):
        self.key = key
        self.ids = (key[0] << 16) | key[1]  # the int the receive path looks the session up by
        self.peer = peer     # the L2TP peer key
        self.route = route   # _Route (IPsec) or None (plain UDP)
        self.sport = peer[2] if len(peer) == 3 else 0
        self.addr = addr     # 4 bytes: the client's address (server side), ours (client side)
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = self.spoofed = 0
        if sequencing:
            # Every message needs the next Ns: the encoder makes the header per packet (rare: RFC 2661 5.4).
            self.enc = DataEncoder((header[2] << 8) | header[3], (header[4] << 8) | header[5], True)
            self.prefix = None
        else:
            self.enc = None
            self.prefix = bytes(header) + _PPP_IP
        # IPv4 over IPsec: UDP/1701 header (length patched per packet, checksum 0: RFC 3948 3.1.2) + L2TP + PPP.
        self.udp_prefix = _UDP.pack(L2TP_PORT, self.sport, 0, 0) + self.prefix if self.prefix is not None else None
        # IPv6 (Session6Up): net6 is the session's /64 (server), b"" (client), None while it has no IPv6.
        self.net6 = self.prefix6 = None
        self.rx6_packets = self.rx6_bytes = self.tx6_packets = self.tx6_bytes = 0
        self.meter_in = self.meter_out = None  # Meter per direction when the session has a rate limit


class UserPlane:
    datapath = "user"

    __slots__ = ("loop", "up", "role", "server", "backend", "rng", "tun", "ipsec", "listen", "sockets", "s500",
                 "s4500", "raw", "udp", "inbound", "outs", "early", "routes", "bundles", "by_addr", "by_ids", "by_net6",
                 "single", "local_for", "dhcp", "buf", "view", "tbuf", "tview", "tread", "esp_in", "esp_out", "rare")

    def __init__(self, loop, up, role, backend, rng, tun, ipsec, listen="0.0.0.0", sockets=None):
        self.loop = loop
        self.up = up          # the runner: on_ike, on_l2tp, on_esp_from, on_traffic, on_expiring
        self.role = role      # 'server' or 'client'
        self.server = role == "server"
        self.backend = backend  # crypto backend module, chosen once (the same one IKE uses)
        self.rng = rng
        self.tun = tun
        self.ipsec = ipsec
        self.listen = listen
        self.sockets = sockets  # factory: udp(address, port, client) / raw_esp() (the in-memory twin replaces it)
        self.s500 = self.s4500 = self.raw = self.udp = None
        self.inbound = {}     # SPI (4 bytes) -> _InSa
        self.outs = {}        # spi_out -> (Outbound, soft byte mark, spi_in)
        self.early = {}       # spi_in -> time taken: inbound SAs of renewed pairs ahead of their InstallSa
        self.routes = {}      # IKE peer (ip, port) -> _Route
        self.bundles = {}     # (tid, sid) -> Bundle
        self.by_addr = {}     # 4-byte address -> Bundle (server)
        self.by_ids = {}      # tid << 16 | sid -> Bundle: the receive path's one session lookup
        self.by_net6 = {}     # 8-byte /64 -> Bundle (server, IPv6)
        self.single = None    # client: the one Bundle
        self.local_for = {}   # peer address -> our address it reached (wildcard listen), bounded
        self.dhcp = False     # server with client_routes/domain: DHCPINFORM goes to the endpoint
        self.buf = bytearray(MAX_PACKET)
        self.view = memoryview(self.buf)
        self.tbuf = bytearray(HEADROOM + MAX_PACKET + TAILROOM)
        self.tview = memoryview(self.tbuf)
        self.tread = self.tview[HEADROOM:HEADROOM + MAX_PACKET]  # where a TUN packet is read
        self.esp_in = self.esp_out = 0  # the per-packet counters; `counters` shows them with the rest
        self.rare = {"unknown_spi": 0, "esp_errors": 0, "not_l2tp": 0, "no_sa": 0, "malformed": 0,
                     "unknown_session": 0, "wrong_peer": 0, "no_route": 0, "spoofed": 0, "send_errors": 0,
                     "expired": 0, "policed": 0}

    @property
    def counters(self):
        c = dict(self.rare)
        c["esp_in"] = self.esp_in
        c["esp_out"] = self.esp_out
        return c

    # -- sockets -------------------------------------------------------------------------------------------

    def open_ipsec(self):
        client = self.role == "client"
        f = self.sockets
        # Bound first: a peer's first IKE packet waits in the socket while the backends prove themselves.
        self.s500 = f.udp(self.listen, IKE_PORT, client)
        self.s4500 = f.udp(self.listen, NATT_PORT, client)
        self.raw = f.raw_esp()
        if self.listen in ("0.0.0.0", "") and hasattr(self.s500, "setsockopt"):
            # NAT-D hashes our address as the peer sees it: learn it per datagram (IP_PKTINFO).
            self.s500.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
        self.loop.add_reader(self.s500, self._on_500)
        self.loop.add_reader(self.s4500, self._on_4500)
        if self.raw is not None:
            self.loop.add_reader(self.raw, self._on_raw)

    def open_plain(self, sock):
        """Plain L2TP over UDP: `sock` is bound (server) or bound and connected to the server (client)."""
        self.udp = sock
        self.loop.add_reader(sock, self._on_udp)

    def attach_tun(self):
        self.loop.add_reader(self.tun, self._on_tun)

    def close_sockets(self):
        for s in (self.s500, self.s4500, self.raw, self.udp):
            if s is not None:
                self.loop.remove_reader(s)
                s.close()
        self.s500 = self.s4500 = self.raw = self.udp = None
        self.inbound.clear()
        self.outs.clear()
        self.routes.clear()

    def close(self):
        self.close_sockets()
        if self.tun is not None:
            if self.tun.fileno() >= 0:
                self.loop.remove_reader(self.tun)
            self.tun.close()

    # -- actions from the endpoint -------------------------------------------------------------------------

    def send_ike(self, port, peer, data):
        s = self.s4500 if port == NATT_PORT else self.s500
        if s is None:
            return
        try:
            s.sendto(data, peer)
        except OSError:
            self.rare["send_errors"] += 1

    def send_l2tp(self, key, data):
        """A control message or PPP control frame for the L2TP peer `key`."""
        if self.udp is not None:
            self._send_plain(key, (data,))
            return
        route = self.routes.get((key[0], key[1]))
        if route is None or route.sa is None:
            self.rare["no_sa"] += 1
            return
        self._seal_send(route, struct.pack("!HHHH", L2TP_PORT, key[2], 8 + len(data), 0) + data, None)

    def install_sa(self, a):
        e = a.child
        soft = a.soft_bytes if a.soft_bytes else _NEVER
        life = Lifetime(hard_bytes=a.hard_bytes) if a.hard_bytes else None
        key = e.spi_in.to_bytes(4, "big")
        took = self.early.pop(e.spi_in, None)
        try:
            early = self.inbound.get(key) if took is not None else None
            if early is not None:
                inb = early.sa          # taken at message 2: its replay window and counters carry on
                inb.lifetime = life
            else:
                inb = Inbound(e.spi_in, e.transform, e.enc_in, e.auth_in, e.salt_in, self.rng, self.backend, life)
            out = Outbound(e.spi_out, e.transform, e.enc_out, e.auth_out, e.salt_out, self.rng, self.backend, life)
        except (ValueError, EspError) as err:
            return "cannot install ESP SA %s with %s: %s" % (e.transform, e.peer[0], err)
        route = self._route(e.peer)
        self.inbound[key] = _InSa(inb, route, e.encap, soft)
        self.outs[e.spi_out] = (out, soft, e.spi_in)
        return None

    def install_sa_inbound(self, a):
        """The inbound SA of a pair the peer renews, at our Quick Mode message 2: the peer sends on the new
        pair as soon as it has that message (strongSwan does, before its message 3 leaves), and without the SA
        those packets were dropped as an unknown SPI. At most EARLY_MAX at once; one whose InstallSa never came
        goes after EARLY_S (checked when the next one comes, and by remove_sa)."""
        e = a.child
        now = self.loop.time() if hasattr(self.loop, "time") else monotonic()
        for spi, t in list(self.early.items()):
            if now - t > EARLY_S or len(self.early) >= EARLY_MAX:
                self.early.pop(spi, None)
                self.inbound.pop(spi.to_bytes(4, "big"), None)
        key = e.spi_in.to_bytes(4, "big")
        if key in self.inbound or e.peer not in self.routes:
            return      # known already, or a peer without a live pair (a first SA carries no traffic yet)
        try:
            inb = Inbound(e.spi_in, e.transform, e.enc_in, e.auth_in, e.salt_in, self.rng, self.backend, None)
        except (ValueError, EspError):
            return      # the pair's InstallSa says why
        self.inbound[key] = _InSa(inb, self.routes[e.peer], e.encap, _NEVER)
        self.early[e.spi_in] = now

    def outbound_sa(self, peer, spi_out, encap):
        route = self._route(peer)
        if spi_out is None:
            route.sa = None
            return
        got = self.outs.get(spi_out)
        if got is None:
            return
        route.sa, route.soft, route.spi_in = got
        route.encap = encap
        route.told = False

    def remove_sa(self, spi_in, spi_out):
        self.early.pop(spi_in, None)
        self.inbound.pop(spi_in.to_bytes(4, "big"), None)
        self.outs.pop(spi_out, None)
        for r in self.routes.values():
            if r.sa is not None and r.sa.spi == spi_out:
                r.sa = None

    def move_peer(self, old, new):
        route = self.routes.pop(old, None)
        if route is not None:
            route.peer = new
            route.dest = (new[0], 0)
            self.routes[new] = route
        for b in self.bundles.values():
            p = b.peer
            if len(p) == 3 and (p[0], p[1]) == old:
                b.peer = (new[0], new[1], p[2])

    def session_open(self, a):
        """The L2TP session starts PPP: nothing to prepare here (its frames come and go as L2TP data)."""

    def session_up(self, a):
        addr = socket.inet_aton(a.address)
        route = self.routes.get((a.peer[0], a.peer[1])) if len(a.peer) == 3 else None
        if len(a.peer) == 3 and route is None:
            route = self._route((a.peer[0], a.peer[1]))
        b = Bundle(a.key, a.peer, route, a.header, a.sequencing, addr)
        rate = getattr(a, "rate", None)
        if rate:
            b.meter_in, b.meter_out = Meter(rate), Meter(rate)
        self.bundles[a.key] = b
        self.by_ids[b.ids] = b
        if self.role == "server":
            self.by_addr[addr] = b
        else:
            self.single = b

    def session_down(self, key):
        b = self.bundles.pop(key, None)
        if b is None:
            return None
        if self.by_ids.get(b.ids) is b:
            del self.by_ids[b.ids]
        if self.by_addr.get(b.addr) is b:
            del self.by_addr[b.addr]
        if self.single is b:
            self.single = None
        return b

    def session6_up(self, a):
        """IPv6 for an up session: its /64 (server; the only sources it may use, and how the TUN finds it)."""
        b = self.bundles.get(a.key)
        if b is None:
            return
        b.net6 = bytes(a.prefix) if a.prefix is not None else b""
        b.prefix6 = b.prefix[:-4] + _PPP_IP6 if b.prefix is not None else None
        if self.role == "server":
            self.by_net6[b.net6] = b

    def session6_down(self, key):
        b = self.bundles.get(key)
        if b is None or b.net6 is None:
            return
        if self.by_net6.get(b.net6) is b:
            del self.by_net6[b.net6]
        b.net6 = None

    def _route(self, peer):
        r = self.routes.get(peer)
        if r is None:
            r = self.routes[peer] = _Route(peer)
        return r

    # -- receive -------------------------------------------------------------------------------------------

    def _on_500(self, now):
        local_for = self.local_for
        for _ in range(16):
            try:
                data, anc, _flags, peer = self.s500.recvmsg(65535, _PKTINFO_SPACE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            local = self.listen
            for level, kind, cdata in anc:
                if level == socket.IPPROTO_IP and len(cdata) >= 12:
                    local = socket.inet_ntoa(cdata[8:12])  # in_pktinfo.ipi_addr: the header's destination
                    if local_for.get(peer[0]) != local:
                        if len(local_for) >= LOCAL_FOR_MAX:
                            del local_for[next(iter(local_for))]  # oldest first: bounded, O(1)
                        local_for[peer[0]] = local
            self.up.on_ike(data, (local, IKE_PORT), peer, now)

    def _on_4500(self, now):
        buf, view = self.buf, self.view
        for _ in range(64):
            try:
                n, peer = self.s4500.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if n == 1 and buf[0] == 0xFF:
                continue  # NAT keepalive (RFC 3948 2.3)
            if n < 8:
                self.rare["esp_errors"] += 1
                continue
            if buf[0] == 0 and buf[1] == 0 and buf[2] == 0 and buf[3] == 0:
                local = self.local_for.get(peer[0], self.listen)
                self.up.on_ike(bytes(view[4:n]), (local, NATT_PORT), peer, now)
                continue
            self._esp_in(bytes(view[:n]), peer, True, now)

    def _on_raw(self, now):
        buf, view = self.buf, self.view
        for _ in range(64):
            try:
                n, addr = self.raw.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            ihl = (buf[0] & 0x0F) * 4
            if n < ihl + 8:
                self.rare["esp_errors"] += 1
                continue
            self._esp_in(bytes(view[ihl:n]), (addr[0], 0), False, now)  # one copy: see _esp_in

    def _esp_in(self, packet, outer, encap, now):
        """One ESP packet (bytes: one copy out of the receive buffer measured cheaper than a memoryview, which
        costs more in `Inbound.open` and in cryptography's decrypt) from `outer`."""
        rec = self.inbound.get(packet[:4])
        c = self.rare
        if rec is None:
            c["unknown_spi"] += 1
            if self.up.hint_unknown_spi:
                self.up.on_unknown_spi(packet[:4], outer, encap, len(packet), now)
            return
        route = rec.route
        # The SA is bound to its peer's address: ESP for it from elsewhere is dropped before any crypto.
        if outer[0] != route.peer[0] or encap != rec.encap:
            c["unknown_spi"] += 1
            return
        sa = rec.sa
        moved = encap and outer[1] != route.peer[1]
        if moved:
            # Only a packet above the replay window may move a peer: read it before open() advances it.
            moved = int.from_bytes(packet[4:8], "big") > sa.window.top
        try:
            payload, n, nh = sa.open_in(packet)  # the UDP datagram is payload[:n]: parsed in place
        except EspExpired:
            c["expired"] += 1
            if not rec.hard_told:
                rec.hard_told = True
                self.up.on_expiring(sa.spi, True, now)
            return
        except EspError:
            c["esp_errors"] += 1
            return
        self.esp_in += 1
        if moved:
            # Fresh authenticated ESP from a new port of the same address: the endpoint decides whether to
            # follow (RFC 3948); a replayed packet from another port never gets here.
            self.up.on_esp_from(sa.spi, outer, now)
        if now - rec.last_rx > 1.0:  # DPD only needs to know the peer is alive, not every packet
            rec.last_rx = now
            self.up.on_traffic(route.peer, now)
        if sa.bytes >= rec.soft and not rec.told:
            rec.told = True
            self.up.on_expiring(sa.spi, False, now)
        if nh != NEXT_HEADER_UDP or n < 8 or ((payload[2] << 8) | payload[3]) != L2TP_PORT:
            c["not_l2tp"] += 1  # transport-mode policy: only UDP to 1701 is carried
            return
        self._l2tp_in(payload, 8, n, route, (payload[0] << 8) | payload[1], None, now)

    def _on_udp(self, now):
        buf, sock = self.buf, self.udp
        for _ in range(64):
            try:
                n, peer = sock.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ICMP errors surface here (port unreachable): the L2TP machines notice silence themselves.
                self.rare["send_errors"] += 1
                return
            self._l2tp_in(buf, 0, n, None, 0, peer, now)

    def _l2tp_in(self, buf, start, n, route, sport, peer, now):
        """One UDP/1701 payload in buf[start:n], from `route` + inner port `sport` (IPsec) or `peer` (plain)."""
        c = self.rare
        if n - start >= 2 and not buf[start] & 0x80:
            try:
                tid, sid, _ns, p, end = parse_data(buf, start, n)
                proto, q = protocol_at(buf, p, end)
            except (L2tpError, PppError):
                c["malformed"] += 1
                return
            b = self.by_ids.get((tid << 16) | sid)
            if b is not None and proto == PROTO_IPV6 and b.net6 is not None:
                if self._ipv6_in(b, buf, q, end, route, sport, peer, now):
                    return
            if b is not None and proto == PROTO_IP:
                if (b.route is not route or b.sport != sport) if route is not None else (b.peer != peer):
                    c["wrong_peer"] += 1
                    return
                if self.server:
                    # Only the address this session was given may appear as the source (no spoofing through
                    # us), and only IPv4: the TUN takes the version from the packet itself.
                    if end - q < 20 or buf[q] >> 4 != 4 or buf[q + 12:q + 16] != b.addr:
                        b.spoofed += 1
                        c["spoofed"] += 1
                        return
                    if self.dhcp and buf[q + 9] == 17:
                        h = q + (buf[q] & 15) * 4
                        if h + 8 <= end and buf[h + 2] == 0 and buf[h + 3] == 67:
                            # DHCPINFORM to the server (Windows, macOS): answered by the endpoint, not routed.
                            self.up.on_dhcp(b.key, bytes(buf[q:end]), now)
                            return
                if b.meter_in is not None and not b.meter_in.allow(end - q, now):
                    c["policed"] += 1
                    return
                b.rx_packets += 1
                b.rx_bytes += end - q
                self.tun.write(memoryview(buf)[q:end])
                return
        if route is not None:
            key = (route.peer[0], route.peer[1], sport)
        elif self.role == "client":
            key = self.single.peer if self.single is not None else peer
            key = peer if key is None else key
        else:
            key = peer
        self.up.on_l2tp(bytes(buf[start:n]), key, now)

    def _ipv6_in(self, b, buf, q, end, route, sport, peer, now):
        """An IPv6 packet of an IPv6 session: True when written to the TUN or dropped, False to hand it up
        (server: anything to a link-local or multicast address, i.e. Neighbor Discovery; client: RAs)."""
        c = self.rare
        if (b.route is not route or b.sport != sport) if route is not None else (b.peer != peer):
            c["wrong_peer"] += 1
            return True
        if end - q < 40 or buf[q] >> 4 != 6:
            c["malformed"] += 1
            return True
        if on_link(buf, q + 24):
            if self.role == "server":
                return False
            if buf[q + 6] == 58 and end - q > 40 and buf[q + 40] == 134:
                return False  # ICMPv6 Router Advertisement (RFC 4861 4.2): the endpoint configures from it
        elif self.role == "server" and buf[q + 8:q + 16] != b.net6:
            # A session sends only from its own /64 (its link-local ones reach only us, handed up above).
            b.spoofed += 1
            c["spoofed"] += 1
            return True
        if b.meter_in is not None and not b.meter_in.allow(end - q, now):
            c["policed"] += 1
            return True
        b.rx_packets += 1
        b.rx6_packets += 1
        b.rx_bytes += end - q
        b.rx6_bytes += end - q
        self.tun.write(memoryview(buf)[q:end])
        return True

    def _tun6(self, n, now):
        """One IPv6 packet read from the TUN at tbuf[HEADROOM:HEADROOM + n]."""
        tview = self.tview
        if n < 40:
            return
        if self.role == "server":
            b = self.by_net6.get(bytes(tview[HEADROOM + 24:HEADROOM + 32]))
        else:
            b = self.single
            if b is not None and b.net6 is None:
                b = None
        if b is None:
            self.rare["no_route"] += 1
            return
        if b.meter_out is not None and not b.meter_out.allow(n, now):
            self.rare["policed"] += 1
            return
        b.tx_packets += 1
        b.tx_bytes += n
        b.tx6_packets += 1
        b.tx6_bytes += n
        self._frame_out(b, b.prefix6 if b.prefix6 is not None else b.enc.next_header() + _PPP_IP6, n, now)

    # -- send ----------------------------------------------------------------------------------------------

    def _on_tun(self, now):
        tbuf, tview, tread, read_into = self.tbuf, self.tview, self.tread, self.tun.read_into
        by_addr = self.by_addr if self.server else None
        single, raw = self.single, self.raw
        for _ in range(64):
            n = read_into(tread)  # straight into the buffer, HEADROOM bytes in
            if n <= 0:
                return
            if tbuf[HEADROOM] >> 4 == 6:
                self._tun6(n, now)
                continue
            if n < 20 or tbuf[HEADROOM] >> 4 != 4:
                continue
            b = by_addr.get(bytes(tview[HEADROOM + 16:HEADROOM + 20])) if by_addr is not None else single
            if b is None:
                self.rare["no_route"] += 1
                continue
            if b.meter_out is not None and not b.meter_out.allow(n, now):
                self.rare["policed"] += 1
                continue
            b.tx_packets += 1
            b.tx_bytes += n
            route = b.route
            pre = b.udp_prefix
            end = HEADROOM + n
            if pre is None:
                # Ns on every message (rare: RFC 2661 5.4): the encoder makes each header.
                self._frame_out(b, b.enc.next_header() + _PPP_IP, n, now)
                continue
            if route is None:
                # Plain L2TP: the L2TP/PPP prefix in front, one send.
                prefix = b.prefix
                start = HEADROOM - len(prefix)
                tview[start:HEADROOM] = prefix
                try:
                    if by_addr is not None:
                        self.udp.sendmsg((tview[start:end],), (), 0, b.peer)
                    else:
                        self.udp.sendmsg((tview[start:end],))
                except OSError:
                    self.rare["send_errors"] += 1
                continue
            # UDP + L2TP + PPP in front, the ESP trailer after: sealed in place, the packet is not copied.
            start = HEADROOM - len(pre)
            tview[start:HEADROOM] = pre
            length = end - start
            tbuf[start + 4] = length >> 8
            tbuf[start + 5] = length & 0xFF
            sa = route.sa
            if sa is None:
                self.rare["no_sa"] += 1
                continue
            try:
                pkt = sa.seal_view(tview, start, end, NEXT_HEADER_UDP)
            except EspExpired:
                self._expired(route, now)
                continue
            except EspError:
                self.rare["esp_errors"] += 1
                continue
            try:
                if route.encap:
                    self.s4500.sendto(pkt, route.peer)
                elif raw is not None:
                    raw.sendto(pkt, route.dest)
                else:
                    self.rare["esp_errors"] += 1  # raw ESP negotiated but no raw socket (no CAP_NET_RAW)
                    continue
            except OSError:
                self.rare["send_errors"] += 1
                continue
            self.esp_out += 1
            if sa.bytes >= route.soft and route.told is False:
                route.told = True
                self.up.on_expiring(route.spi_in, False, now)

    def _frame_out(self, b, prefix, n, now):
        """Send the packet read at tbuf[HEADROOM:HEADROOM + n] into session `b`: the L2TP/PPP `prefix` (and
        for IPsec the inner UDP header) written in front of it in place, then sealed or sent as it is."""
        tbuf, tview = self.tbuf, self.tview
        k = len(prefix)
        start = HEADROOM - k
        tview[start:HEADROOM] = prefix
        route = b.route
        if route is None:
            self._send_plain(b.peer, (tview[start:HEADROOM + n],))
            return
        start -= 8
        _UDP.pack_into(tbuf, start, L2TP_PORT, b.sport, 8 + k + n, 0)
        self._seal_send(route, bytes(tview[start:HEADROOM + n]), now)

    def _send_plain(self, peer, parts):
        try:
            if self.role == "client":
                self.udp.sendmsg(parts)
            else:
                self.udp.sendmsg(parts, (), 0, peer)
        except OSError:
            self.rare["send_errors"] += 1

    def _expired(self, route, now):
        self.rare["expired"] += 1
        if route.told is not None:
            route.told = None  # hard: said once (None), soft: True
            self.up.on_expiring(route.spi_in, True, now)

    def _seal_send(self, route, inner, now):
        """Seal one UDP/1701 datagram (bytes) for `route` and send it: control messages, IPv6, Ns sessions."""
        sa = route.sa
        c = self.rare
        if sa is None:
            c["no_sa"] += 1
            return
        try:
            pkt = sa.seal(inner, NEXT_HEADER_UDP)
        except EspExpired:
            self._expired(route, now)
            return
        except EspError:
            c["esp_errors"] += 1
            return
        try:
            if route.encap:
                self.s4500.sendto(pkt, route.peer)
            elif self.raw is not None:
                self.raw.sendto(pkt, route.dest)
            else:
                c["esp_errors"] += 1  # raw ESP negotiated but no raw socket (no CAP_NET_RAW)
                return
        except OSError:
            c["send_errors"] += 1
            return
        self.esp_out += 1
        if sa.bytes >= route.soft and route.told is False:
            route.told = True
            self.up.on_expiring(route.spi_in, False, now)

    def send_to_session(self, key, packet):
        """An IPv4 packet of our own (a DHCPACK) into session `key`, framed like any data packet."""
        b = self.bundles.get(key)
        if b is None:
            return
        prefix = b.prefix if b.prefix is not None else b.enc.next_header() + _PPP_IP
        if b.route is None:
            self._send_plain(b.peer, (prefix, packet))
            return
        body = prefix + bytes(packet)
        self._seal_send(b.route, struct.pack("!HHHH", L2TP_PORT, b.sport, 8 + len(body), 0) + body, None)

    def counters_of(self, key):
        """(in_octets, out_octets, in_packets, out_packets) of a session, "in" being from the user."""
        b = self.bundles.get(key)
        if b is None:
            return (0, 0, 0, 0)
        return (b.rx_bytes, b.tx_bytes, b.rx_packets, b.tx_packets)

    # -- status --------------------------------------------------------------------------------------------

    def session_counters(self, key):
        b = self.bundles.get(key)
        if b is None:
            return None
        return {"rx_packets": b.rx_packets, "rx_bytes": b.rx_bytes, "tx_packets": b.tx_packets,
                "tx_bytes": b.tx_bytes, "spoofed": b.spoofed, "rx6_packets": b.rx6_packets,
                "rx6_bytes": b.rx6_bytes, "tx6_packets": b.tx6_packets, "tx6_bytes": b.tx6_bytes}

    def sa_counters(self):
        """spi_in (int) -> {packets_in, bytes_in}, and spi_out -> {packets_out, bytes_out}."""
        out = {}
        for rec in self.inbound.values():
            out[rec.sa.spi] = {"packets_in": rec.sa.packets, "bytes_in": rec.sa.bytes}
        for sa, _soft, _spi_in in self.outs.values():
            out[sa.spi] = {"packets_out": sa.packets, "bytes_out": sa.bytes}
        return out
