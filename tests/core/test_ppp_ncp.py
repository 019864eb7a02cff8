"""IPCP (RFC 1332, RFC 1877), IPv6CP (RFC 5072) and Protocol-Reject of what we do not run (RFC 1661 5.7).

Two PppLinks in memory; frames a Windows client would send are written by hand from the RFC layouts.
MicroPython subset.
"""

try:
    import ppp_pair
except ImportError:  # run from the repository root
    from tests.core import ppp_pair

from sluice.ppp.framing import build_frame, parse_options, parse_packet, split

Pair = ppp_pair.Pair
client_config = ppp_pair.client_config
server_config = ppp_pair.server_config

LCP, IPCP, IPV6CP, CCP = 0xC021, 0x8021, 0x8057, 0x80FD


def _up(**kw):
    p = Pair(**kw)
    p.open()
    p.run(10)
    return p


def test_address_and_dns_assignment():
    # c>s IPCP Conf-Req(IP 0.0.0.0, DNS1 0.0.0.0, DNS2 0.0.0.0)
    # s>c Conf-Nak(IP 198.51.100.10, DNS1 192.0.2.53, DNS2 192.0.2.54)   (RFC 1332 3.3, RFC 1877 1.1)
    # c>s Conf-Req(with those) ; s>c Conf-Ack
    naks = []

    def tap(direction, frame):
        if direction == "s>c" and frame[2:4] == b"\x80\x21" and frame[4] == 3:
            naks.append(parse_options(parse_packet(frame, 4)[2]))
        return frame
    p = Pair()
    p.tamper = tap
    p.open()
    p.run(10)
    assert naks == [[(3, bytes((198, 51, 100, 10))), (129, bytes((192, 0, 2, 53))), (131, bytes((192, 0, 2, 54)))]]
    c = p.first("client", "IpUp")
    assert (c.local_ip, c.peer_ip, c.dns) == ("198.51.100.10", "198.51.100.1", ["192.0.2.53", "192.0.2.54"])
    s = p.first("server", "IpUp")
    assert (s.local_ip, s.peer_ip) == ("198.51.100.1", "198.51.100.10")
    st = p.client.status()
    assert st["ipcp"] == "opened" and st["local_ip"] == "198.51.100.10" and st["dns"] == ["192.0.2.53", "192.0.2.54"]


def test_no_dns_configured_rejects_the_dns_options():
    p = _up(server_cfg=server_config(dns=[]))
    assert p.first("client", "IpUp").dns == []
    assert ("s>c", IPCP, 4) in p.trace  # Configure-Reject of options 129/131 (RFC 1877 1)


def test_assign_address_called_with_the_authenticated_user():
    asked = []

    def assign(username):
        asked.append(username)
        return "198.51.100.77"
    p = _up(client_cfg=client_config(username="bob", password="hunter2", auth=("pap",)),
            server_cfg=server_config(assign_address=assign))
    assert asked == ["bob"]
    assert p.first("client", "IpUp").local_ip == "198.51.100.77"


def test_pool_exhausted_ends_the_link_with_a_reason():
    p = Pair(server_cfg=server_config(assign_address=lambda u: None))
    p.open()
    p.run(30)
    reason = p.first("server", "LinkDown").reason
    assert reason.startswith("no IPv4 address to give to user alice"), reason
    assert "IpUp" not in p.kinds("client")


def _server_after_auth():
    """A server link whose client is driven by hand from IPCP on (the real client did LCP and auth)."""
    p = Pair()
    p.open()
    p.run(10)
    return p


def test_wrong_address_from_client_is_naked_with_the_assigned_one():
    p = _server_after_auth()
    s = p.server
    # A client insisting on 203.0.113.9 (RFC 1332 3.3: Nak with the address the peer should use).
    s.frame_received(build_frame(IPCP, 1, 0x42, b"\x03\x06" + bytes((203, 0, 113, 9))), p.now)
    out = s.frames_to_send()
    replies = [f for f in out if f[2:4] == b"\x80\x21" and f[4] == 3]
    assert len(replies) == 1
    code, ident, data = parse_packet(replies[0], 4)
    assert ident == 0x42 and parse_options(data) == [(3, bytes((198, 51, 100, 10)))]


