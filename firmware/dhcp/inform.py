"""DHCPINFORM over PPP: the server's answer with classless routes and DNS (RFC 2131 3.4, 4.3.5; RFC 3442).

Theory of operation. Windows (and macOS) get their address from IPCP but learn routes only by DHCP: once
the PPP link is up, Windows sends a DHCPINFORM (BOOTP request, option 53 = 8, ciaddr = its PPP address) from
UDP 68 to 67, broadcast, through the link, and applies the static routes of the DHCPACK (option 249, the
Microsoft twin of RFC 3442's option 121), which is how "use default gateway on remote network" turned off
still reaches the networks behind the server. xl2tpd + pppd never answer it.

``answer_inform(ip_packet, server_ip, routes, dns, domain, client_ip=...)`` takes the IPv4 packet the PPP link delivered
and returns the IPv4 packet to send back on the same link, or None when it is not a well-formed DHCPINFORM
(so the data path can hand every UDP/67 packet here and forward or drop the rest as it would). The reply is
a DHCPACK (RFC 2131 4.3.5: no yiaddr, no lease time) from server_ip:67 to ciaddr:68 (or the packet's source
address when ciaddr is 0) with options 53 (ACK), 54 (server identifier), 1 (subnet mask, 255.255.255.255
on a point-to-point link), 6 (DNS), 15 (domain name), 121 and 249 (routes via server_ip, the peer address
of the client's PPP link), in that order. An option longer than 255 octets is split into several
instances (RFC 3396). No option 3 (router): that would install a default route.

Strict parsing: IPv4 header (version, IHL, total length, no fragment, header checksum), UDP length and
destination port, BOOTP op, hlen, the magic cookie, every option length; anything else returns None (and
``parse_inform`` raises DhcpError for the tests and the fuzzer). MicroPython subset, no I/O.
"""

import struct

BOOTREQUEST = 1
BOOTREPLY = 2
MAGIC = b"\x63\x82\x53\x63"  # RFC 2131 3
DHCPINFORM = 8
DHCPACK = 5

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_DOMAIN = 15
OPT_MSG_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAM_LIST = 55
OPT_CLASSLESS_ROUTES = 121  # RFC 3442
OPT_MS_CLASSLESS_ROUTES = 249  # Microsoft, same encoding
OPT_END = 255

SERVER_PORT = 67
CLIENT_PORT = 68
_BOOTP_FIXED = 236  # op .. file (RFC 2131 2, figure 1)
BOOTP_MIN_LEN = 300  # RFC 1542 2.1: the minimum BOOTP message; shorter ones are padded


class DhcpError(ValueError):
    """A packet that is not a well-formed DHCPINFORM over IPv4/UDP."""


def ip_to_bytes(s):
    parts = s.split(".")
    if len(parts) != 4:
        raise DhcpError("%r is not an IPv4 address" % (s,))
    out = bytearray(4)
    for i in range(4):
        if not parts[i].isdigit() or int(parts[i]) > 255:
            raise DhcpError("%r is not an IPv4 address" % (s,))
        out[i] = int(parts[i])
    return bytes(out)


def parse_cidr(s):
    """('a.b.c.d', prefix length) of 'a.b.c.d/n'; host bits must be zero."""
    if "/" not in s:
        raise DhcpError("%r is not a.b.c.d/n" % (s,))
    i = s.find("/")
    addr, plen = s[:i], s[i + 1:]
    if not plen.isdigit() or int(plen) > 32:
        raise DhcpError("%r has no prefix length 0..32" % (s,))
    n = int.from_bytes(ip_to_bytes(addr), "big")
    p = int(plen)
    mask = ((0xFFFFFFFF << (32 - p)) & 0xFFFFFFFF) if p else 0
    if n & ~mask & 0xFFFFFFFF:
        raise DhcpError("%r has host bits set" % (s,))
    return addr, p


