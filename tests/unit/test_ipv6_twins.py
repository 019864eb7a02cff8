"""IPv6 in the tunnel, client and server through IPsec on the in-memory twins (issue 12 part 1).

Sequence: IPCP and IPv6CP up -> server: Session6Up, route <its /64> -> sls0, RA; client: fe80::<ifid> on slc0,
Session6Up, RS -> RA -> SLAAC address <prefix>:<ifid>, routes, hook `connect` again with INTERNAL_IP6_*.
Packets are built with scapy (an independent encoder), and what crosses is read back with it."""

import ipaddress

import pytest
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_RA, ICMPv6ND_RS, IPv6
from scapy.layers.inet6 import ICMPv6NDOptPrefixInfo, ICMPv6NDOptRDNSS

from twinpair import TwinPair

SERVER6 = """    option ipv6 '1'
    option ip6prefix '2001:db8:77::/48'
    list dns6 '2001:db8::53'
    option mtu '1400'"""
CLIENT6 = """    option ipv6 '1'
    option defaultroute '1'
    list routes6 '2001:db8:100::/48'"""


@pytest.fixture
def pair():
    p = TwinPair(ipsec=True, server_extra=SERVER6, client_extra=CLIENT6)
    yield p
    p.close()


def _v6_up(p, max_time=30.0):
    assert p.up(), p.logbuf.getvalue()
    assert p.run(lambda: p.cep.v6 is not None and p.cep.v6.address is not None, max_time), p.logbuf.getvalue()
    return p.cep.v6.address


def _ping6(src, dst, size=100, reply=False):
    icmp = ICMPv6EchoReply if reply else ICMPv6EchoRequest
    return bytes(IPv6(src=src, dst=dst, hlim=64) / icmp(id=7, seq=1, data=b"y" * size))


def test_client_gets_its_address_from_the_ra_and_reports_it(pair):
    p = pair
    addr = _v6_up(p)
    sess = next(iter(p.sep.sessions.values()))
    link = p.sep.v6.links[(sess.tid, sess.sid)]
    # SLAAC (RFC 4862 5.5.3): the session's /64 and the interface id IPv6CP agreed for the client.
    assert ipaddress.IPv6Address(addr) == ipaddress.IPv6Address(link.prefix + p.cep.v6.local_ifid)
    assert addr.startswith("2001:db8:77:")
    assert link.peer_ifid == p.cep.v6.local_ifid
    net = str(ipaddress.IPv6Network(addr + "/64", strict=False))
    # Server: the /64 routed to the TUN, forwarding on; client: link-local, the address, routes.
    assert ("route_add", net, "sls0", None) in p.shost.ops
    assert ("forwarding6", "sls0") in p.shost.ops
    ll = "fe80::" + ipaddress.IPv6Address(b"\0" * 8 + p.cep.v6.local_ifid).compressed.lstrip(":")
    assert ("addr_add6", "slc0", str(ipaddress.IPv6Address(ll)) + "/64") in p.chost.ops
    assert ("addr_add6", "slc0", addr + "/64") in p.chost.ops
    for r in ("2001:db8:100::/48", "::/1", "8000::/1"):
        assert ("route_add", r, "slc0", None) in p.chost.ops
    ops = [(o[0], o[2] if o[0] == "addr_add6" else o[1]) for o in p.chost.ops]
    assert ops.index(("addr_add6", addr + "/64")) < ops.index(("route_add", "::/1"))
    # The hook ran again with the IPv6 variables (vpnc-script / openconnect names).
    env = p.chost.hooks[-1]
    assert env["reason"] == "connect" and env["INTERNAL_IP4_ADDRESS"] == "10.77.0.10"
    assert env["INTERNAL_IP6_ADDRESS"] == addr
    assert env["INTERNAL_IP6_NETMASK"] == addr + "/64"
    assert env["INTERNAL_IP6_DNS"] == "2001:db8::53"
    assert env["ROUTES6"].split() == ["2001:db8:100::/48", "::/0"]
    # Status shows it on both sides.
    st = p.server.status()["tunnels"][0]["sessions"][0]
    assert st["ipv6"]["prefix"] == net
    cst = p.client.status()["tunnels"][0]["sessions"][0]
    assert cst["ipv6"]["address"] == addr and cst["ipv6"]["dns"] == ["2001:db8::53"]


def test_ipv6_packets_both_ways_with_counters(pair):
    p = pair
    addr = _v6_up(p)
    up = _ping6(addr, "2001:db8:1::1")
    p.ctun.inject(up)
    assert p.run(lambda: up in p.stun.taken, 5)
    down = _ping6("2001:db8:1::1", addr, 1200, reply=True)
    p.stun.inject(down)
    assert p.run(lambda: down in p.ctun.taken, 5)
    got = IPv6(p.ctun.taken[-1])
    assert got[ICMPv6EchoReply].id == 7 and len(got[ICMPv6EchoReply].data) == 1200
    s = p.server.status()["tunnels"][0]["sessions"][0]
    assert (s["rx6_packets"], s["tx6_packets"], s["spoofed"]) == (1, 1, 0)
    assert s["rx6_bytes"] == len(up) and s["tx6_bytes"] == len(down)
    # Nothing but ESP between the hosts.
    assert not [w for w in p.net.wire if w[0] == "udp" and 1701 in (w[1][1], w[2][1])]


def test_server_drops_a_spoofed_ipv6_source(pair):
    p = pair
    addr = _v6_up(p)
    # Another session's /64, and a link-local source to a global address: both dropped by the source check.
    for src in ("2001:db8:77:99::1", "2001:db8:1::5", "fe80::1"):
        p.ctun.inject(_ping6(src, "2001:db8:1::1"))
    assert p.run(lambda: p.server.plane.counters["spoofed"] == 3, 5)
    assert not [x for x in p.stun.taken if x[0] >> 4 == 6]
    ok = _ping6(addr, "2001:db8:1::1")
    p.ctun.inject(ok)
    assert p.run(lambda: ok in p.stun.taken, 5)


