"""DHCPINFORM answers (RFC 2131 4.3.5) with RFC 3442 routes, built from hand-made packets.

MicroPython subset.
"""

import struct

from sluice.dhcp import inform as D

try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

CLIENT = b"\xc0\x00\x02\x0a"  # 192.0.2.10
CHADDR = b"\x02\x00\x5e\x00\x53\x01"


def _inform(options=None, ciaddr=CLIENT, src=CLIENT, msg_type=D.DHCPINFORM, op=1, dport=67):
    bootp = bytearray(236)
    bootp[0] = op
    bootp[1] = 1
    bootp[2] = 6
    bootp[4:8] = b"\x11\x22\x33\x44"
    bootp[12:16] = ciaddr
    bootp[28:34] = CHADDR
    opts = D.MAGIC + bytes((53, 1, msg_type)) + (options or bytes((55, 4, 1, 6, 15, 249))) + b"\xff"
    return D.ipv4_udp(src, b"\xff\xff\xff\xff", 68, dport, bytes(bootp) + opts)


def test_rfc3442_encoding_examples():
    # RFC 3442 (the table in "Description"): width, significant octets of the destination, then the router.
    gw = "192.0.2.1"
    g = b"\xc0\x00\x02\x01"
    assert D.classless_routes(["0.0.0.0/0"], gw) == b"\x00" + g
    assert D.classless_routes(["10.0.0.0/8"], gw) == b"\x08\x0a" + g
    assert D.classless_routes(["10.17.0.0/16"], gw) == b"\x10\x0a\x11" + g
    assert D.classless_routes(["10.27.129.0/24"], gw) == b"\x18\x0a\x1b\x81" + g
    assert D.classless_routes(["10.229.0.128/25"], gw) == b"\x19\x0a\xe5\x00\x80" + g
    assert D.classless_routes(["10.198.122.47/32"], gw) == b"\x20\x0a\xc6\x7a\x2f" + g
    harness.raises(D.DhcpError, D.classless_routes, ["10.0.0.1/8"], gw)


def test_inform_gets_an_ack_with_routes_dns_domain():
    reply = D.answer_inform(_inform(), "192.0.2.1", ["198.51.100.0/24", "203.0.113.0/25"], ["192.0.2.53"],
                            "example.org")
    assert reply is not None
    assert D.checksum(reply[:20]) == 0
    assert reply[9] == 17 and reply[12:16] == b"\xc0\x00\x02\x01" and reply[16:20] == CLIENT
    sport, dport, ulen, _ = struct.unpack(">HHHH", reply[20:28])
    assert (sport, dport, ulen) == (67, 68, len(reply) - 20)
    pseudo = reply[12:20] + struct.pack(">BBH", 0, 17, ulen)
    assert D.checksum(pseudo + reply[20:]) == 0
    b = reply[28:]
    assert b[0] == D.BOOTREPLY and b[4:8] == b"\x11\x22\x33\x44" and b[12:16] == CLIENT
    assert b[16:20] == b"\x00" * 4  # RFC 2131 4.3.5: no yiaddr for an INFORM
    assert b[28:34] == CHADDR
    opts = D.parse_options(b[240:])
    assert opts[53] == b"\x05" and opts[54] == b"\xc0\x00\x02\x01" and opts[1] == b"\xff" * 4
    assert opts[6] == b"\xc0\x00\x02\x35" and opts[15] == b"example.org"
    routes = b"\x18\xc6\x33\x64\xc0\x00\x02\x01\x19\xcb\x00\x71\x00\xc0\x00\x02\x01"
    assert opts[121] == routes and opts[249] == routes
    assert 3 not in opts and 51 not in opts  # no router (default route), no lease time
    assert len(b) >= 300  # RFC 1542 2.1 minimum BOOTP size


def test_ack_goes_to_the_source_when_ciaddr_is_zero():
    reply = D.answer_inform(_inform(ciaddr=b"\x00" * 4), "192.0.2.1", [], [], None)
    assert reply[16:20] == CLIENT
    opts = D.parse_options(reply[28 + 240:])
    assert 121 not in opts and 6 not in opts and 15 not in opts


def test_long_route_lists_are_split_rfc3396():
    routes = ["10.%d.0.0/16" % i for i in range(40)]  # 40 * 7 = 280 octets
    reply = D.answer_inform(_inform(), "192.0.2.1", routes, [], None)
    opts = D.parse_options(reply[28 + 240:])  # concatenates the instances again
    assert opts[121] == D.classless_routes(routes, "192.0.2.1") and len(opts[121]) == 280


def test_everything_else_is_not_answered():
    good = _inform()
    assert D.answer_inform(good, "192.0.2.1", [], [], None) is not None
    bad = [
        _inform(msg_type=1),  # DHCPDISCOVER: not ours to answer
        _inform(msg_type=3),  # DHCPREQUEST
        _inform(op=2),
        _inform(dport=53),
        _inform(ciaddr=b"\x00" * 4, src=b"\x00" * 4),  # nowhere to send it
        good[:30],
        good[:-1],  # End option missing... and the IPv4 total length now overruns
        good[:10] + b"\x00\x00" + good[12:],  # header checksum wrong
        good[:6] + b"\x20\x00" + good[8:],  # a fragment (MF set)
        b"\x60" + good[1:],  # IPv6
    ]
    for i, b in enumerate(bad):
        assert D.answer_inform(b, "192.0.2.1", [], [], None) is None, i
    harness.raises(D.DhcpError, D.parse_options, b"\x06\x08\x01\x02")
    harness.raises(D.DhcpError, D.parse_options, b"\x06\x00")
    assert D.is_dhcp_request(good) and not D.is_dhcp_request(_inform(dport=53))


def test_only_the_links_own_address_is_answered():
    # The server passes the address IPCP gave this link: an INFORM claiming another is not answered.
    assert D.answer_inform(_inform(), "192.0.2.1", [], [], None, client_ip="192.0.2.10") is not None
    assert D.answer_inform(_inform(), "192.0.2.1", [], [], None, client_ip="192.0.2.11") is None
    spoof = _inform(ciaddr=b"\xcb\x00\x71\x05")  # ciaddr 203.0.113.5, elsewhere on the server's side
    assert D.answer_inform(spoof, "192.0.2.1", [], [], None, client_ip="192.0.2.10") is None
