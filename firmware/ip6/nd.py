"""ICMPv6 (RFC 4443) and the Neighbor Discovery messages of a PPP link: Router Solicitation and Router
Advertisement (RFC 4861 4.1, 4.2) with the Prefix Information (4.6.2), MTU (4.6.4), Route Information
(RFC 4191 2.3) and Recursive DNS Server (RFC 8106 5.1) options.

Theory of operation: pure codecs on bytes, no state. `packet(src, dst, hop_limit, icmp)` wraps an ICMPv6
message in an IPv6 header and fills its checksum (RFC 4443 2.3 over the RFC 8200 8.1 pseudo-header);
`parse_packet(buf, p, end)` checks the IPv6 header and the checksum and returns the ICMPv6 message.
`parse_rs` / `parse_ra` apply the validity checks of RFC 4861 6.1.1 / 6.1.2 that do not need the IPv6 header
(code 0, ICMP length, every option length non-zero and inside the message); the caller checks hop limit 255
and the link-local source, which need it (`valid_nd_source`). Unknown options are skipped (4.6); a PPP link
has no link-layer address, so Source Link-Layer Address options are neither sent nor required (RFC 5072 5).
"""

from sluice.ip6.addr import is_link_local

NH_ICMP6 = 58
ECHO_REQUEST = 128
ECHO_REPLY = 129
RS = 133
RA = 134

OPT_SLLA = 1
OPT_PREFIX = 3
OPT_MTU = 5
OPT_ROUTE = 24
OPT_RDNSS = 25

FLAG_L = 0x80  # Prefix Information: on-link (RFC 4861 4.6.2)
FLAG_A = 0x40  # Prefix Information: autonomous address configuration (RFC 4862 5.5.3)
INFINITY = 0xFFFFFFFF


class NdError(ValueError):
    """An IPv6 packet or ICMPv6 message that does not parse or fails its checks."""


def _u16(b, i):
    return (b[i] << 8) | b[i + 1]


def _u32(b, i):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def _p32(v):
    return bytes((v >> 24 & 0xFF, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF))


def checksum(src, dst, msg):
    """The ICMPv6 checksum of msg (its checksum field zero or not: that field is skipped) from src to dst."""
    n = len(msg)
    s = 0
    for a in (src, dst):
        for i in range(0, 16, 2):
            s += (a[i] << 8) | a[i + 1]
    s += (n >> 16) + (n & 0xFFFF) + NH_ICMP6  # RFC 8200 8.1: upper-layer length (32 bits), next header
    for i in range(0, n - 1, 2):
        if i != 2:
            s += (msg[i] << 8) | msg[i + 1]
    if n & 1:
        s += msg[n - 1] << 8
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    s = ~s & 0xFFFF
    return s if s else 0xFFFF


def packet(src, dst, hop_limit, msg):
    """IPv6 header (RFC 8200 3) + the ICMPv6 message with its checksum filled in."""
    n = len(msg)
    if n > 0xFFFF:
        raise NdError("ICMPv6 message too long")
    c = checksum(src, dst, msg)
    body = bytearray(msg)
    body[2] = c >> 8
    body[3] = c & 0xFF
    hdr = bytes((0x60, 0, 0, 0, n >> 8, n & 0xFF, NH_ICMP6, hop_limit))
    return hdr + bytes(src) + bytes(dst) + bytes(body)


def parse_packet(buf, p, end):
    """(src, dst, hop_limit, icmp message bytes) of the IPv6 packet at buf[p:end] carrying ICMPv6 directly.

    Raises NdError for anything else: not version 6, a payload length that does not fit, another next header
    (Neighbor Discovery never travels behind extension headers we would need to walk), a bad checksum.
    """
    if end - p < 40 + 4:
        raise NdError("shorter than an IPv6 header and an ICMPv6 header")
    if buf[p] >> 4 != 6:
        raise NdError("not IPv6")
    plen = _u16(buf, p + 4)
    if 40 + plen > end - p:
        raise NdError("IPv6 payload length %d exceeds the packet" % plen)
    if buf[p + 6] != NH_ICMP6:
        raise NdError("next header %d is not ICMPv6" % buf[p + 6])
    src = bytes(buf[p + 8:p + 24])
    dst = bytes(buf[p + 24:p + 40])
    msg = bytes(buf[p + 40:p + 40 + plen])
    if len(msg) < 4:
        raise NdError("ICMPv6 message shorter than 4 octets")
    if checksum(src, dst, msg) != _u16(msg, 2):
        raise NdError("bad ICMPv6 checksum")
    return src, dst, buf[p + 7], msg


