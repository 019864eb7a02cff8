"""L2TP data messages (RFC 2661 3.1, 5.4): parsing and encoding outside the machines.

Data messages carry PPP frames and never touch a Tunnel: the engine parses the header with `parse_header`
and sends with a `DataEncoder` built once per session, whose header octets are computed at construction.
With sequencing (the Sequencing Required AVP, RFC 2661 4.4.6, or a peer that sends Ns) every message
carries Ns; Nr is reserved in data messages and sent as 0 (RFC 2661 3.1).
"""

import struct

from sluice.l2tp.errors import HeaderError
from sluice.l2tp.header import L_BIT, O_BIT, S_BIT, T_BIT



def parse_header(buf):
    """(is_control, tunnel_id, session_id, payload_offset, ns_or_None) of one L2TP message.

    For data messages payload_offset is where the PPP frame starts; the L bit's Length (when present) bounds
    the message and anything after it is padding. Raises HeaderError when malformed.
    """
    n = len(buf)
    if n < 6:
        raise HeaderError("message shorter than the smallest header")
    flags = (buf[0] << 8) | buf[1]
    if flags & 0x000F != 2:
        raise HeaderError("not L2TP version 2")
    p = 2
    if flags & L_BIT:
        length = (buf[2] << 8) | buf[3]
        if length > n:
            raise HeaderError("length field beyond the end of the datagram")
        n = length
        p = 4
    if p + 4 > n:
        raise HeaderError("truncated tunnel/session id")
    tid = (buf[p] << 8) | buf[p + 1]
    sid = (buf[p + 2] << 8) | buf[p + 3]
    p += 4
    ns = None
    if flags & S_BIT:
        if p + 4 > n:
            raise HeaderError("truncated Ns/Nr")
        ns = (buf[p] << 8) | buf[p + 1]
        p += 4
    elif flags & T_BIT:
        raise HeaderError("control message without Ns/Nr")
    if flags & O_BIT:
        if p + 2 > n:
            raise HeaderError("truncated offset size")
        p += 2 + ((buf[p] << 8) | buf[p + 1])
        if p > n:
            raise HeaderError("offset beyond the end of the message")
    return bool(flags & T_BIT), tid, sid, p, ns


class DataEncoder:
    """Builds data messages for one session: header octets computed once."""

    __slots__ = ("peer_tid", "peer_sid", "sequencing", "ns", "header", "_seqbuf")

    def __init__(self, peer_tid, peer_sid, sequencing=False):
        self.peer_tid = peer_tid
        self.peer_sid = peer_sid
        self.sequencing = sequencing
        self.ns = 0
        self.header = struct.pack("!HHH", 0x0002, peer_tid, peer_sid)  # without sequencing: the whole header
        self._seqbuf = bytearray(struct.pack("!HHHHH", S_BIT | 0x0002, peer_tid, peer_sid, 0, 0))

    def next_header(self):
        """The header for the next message (advances Ns when sequencing)."""
        if not self.sequencing:
            return self.header
        b = self._seqbuf
        ns = self.ns
        b[6] = ns >> 8
        b[7] = ns & 0xFF
        self.ns = (ns + 1) & 0xFFFF
        return bytes(b)

    def encode(self, payload):
        """One data message carrying payload (a PPP frame)."""
        return self.next_header() + payload
