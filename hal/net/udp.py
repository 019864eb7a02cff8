"""UDP sockets for L2TP (and later IKE/NAT-T): bound, non-blocking, with their in-memory twin."""

from sluice.hal.net.sockets import socket


def bind_udp(address, port, fallback_ephemeral=False):
    """A non-blocking UDP socket bound to (address, port).

    With fallback_ephemeral, a port already in use gives an ephemeral port instead: RFC 3193 lets an L2TP
    client use any source port, which is what NetworkManager-l2tp does when 1701 is taken.
    """
    # No SO_REUSEADDR: with it a second daemon binding the same UDP port succeeds and silently takes the
    # traffic; without it, it fails at start with EADDRINUSE.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((address, port))
    except OSError as e:
        if not fallback_ephemeral:
            s.close()
            hint = " (another sluice, strongSwan or libreswan on this port?)" if e.errno == 98 else ""
            raise RuntimeError("cannot listen on UDP %s:%d: %s%s" % (address, port, e.strerror, hint))
        s.bind((address, 0))
    s.setblocking(False)
    return s