def valid_nd_source(src, hop_limit):
    """RFC 4861 6.1.2: a Router Advertisement (and what a router accepts as a Solicitation) has hop limit 255,
    so it cannot have crossed a router; an RA's source is link-local."""
    return hop_limit == 255 and is_link_local(src)


# -- options -------------------------------------------------------------------------------------------------

def _options(msg, start):
    """[(type, body bytes without the two header octets)] of the ND options from msg[start:]."""
    out = []
    i = start
    n = len(msg)
    while i < n:
        if i + 2 > n:
            raise NdError("option header truncated")
        t, ln = msg[i], msg[i + 1] * 8
        if ln == 0:
            raise NdError("option %d has length 0" % t)  # RFC 4861 4.6: discard the whole message
        if i + ln > n:
            raise NdError("option %d runs past the message" % t)
        out.append((t, msg[i + 2:i + ln]))
        i += ln
    return out


class Prefix:
    """A Prefix Information option (RFC 4861 4.6.2)."""

    __slots__ = ("prefix", "length", "flags", "valid", "preferred")

    def __init__(self, prefix, length, flags=FLAG_L | FLAG_A, valid=86400, preferred=14400):
        self.prefix = prefix        # 16 octets (bits past `length` zero)
        self.length = length        # prefix length in bits
        self.flags = flags          # FLAG_L | FLAG_A
        self.valid = valid          # valid lifetime, seconds (INFINITY: forever)
        self.preferred = preferred  # preferred lifetime, seconds

    def encode(self):
        return (bytes((OPT_PREFIX, 4, self.length, self.flags)) + _p32(self.valid) + _p32(self.preferred)
                + b"\x00" * 4 + bytes(self.prefix))


class Route:
    """A Route Information option (RFC 4191 2.3): a prefix reachable through the advertising router."""

    __slots__ = ("prefix", "length", "preference", "lifetime")

    def __init__(self, prefix, length, lifetime, preference=0):
        self.prefix = prefix          # 16 octets
        self.length = length          # 0..128
        self.lifetime = lifetime      # seconds
        self.preference = preference  # 0 medium, 1 high, 3 low (two-bit signed, RFC 4191 2.1)

    def encode(self):
        k = (self.length + 63) // 64  # 0, 1 or 2 words of prefix: option length 1, 2 or 3 (RFC 4191 2.3)
        return (bytes((OPT_ROUTE, 1 + k, self.length, (self.preference & 3) << 3)) + _p32(self.lifetime)
                + bytes(self.prefix[:8 * k]))