def test_server_answers_a_router_solicitation_and_readvertises(pair):
    p = pair
    _v6_up(p)
    sess = next(iter(p.sep.sessions.values()))
    link = p.sep.v6.links[(sess.tid, sess.sid)]
    before = link.ras_sent
    ll = str(ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + p.cep.v6.local_ifid))
    p.loop.advance(5)  # past MIN_DELAY_BETWEEN_RAS
    # An RS the client's kernel might send itself (scapy builds it): answered with an RA.
    rs = bytes(IPv6(src=ll, dst="ff02::2", hlim=255) / ICMPv6ND_RS())
    p.ctun.inject(rs)
    assert p.run(lambda: link.rs_seen >= 1 and link.ras_sent > before, 5)
    # The RA as scapy reads it: from the server's link-local, hop limit 255, A=1 L=1, RDNSS.
    ra = IPv6(p.sep.v6.ra_for(link))
    assert ra.hlim == 255 and ra.src.startswith("fe80::")
    pi = ra[ICMPv6NDOptPrefixInfo]
    assert (pi.prefixlen, pi.L, pi.A) == (64, 1, 1)
    assert ra[ICMPv6NDOptRDNSS].dns == ["2001:db8::53"]
    assert ra[ICMPv6ND_RA].routerlifetime == 1800
    # Unsolicited RAs keep coming (RFC 4861 6.2.4) and the client stays configured without a new hook run.
    hooks = len(p.chost.hooks)
    n = link.ras_sent
    p.loop.advance(700)
    assert link.ras_sent > n and p.cep.v6.counters["ra_in"] >= 2
    assert len(p.chost.hooks) == hooks


def test_session_down_removes_the_prefix_route_and_frees_the_prefix(pair):
    p = pair
    _v6_up(p)
    p.client.command("disconnect", p.loop.time())
    assert p.run(lambda: not p.sep.sessions, 20)
    assert p.sep.v6.pool.used == {} and p.sep.v6.links == {}
    assert [o for o in p.shost.ops if o[0] == "route_del" and o[1].startswith("2001:db8:77:")]
    assert p.server.plane.by_net6 == {}
    env = p.chost.hooks[-1]
    assert env["reason"] == "disconnect" and env["INTERNAL_IP6_ADDRESS"].startswith("2001:db8:77:")


def test_without_ipv6_on_the_server_ipv6cp_is_rejected_and_ipv4_works():
    p = TwinPair(ipsec=False, client_extra=CLIENT6)
    try:
        assert p.up(), p.logbuf.getvalue()
        p.loop.advance(10)
        assert p.cep.v6.address is None and not p.cep.v6.started
        assert p.sep.v6 is None
        sess = next(iter(p.sep.sessions.values()))
        assert sess.link.status()["ipv6cp"] is None  # never negotiated: LCP Protocol-Rejected it
    finally:
        p.close()


def test_status_text_shows_ipv6(pair):
    from sluice.cli import format_status

    addr = _v6_up(pair)
    st = pair.server.status()
    st["name"] = "srv"
    assert st["ipv6"]["in_use"] == 1 and st["ipv6"]["ra_out"] >= 1
    text = format_status(st)
    assert "IPv6 2001:db8:77:" in text and "/64, link-local fe80::" in text
    cst = pair.client.status()
    cst["name"] = "cli"
    assert ("IPv6 %s, link-local fe80::" % addr) in format_status(cst)


def test_dns6_reload_applies_to_the_next_ra(pair):
    from sluice.config import loads

    p = pair
    _v6_up(p)
    text = p.config_text.replace("list dns6 '2001:db8::53'", "list dns6 '2001:db8::153'")
    cfg = loads(text, name="twin.conf")
    p.server.reload(cfg, cfg.servers[0])
    sess = next(iter(p.sep.sessions.values()))
    ra = IPv6(p.sep.v6.ra_for(p.sep.v6.links[(sess.tid, sess.sid)]))
    assert ra[ICMPv6NDOptRDNSS].dns == ["2001:db8::153"]


def test_hostile_nd_is_counted_not_answered(pair):
    import os as _os

    p = pair
    _v6_up(p)
    sess = next(iter(p.sep.sessions.values()))
    link = p.sep.v6.links[(sess.tid, sess.sid)]
    p.loop.advance(5)
    n = link.ras_sent
    ll = str(ipaddress.IPv6Address(b"\xfe\x80" + b"\0" * 6 + p.cep.v6.local_ifid))
    # RFC 4861 6.1.1: an RS that crossed a router (hop limit < 255) is not answered; a bad checksum neither.
    p.ctun.inject(bytes(IPv6(src=ll, dst="ff02::2", hlim=64) / ICMPv6ND_RS()))
    bad = bytearray(bytes(IPv6(src=ll, dst="ff02::2", hlim=255) / ICMPv6ND_RS()))
    bad[-1] ^= 0xFF
    p.ctun.inject(bytes(bad))
    # Random bytes after a link-local / multicast IPv6 header: never an exception, never the TUN.
    for i in range(50):
        body = _os.urandom(i * 3)
        hdr = bytes(IPv6(src=ll, dst="ff02::2" if i % 2 else "fe80::1", nh=58, plen=len(body), hlim=255))
        p.ctun.inject(hdr + body)
    p.loop.advance(1)
    assert link.ras_sent == n
    assert p.sep.v6.counters["nd_malformed"] == 1
    assert not [x for x in p.stun.taken if x[0] >> 4 == 6]
    assert p.server.internal_errors == 0
