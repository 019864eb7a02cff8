"""A Configure-Request sent before the peer listens is repeated when the peer's first request arrives.

Interop finding (xl2tpd + pppd): our first LCP request crosses ICCN while the peer's pppd is still starting,
is lost, and the link waited the full 3 s restart timer. The repeat goes out before our Configure-Ack, so
when the requests merely crossed, the duplicate never makes the peer renegotiate.
"""

import ppp_pair
from sluice.ppp.framing import PROTO_LCP

CONF_REQ = 1


def lcp_requests(pair, who):
    return [t for t in pair.trace if t[0] == who and t[1] == PROTO_LCP and t[2] == CONF_REQ]


def test_request_lost_before_the_peer_listened_is_repeated_at_first_contact():
    p = ppp_pair.Pair()
    # server --> ConfReq (lost: the client's pppd is not running yet)
    p.server.open(p.now)
    lost = p.server.frames_to_send()
    assert len(lost) == 1
    # 0.5 s later the client comes up:  <-- ConfReq ; server --> ConfAck + ConfReq again at once
    p.now = 0.5
    p.client.open(p.now)
    p.pump()
    assert len(lcp_requests(p, "s>c")) == 1  # the repeat, not waiting for the 3 s restart timer
    p.run(until=2.9)
    assert p.first("client", "IpUp") is not None and p.first("server", "IpUp") is not None


def test_requests_that_cross_come_up_once_without_renegotiation():
    p = ppp_pair.Pair()
    p.open()
    p.now = 0.2  # even a slow crossing, which triggers the repeat, must not renegotiate
    p.run(until=2.0)
    for who in ("client", "server"):
        assert p.kinds(who).count("IpUp") == 1 and "LinkDown" not in p.kinds(who)
    # the one repeat each way, and no second round of negotiation
    assert len(lcp_requests(p, "s>c")) == 2 and len(lcp_requests(p, "c>s")) == 2  # repeated, harmlessly
