"""User-space L2TP/PPP data for the sessions a kernel-path server's kernel cannot carry; their ESP stays in XFRM.

Before Linux 6.11, l2tp_core looks an L2TPv2 session up only in the tunnel of the socket that received the
datagram, and the kernel hands an address/port pair to one socket. Of several clients behind one NAT (one
public address, inner port 1701 each) only one can then have a kernel tunnel and ppp unit. The others keep
their SAs and marked outbound policy in the kernel (kernelplane's `install_sa`), and their L2TP data reaches
user space. It arrives on that one client's tunnel socket, because l2tp_core passes up what it has no session
for (our session ids are unique across the server, so it never finds a wrong one), or on the listener. This
module carries it the way the user-space plane does:
- IPv4 from the session's own address, IPv6 from its /64, goes to the server's TUN device (the anchor of
  local_ip, which also takes the routes to such sessions' addresses and prefixes);
- what the TUN routes to them goes back out as an L2TP data message;
- PPP control frames, IPv6 to link-local or multicast addresses (Neighbor Discovery), and data for sessions
  not up yet go to the endpoint.

Outbound messages leave through the listener with the client's mark as an SO_MARK control message, so its own
policy and SA take them. Such a client gets no connected socket: a newer connected socket for the same pair
would take the datagrams of the kernel client's tunnel.

Per packet: one dict lookup each way; the session's L2TP/PPP prefixes are built once.
"""

from sluice.engine.meter import Meter
from sluice.ip6.addr import on_link
from sluice.l2tp.data import DataEncoder, parse_data
from sluice.l2tp.errors import L2tpError
from sluice.ppp.framing import PROTO_IP, PROTO_IPV6, PppError, protocol_at

_PPP_IP = b"\xff\x03\x00\x21"
_PPP_IP6 = b"\xff\x03\x00\x57"
MAX_PACKET = 65535


class UserSession:
    """One session of a client the kernel cannot carry: its L2TP peer, prefix, address and counters."""

    __slots__ = ("key", "peer", "ptid", "psid", "mark", "dest", "anc", "prefix", "prefix6", "enc", "addr", "net6",
                 "rx_packets",
                 "rx_bytes", "tx_packets", "tx_bytes", "rx6_packets", "rx6_bytes", "tx6_packets", "tx6_bytes",
                 "spoofed", "meter_in", "meter_out")

    def __init__(self, key, peer, ptid, psid, sequencing, mark, anc):
        self.key = key          # (our tunnel id, our session id)
        self.peer = peer        # the L2TP peer key (ip, IKE port, inner port)
        self.ptid = ptid
        self.psid = psid
        self.mark = mark        # the client's mark: its outbound policy and SA, and the set-mark of its inbound SAs
        self.dest = (peer[0], peer[2])  # where its datagrams go and come from (address, inner port)
        self.anc = anc          # the SO_MARK control message for `mark`, built once
        enc = DataEncoder(ptid, psid, sequencing)
        # Ns on every message (RFC 2661 5.4, rare): the encoder makes each header; else one prefix for all.
        self.enc = enc if sequencing else None
        self.prefix = None if sequencing else enc.header + _PPP_IP
        self.prefix6 = None if sequencing else enc.header + _PPP_IP6
        self.addr = None        # 4 bytes once the session carries IP (SessionUp)
        self.net6 = None        # its /64 (8 bytes) once it carries IPv6 (Session6Up)
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = self.spoofed = 0
        self.rx6_packets = self.rx6_bytes = self.tx6_packets = self.tx6_bytes = 0
        self.meter_in = self.meter_out = None


