"""sluice.ip6 (address text, ICMPv6 RS/RA codec and checksum), the /64 pool, and the endpoints' IPv6 over a
PPP link wired in memory. Runs under MicroPython too.

The packet vectors below were built with scapy 2.x's IPv6/ICMPv6 layers (an independent encoder; the
CPython-only tests/unit/test_ip6_scapy.py checks the same both ways with varied values):

    IPv6(src="fe80::1:2:3:4", dst="ff02::1", hlim=255) / ICMPv6ND_RA(chlim=64, prf=0, routerlifetime=1800)
      / ICMPv6NDOptMTU(mtu=1400)
      / ICMPv6NDOptPrefixInfo(prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=14400,
                              prefix="2001:db8:77:1::")
      / ICMPv6NDOptRouteInfo(len=2, plen=48, prf=0, rtlifetime=1800, prefix="2001:db8:100::")
      / ICMPv6NDOptRDNSS(lifetime=1800, dns=["2001:db8::53", "2001:db8::54"])
"""

try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

from sluice.endpoint.ipv6 import PrefixPool
from sluice.ip6 import addr as ip6
from sluice.ip6 import nd

RA_VECTOR = harness.unhex("""
6000000000703afffe800000000000000001000200030004ff020000000000000000000000000001860034a44000070800000000
000000000501000000000578030440c000015180000038400000000020010db8007700010000000000000000180230000000070820
010db801000000190500000000070820010db800000000000000000000005320010db8000000000000000000000054""")
# IPv6(src="fe80::a:b:c:d", dst="ff02::2", hlim=255) / ICMPv6ND_RS()
RS_VECTOR = harness.unhex("6000000000083afffe80000000000000000a000b000c000dff0200000000000000000000000000"
                          "0285007d0900000000")
# IPv6(src="2001:db8:77:1::5", dst="fe80::1:2:3:4", hlim=64) / ICMPv6EchoRequest(id=0x1234, seq=9, data=b"abc")
ECHO_VECTOR = harness.unhex("60000000000b3a4020010db8007700010000000000000005fe8000000000000000010002000300"
                            "0480007c5912340009616263")
# ... and the ICMPv6EchoReply scapy builds for it (addresses swapped)
REPLY_VECTOR = harness.unhex("60000000000b3a40fe80000000000000000100020003000420010db80077000100000000000000"
                             "0581007b5912340009616263")


# -- addresses (RFC 4291 2.2, RFC 5952 4) -----------------------------------------------------------------------

def test_address_text_round_trips_in_canonical_form():
    cases = [
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),          # RFC 5952 4.3 lowercase, 4.2.1 longest run
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),    # 4.2.3: the first of two equal runs
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  # 4.2.2: one zero group is not '::'
        ("::", "::"), ("::1", "::1"), ("fe80::", "fe80::"),
        ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
    ]
    for text, canon in cases:
        b = ip6.parse(text)
        assert len(b) == 16
        assert ip6.text(b) == canon, (text, ip6.text(b))
        assert ip6.parse(canon) == b


def test_bad_addresses_are_refused():
    for bad in ("", ":", "1::2::3", "2001:db8", "2001:db8:0:0:0:0:0:0:1", "12345::", "g::1", "1.2.3.4",
                "fe80::1%eth0", "::ffff:1.2.3.4", "1:2:3:4:5:6:7::8"):
        harness.raises(ip6.Ip6Error, ip6.parse, bad)


def test_prefixes_need_zero_host_bits():
    assert ip6.parse_prefix("2001:db8:77::/48") == (ip6.parse("2001:db8:77::"), 48)
    assert ip6.parse_prefix("2001:db8:77:ff00::/56")[1] == 56
    harness.raises(ip6.Ip6Error, ip6.parse_prefix, "2001:db8:77::1/48")
    harness.raises(ip6.Ip6Error, ip6.parse_prefix, "2001:db8::/129")
    harness.raises(ip6.Ip6Error, ip6.parse_prefix, "2001:db8::")
    assert ip6.mask(ip6.parse("2001:db8:77:1234::1"), 52) == ip6.parse("2001:db8:77:1000::")
    assert ip6.link_local(b"\x02\x11\x22\xff\xfe\x33\x44\x55") == ip6.parse("fe80::211:22ff:fe33:4455")


# -- ICMPv6 (RFC 4443 2.3 checksum, RFC 4861 4.1/4.2 messages) ---------------------------------------------------

def _ra():
    return nd.RouterAdvert(router_lifetime=1800, mtu=1400,
                           prefixes=[nd.Prefix(ip6.parse("2001:db8:77:1::"), 64, nd.FLAG_L | nd.FLAG_A, 86400, 14400)],
                           routes=[nd.Route(ip6.parse("2001:db8:100::"), 48, 1800)],
                           dns=[ip6.parse("2001:db8::53"), ip6.parse("2001:db8::54")], dns_lifetime=1800)