class RouterAdvert:
    """A Router Advertisement (RFC 4861 4.2) with the options a PPP link uses."""

    __slots__ = ("hop_limit", "flags", "router_lifetime", "reachable", "retrans", "prefixes", "mtu", "dns",
                 "dns_lifetime", "routes")

    def __init__(self, router_lifetime=1800, prefixes=None, mtu=0, dns=None, dns_lifetime=1800, routes=None,
                 hop_limit=64, flags=0, reachable=0, retrans=0):
        self.hop_limit = hop_limit              # Cur Hop Limit for the hosts (0: unspecified)
        self.flags = flags                      # M (0x80), O (0x40)
        self.router_lifetime = router_lifetime  # seconds as a default router (0: not one)
        self.reachable = reachable              # ms (0: unspecified)
        self.retrans = retrans                  # ms (0: unspecified)
        self.prefixes = list(prefixes or [])    # [Prefix]
        self.mtu = mtu                          # the link MTU (0: no MTU option)
        self.dns = list(dns or [])              # recursive DNS servers, 16 octets each (RFC 8106)
        self.dns_lifetime = dns_lifetime        # seconds
        self.routes = list(routes or [])        # [Route]

    def encode(self):
        """The ICMPv6 message with a zero checksum (`packet` fills it)."""
        out = [bytes((RA, 0, 0, 0, self.hop_limit, self.flags, self.router_lifetime >> 8,
                      self.router_lifetime & 0xFF)), _p32(self.reachable), _p32(self.retrans)]
        if self.mtu:
            out.append(bytes((OPT_MTU, 1, 0, 0)) + _p32(self.mtu))
        for pi in self.prefixes:
            out.append(pi.encode())
        for r in self.routes:
            out.append(r.encode())
        if self.dns:
            out.append(bytes((OPT_RDNSS, 1 + 2 * len(self.dns), 0, 0)) + _p32(self.dns_lifetime)
                       + b"".join(bytes(a) for a in self.dns))
        return b"".join(out)


def router_solicitation():
    """An RS message (RFC 4861 4.1) with a zero checksum and no options (no link-layer address on PPP)."""
    return bytes((RS, 0, 0, 0, 0, 0, 0, 0))


def parse_rs(msg):
    """Checks an RS (RFC 4861 6.1.1) and returns its options."""
    if len(msg) < 8 or msg[0] != RS:
        raise NdError("not a Router Solicitation")
    if msg[1] != 0:
        raise NdError("Router Solicitation with code %d" % msg[1])
    return _options(msg, 8)


def parse_ra(msg):
    """A RouterAdvert from an RA message (RFC 4861 6.1.2 checks that need only the message)."""
    if len(msg) < 16 or msg[0] != RA:
        raise NdError("not a Router Advertisement")
    if msg[1] != 0:
        raise NdError("Router Advertisement with code %d" % msg[1])
    ra = RouterAdvert(router_lifetime=_u16(msg, 6), hop_limit=msg[4], flags=msg[5], reachable=_u32(msg, 8),
                      retrans=_u32(msg, 12))
    for t, v in _options(msg, 16):
        if t == OPT_PREFIX:
            if len(v) != 30:
                raise NdError("Prefix Information option of %d octets" % (len(v) + 2))
            plen = v[0]
            if plen > 128:
                raise NdError("prefix length %d" % plen)
            ra.prefixes.append(Prefix(bytes(v[14:30]), plen, v[1], _u32(v, 2), _u32(v, 6)))
        elif t == OPT_MTU:
            if len(v) != 6:
                raise NdError("MTU option of %d octets" % (len(v) + 2))
            ra.mtu = _u32(v, 2)
        elif t == OPT_ROUTE:
            plen = v[0]
            k = (len(v) - 6) // 8
            if len(v) < 6 or plen > 128 or (plen > 64 and k < 2) or (plen > 0 and k < 1):
                raise NdError("Route Information option with prefix length %d in %d octets" % (plen, len(v) + 2))
            pfx = bytes(v[6:6 + 8 * k]) + b"\x00" * (16 - 8 * k)
            ra.routes.append(Route(pfx[:16], plen, _u32(v, 2), (v[1] >> 3) & 3))
        elif t == OPT_RDNSS:
            if len(v) < 22 or (len(v) - 6) % 16:
                raise NdError("RDNSS option of %d octets" % (len(v) + 2))  # RFC 8106 5.1: length >= 3, odd
            ra.dns_lifetime = _u32(v, 2)
            for i in range(6, len(v), 16):
                ra.dns.append(bytes(v[i:i + 16]))
    return ra


def echo_reply(msg):
    """The Echo Reply (RFC 4443 4.2) to an Echo Request message, checksum zero."""
    if len(msg) < 8 or msg[0] != ECHO_REQUEST or msg[1] != 0:
        raise NdError("not an Echo Request")
    return bytes((ECHO_REPLY, 0, 0, 0)) + bytes(msg[4:])
