"""UDP sockets for L2TP (and later IKE/NAT-T): bound, non-blocking, with their in-memory twin."""

import socket


def bind_udp(address, port, fallback_ephemeral=False):
    """A non-blocking UDP socket bound to (address, port).

    With fallback_ephemeral, a port already in use gives an ephemeral port instead: RFC 3193 lets an L2TP
    client use any source port, which is what NetworkManager-l2tp does when 1701 is taken.
    """
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((address, port))
    except OSError:
        if not fallback_ephemeral:
            s.close()
            raise
        s.bind((address, 0))
    s.setblocking(False)
    return s
