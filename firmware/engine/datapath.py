"""The per-packet path between L2TP data messages and the TUN device.

Only IPv4 packets come this way; everything else is handed to the PPP machine. The header for the common
case (no L2TP sequencing) is built once per session (`session_headers`), and parsing reads the receive buffer
in place: no per-packet objects beyond the slices the OS calls need. `sluice.l2tp.data` is the general codec;
this is the engine's fast path over it, which also finds the end of the message (L bit) and the PPP protocol.
"""

PPP_IP = 0x0021
PPP_IPV6 = 0x0057
_T, _L, _S, _O = 0x8000, 0x4000, 0x0800, 0x0200


class DataError(ValueError):
    pass


PPP_IP_HEADER = b"\xff\x03\x00\x21"  # PPP address, control and protocol for IPv4 (RFC 1662 3.1)


def session_headers(encoder):
    """(data header with PPP for IPv4, or None when every message needs a fresh Ns) for a session."""
    if encoder.sequencing:
        return None
    return encoder.header + PPP_IP_HEADER


def parse_data(buf, n, start=0):
    """(tunnel_id, session_id, ppp_offset, end) of the L2TP data message in buf[start:n] (RFC 2661 3.1).

    The caller has already checked the T bit. Raises DataError on anything malformed.
    """
    if n - start < 6:
        raise DataError("short data message")
    flags = (buf[start] << 8) | buf[start + 1]
    if flags & 0x000F != 2:
        raise DataError("not L2TP version 2")
    p = start + 2
    if flags & _L:
        length = (buf[p] << 8) | buf[p + 1]
        if length > n - start or length < 8:
            raise DataError("bad length field")
        n = start + length
        p += 2
    if p + 4 > n:
        raise DataError("short data message")
    tid = (buf[p] << 8) | buf[p + 1]
    sid = (buf[p + 2] << 8) | buf[p + 3]
    p += 4
    if flags & _S:
        p += 4
    if flags & _O:
        if p + 2 > n:
            raise DataError("short offset field")
        p += 2 + ((buf[p] << 8) | buf[p + 1])
    if p > n:
        raise DataError("offset beyond the end of the message")
    return tid, sid, p, n


def ppp_protocol(buf, p, n):
    """(protocol, offset of the PPP information field) for the PPP frame at buf[p:n] (RFC 1661/1662)."""
    if p + 2 <= n and buf[p] == 0xFF and buf[p + 1] == 0x03:
        p += 2
    if p >= n:
        raise DataError("empty PPP frame")
    if buf[p] & 1:  # protocol-field compression: one byte
        return buf[p], p + 1
    if p + 2 > n:
        raise DataError("truncated PPP protocol field")
    return (buf[p] << 8) | buf[p + 1], p + 2
