"""KernelPlane's window on each server unit (issue 10): DHCPINFORM and IPv6 on the kernel data path.

With fake sockets: the unit's filtered AF_PACKET socket is opened once per session (SessionUp when DHCPINFORM
answers are on, Session6Up), registered in the loop and closed with the session; a DHCPINFORM read there goes to
`on_dhcp` (only from the session's own address), the DHCPACK goes back out of the unit as an IPv4 packet; a Router
Solicitation goes up as an L2TP data message with the IPv6 packet, exactly as the user-space plane hands it; RAs
(SendL2tp with PPP protocol 0x0057) leave as IPv6 packets of the unit; Session6Up puts fe80::<our id>/64 on the
unit and `host_step` points the session's /64 at the unit. Then the same through a real ServerEndpoint: an RS
read on the unit is answered with an RA written to the unit.
"""

import socket

from sluice.endpoint import actions as A
from test_kernelplane import PEER, make

KEY = (PEER, 4500, 1701)
PREFIX = bytes.fromhex("20010db800770001")
OUR_ID = bytes.fromhex("0000000000000001")
PEER_ID = bytes.fromhex("021122fffe334455")


class PktSock:
    def __init__(self, ifname):
        self.ifname = ifname
        self.inbox = []
        self.sent = []
        self.closed = False

    def recv(self, n):
        if not self.inbox:
            raise BlockingIOError
        return self.inbox.pop(0)[:n]

    def sendto(self, data, addr):
        self.sent.append((bytes(data), addr))

    def close(self):
        self.closed = True


def with_units(socks):
    socks.units = []

    def unit_packet(ifname, client=False):
        s = PktSock(ifname)
        s.client = client
        socks.units.append(s)
        return s

    socks.unit_packet = unit_packet


def up_session(plane, dhcp):
    plane.dhcp = dhcp
    plane.install_sa(A.InstallSa(_child(), None, None))
    plane.send_l2tp(KEY, b"\xc8\x02x")
    plane.session_open(A.SessionOpen((5, 9), KEY, 77, 88, False))
    plane.session_up(A.SessionUp((5, 9), KEY, b"", False, "10.77.0.10", "sls0"))
    return plane.sessions[(5, 9)]


def _child():
    from test_kernelplane import child

    return child(0xA1, 0xB1)


def ipv4_udp(src, dst, dport, payload=b"x" * 20):
    udp = (68).to_bytes(2, "big") + dport.to_bytes(2, "big") + (8 + len(payload)).to_bytes(2, "big") + b"\0\0"
    total = 20 + len(udp) + len(payload)
    return (b"\x45\0" + total.to_bytes(2, "big") + b"\0\0\0\0\x40\x11\0\0" + socket.inet_aton(src) +
            socket.inet_aton(dst) + udp + payload)


def router_solicitation(src_ifid=PEER_ID):
    from sluice.ip6 import nd

    return nd.packet(b"\xfe\x80" + bytes(6) + src_ifid, bytes.fromhex("ff020000000000000000000000000002"), 255,
                     nd.router_solicitation())


def test_dhcpinform_read_on_the_unit_and_answered_there():
    twin, kp, plane, loop, up, socks, host, opened = make()
    with_units(socks)
    s = up_session(plane, dhcp=True)
    assert [u.ifname for u in socks.units] == ["sls0-9"] and s.pkt is socks.units[0]
    unit = socks.units[0]
    assert unit in loop.readers
    inform = ipv4_udp("10.77.0.10", "255.255.255.255", 67)
    unit.inbox += [inform, ipv4_udp("10.77.0.99", "255.255.255.255", 67), b"\x45short"]
    loop.readers[unit](7.0)
    assert [g for g in up.got if g[0] == "on_dhcp"] == [("on_dhcp", (5, 9), inform)]
    assert plane.counters["spoofed"] == 1 and plane.counters["malformed"] == 1 and plane.counters["unit_in"] == 2
    ack = ipv4_udp("10.77.0.1", "10.77.0.10", 68)
    plane.send_to_session((5, 9), ack)
    assert unit.sent == [(ack, ("sls0-9", 0x0800))]
    plane.send_to_session((5, 7), ack)                  # no such session
    assert plane.counters["no_route"] == 1
    plane.session_down((5, 9))
    assert unit.closed and unit not in loop.readers
    plane.close()


def test_no_unit_socket_without_dhcp_or_ipv6():
    twin, kp, plane, loop, up, socks, host, opened = make()
    with_units(socks)
    up_session(plane, dhcp=False)
    assert socks.units == []
    plane.send_to_session((5, 9), ipv4_udp("10.77.0.1", "10.77.0.10", 68))
    assert plane.counters["no_route"] == 1
    plane.close()