def test_vj_compression_is_rejected():
    p = _server_after_auth()
    s = p.server
    vj = b"\x02\x06\x00\x2d\x0f\x01"  # IP-Compression-Protocol Van Jacobson, RFC 1332 3.2
    s.frame_received(build_frame(IPCP, 1, 0x43, b"\x03\x06" + bytes((198, 51, 100, 10)) + vj), p.now)
    rej = [f for f in s.frames_to_send() if f[2:4] == b"\x80\x21" and f[4] == 4]
    assert len(rej) == 1 and parse_packet(rej[0], 4)[2] == vj


def test_ipv6cp_on_both_ends():
    p = _up(client_cfg=client_config(ipv6=True), server_cfg=server_config(ipv6=True))
    c = p.first("client", "Ipv6Up")
    s = p.first("server", "Ipv6Up")
    assert c is not None and s is not None
    assert c.local_ifid == s.peer_ifid and c.peer_ifid == s.local_ifid
    assert len(c.local_ifid) == 8 and c.local_ifid != c.peer_ifid and c.local_ifid != b"\x00" * 8
    assert p.first("client", "IpUp") is not None


def test_ipv6cp_off_on_the_server_is_protocol_rejected():
    # c>s IPv6CP Conf-Req ; s>c LCP Protocol-Reject(0x8057, ...) ; the client's IPv6CP stops, IPv4 stays.
    p = _up(client_cfg=client_config(ipv6=True), server_cfg=server_config(ipv6=False))
    assert ("s>c", LCP, 8) in p.trace
    assert p.first("client", "Ipv6Up") is None
    assert p.first("client", "IpUp") is not None
    assert p.client.status()["ipv6cp"] == "stopped"
    assert p.client.status()["phase"] == "network"
    assert "LinkDown" not in p.kinds("client") + p.kinds("server")


def test_ccp_from_a_windows_client_is_protocol_rejected():
    # Windows asks for MPPE through CCP (0x80FD) option 18: the server answers LCP Protocol-Reject.
    p = _server_after_auth()
    s = p.server
    ccp = build_frame(CCP, 1, 5, b"\x12\x06\x01\x00\x00\x60")
    s.frame_received(ccp, p.now)
    out = s.frames_to_send()
    assert len(out) == 1
    proto, off = split(out[0])
    code, ident, data = parse_packet(out[0], off)
    assert (proto, code) == (LCP, 8)
    assert data == ccp[2:]  # RFC 1661 5.7: Rejected-Protocol then the rejected information
    assert s.status()["phase"] == "network" and s.status()["ipcp"] == "opened"


def test_unknown_protocol_rejected_only_once_lcp_is_opened():
    p = Pair()
    p.server.open(0.0)
    p.server.frames_to_send()
    p.server.frame_received(b"\xff\x03\x80\x31\x01\x01\x00\x04", 0.0)  # before LCP Opened: silently dropped
    assert p.server.frames_to_send() == []
    assert p.server.stats["discarded"] == 1


def test_ncp_before_authentication_is_dropped():
    # RFC 1661 3.5: an IPCP request while authentication runs is discarded, not answered.
    p = Pair(client_cfg=client_config(auth=("chap",)))
    holding = []

    def hold(direction, frame):
        if direction == "c>s" and frame[2:4] == b"\xc2\x23":
            holding.append(frame)
            return None
        return frame
    p.tamper = hold
    p.open()
    p.pump()
    assert p.server.phase == "authenticate"
    p.server.frame_received(build_frame(IPCP, 1, 9, b"\x03\x06\x00\x00\x00\x00"), p.now)
    assert [f for f in p.server.frames_to_send() if f[2:4] == b"\x80\x21"] == []


def test_client_learns_the_protocol_rejected_ipcp_ends_the_link():
    p = _server_after_auth()
    c = p.client
    c.frame_received(build_frame(LCP, 8, 0x77, b"\x80\x21\x01\x01\x00\x04"), p.now)
    p.run(60)
    assert "Protocol-Rejected IPCP" in p.first("client", "LinkDown").reason
