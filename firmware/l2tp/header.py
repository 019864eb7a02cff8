"""L2TPv2 header codec (RFC 2661 3.1).

    0                   1                   2                   3
    |T|L|x|x|S|x|O|P|x|x|x|x|  Ver  |          Length (opt)         |
    |           Tunnel ID           |           Session ID          |
    |             Ns (opt)          |             Nr (opt)         |
    |      Offset Size (opt)        |    Offset pad... (opt)

Control messages (T=1) must carry L=1 and S=1 and P=0 (RFC 2661 3.1); we also tolerate an Offset field on
them because skipping it costs nothing. Version must be 2: version 1 is L2F and version 3 is L2TPv3, both of
which RFC 2661 3.1 says to discard. Every length is checked against the datagram.
"""

import struct

from sluice.l2tp.errors import HeaderError

T_BIT = 0x8000
L_BIT = 0x4000
S_BIT = 0x0800
O_BIT = 0x0200
P_BIT = 0x0100
VERSION_MASK = 0x000F
RESERVED_MASK = 0x34F0  # the x bits above

CONTROL_FLAGS = T_BIT | L_BIT | S_BIT | 2
CONTROL_HEADER_LEN = 12



def encode_control(tunnel_id, session_id, ns, nr, body):
    """A control message: the 12-byte header with T, L, S set, then body (the AVPs; empty for a ZLB)."""
    return struct.pack("!HHHHHH", CONTROL_FLAGS, CONTROL_HEADER_LEN + len(body), tunnel_id, session_id, ns, nr) + body


class Header:
    """A parsed header. `offset` is where the payload (AVPs or PPP frame) starts, `end` where it stops."""

    __slots__ = ("flags", "is_control", "tunnel_id", "session_id", "ns", "nr", "offset", "end")

    def __repr__(self):
        return "<L2TP %s tid=%d sid=%d ns=%r nr=%r len=%d>" % (
            "ctl" if self.is_control else "data", self.tunnel_id, self.session_id, self.ns, self.nr,
            self.end - self.offset)


def parse(buf):
    """Parse the header of one L2TP message in buf (bytes, bytearray or memoryview). Raises HeaderError."""
    n = len(buf)
    if n < 6:
        raise HeaderError("message shorter than the smallest header")
    flags = (buf[0] << 8) | buf[1]
    if flags & VERSION_MASK != 2:
        raise HeaderError("not L2TP version 2")
    h = Header()
    h.flags = flags
    ctl = bool(flags & T_BIT)
    h.is_control = ctl
    if ctl and (flags & (L_BIT | S_BIT)) != (L_BIT | S_BIT):
        raise HeaderError("control message without the L and S bits")  # RFC 2661 3.1
    p = 2
    end = n
    if flags & L_BIT:
        if n < 4:
            raise HeaderError("truncated length field")
        length = (buf[2] << 8) | buf[3]
        if length > n:
            raise HeaderError("length field beyond the end of the datagram")
        if ctl and length != n:
            raise HeaderError("control message length does not match the datagram")
        end = length
        p = 4
    if p + 4 > end:
        raise HeaderError("truncated tunnel/session id")
    h.tunnel_id = (buf[p] << 8) | buf[p + 1]
    h.session_id = (buf[p + 2] << 8) | buf[p + 3]
    p += 4
    if flags & S_BIT:
        if p + 4 > end:
            raise HeaderError("truncated Ns/Nr")
        h.ns = (buf[p] << 8) | buf[p + 1]
        h.nr = (buf[p + 2] << 8) | buf[p + 3]
        p += 4
    else:
        h.ns = h.nr = None
    if flags & O_BIT:
        if p + 2 > end:
            raise HeaderError("truncated offset size")
        p += 2 + ((buf[p] << 8) | buf[p + 1])
        if p > end:
            raise HeaderError("offset beyond the end of the message")
    h.offset = p
    h.end = end
    return h
