"""sluice.ip6 against scapy's IPv6/ICMPv6 layers, both ways, over generated values (Hypothesis): what we
encode scapy dissects to the same fields with a checksum it accepts, what scapy encodes we parse to the same
fields; address text against Python's ipaddress."""

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptMTU, ICMPv6NDOptPrefixInfo,
                                ICMPv6NDOptRDNSS, ICMPv6NDOptRouteInfo, ICMPv6NDOptSrcLLAddr, IPv6)

from sluice.ip6 import addr as ip6
from sluice.ip6 import nd

addresses = st.binary(min_size=16, max_size=16)
u32 = st.integers(0, 0xFFFFFFFF)


def _text(b):
    return str(ipaddress.IPv6Address(b))


@settings(max_examples=300, deadline=None)
@given(addresses)
def test_address_text_matches_ipaddress(b):
    assert ip6.text(b) == _text(b)
    assert ip6.parse(_text(b)) == b
    assert ip6.parse(ipaddress.IPv6Address(b).exploded) == b


@st.composite
def adverts(draw):
    prefixes = [nd.Prefix(ip6.mask(draw(addresses), n), n, draw(st.sampled_from([0, 0x40, 0x80, 0xC0])),
                          draw(u32), draw(u32)) for n in draw(st.lists(st.integers(0, 128), max_size=3))]
    routes = [nd.Route(ip6.mask(draw(addresses), n), n, draw(u32), draw(st.sampled_from([0, 1, 3])))
              for n in draw(st.lists(st.integers(0, 128), max_size=2))]
    return nd.RouterAdvert(router_lifetime=draw(st.integers(0, 0xFFFF)), prefixes=prefixes,
                           mtu=draw(st.integers(0, 0xFFFF)), dns=draw(st.lists(addresses, max_size=3)),
                           dns_lifetime=draw(u32), routes=routes, hop_limit=draw(st.integers(0, 255)),
                           flags=draw(st.sampled_from([0, 0x40, 0x80, 0xC0])), reachable=draw(u32),
                           retrans=draw(u32))


@settings(max_examples=200, deadline=None)
@given(adverts(), addresses, addresses)
def test_our_ra_as_scapy_reads_it(ra, src, dst):
    pkt = nd.packet(src, dst, 255, ra.encode())
    s = IPv6(pkt)
    assert (s.src, s.dst, s.hlim, s.nh, s.plen) == (_text(src), _text(dst), 255, 58, len(pkt) - 40)
    r = s[ICMPv6ND_RA]
    # scapy recomputes the checksum when the field is cleared: it must equal ours.
    again = IPv6(pkt)
    del again[ICMPv6ND_RA].cksum
    assert IPv6(bytes(again))[ICMPv6ND_RA].cksum == r.cksum
    assert (r.chlim, r.routerlifetime, r.reachabletime, r.retranstimer) == \
        (ra.hop_limit, ra.router_lifetime, ra.reachable, ra.retrans)
    assert (r.M, r.O) == (ra.flags >> 7 & 1, ra.flags >> 6 & 1)
    if ra.mtu:
        assert s[ICMPv6NDOptMTU].mtu == ra.mtu
    got = []
    o = s.getlayer(ICMPv6NDOptPrefixInfo)
    i = 1
    while o is not None:
        got.append((o.prefix, o.prefixlen, o.L, o.A, o.validlifetime, o.preferredlifetime))
        i += 1
        o = s.getlayer(ICMPv6NDOptPrefixInfo, i)
    assert got == [(_text(p.prefix), p.length, p.flags >> 7, p.flags >> 6 & 1, p.valid, p.preferred)
                   for p in ra.prefixes]
    got = []
    o = s.getlayer(ICMPv6NDOptRouteInfo)
    i = 1
    while o is not None:
        got.append((o.prefix, o.plen, o.rtlifetime, o.prf))
        i += 1
        o = s.getlayer(ICMPv6NDOptRouteInfo, i)
    want = []
    for r in ra.routes:
        k = (r.length + 63) // 64
        want.append((_text(r.prefix[:8 * k] + b"\x00" * (16 - 8 * k)), r.length, r.lifetime, r.preference))
    assert got == want
    if ra.dns:
        o = s[ICMPv6NDOptRDNSS]
        assert (o.dns, o.lifetime) == ([_text(a) for a in ra.dns], ra.dns_lifetime)


