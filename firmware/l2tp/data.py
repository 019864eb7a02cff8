"""L2TP data messages (RFC 2661 3.1, 5.4): parsing and encoding outside the machines.

Data messages carry PPP frames and never touch a Tunnel: the data plane parses the header with `parse_data`
and sends with a `DataEncoder` built once per session, whose header octets are computed at construction.
With sequencing (the Sequencing Required AVP, RFC 2661 4.4.6, or a peer that sends Ns) every message
carries Ns; Nr is reserved in data messages and sent as 0 (RFC 2661 3.1).
"""

import struct

from sluice.l2tp.errors import HeaderError
from sluice.l2tp.header import L_BIT, O_BIT, S_BIT, T_BIT



def parse_data(buf, start, n):
    """(tunnel_id, session_id, ns_or_None, ppp_offset, end) of the data message in buf[start:n].

    The one parser of L2TP data headers (RFC 2661 3.1): the data plane runs it per packet on its receive
    buffer (no copy, no object), the endpoints on the messages the data plane hands up, and the fuzzers on
    both. The L bit's Length (when present) bounds the message and anything after it is padding. Raises
    HeaderError when malformed, and for a control message (T bit): those go to the tunnel machines.
    """
    if n - start < 6:
        raise HeaderError("message shorter than the smallest header")
    flags = (buf[start] << 8) | buf[start + 1]
    if flags & T_BIT:
        raise HeaderError("a control message, not a data message")
    if flags & 0x000F != 2:
        raise HeaderError("not L2TP version 2")
    p = start + 2
    if flags & L_BIT:
        length = (buf[p] << 8) | buf[p + 1]
        if length > n - start or length < 6:
            raise HeaderError("length field %d does not fit the datagram" % length)
        n = start + length
        p += 2
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
    if flags & O_BIT:
        if p + 2 > n:
            raise HeaderError("truncated offset size")
        p += 2 + ((buf[p] << 8) | buf[p + 1])
        if p > n:
            raise HeaderError("offset beyond the end of the message")
    return tid, sid, ns, p, n


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