def test_ra_encodes_as_scapy_does():
    pkt = nd.packet(ip6.parse("fe80::1:2:3:4"), ip6.ALL_NODES, 255, _ra().encode())
    assert pkt == RA_VECTOR


def test_rs_and_echo_reply_encode_as_scapy_does():
    assert nd.packet(ip6.parse("fe80::a:b:c:d"), ip6.ALL_ROUTERS, 255, nd.router_solicitation()) == RS_VECTOR
    src, dst, hops, msg = nd.parse_packet(ECHO_VECTOR, 0, len(ECHO_VECTOR))
    assert (ip6.text(src), ip6.text(dst), hops) == ("2001:db8:77:1::5", "fe80::1:2:3:4", 64)
    assert nd.packet(dst, src, 64, nd.echo_reply(msg)) == REPLY_VECTOR


def test_ra_parses_every_option():
    src, dst, hops, msg = nd.parse_packet(RA_VECTOR, 0, len(RA_VECTOR))
    assert nd.valid_nd_source(src, hops) and dst == ip6.ALL_NODES
    ra = nd.parse_ra(msg)
    assert (ra.router_lifetime, ra.hop_limit, ra.flags, ra.mtu) == (1800, 64, 0, 1400)
    pi = ra.prefixes[0]
    assert (ip6.text(pi.prefix), pi.length, pi.flags, pi.valid, pi.preferred) == \
        ("2001:db8:77:1::", 64, 0xC0, 86400, 14400)
    r = ra.routes[0]
    assert (ip6.text(r.prefix), r.length, r.lifetime, r.preference) == ("2001:db8:100::", 48, 1800, 0)
    assert [ip6.text(a) for a in ra.dns] == ["2001:db8::53", "2001:db8::54"] and ra.dns_lifetime == 1800


def test_rs_parses_and_its_checksum_is_checked():
    src, dst, hops, msg = nd.parse_packet(RS_VECTOR, 0, len(RS_VECTOR))
    assert nd.parse_rs(msg) == [] and hops == 255 and dst == ip6.ALL_ROUTERS
    bad = bytearray(RS_VECTOR)
    bad[-1] ^= 1
    harness.raises(nd.NdError, nd.parse_packet, bytes(bad), 0, len(bad))


def test_the_checksum_field_is_never_zero():
    # RFC 4443 2.3 / RFC 8200 8.1: a computed 0 is sent as 0xFFFF (one's complement of 0 in the sum).
    for n in range(200):
        msg = bytes((128, 0, 0, 0, n, 0, 0, 0))
        c = nd.checksum(ip6.ZERO, ip6.ZERO, msg)
        assert 0 < c <= 0xFFFF


def test_malformed_nd_is_refused():
    src, dst, hops, msg = nd.parse_packet(RA_VECTOR, 0, len(RA_VECTOR))
    # RFC 4861 4.6 / 6.1.2: an option of length 0, or running past the message, discards the whole RA.
    zero = bytearray(msg)
    zero[17] = 0
    harness.raises(nd.NdError, nd.parse_ra, bytes(zero))
    harness.raises(nd.NdError, nd.parse_ra, msg[:-8])  # RDNSS says 5 words, 4 are there
    code = bytearray(msg)
    code[1] = 1
    harness.raises(nd.NdError, nd.parse_ra, bytes(code))
    harness.raises(nd.NdError, nd.parse_ra, msg[:15])
    harness.raises(nd.NdError, nd.parse_packet, RA_VECTOR[:43], 0, 43)
    longer = bytearray(RA_VECTOR)
    longer[5] += 8  # payload length past the packet
    harness.raises(nd.NdError, nd.parse_packet, bytes(longer), 0, len(longer))
    v4 = bytearray(RA_VECTOR)
    v4[0] = 0x45
    harness.raises(nd.NdError, nd.parse_packet, bytes(v4), 0, len(v4))
    # Unknown options are skipped (4.6).
    extra = msg + bytes((99, 1, 0, 0, 0, 0, 0, 0))
    assert len(nd.parse_ra(extra).prefixes) == 1


# -- the /64 pool -------------------------------------------------------------------------------------------------

def test_prefix_pool_hands_out_distinct_64s_and_keeps_the_first_for_the_server():
    pool = PrefixPool(ip6.parse("2001:db8:77:ff00::"), 60)
    assert pool.size == 15
    got = [pool.allocate() for _ in range(15)]
    assert pool.allocate() is None
    assert ip6.text(got[0] + b"\x00" * 8) == "2001:db8:77:ff01::"
    assert ip6.text(got[-1] + b"\x00" * 8) == "2001:db8:77:ff0f::"
    assert len(set(got)) == 15
    pool.release(got[3])
    assert pool.allocate() == got[3]
    harness.raises(ip6.Ip6Error, PrefixPool, ip6.parse("2001:db8::"), 64)
    assert PrefixPool(ip6.parse("2001:db8::"), 32).size == 65535


# -- the endpoints over a PPP link, wired in memory ---------------------------------------------------------------