def checksum(data):
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) & 1:
        data = data + b"\x00"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def classless_routes(routes, router):
    """RFC 3442 encoding: for each route the prefix length, the significant octets of the destination, the
    router. `routes` are 'a.b.c.d/n' strings."""
    gw = ip_to_bytes(router)
    out = bytearray()
    for r in routes:
        addr, p = parse_cidr(r)
        out.append(p)
        out += ip_to_bytes(addr)[:(p + 7) // 8]
        out += gw
    return bytes(out)


def _option(code, value):
    """One option; longer than 255 octets becomes several instances (RFC 3396 6)."""
    if not value:
        return bytes((code, 0))
    out = bytearray()
    for i in range(0, len(value), 255):
        chunk = value[i:i + 255]
        out.append(code)
        out.append(len(chunk))
        out += chunk
    return bytes(out)


def parse_options(data):
    """{code: value} with repeated options concatenated (RFC 3396); DhcpError on an overrun or no End."""
    opts = {}
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == OPT_PAD:
            i += 1
            continue
        if code == OPT_END:
            return opts
        if i + 2 > n or i + 2 + data[i + 1] > n:
            raise DhcpError("DHCP option %d overruns the packet" % code)
        v = bytes(data[i + 2:i + 2 + data[i + 1]])
        opts[code] = opts[code] + v if code in opts else v
        i += 2 + data[i + 1]
    raise DhcpError("DHCP options without an End option")


class Inform:
    """What answer_inform needs from a client's DHCPINFORM."""

    __slots__ = ("src", "xid", "flags", "ciaddr", "chaddr_field", "params")

    def __init__(self, src, xid, flags, ciaddr, chaddr_field, params):
        self.src = src  # IPv4 source address of the packet (4 octets)
        self.xid = xid  # transaction id (4 octets), echoed
        self.flags = flags  # 2 octets, echoed (RFC 2131 4.3.5)
        self.ciaddr = ciaddr  # the client's address (4 octets), where the ACK goes
        self.chaddr_field = chaddr_field  # htype, hlen, and the 16-octet chaddr, echoed
        self.params = params  # option 55 parameter request list (bytes), b"" if absent


def parse_inform(pkt):
    """An Inform from an IPv4 packet; DhcpError when it is anything else."""
    n = len(pkt)
    if n < 20 or pkt[0] >> 4 != 4:
        raise DhcpError("not an IPv4 packet")
    ihl = (pkt[0] & 0x0F) * 4
    total = (pkt[2] << 8) | pkt[3]
    if ihl < 20 or total < ihl + 8 or total > n:
        raise DhcpError("IPv4 header or total length does not fit")
    if checksum(bytes(pkt[:ihl])) != 0:
        raise DhcpError("IPv4 header checksum is wrong")
    if (pkt[6] & 0x3F) or pkt[7]:
        raise DhcpError("IPv4 fragment")
    if pkt[9] != 17:
        raise DhcpError("not UDP")
    u = ihl
    ulen = (pkt[u + 4] << 8) | pkt[u + 5]
    if ulen < 8 or u + ulen > total:
        raise DhcpError("UDP length does not fit the IPv4 packet")
    if (pkt[u + 2] << 8 | pkt[u + 3]) != SERVER_PORT:
        raise DhcpError("not to UDP port 67")
    b = bytes(pkt[u + 8:u + ulen])
    if len(b) < _BOOTP_FIXED + 4 + 1:
        raise DhcpError("BOOTP message too short")
    if b[0] != BOOTREQUEST:
        raise DhcpError("not a BOOTREQUEST")
    if b[2] > 16:
        raise DhcpError("hardware address length %d > 16" % b[2])
    if b[_BOOTP_FIXED:_BOOTP_FIXED + 4] != MAGIC:
        raise DhcpError("no DHCP magic cookie")
    opts = parse_options(b[_BOOTP_FIXED + 4:])
    t = opts.get(OPT_MSG_TYPE)
    if t is None or len(t) != 1:
        raise DhcpError("no DHCP message type")
    if t[0] != DHCPINFORM:
        raise DhcpError("DHCP message type %d is not DHCPINFORM" % t[0])
    return Inform(bytes(pkt[12:16]), b[4:8], b[10:12], b[12:16], b[1:3] + b[28:44], opts.get(OPT_PARAM_LIST, b""))


def build_ack(inform, server_ip, routes, dns, domain, mask="255.255.255.255"):
    """The DHCPACK BOOTP payload (RFC 2131 4.3.5) for a parsed Inform."""
    sid = ip_to_bytes(server_ip)
    bootp = bytearray(_BOOTP_FIXED)
    bootp[0] = BOOTREPLY
    bootp[1:3] = inform.chaddr_field[0:2]
    bootp[4:8] = inform.xid
    bootp[10:12] = inform.flags
    bootp[12:16] = inform.ciaddr
    bootp[28:44] = inform.chaddr_field[2:18]
    opts = bytearray(MAGIC)
    opts += _option(OPT_MSG_TYPE, bytes((DHCPACK,)))
    opts += _option(OPT_SERVER_ID, sid)
    opts += _option(OPT_SUBNET_MASK, ip_to_bytes(mask))
    if dns:
        opts += _option(OPT_DNS, b"".join(ip_to_bytes(d) for d in dns))
    if domain:
        opts += _option(OPT_DOMAIN, domain.encode())
    if routes:
        r = classless_routes(routes, server_ip)
        opts += _option(OPT_CLASSLESS_ROUTES, r)
        opts += _option(OPT_MS_CLASSLESS_ROUTES, r)
    opts.append(OPT_END)
    out = bytes(bootp) + bytes(opts)
    if len(out) < BOOTP_MIN_LEN:
        out += b"\x00" * (BOOTP_MIN_LEN - len(out))  # Pad options, as ISC dhcpd does for old clients
    return out


def ipv4_udp(src, dst, sport, dport, payload, ttl=64):
    """An IPv4/UDP packet with both checksums (src, dst: 4 octets)."""
    ulen = 8 + len(payload)
    udp = struct.pack(">HHHH", sport, dport, ulen, 0) + payload
    pseudo = src + dst + struct.pack(">BBH", 0, 17, ulen)
    c = checksum(pseudo + udp) or 0xFFFF  # RFC 768: a computed zero is sent as all ones
    udp = udp[:6] + struct.pack(">H", c) + udp[8:]
    hdr = struct.pack(">BBHHHBBH", 0x45, 0, 20 + ulen, 0, 0, ttl, 17, 0) + src + dst
    hdr = hdr[:10] + struct.pack(">H", checksum(hdr)) + hdr[12:]
    return hdr + udp


def is_dhcp_request(pkt):
    """Cheap test for the data path: an unfragmented IPv4 UDP packet to port 67."""
    if len(pkt) < 28 or pkt[0] >> 4 != 4 or pkt[9] != 17:
        return False
    u = (pkt[0] & 0x0F) * 4
    return len(pkt) >= u + 8 and pkt[u + 2] == 0 and pkt[u + 3] == SERVER_PORT


def answer_inform(ip_packet, server_ip, routes, dns, domain, mask="255.255.255.255", client_ip=None):
    """The IPv4 packet answering a DHCPINFORM in `ip_packet`, or None if it is not one.

    server_ip: our address on the PPP link (server identifier and the routes' gateway); routes: list of
    'a.b.c.d/n'; dns: list of 'a.b.c.d'; domain: str or None; client_ip: when given, the address IPCP gave
    this link: an INFORM claiming another one (ciaddr or source) is not answered, so a reply never goes
    anywhere but back to the client that asked."""
    try:
        inf = parse_inform(ip_packet)
    except DhcpError:
        return None
    dst = inf.ciaddr if inf.ciaddr != b"\x00\x00\x00\x00" else inf.src
    if dst == b"\x00\x00\x00\x00":
        return None  # RFC 2131 4.3.5: nowhere to send it
    if client_ip is not None and dst != ip_to_bytes(client_ip):
        return None
    payload = build_ack(inf, server_ip, routes, dns, domain, mask)
    return ipv4_udp(ip_to_bytes(server_ip), dst, SERVER_PORT, CLIENT_PORT, payload)
