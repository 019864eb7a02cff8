"""A scripted Windows-style client against our server PppLink, frame by frame (shared/docs/clients.md).

The client's frames are written by hand from the RFC layouts; the MS-CHAPv2 response uses the RFC 2759
functions pinned to the 9.2 sample data in test_ppp_crypto_vectors. MicroPython subset.
"""

try:
    import ppp_pair
except ImportError:  # run from the repository root
    from tests.core import ppp_pair
try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.ppp import mschapv2
from sluice.ppp.framing import build_frame, parse_options, parse_packet, split
from sluice.ppp.link import PppLink

LCP, CHAP, IPCP, IPV6CP, CCP = 0xC021, 0xC223, 0x8021, 0x8057, 0x80FD


class Server:
    def __init__(self):
        self.link = PppLink("server", ppp_pair.server_config(nbns=[]), harness.SeededRng(21))
        self.now = 0.0
        self.link.open(self.now)
        self.pending = self.link.frames_to_send()

    def send(self, proto, code, ident, data):
        """Client -> server; returns [(proto, code, ident, data)] the server answered."""
        self.link.frame_received(build_frame(proto, code, ident, data), self.now)
        out = []
        for f in self.link.frames_to_send():
            p, off = split(f)
            c, i, d = parse_packet(f, off)
            out.append((p, c, i, d))
        return out