def _v6_pair():
    try:
        import test_endpoint_pair as ep
    except ImportError:
        from tests.core import test_endpoint_pair as ep
    p = ep.Pair()
    s = p.server.srv
    s.ipv6 = True
    s.ip6prefix = "2001:db8:77::/48"
    s.dns6 = ["2001:db8::53"]
    p.server.v6 = p.server._make_v6()
    c = p.client.cli
    c.ipv6 = True
    c.routes6 = ["2001:db8:100::/48"]
    from sluice.endpoint.ipv6 import ClientIpv6

    p.client.v6 = ClientIpv6(c, p.client.q)
    return p


def test_endpoints_bring_ipv6_up_with_slaac_from_the_ra():
    p = _v6_pair()
    p.client.start(p.now)
    assert p.pump()
    v6 = p.client.v6
    assert v6.started and v6.address is not None
    sess = list(p.server.sessions.values())[0]
    link = p.server.v6.links[(sess.tid, sess.sid)]
    assert ip6.parse(v6.address) == link.prefix + v6.local_ifid
    assert v6.dns == ["2001:db8::53"] and v6.routes == ["2001:db8:100::/48"]
    assert v6.router == ip6.text(ip6.link_local(link.local_ifid))
    s6 = [a for a in p.server_acts if a.kind == "session6_up"]
    assert len(s6) == 1 and s6[0].prefix == link.prefix and s6[0].peer_ifid == v6.local_ifid
    c6 = [a for a in p.client_acts if a.kind == "session6_up"]
    assert len(c6) == 1 and c6[0].prefix is None
    # The data plane hears SessionUp before Session6Up on both sides.
    kinds = [a.kind for a in p.server_acts]
    assert kinds.index("session_up") < kinds.index("session6_up")
    kinds = [a.kind for a in p.client_acts]
    assert kinds.index("session_up") < kinds.index("session6_up")
    hooks = [a.env for a in p.client_acts if a.kind == "hook"]
    assert hooks[-1]["INTERNAL_IP6_ADDRESS"] == v6.address and hooks[-1]["ROUTES6"] == "2001:db8:100::/48"


def test_server_answers_an_echo_to_its_link_local():
    p = _v6_pair()
    p.client.start(p.now)
    assert p.pump()
    sess = list(p.server.sessions.values())[0]
    link = p.server.v6.links[(sess.tid, sess.sid)]
    me = ip6.link_local(link.local_ifid)
    req = nd.packet(ip6.link_local(link.peer_ifid), me, 64, bytes((128, 0, 0, 0, 0, 1, 0, 1)) + b"ping")
    p.server.l2tp_received(_data_header(sess) + b"\xff\x03\x00\x57" + req, sess.peer, p.now)
    out = [a for a in p.server.actions() if a.kind == "send_l2tp"]
    assert len(out) == 1
    pkt = out[0].data[out[0].data.index(b"\xff\x03\x00\x57") + 4:]
    src, dst, hops, msg = nd.parse_packet(pkt, 0, len(pkt))
    assert (src, msg[0], msg[4:]) == (me, nd.ECHO_REPLY, b"\x00\x01\x00\x01ping")


def _data_header(sess):
    # An L2TP data header addressed to the server's session (RFC 2661 3.1: no flags, tunnel id, session id).
    return bytes((0, 2, sess.tid >> 8, sess.tid & 0xFF, sess.sid >> 8, sess.sid & 0xFF))


def test_ipv6cp_renegotiated_with_new_ids_starts_ipv6_over():
    from sluice.ppp.events import Ipv6Up

    p = _v6_pair()
    p.client.start(p.now)
    assert p.pump()
    sess = list(p.server.sessions.values())[0]
    link = p.server.v6.links[(sess.tid, sess.sid)]
    first = link.prefix
    # The same identifiers again: nothing happens.
    p.server._link_event(sess, Ipv6Up(link.local_ifid, link.peer_ifid), p.now)
    assert [a.kind for a in p.server.actions()] == []
    # New identifiers on both ends (as after an IPv6CP Configure-Request with a new id).
    new_peer = b"\x02\x00\x00\x00\x00\x00\x00\x07"
    p.server._link_event(sess, Ipv6Up(link.local_ifid, new_peer), p.now)
    acts = p.server.actions()
    kinds = [a.kind for a in acts]
    assert kinds[:2] == ["session6_down", "host"] and "session6_up" in kinds
    assert p.server.v6.links[(sess.tid, sess.sid)].prefix != first and first not in p.server.v6.pool.used.values()
    old_addr = p.client.v6.address
    p.client._link_event(Ipv6Up(p.client.v6.local_ifid[:7] + b"\x09", p.client.v6.peer_ifid), p.now)
    acts = p.client.actions()
    dels = [a.args[1] for a in acts if a.kind == "host" and a.op == "addr_del6"]
    assert old_addr + "/64" in dels
    assert "session6_down" in [a.kind for a in acts] and "session6_up" in [a.kind for a in acts]
