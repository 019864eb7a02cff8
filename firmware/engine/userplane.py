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

What a packet costs, and what it does not: the TUN packet is read at HEADROOM into `tbuf`, its UDP/L2TP/PPP
prefix (built once per session, only the UDP length patched) is written in front of it and the ESP trailer
after it (`Outbound.seal_view`), so the payload is not copied before the cipher reads it; the received ESP
packet is opened from a view of the receive buffer. One dict lookup per packet each way finds the session
(bytes key: the destination address; int key: tunnel id << 16 | session id), one more finds the inbound SA
(bytes key: the SPI). Counters are integers in slots (the per-packet ones on `UserPlane`, `counters` adds them
to the rare ones); nothing per packet logs, builds a tuple key or calls a method that only forwards.
"""

import socket
import struct

from sluice.esp.errors import EspError, EspExpired
from sluice.esp.lifetime import Lifetime
from sluice.esp.sa import Inbound, NEXT_HEADER_UDP, Outbound
from sluice.l2tp.data import DataEncoder, parse_data
from sluice.l2tp.errors import L2tpError
from sluice.ppp.framing import PROTO_IP, PppError, protocol_at

IKE_PORT = 500
NATT_PORT = 4500
L2TP_PORT = 1701
IPPROTO_ESP = 50
HEADROOM = 64  # room in front of a TUN packet for UDP (8) + L2TP (up to 16) + PPP (4) headers
TAILROOM = 32  # room after it for the ESP trailer (padding to a 16-byte block + pad length + next header)
MAX_PACKET = 65535
LOCAL_FOR_MAX = 1024  # remembered "which of our addresses did this peer reach" entries (wildcard listen)
_NEVER = 1 << 62
_PPP_IP = b"\xff\x03\x00\x21"  # PPP address, control and protocol for IPv4 (RFC 1662 3.1)
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
                 "rx_bytes", "tx_packets", "tx_bytes", "spoofed")

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
            self.prefix = self.udp_prefix = None
        else:
            self.enc = None
            self.prefix = bytes(header) + _PPP_IP
            # UDP/1701 header (length patched per packet, checksum 0: RFC 3948 3.1.2) + L2TP + PPP, for IPsec.
            self.udp_prefix = _UDP.pack(L2TP_PORT, self.sport, 0, 0) + self.prefix


class UserPlane:
    __slots__ = ("loop", "up", "role", "server", "backend", "rng", "tun", "ipsec", "listen", "sockets", "s500",
                 "s4500", "raw", "udp", "inbound", "outs", "routes", "bundles", "by_addr", "by_ids", "single",
                 "local_for", "buf", "view", "tbuf", "tview", "tread", "esp_in", "esp_out", "rare")

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
        self.routes = {}      # IKE peer (ip, port) -> _Route
        self.bundles = {}     # (tid, sid) -> Bundle
        self.by_addr = {}     # 4-byte address -> Bundle (server)
        self.single = None    # client: the one Bundle
        self.local_for = {}   # peer address -> our address it reached (wildcard listen), bounded
        self.by_ids = {}      # tid << 16 | sid -> Bundle: the receive path's one lookup
        self.buf = bytearray(MAX_PACKET)
        self.view = memoryview(self.buf)
        self.tbuf = bytearray(HEADROOM + MAX_PACKET + TAILROOM)
        self.tview = memoryview(self.tbuf)
        self.tread = self.tview[HEADROOM:HEADROOM + MAX_PACKET]  # where a TUN packet is read
        self.esp_in = self.esp_out = 0  # the per-packet counters; `counters` shows them with the rest
        self.rare = {"unknown_spi": 0, "esp_errors": 0, "not_l2tp": 0, "no_sa": 0, "malformed": 0,
                     "unknown_session": 0, "wrong_peer": 0, "no_route": 0, "spoofed": 0, "send_errors": 0,
                     "expired": 0}

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
        try:
            inb = Inbound(e.spi_in, e.transform, e.enc_in, e.auth_in, e.salt_in, self.rng, self.backend, life)
            out = Outbound(e.spi_out, e.transform, e.enc_out, e.auth_out, e.salt_out, self.rng, self.backend, life)
        except (ValueError, EspError) as err:
            return "cannot install ESP SA %s with %s: %s" % (e.transform, e.peer[0], err)
        route = self._route(e.peer)
        self.inbound[e.spi_in.to_bytes(4, "big")] = _InSa(inb, route, e.encap, soft)
        self.outs[e.spi_out] = (out, soft, e.spi_in)
        return None

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

    def session_up(self, a):
        addr = socket.inet_aton(a.address)
        route = self.routes.get((a.peer[0], a.peer[1])) if len(a.peer) == 3 else None
        if len(a.peer) == 3 and route is None:
            route = self._route((a.peer[0], a.peer[1]))
        b = Bundle(a.key, a.peer, route, a.header, a.sequencing, addr)
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
            self._esp_in(bytes(view[:n]), peer[0], peer[1], True, now)

    def _on_raw(self, now):
        buf, view, recv = self.buf, self.view, self.raw.recvfrom_into
        for _ in range(64):
            try:
                n, addr = recv(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            ihl = (buf[0] & 0x0F) * 4
            if n < ihl + 8:
                self.rare["esp_errors"] += 1
                continue
            self._esp_in(bytes(view[ihl:n]), addr[0], 0, False, now)

    def _esp_in(self, packet, src, src_port, encap, now):
        """One ESP packet (bytes: one copy out of the receive buffer measured cheaper than opening a memoryview,
        whose indexing and slicing cost more in `Inbound.open`) from src:src_port.

        The data messages it carries go to the TUN device here, with the checks `_l2tp_in` makes for plain
        L2TP (one function per packet instead of two); everything else goes up to the endpoint."""
        rec = self.inbound.get(packet[:4])
        if rec is None:
            self.rare["unknown_spi"] += 1
            return
        route = rec.route
        # The SA is bound to its peer's address: ESP for it from elsewhere is dropped before any crypto.
        if src != route.peer[0] or encap != rec.encap:
            self.rare["unknown_spi"] += 1
            return
        sa = rec.sa
        try:
            payload, n, nh = sa.open_in(packet)  # the UDP datagram is payload[:n]
        except EspExpired:
            self.rare["expired"] += 1
            if not rec.hard_told:
                rec.hard_told = True
                self.up.on_expiring(sa.spi, True, now)
            return
        except EspError:
            self.rare["esp_errors"] += 1
            return
        self.esp_in += 1
        if encap and src_port != route.peer[1]:
            # Authenticated ESP from a new port of the same address: the endpoint decides whether to follow.
            self.up.on_esp_from(sa.spi, (src, src_port), now)
        if now - rec.last_rx > 1.0:  # DPD only needs to know the peer is alive, not every packet
            rec.last_rx = now
            self.up.on_traffic(route.peer, now)
        if sa.bytes >= rec.soft and not rec.told:
            rec.told = True
            self.up.on_expiring(sa.spi, False, now)
        if nh != NEXT_HEADER_UDP or n < 8 or ((payload[2] << 8) | payload[3]) != L2TP_PORT:
            self.rare["not_l2tp"] += 1  # transport-mode policy: only UDP to 1701 is carried
            return
        sport = (payload[0] << 8) | payload[1]
        if n > 9 and not payload[8] & 0x80:
            try:
                tid, sid, _ns, p, end = parse_data(payload, 8, n)
                proto, q = protocol_at(payload, p, end)
            except (L2tpError, PppError):
                self.rare["malformed"] += 1
                return
            b = self.by_ids.get((tid << 16) | sid)
            if b is not None and proto == PROTO_IP:
                if b.route is not route or b.sport != sport:
                    self.rare["wrong_peer"] += 1
                    return
                # Server: only the address this session was given may appear as the source (no spoofing
                # through us), and only IPv4: the TUN takes the version from the packet itself.
                if self.server and (end - q < 20 or payload[q] >> 4 != 4 or payload[q + 12:q + 16] != b.addr):
                    b.spoofed += 1
                    self.rare["spoofed"] += 1
                    return
                b.rx_packets += 1
                b.rx_bytes += end - q
                self.tun.write(payload[q:end])
                return
        self.up.on_l2tp(payload[8:n], (route.peer[0], route.peer[1], sport), now)

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
            self._l2tp_in(buf, 0, n, peer, now)

    def _l2tp_in(self, buf, start, n, peer, now):
        """One plain UDP/1701 datagram in buf[start:n] from `peer` (IPsec's are in `_esp_in`)."""
        if n - start >= 2 and not buf[start] & 0x80:
            try:
                tid, sid, _ns, p, end = parse_data(buf, start, n)
                proto, q = protocol_at(buf, p, end)
            except (L2tpError, PppError):
                self.rare["malformed"] += 1
                return
            b = self.by_ids.get((tid << 16) | sid)
            if b is not None and proto == PROTO_IP:
                if b.peer != peer:
                    self.rare["wrong_peer"] += 1
                    return
                if self.server and (end - q < 20 or buf[q] >> 4 != 4 or buf[q + 12:q + 16] != b.addr):
                    b.spoofed += 1
                    self.rare["spoofed"] += 1
                    return
                b.rx_packets += 1
                b.rx_bytes += end - q
                self.tun.write(memoryview(buf)[q:end])
                return
        if self.role == "client":
            key = self.single.peer if self.single is not None else peer
            key = peer if key is None else key
        else:
            key = peer
        self.up.on_l2tp(bytes(buf[start:n]), key, now)

    # -- send ----------------------------------------------------------------------------------------------

    def _on_tun(self, now):
        tbuf, tview, tread, read_into = self.tbuf, self.tview, self.tread, self.tun.read_into
        by_addr = self.by_addr if self.server else None
        single, raw = self.single, self.raw
        for _ in range(64):
            n = read_into(tread)  # straight into the buffer, HEADROOM bytes in
            if n <= 0:
                return
            if n < 20 or tbuf[HEADROOM] >> 4 != 4:
                continue
            b = by_addr.get(bytes(tview[HEADROOM + 16:HEADROOM + 20])) if by_addr is not None else single
            if b is None:
                self.rare["no_route"] += 1
                continue
            b.tx_packets += 1
            b.tx_bytes += n
            end = HEADROOM + n
            route = b.route
            pre = b.udp_prefix
            if route is None or pre is None:
                self._send_framed(b, route, end, now)  # plain L2TP, or Ns on every message
                continue
            # UDP + L2TP + PPP in front, the ESP trailer after: sealed in place, no copy of the packet.
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

    def _send_framed(self, b, route, end, now):
        tview = self.tview
        prefix = b.prefix if b.prefix is not None else b.enc.next_header() + _PPP_IP
        k = len(prefix)
        start = HEADROOM - k
        tview[start:HEADROOM] = prefix
        if route is None:
            self._send_plain(b.peer, (tview[start:end],))
            return
        start -= 8
        _UDP.pack_into(self.tbuf, start, L2TP_PORT, b.sport, end - start, 0)
        self._seal_send(route, bytes(tview[start:end]), now)

    def _send_plain(self, peer, parts):
        try:
            if self.role == "client":
                self.udp.sendmsg(parts)
            else:
                self.udp.sendmsg(parts, (), 0, peer)
        except OSError:
            self.rare["send_errors"] += 1

    def _send_esp(self, route, pkt):
        try:
            if route.encap:
                self.s4500.sendto(pkt, route.peer)
            elif self.raw is not None:
                self.raw.sendto(pkt, route.dest)
            else:
                self.rare["esp_errors"] += 1  # raw ESP negotiated but no raw socket (no CAP_NET_RAW)
                return
        except OSError:
            self.rare["send_errors"] += 1
            return
        self.esp_out += 1

    def _expired(self, route, now):
        self.rare["expired"] += 1
        if route.told is not None:
            route.told = None  # hard: said once (None), soft: True
            self.up.on_expiring(route.spi_in, True, now)

    def _seal_send(self, route, inner, now):
        sa = route.sa
        if sa is None:
            self.rare["no_sa"] += 1
            return
        try:
            pkt = sa.seal(inner, NEXT_HEADER_UDP)
        except EspExpired:
            self._expired(route, now)
            return
        except EspError:
            self.rare["esp_errors"] += 1
            return
        self._send_esp(route, pkt)
        if sa.bytes >= route.soft and route.told is False:
            route.told = True
            self.up.on_expiring(route.spi_in, False, now)

    # -- status --------------------------------------------------------------------------------------------

    def session_counters(self, key):
        b = self.bundles.get(key)
        if b is None:
            return None
        return {"rx_packets": b.rx_packets, "rx_bytes": b.rx_bytes, "tx_packets": b.tx_packets,
                "tx_bytes": b.tx_bytes, "spoofed": b.spoofed}

    def sa_counters(self):
        """spi_in (int) -> {packets_in, bytes_in}, and spi_out -> {packets_out, bytes_out}."""
        out = {}
        for rec in self.inbound.values():
            out[rec.sa.spi] = {"packets_in": rec.sa.packets, "bytes_in": rec.sa.bytes}
        for sa, _soft, _spi_in in self.outs.values():
            out[sa.spi] = {"packets_out": sa.packets, "bytes_out": sa.bytes}
        return out