class UserSessions:
    """The user-space sessions of a kernel-path server. `send(dest, parts, anc)` puts an L2TP message (a
    sequence of buffers) on the wire to (address, port) with the control messages `anc` (the client's mark),
    True when sent; `mark_control(mark)` builds `anc`; `up` is the runner (on_l2tp, on_dhcp)."""

    def __init__(self, loop, up, tun, send, mark_control, counters):
        self.loop = loop
        self.up = up
        self.tun = tun
        self.send = send
        self.mark_control = mark_control
        self.counters = counters    # the kernel plane's counters dict: ours are added to it
        for k in ("user_rx", "user_tx", "user_spoofed", "user_no_route", "user_policed"):
            counters.setdefault(k, 0)
        self.sessions = {}      # (tid, sid) -> UserSession
        self.by_ids = {}        # tid << 16 | sid -> UserSession: the receive path's lookup
        self.by_addr = {}       # 4-byte client address -> UserSession: the TUN side's lookup
        self.by_net6 = {}       # 8-byte /64 -> UserSession (IPv6)
        self.dhcp = False       # the endpoint answers DHCPINFORM (kernel plane's `dhcp`)
        self.reading = False
        self.buf = bytearray(MAX_PACKET)
        self.view = memoryview(self.buf)

    def __len__(self):
        return len(self.sessions)

    def __contains__(self, key):
        return key in self.sessions

    def open(self, key, peer, ptid, psid, sequencing, mark):
        old = self.sessions.get(key)
        if old is not None:
            self.close(key)
        s = UserSession(key, peer, ptid, psid, sequencing, mark, self.mark_control(mark))
        self.sessions[key] = s
        self.by_ids[(key[0] << 16) | key[1]] = s
        if not self.reading and self.tun is not None:
            self.reading = True
            self.loop.add_reader(self.tun, self._on_tun)
        return s

    def session_up(self, key, address, rate):
        """The session carries IPv4 with `address` (dotted); rate: bytes per second each way, or None."""
        s = self.sessions.get(key)
        if s is None:
            return False
        a = bytes(int(x) for x in address.split("."))
        if s.addr is not None and self.by_addr.get(s.addr) is s:
            del self.by_addr[s.addr]
        s.addr = a
        self.by_addr[a] = s
        if rate:
            s.meter_in, s.meter_out = Meter(rate), Meter(rate)
        return True

    def session6_up(self, key, prefix):
        """The session carries IPv6 in the /64 `prefix` (8 bytes)."""
        s = self.sessions.get(key)
        if s is None or prefix is None:
            return s is not None
        self.session6_down(key)
        s.net6 = bytes(prefix)
        self.by_net6[s.net6] = s
        return True

    def session6_down(self, key):
        s = self.sessions.get(key)
        if s is not None and s.net6 is not None:
            if self.by_net6.get(s.net6) is s:
                del self.by_net6[s.net6]
            s.net6 = None

    def close(self, key):
        self.session6_down(key)
        s = self.sessions.pop(key, None)
        if s is None:
            return None
        if self.by_ids.get((key[0] << 16) | key[1]) is s:
            del self.by_ids[(key[0] << 16) | key[1]]
        if s.addr is not None and self.by_addr.get(s.addr) is s:
            del self.by_addr[s.addr]
        return s

    def close_all(self):
        for key in list(self.sessions):
            self.close(key)
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.tun)

    def keys_of(self, ike):
        """The sessions of the IKE peer (ip, port): what goes when its last SA goes."""
        return [k for k, s in self.sessions.items() if (s.peer[0], s.peer[1]) == ike]

    def move_peer(self, old, new):
        for s in self.sessions.values():
            if (s.peer[0], s.peer[1]) == old:
                s.peer = (new[0], new[1], s.peer[2])

    # -- from the client -----------------------------------------------------------------------------------

    def take(self, data, src, mark, now):
        """An L2TP data message from `src` (address, inner port), decrypted by an SA that set `mark` (None: the
        socket does not hand marks up): True when it was one of our sessions' (its IP written to the TUN, or
        dropped and counted); False to hand it to the endpoint (PPP control, a session not up, not ours).
        The mark tells clients behind one address apart: another client there cannot forge this one's IDs."""
        c = self.counters
        try:
            tid, sid, _ns, p, end = parse_data(data, 0, len(data))
            proto, q = protocol_at(data, p, end)
        except (L2tpError, PppError):
            return False
        s = self.by_ids.get((tid << 16) | sid)
        if s is None:
            return False
        if src != s.dest or (mark is not None and mark != s.mark):
            c["wrong_peer"] += 1
            return True
        if proto == PROTO_IPV6 and s.net6 is not None:
            return self._ipv6_in(s, data, q, end, now)
        if proto != PROTO_IP or s.addr is None:
            return False
        # Only the address this session was given may appear as the source, and only IPv4.
        if end - q < 20 or data[q] >> 4 != 4 or data[q + 12:q + 16] != s.addr:
            s.spoofed += 1
            c["user_spoofed"] += 1
            return True
        if self.dhcp and data[q + 9] == 17:
            h = q + (data[q] & 15) * 4
            if h + 8 <= end and data[h + 2] == 0 and data[h + 3] == 67:
                self.up.on_dhcp(s.key, bytes(data[q:end]), now)   # DHCPINFORM: answered, not routed
                return True
        return self._deliver(s, data, q, end, now, False)

    def _ipv6_in(self, s, data, q, end, now):
        """An IPv6 packet of the session: to the TUN from its /64; Neighbor Discovery (to a link-local or
        multicast address) to the endpoint (False)."""
        c = self.counters
        if end - q < 40 or data[q] >> 4 != 6:
            c["malformed"] += 1
            return True
        if on_link(data, q + 24):
            return False
        if data[q + 8:q + 16] != s.net6:
            s.spoofed += 1
            c["user_spoofed"] += 1
            return True
        return self._deliver(s, data, q, end, now, True)

    def _deliver(self, s, data, q, end, now, six):
        """The packet data[q:end], checked, to the TUN (or dropped by the session's rate limit). True."""
        n = end - q
        if s.meter_in is not None and not s.meter_in.allow(n, now):
            self.counters["user_policed"] += 1
            return True
        if six:
            s.rx6_packets += 1
            s.rx6_bytes += n
        else:
            s.rx_packets += 1
            s.rx_bytes += n
        self.counters["user_rx"] += 1
        self.tun.write(memoryview(data)[q:end])
        return True

    # -- to the client -------------------------------------------------------------------------------------

    def _on_tun(self, now):
        buf, view, by_addr, c = self.buf, self.view, self.by_addr, self.counters
        for _ in range(64):
            n = self.tun.read_into(buf)
            if n <= 0:
                return
            if buf[0] >> 4 == 6:
                s = self.by_net6.get(bytes(buf[24:32])) if n >= 40 else None
                six = True
            elif n >= 20 and buf[0] >> 4 == 4:
                s = by_addr.get(bytes(buf[16:20]))
                six = False
            else:
                continue
            if s is None:
                c["user_no_route"] += 1
                continue
            self._out(s, view[:n], now, six)

    def send_to_session(self, key, packet):
        """An IPv4 packet of our own (a DHCPACK) into the session."""
        s = self.sessions.get(key)
        if s is None or s.addr is None:
            return False
        self._out(s, memoryview(packet), None, False)
        return True

    def _out(self, s, packet, now, six):
        n = len(packet)
        if now is not None and s.meter_out is not None and not s.meter_out.allow(n, now):
            self.counters["user_policed"] += 1
            return
        if s.enc is not None:
            prefix = s.enc.next_header() + (_PPP_IP6 if six else _PPP_IP)
        else:
            prefix = s.prefix6 if six else s.prefix
        if self.send(s.dest, (prefix, packet), s.anc):
            if six:
                s.tx6_packets += 1
                s.tx6_bytes += n
            else:
                s.tx_packets += 1
                s.tx_bytes += n
            self.counters["user_tx"] += 1

    # -- status --------------------------------------------------------------------------------------------

    def counters_of(self, key):
        s = self.sessions.get(key)
        if s is None:
            return None
        return (s.rx_bytes + s.rx6_bytes, s.tx_bytes + s.tx6_bytes, s.rx_packets + s.rx6_packets,
                s.tx_packets + s.tx6_packets)

    def session_counters(self, key, unit):
        s = self.sessions.get(key)
        if s is None:
            return None
        rx_b, tx_b, rx_p, tx_p = self.counters_of(key)
        return {"rx_packets": rx_p, "rx_bytes": rx_b, "tx_packets": tx_p, "tx_bytes": tx_b, "spoofed": s.spoofed,
                "rx6_packets": s.rx6_packets, "rx6_bytes": s.rx6_bytes, "tx6_packets": s.tx6_packets,
                "tx6_bytes": s.tx6_bytes, "unit": unit, "datapath": "user"}
