"""Tables the data plane grows from what peers send stay bounded (issue 13 item 5)."""

import socket

from sluice.engine import userplane as U


class _Up:
    def __init__(self):
        self.ike = 0

    def on_ike(self, data, local, peer, now):
        self.ike += 1


class _PktinfoSocket:
    """UDP 500 with a wildcard listen: each datagram comes with IP_PKTINFO naming the address it reached."""

    def __init__(self, n):
        self.left = n
        self.i = 0

    def recvmsg(self, bufsize, ancsize):
        if self.left == 0:
            raise BlockingIOError()
        self.left -= 1
        self.i += 1
        src = "198.51.%d.%d" % (self.i // 250 % 250, self.i % 250 + 1)
        cdata = bytes(8) + socket.inet_aton("192.0.2.1")
        return b"\x00" * 28, [(socket.IPPROTO_IP, 8, cdata)], 0, (src, 500)


def test_one_entry_per_source_is_bounded_at_10000_sources():
    # Before: an entry per source address that ever sent a byte to UDP 500, never pruned (157 bytes each;
    # 200,000 sources took 31 MB). Now at most LOCAL_FOR_MAX, the oldest going first, O(1) each.
    up = _Up()
    plane = U.UserPlane(loop=None, up=up, role="server", backend=None, rng=None, tun=None, ipsec=True)
    plane.s500 = _PktinfoSocket(10000)
    for _ in range(10000 // 16 + 1):
        plane._on_500(0.0)
    assert up.ike == 10000
    assert len(plane.local_for) == U.LOCAL_FOR_MAX
