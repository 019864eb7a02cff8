"""IPv6 addresses as 16 octets, their text form (RFC 4291 2.2, RFC 5952 4) and /64 interface identifiers.

Theory of operation: the core never asks the operating system (MicroPython has no `inet_pton`); parsing is
strict (no zone index, no IPv4-mapped tail), formatting is the canonical RFC 5952 form that `ip`, the kernel
and Python's `ipaddress` print.
"""


class Ip6Error(ValueError):
    """A text IPv6 address or prefix that does not parse."""


ZERO = b"\x00" * 16
ALL_NODES = b"\xff\x02" + b"\x00" * 13 + b"\x01"    # ff02::1 (RFC 4291 2.7.1)
ALL_ROUTERS = b"\xff\x02" + b"\x00" * 13 + b"\x02"  # ff02::2
_LL = b"\xfe\x80" + b"\x00" * 6
_HEX = "0123456789abcdefABCDEF"


def _group(s):
    if not 1 <= len(s) <= 4:
        raise Ip6Error("not an IPv6 address")
    for ch in s:
        if ch not in _HEX:
            raise Ip6Error("not an IPv6 address")
    return int(s, 16)


def parse(s):
    """'2001:db8::1' -> 16 octets."""
    if not isinstance(s, str) or not s or len(s) > 39:
        raise Ip6Error("not an IPv6 address")
    halves = s.split("::")
    if len(halves) > 2:
        raise Ip6Error("not an IPv6 address ('::' twice)")
    head = [_group(g) for g in halves[0].split(":")] if halves[0] else []
    tail = []
    if len(halves) == 2:
        tail = [_group(g) for g in halves[1].split(":")] if halves[1] else []
        if len(head) + len(tail) > 7:
            raise Ip6Error("not an IPv6 address (too many groups)")
        groups = head + [0] * (8 - len(head) - len(tail)) + tail
    else:
        groups = head
        if len(groups) != 8:
            raise Ip6Error("not an IPv6 address (needs 8 groups or '::')")
    out = bytearray(16)
    for i in range(8):
        out[2 * i] = groups[i] >> 8
        out[2 * i + 1] = groups[i] & 0xFF
    return bytes(out)


def text(b):
    """16 octets -> the RFC 5952 text form (lowercase, longest run of two or more zero groups as '::')."""
    if len(b) != 16:
        raise Ip6Error("an IPv6 address has 16 octets")
    g = [(b[2 * i] << 8) | b[2 * i + 1] for i in range(8)]
    best, best_len, i = -1, 1, 0
    while i < 8:
        if g[i] == 0:
            j = i
            while j < 8 and g[j] == 0:
                j += 1
            if j - i > best_len:  # RFC 5952 4.2.3: the first of equal runs; 4.2.2: never one group
                best, best_len = i, j - i
            i = j
        else:
            i += 1
    if best < 0:
        return ":".join("%x" % v for v in g)
    left = ":".join("%x" % v for v in g[:best])
    right = ":".join("%x" % v for v in g[best + best_len:])
    return left + "::" + right


def parse_prefix(s):
    """'2001:db8:77::/48' -> (16 octets, 48); host bits must be zero."""
    a, slash, n = s.partition("/")
    if not slash or not n.isdigit() or len(n) > 3 or int(n) > 128:
        raise Ip6Error("not an IPv6 prefix (like 2001:db8::/48)")
    b = parse(a)
    plen = int(n)
    if b != mask(b, plen):
        raise Ip6Error("host bits set past /%d" % plen)
    return b, plen


def mask(b, plen):
    """b with every bit past the first plen cleared."""
    out = bytearray(b)
    for i in range(16):
        keep = plen - 8 * i
        if keep <= 0:
            out[i] = 0
        elif keep < 8:
            out[i] &= (0xFF00 >> keep) & 0xFF
    return bytes(out)


def link_local(ifid):
    """fe80::/64 with the 8-octet interface identifier (RFC 4291 2.5.6, RFC 5072 5)."""
    return _LL + bytes(ifid)


def is_link_local(b, i=0):
    return b[i] == 0xFE and (b[i + 1] & 0xC0) == 0x80


def is_multicast(b, i=0):
    return b[i] == 0xFF


def on_link(b, i=0):
    """Is the address at b[i:] link-local or multicast (Neighbor Discovery's destinations), read in place."""
    return b[i] == 0xFF or (b[i] == 0xFE and (b[i + 1] & 0xC0) == 0x80)