def test_ipv6_link_local_route_rs_and_ra():
    twin, kp, plane, loop, up, socks, host, opened = make()
    with_units(socks)
    s = up_session(plane, dhcp=True)
    plane.session6_up(A.Session6Up((5, 9), PREFIX, PEER_ID, OUR_ID))
    assert len(socks.units) == 1                        # one socket per session, whatever needs it
    assert host.steps[-1] == ("addr_add6", "sls0-9", "fe80::1/64")
    assert plane.host_step("route_add", ("2001:db8:77:1::/64", "sls0", None)) == (
        "route_add", ("2001:db8:77:1::/64", "sls0-9", None))
    unit = socks.units[0]
    rs = router_solicitation()
    unit.inbox.append(rs)
    loop.readers[unit](8.0)
    # As the user-space plane hands a link-local IPv6 packet up: an L2TP data message of our session.
    assert up.got[-1] == ("on_l2tp", b"\x00\x02\x00\x05\x00\x09\xff\x03\x00\x57" + rs, KEY)
    # An RA from the endpoint (SendL2tp, PPP protocol 0x0057, the peer's ids): out of the unit as IPv6.
    ra = b"\x60" + bytes(39) + b"\x86\0\0\0"
    plane.send_l2tp(KEY, b"\x00\x02\x00\x4d\x00\x58\xff\x03\x00\x57" + ra)
    assert unit.sent[-1] == (ra, ("sls0-9", 0x86DD))
    # IPCP still goes to the unit fd.
    plane.send_l2tp(KEY, b"\x00\x02\x00\x4d\x00\x58\xff\x03\x80\x21\x01\x01\x00\x04")
    assert s.ks.unit.unit_peer.recv(100) == b"\x80\x21\x01\x01\x00\x04"
    plane.session6_down((5, 9))
    assert host.steps[-1] == ("addr_del6", "sls0-9", "fe80::1/64")
    unit.inbox.append(rs)
    n = len(up.got)
    loop.readers[unit](9.0)
    assert len(up.got) == n                             # no IPv6 for the session any more
    assert plane.host_step("route_del", ("2001:db8:77:1::/64", "sls0")) == (
        "route_del", ("2001:db8:77:1::/64", "sls0-9"))
    plane.close()
    assert unit.closed


def test_rs_on_the_unit_is_answered_by_the_server_endpoint():
    """The real ServerEndpoint behind the plane: an RS read from the unit comes back as an RA written there."""
    from sluice.endpoint.ipv6 import ServerIpv6
    from sluice.ip6 import nd

    twin, kp, plane, loop, up, socks, host, opened = make()
    with_units(socks)
    up_session(plane, dhcp=False)
    plane.session6_up(A.Session6Up((5, 9), PREFIX, PEER_ID, OUR_ID))
    unit = socks.units[0]

    class Srv:
        ip6prefix = "2001:db8:77::/48"
        dns6 = ["2001:db8:1::53"]
        mtu = 1280
        ifname = "sls0"

    class Q:
        def __init__(self):
            self.out = []

        def add(self, a):
            self.out.append(a)

        def log(self, *a):
            pass

    class Enc:
        def next_header(self):
            return b"\x00\x02\x00\x4d\x00\x58"

    class Sess:
        tid, sid, peer, enc, closed, up_since, username = 5, 9, KEY, Enc(), False, 1.0, "alice"

    class Ev:
        local_ifid, peer_ifid = OUR_ID, PEER_ID

    q = Q()
    v6 = ServerIpv6(Srv(), q, lambda n: bytes(n))
    sess = Sess()
    v6.ipv6_up(sess, Ev(), 0.0)
    assert any(isinstance(a, A.Session6Up) and a.local_ifid == OUR_ID for a in q.out)
    q.out.clear()
    unit.inbox.append(router_solicitation())
    loop.readers[unit](10.0)
    name, data, key = up.got[-1]
    assert name == "on_l2tp" and key == KEY
    v6.frame_in(sess, data, 10, len(data), 10.0)
    sends = [a for a in q.out if isinstance(a, A.SendL2tp)]
    assert len(sends) == 1 and v6.counters["rs_in"] == 1
    plane.send_l2tp(sends[0].key, sends[0].data)
    ra, addr = unit.sent[-1]
    assert addr == ("sls0-9", 0x86DD) and ra[40] == nd.RA and ra[24:40] == bytes.fromhex("ff02" + "00" * 13 + "01")
    plane.close()


def test_client_reads_router_advertisements_from_its_unit():
    """A client on the kernel path: Session6Up opens the unit's socket with the client's filter (RAs only); an RA
    read there goes up as the user-space plane hands it; the client's RS leaves the unit as IPv6."""
    twin, kp, plane, loop, up, socks, host, opened = make("client")
    with_units(socks)
    socks.no_ra = []
    socks.no_router_advertisements = socks.no_ra.append
    plane.install_sa(A.InstallSa(_child(), None, None))
    plane.send_l2tp(KEY, b"\xc8\x02x")
    plane.session_open(A.SessionOpen((5, 9), KEY, 77, 88, False))
    plane.session_up(A.SessionUp((5, 9), KEY, b"", False, "10.77.0.10", "slc0"))
    assert socks.units == [] and socks.no_ra == ["slc0"]   # the kernel leaves the server's RAs to Sluice
    plane.session6_up(A.Session6Up((5, 9), None, PEER_ID))
    (unit,) = socks.units
    assert unit.ifname == "slc0" and unit.client is True
    assert host.steps == []          # the client's own Host steps put its link-local on the unit (it is ifname)
    rs = router_solicitation(OUR_ID)
    plane.send_l2tp(KEY, b"\x00\x02\x00\x4d\x00\x58\xff\x03\x00\x57" + rs)
    assert unit.sent[-1] == (rs, ("slc0", 0x86DD))
    ra = b"\x60" + bytes(39) + b"\x86\0\0\0"
    unit.inbox.append(ra)
    loop.readers[unit](3.0)
    assert up.got[-1] == ("on_l2tp", b"\x00\x02\x00\x05\x00\x09\xff\x03\x00\x57" + ra, KEY)
    plane.close()
    assert unit.closed