def test_windows_style_session():
    s = Server()
    server_req = parse_packet(s.pending[0], 4)
    assert server_req[0] == 1
    sreq_opts = dict(parse_options(server_req[2]))
    assert sreq_opts[3] == b"\xc2\x23\x81"  # Auth-Protocol CHAP with MS-CHAPv2 first

    # c>s LCP Conf-Req(MRU 1400, Magic, PFC, ACFC, Callback 6, MRRU 1614, Endpoint Discriminator)
    win = (b"\x01\x04\x05\x78", b"\x05\x06\x4a\x1b\x2c\x3d", b"\x07\x02", b"\x08\x02", b"\x0d\x03\x06",
           b"\x11\x04\x06\x4e", b"\x13\x09\x03\x00\x11\x22\x33\x44\x55")
    # s>c Conf-Reject(Callback, MRRU, Endpoint Discriminator), exactly as sent (RFC 1661 5.4)
    assert s.send(LCP, 1, 0, b"".join(win)) == [(LCP, 4, 0, b"".join(win[4:]))]
    # c>s Conf-Req(without them) ; s>c Conf-Ack
    assert s.send(LCP, 1, 1, b"".join(win[:4])) == [(LCP, 2, 1, b"".join(win[:4]))]
    # c>s Conf-Ack(server's request) ; s>c CHAP Challenge
    out = s.send(LCP, 2, server_req[1], server_req[2])
    assert len(out) == 1 and out[0][:2] == (CHAP, 1)
    ch_ident, body = out[0][2], out[0][3]
    challenge = body[1:17]
    assert body[0] == 16 and body[17:] == b"sluice"

    # c>s CHAP Response(Peer-Challenge, NT-Response, Name "DOM\\carol")
    peer_ch = bytes(range(16))
    nt = mschapv2.generate_nt_response(challenge, peer_ch, "DOM\\carol", "pa55")
    value = mschapv2.build_response_value(peer_ch, nt)
    out = s.send(CHAP, 2, ch_ident, bytes((49,)) + value + b"DOM\\carol")
    # s>c Success "S=<authenticator response> M=..." ; s>c IPCP Conf-Req(IP 198.51.100.1)
    assert out[0][:3] == (CHAP, 3, ch_ident)
    want = mschapv2.generate_authenticator_response("pa55", nt, peer_ch, challenge, "DOM\\carol")
    assert mschapv2.check_success(out[0][3], want)
    assert out[1][:2] == (IPCP, 1) and parse_options(out[1][3]) == [(3, bytes((198, 51, 100, 1)))]
    ipcp_req = out[1]
    ev = s.link.next_event()
    assert type(ev).__name__ == "Authenticated" and ev.username == "DOM\\carol"

    # c>s CCP Conf-Req(MPPE 128) ; s>c LCP Protocol-Reject(80FD ...) (RFC 1661 5.7)
    out = s.send(CCP, 1, 4, b"\x12\x06\x01\x00\x00\x40")
    assert len(out) == 1 and out[0][:2] == (LCP, 8) and out[0][3][:2] == b"\x80\xfd"
    # c>s IPv6CP Conf-Req ; s>c LCP Protocol-Reject(8057 ...): the server runs without IPv6
    out = s.send(IPV6CP, 1, 5, b"\x01\x0a" + bytes(range(1, 9)))
    assert len(out) == 1 and out[0][:2] == (LCP, 8) and out[0][3][:2] == b"\x80\x57"

    # c>s IPCP Conf-Req(IP 0, DNS1 0, NBNS1 0, DNS2 0, NBNS2 0)
    zero = b"\x00\x00\x00\x00"
    req = b"\x03\x06" + zero + b"\x81\x06" + zero + b"\x82\x06" + zero + b"\x83\x06" + zero + b"\x84\x06" + zero
    # s>c Conf-Reject(NBNS1, NBNS2): no NBNS configured, and Reject takes precedence over Nak (RFC 1661 5.4)
    assert s.send(IPCP, 1, 6, req) == [(IPCP, 4, 6, b"\x82\x06" + zero + b"\x84\x06" + zero)]
    # c>s Conf-Req(IP 0, DNS1 0, DNS2 0) ; s>c Conf-Nak(IP 198.51.100.10, DNS 192.0.2.53, 192.0.2.54)
    req = b"\x03\x06" + zero + b"\x81\x06" + zero + b"\x83\x06" + zero
    out = s.send(IPCP, 1, 7, req)
    assert out[0][:3] == (IPCP, 3, 7)
    assert dict(parse_options(out[0][3])) == {3: bytes((198, 51, 100, 10)), 129: bytes((192, 0, 2, 53)),
                                              131: bytes((192, 0, 2, 54))}
    # c>s Conf-Req(the Nak-ed values) ; s>c Conf-Ack ; c>s Conf-Ack(server's IPCP request) -> IpUp
    req = b"\x03\x06" + bytes((198, 51, 100, 10)) + b"\x81\x06" + bytes((192, 0, 2, 53)) + b"\x83\x06" + \
        bytes((192, 0, 2, 54))
    assert s.send(IPCP, 1, 8, req) == [(IPCP, 2, 8, req)]
    assert s.send(IPCP, 2, ipcp_req[2], ipcp_req[3]) == []
    ev = s.link.next_event()
    assert type(ev).__name__ == "IpUp"
    assert (ev.local_ip, ev.peer_ip) == ("198.51.100.1", "198.51.100.10")
    st = s.link.status()
    assert (st["phase"], st["lcp"], st["ipcp"], st["auth"], st["username"]) == (
        "network", "opened", "opened", "mschapv2", "DOM\\carol")
    assert st["counters"]["protocol_rejects"] == 2

    # c>s LCP Echo-Request(magic) ; s>c Echo-Reply(server magic, same data)
    out = s.send(LCP, 9, 0x30, b"\x4a\x1b\x2c\x3d" + b"ping")
    assert out == [(LCP, 10, 0x30, sreq_opts[5] + b"ping")]

    # c>s LCP Terminate-Request ; s>c Terminate-Ack ; 3 s later the server's link is finished
    assert s.send(LCP, 5, 0x31, b"User request") == [(LCP, 6, 0x31, b"")]
    s.link.handle_timer(s.link.get_timer())
    ev = s.link.next_event()
    assert type(ev).__name__ == "LinkDown" and ev.reason == "the peer closed the link: User request"