@settings(max_examples=200, deadline=None)
@given(adverts(), addresses, st.booleans(), st.booleans())
def test_scapy_ra_as_we_read_it(ra, src, slla, full_route):
    p = ICMPv6ND_RA(chlim=ra.hop_limit, M=ra.flags >> 7, O=ra.flags >> 6 & 1, prf=0,
                    routerlifetime=ra.router_lifetime, reachabletime=ra.reachable, retranstimer=ra.retrans)
    if slla:
        p = p / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")  # skipped: not on a PPP link, still valid
    if ra.mtu:
        p = p / ICMPv6NDOptMTU(mtu=ra.mtu)
    for x in ra.prefixes:
        p = p / ICMPv6NDOptPrefixInfo(prefixlen=x.length, L=x.flags >> 7, A=x.flags >> 6 & 1, validlifetime=x.valid,
                                      preferredlifetime=x.preferred, prefix=_text(x.prefix))
    for r in ra.routes:
        # scapy sends the whole 16-octet prefix (length 3) by default; RFC 4191 2.3 allows it for any length.
        kw = {} if full_route else {"len": 1 + (r.length + 63) // 64}
        p = p / ICMPv6NDOptRouteInfo(plen=r.length, prf=r.preference, rtlifetime=r.lifetime, prefix=_text(r.prefix),
                                     **kw)
    if ra.dns:
        p = p / ICMPv6NDOptRDNSS(lifetime=ra.dns_lifetime, dns=[_text(a) for a in ra.dns])
    pkt = bytes(IPv6(src=_text(src), dst="ff02::1", hlim=255) / p)
    s, d, hops, msg = nd.parse_packet(pkt, 0, len(pkt))
    assert (s, d, hops) == (src, ip6.ALL_NODES, 255)
    got = nd.parse_ra(msg)
    assert (got.hop_limit, got.flags, got.router_lifetime, got.reachable, got.retrans, got.mtu) == \
        (ra.hop_limit, ra.flags, ra.router_lifetime, ra.reachable, ra.retrans, ra.mtu)
    assert [(x.prefix, x.length, x.flags, x.valid, x.preferred) for x in got.prefixes] == \
        [(x.prefix, x.length, x.flags, x.valid, x.preferred) for x in ra.prefixes]
    assert [(r.prefix, r.length, r.lifetime, r.preference) for r in got.routes] == \
        [(r.prefix, r.length, r.lifetime, r.preference) for r in ra.routes]
    assert got.dns == ra.dns
    if ra.dns:
        assert got.dns_lifetime == ra.dns_lifetime


@settings(max_examples=100, deadline=None)
@given(addresses, st.binary(max_size=64), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_rs_and_echo_against_scapy(src, data, ident, seq):
    pkt = bytes(IPv6(src=_text(src), dst="ff02::2", hlim=255) / ICMPv6ND_RS())
    assert nd.packet(src, ip6.ALL_ROUTERS, 255, nd.router_solicitation()) == pkt
    s, d, hops, msg = nd.parse_packet(pkt, 0, len(pkt))
    assert nd.parse_rs(msg) == []
    req = bytes(IPv6(src=_text(src), dst="fe80::1", hlim=64) / ICMPv6EchoRequest(id=ident, seq=seq, data=data))
    s, d, hops, msg = nd.parse_packet(req, 0, len(req))
    reply = IPv6(nd.packet(d, s, 64, nd.echo_reply(msg)))
    assert (reply.type, reply.id, reply.seq, reply.data, reply.dst) == (129, ident, seq, data, _text(src))
    del reply.cksum
    assert IPv6(bytes(reply)).cksum == IPv6(nd.packet(d, s, 64, nd.echo_reply(msg))).cksum


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_escapes_as_anything_but_nderror(data):
    for fn in (lambda: nd.parse_packet(data, 0, len(data)), lambda: nd.parse_ra(data), lambda: nd.parse_rs(data)):
        try:
            fn()
        except nd.NdError:
            pass


@pytest.mark.parametrize("text", ["fe80::1", "febf:ffff::1", "fec0::1", "ff02::2", "ff0e::101", "2001:db8::1",
                                  "::1", "fe00::1"])
def test_on_link_reads_an_address_in_place_as_python_ipaddress_classifies_it(text):
    a = ipaddress.IPv6Address(text)
    buf = b"\x00" * 24 + a.packed + b"\x00" * 8     # where an IPv6 header's destination sits
    assert ip6.on_link(buf, 24) == (a.is_link_local or a.is_multicast)
