"""PPP framing as L2TP carries it (RFC 1662 3, RFC 2661 3.1) and the control-packet codec (RFC 1661 5).

Theory of operation: L2TP strips HDLC flags, FCS and byte stuffing, so a PPP frame here is
``[FF 03] protocol information``. The address/control pair may be absent (ACFC, RFC 1661 6.6) and the
protocol field may be one byte (PFC, RFC 1661 6.5: an odd first octet ends the field). Frames we send
always carry FF 03 and a two-byte protocol, so a peer that never negotiated compression reads them.

Control packets (LCP, PAP, CHAP, IPCP, IPv6CP) share one layout: Code, Identifier, Length, Data (RFC 1661
5). Octets past Length are padding and ignored; a packet shorter than its Length is malformed.
Options are Type, Length, Data with Length counting the two header octets (RFC 1661 6).
"""

PROTO_IP = 0x0021
PROTO_IPV6 = 0x0057
PROTO_IPCP = 0x8021
PROTO_IPV6CP = 0x8057
PROTO_CCP = 0x80FD
PROTO_LCP = 0xC021
PROTO_PAP = 0xC023
PROTO_CHAP = 0xC223

PROTO_NAMES = {
    PROTO_IP: "IPv4", PROTO_IPV6: "IPv6", PROTO_IPCP: "IPCP", PROTO_IPV6CP: "IPv6CP", PROTO_CCP: "CCP",
    PROTO_LCP: "LCP", PROTO_PAP: "PAP", PROTO_CHAP: "CHAP",
}


class PppError(ValueError):
    """A PPP frame, control packet or option list that does not parse."""


def split(frame):
    """(protocol, offset of the information field) of a PPP frame, with or without FF 03 and PFC."""
    return protocol_at(frame, 0, len(frame))


def protocol_at(buf, p, n):
    """(protocol, offset of the information field) of the PPP frame at buf[p:n].

    The one PPP protocol-field parser: the data plane runs it per packet in its receive buffer, the link on
    control frames. RFC 1661 2: the field's last octet is odd and any octet before it even (so a one-octet
    field is recognised by its odd first octet, RFC 1661 6.5 PFC); FF 03 may be absent (RFC 1661 6.6 ACFC).
    """
    if p + 2 <= n and buf[p] == 0xFF and buf[p + 1] == 0x03:
        p += 2
    if p >= n:
        raise PppError("empty PPP frame")
    b = buf[p]
    if b & 1:
        return b, p + 1  # RFC 1661 6.5: a compressed (one-octet) protocol field
    if p + 2 > n:
        raise PppError("truncated PPP protocol field")
    proto = (b << 8) | buf[p + 1]
    if not proto & 1:
        raise PppError("invalid PPP protocol 0x%04x" % proto)
    return proto, p + 2


def parse_packet(frame, offset):
    """(code, identifier, data) of the control packet at frame[offset:]; trailing padding is dropped."""
    n = len(frame) - offset
    if n < 4:
        raise PppError("control packet shorter than its 4-octet header")
    length = (frame[offset + 2] << 8) | frame[offset + 3]
    if length < 4:
        raise PppError("control packet Length %d is below 4" % length)
    if length > n:
        raise PppError("control packet Length %d exceeds the %d octets received" % (length, n))
    return frame[offset], frame[offset + 1], bytes(frame[offset + 4:offset + length])


def build_frame(protocol, code, ident, data=b""):
    """FF 03, the two-octet protocol and one control packet."""
    length = 4 + len(data)
    if length > 0xFFFF:
        raise PppError("control packet too long")
    return bytes((0xFF, 0x03, protocol >> 8, protocol & 0xFF, code, ident & 0xFF, length >> 8, length & 0xFF)) + data


def parse_options(data):
    """[(type, value)] of a Configure-Request/Ack/Nak/Reject option list; every length is checked."""
    out = []
    i = 0
    n = len(data)
    while i < n:
        if i + 2 > n:
            raise PppError("option header truncated at offset %d" % i)
        t = data[i]
        ln = data[i + 1]
        if ln < 2:
            raise PppError("option %d has Length %d (below 2)" % (t, ln))
        if i + ln > n:
            raise PppError("option %d runs past the end of the packet" % t)
        out.append((t, bytes(data[i + 2:i + ln])))
        i += ln
    return out


def option(t, value=b""):
    """One option in wire form."""
    if len(value) > 253:
        raise PppError("option %d value too long" % t)
    return bytes((t, len(value) + 2)) + value


def build_options(opts):
    """Wire form of [(type, value)]."""
    return b"".join(option(t, v) for t, v in opts)


def u16(b):
    return (b[0] << 8) | b[1]


def u32(b):
    return (b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]


def p16(v):
    return bytes((v >> 8 & 0xFF, v & 0xFF))


def p32(v):
    return bytes((v >> 24 & 0xFF, v >> 16 & 0xFF, v >> 8 & 0xFF, v & 0xFF))


def ip_to_bytes(s):
    """'a.b.c.d' -> 4 octets (strict: four decimal fields 0..255)."""
    parts = s.split(".")
    if len(parts) != 4:
        raise PppError("not an IPv4 address")
    out = bytearray(4)
    for i in range(4):
        p = parts[i]
        if not p or not p.isdigit() or len(p) > 3:
            raise PppError("not an IPv4 address")
        v = int(p)
        if v > 255:
            raise PppError("not an IPv4 address")
        out[i] = v
    return bytes(out)


def ip_to_str(b):
    return "%d.%d.%d.%d" % (b[0], b[1], b[2], b[3])
