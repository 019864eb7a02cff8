"""The per-packet path between L2TP data messages and the TUN device.

Only IPv4 (and IPv6 once IPv6CP is up) packets come this way; everything else is handed to the PPP
machine. Headers for the common case are built once per session (`data_header`), and parsing reads the
receive buffer in place: no per-packet objects beyond the slices the OS calls need.
"""

import struct

PPP_IP = 0x0021
PPP_IPV6 = 0x0057
_T, _L, _S, _O = 0x8000, 0x4000, 0x0800, 0x0200
_HDR = struct.Struct("!HHH")
_HDR_PPP = struct.Struct("!HHHHH")


class DataError(ValueError):
    pass


def data_header(peer_tunnel_id, peer_session_id, protocol=PPP_IP):
    """L2TP data header (no length, no sequence) + PPP address/control + protocol, built once per session."""
    return _HDR_PPP.pack(0x0002, peer_tunnel_id, peer_session_id, 0xFF03, protocol)


def l2tp_header(peer_tunnel_id, peer_session_id):
    """L2TP data header alone, for PPP control frames that already start with FF 03."""
    return _HDR.pack(0x0002, peer_tunnel_id, peer_session_id)


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
