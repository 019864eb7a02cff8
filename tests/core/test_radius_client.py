"""RadiusClient and DaeListener as sequence charts against an in-memory RADIUS server.

MicroPython subset.
"""

from sluice.radius import packet as P
from sluice.radius.client import RadiusClient, RadiusFailed, RadiusReply, RadiusServer
from sluice.radius.dae import DaeListener, DaeRequest, identify

try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

SECRET = b"a-long-shared-secret-1"
S1 = ("192.0.2.1", 1812)
S2 = ("192.0.2.2", 1812)


def _client(servers=(S1, S2), **kw):
    return RadiusClient([RadiusServer(k, SECRET) for k in servers], harness.SeededRng(3), **kw)


def _answer(raw, code=P.ACCESS_ACCEPT, attrs=(), secret=SECRET, ma=True):
    """What a RADIUS server would reply to `raw`."""
    req = P.decode(raw)
    return P.encode_reply(code, req.ident, req.authenticator, list(attrs), secret, ma)


def _events(m):
    out = []
    for _ in range(100):
        e = m.next_event()
        if e is None:
            return out
        out.append(e)
    raise AssertionError("endless events")


def test_access_request_and_accept():
    # NAS -> S1 Access-Request(User-Name, User-Password hidden, Message-Authenticator) ; S1 -> NAS Access-Accept
    c = _client()
    h = c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"alice"), (P.USER_PASSWORD, b"pw")], 0.0)
    out = c.datagrams_to_send()
    assert len(out) == 1 and out[0][0] == S1
    req = P.decode(out[0][1])
    assert P.verify_access_request(out[0][1], SECRET) is None
    assert P.unhide_password(req.get(P.USER_PASSWORD), SECRET, req.authenticator) == b"pw"
    assert c.get_timer() == 3.0
    c.datagram_received(_answer(out[0][1], attrs=[P.attr_int(P.SESSION_TIMEOUT, 60)]), S1, 0.1)
    ev = _events(c)
    assert len(ev) == 1 and isinstance(ev[0], RadiusReply) and ev[0].handle == h
    assert ev[0].packet.get_int(P.SESSION_TIMEOUT) == 60
    assert c.pending() == 0 and c.get_timer() is None


def test_blastradius_replies_without_or_with_wrong_message_authenticator_are_refused():
    c = _client()
    c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"alice"), (P.USER_PASSWORD, b"pw")], 0.0)
    raw = c.datagrams_to_send()[0][1]
    c.datagram_received(_answer(raw, ma=False), S1, 0.1)  # correct Response Authenticator, no MA
    forged = bytearray(_answer(raw))
    forged[22] ^= 0xFF  # inside the Message-Authenticator value
    c.datagram_received(bytes(forged), S1, 0.2)
    c.datagram_received(_answer(raw, secret=b"not-the-secret"), S1, 0.3)
    assert _events(c) == [] and c.stats["bad_authenticator"] == 3 and c.pending() == 1
    c.datagram_received(_answer(raw), S1, 0.4)  # the genuine reply still ends it
    assert isinstance(_events(c)[0], RadiusReply)


def test_hostile_input_is_counted_and_dropped():
    c = _client()
    c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"alice")], 0.0)
    raw = c.datagrams_to_send()[0][1]
    c.datagram_received(b"\x02\x00\x00", S1, 0.1)
    c.datagram_received(_answer(raw), ("203.0.113.9", 1812), 0.1)  # from a host that is no server of ours
    c.datagram_received(_answer(raw), S2, 0.1)  # right bytes, wrong server: its identifiers are its own
    c.datagram_received(_answer(raw, code=P.ACCOUNTING_RESPONSE), S1, 0.1)
    assert c.stats["malformed"] == 1 and c.stats["unknown_server"] == 1
    assert c.stats["unmatched"] == 1 and c.stats["wrong_code"] == 1
    assert _events(c) == [] and c.pending() == 1


def test_retransmit_then_failover_then_unreachable():
    # S1: 3 sends 3 s apart (same bytes); S2: 3 sends (new id and authenticator); then RadiusFailed.
    c = _client(timeout=3.0, retries=2)
    h = c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"alice"), (P.USER_PASSWORD, b"pw")], 0.0)
    sent = c.datagrams_to_send()
    now = 0.0
    for _ in range(20):
        t = c.get_timer()
        if t is None:
            break
        now = t
        c.handle_timer(now)
        sent += c.datagrams_to_send()
    assert [k for k, _ in sent] == [S1, S1, S1, S2, S2, S2]
    assert sent[0][1] == sent[1][1] == sent[2][1]  # RFC 5080 2.2.1: retransmissions are identical
    assert sent[3][1][4:20] != sent[0][1][4:20]
    ev = _events(c)
    assert len(ev) == 1 and isinstance(ev[0], RadiusFailed) and ev[0].handle == h
    assert ev[0].reason == ("RADIUS unreachable: no reply from 192.0.2.1:1812, 192.0.2.2:1812 after 3 tries "
                            "each, 3 s apart")
    assert now == 18.0 and c.pending() == 0
    # Both are dead now; the next request still tries them (in order) rather than failing at once.
    c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"bob")], now)
    assert c.datagrams_to_send()[0][0] == S1


def test_dead_server_is_skipped_until_dead_time_passes():
    c = _client(timeout=1.0, retries=0, dead_time=30.0)
    c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"a")], 0.0)
    c.datagrams_to_send()
    c.handle_timer(1.0)  # S1 gives up after its single try; on to S2
    raw = c.datagrams_to_send()
    assert raw[0][0] == S2
    c.datagram_received(_answer(raw[0][1]), S2, 1.5)
    c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"b")], 2.0)
    assert c.datagrams_to_send()[0][0] == S2  # S1 is marked dead
    c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"c")], 32.0)
    assert c.datagrams_to_send()[0][0] == S1  # dead_time passed: back to the configured order


def test_pending_table_is_bounded():
    c = _client(servers=(S1,), max_pending=4)
    for i in range(6):
        c.request(P.ACCOUNTING_REQUEST, [(P.USER_NAME, b"u%d" % i)], 0.0)
    assert c.pending() == 4 and len(c.datagrams_to_send()) == 4
    ev = _events(c)
    assert [type(e).__name__ for e in ev] == ["RadiusFailed", "RadiusFailed"]
    assert "4 requests already pending" in ev[0].reason


def test_identifiers_are_distinct_per_server_and_accounting_replies():
    c = _client(servers=(S1,))
    for i in range(3):
        c.request(P.ACCOUNTING_REQUEST, [(P.USER_NAME, b"u")], 0.0)
    out = c.datagrams_to_send()
    ids = [P.decode(raw).ident for _, raw in out]
    assert len(set(ids)) == 3
    for _, raw in reversed(out):
        assert P.verify_request(raw, SECRET, True) is None
        c.datagram_received(_answer(raw, code=P.ACCOUNTING_RESPONSE, ma=False), S1, 0.1)
    assert [type(e).__name__ for e in _events(c)] == ["RadiusReply"] * 3


def _dae():
    return DaeListener({"192.0.2.1": SECRET})


def test_disconnect_request_ack():
    # RADIUS -> NAS Disconnect-Request(User-Name, Acct-Session-Id, MA) ; NAS -> RADIUS Disconnect-ACK
    d = _dae()
    raw = P.encode_request(P.DISCONNECT_REQUEST, 5, [P.attr_str(P.USER_NAME, "alice"),
                                                     P.attr_str(P.ACCT_SESSION_ID, "0000000a")], SECRET)
    peer = ("192.0.2.1", 40000)
    d.datagram_received(raw, peer, 0.0)
    ev = _events(d)
    assert len(ev) == 1 and isinstance(ev[0], DaeRequest) and ev[0].kind == "disconnect"
    assert identify(ev[0].packet) == {"user_name": "alice", "acct_session_id": "0000000a", "framed_ip": None,
                                      "nas_identifier": None}
    d.answer(ev[0].ref, True, None, 0.1)
    out = d.datagrams_to_send()
    assert len(out) == 1 and out[0][0] == peer
    rep = P.decode(out[0][1])
    assert rep.code == P.DISCONNECT_ACK and rep.ident == 5
    assert P.verify_reply(out[0][1], raw[4:20], SECRET, True) is None
    # The same request again (the ACK was lost): the same ACK, no second event.
    d.datagram_received(raw, peer, 1.0)
    assert _events(d) == [] and d.datagrams_to_send() == out


def test_coa_nak_with_error_cause_and_unanswered_expiry():
    d = _dae()
    peer = ("192.0.2.1", 40001)
    raw = P.encode_request(P.COA_REQUEST, 6, [P.attr_str(P.USER_NAME, "nobody"), P.attr_int(P.SESSION_TIMEOUT, 5)],
                           SECRET)
    d.datagram_received(raw, peer, 0.0)
    ev = _events(d)[0]
    assert ev.kind == "coa"
    d.answer(ev.ref, False, P.ERR_SESSION_NOT_FOUND, 0.0)
    rep = P.decode(d.datagrams_to_send()[0][1])
    assert rep.code == P.COA_NAK and rep.get_int(P.ERROR_CAUSE) == 503
    # Proxy-State comes back unchanged and in order (RFC 5176 3.1).
    raw3 = P.encode_request(P.COA_REQUEST, 8, [P.attr_str(P.USER_NAME, "x"), (P.PROXY_STATE, b"p1"),
                                               (P.PROXY_STATE, b"p2")], SECRET)
    d.datagram_received(raw3, peer, 0.0)
    d.answer(_events(d)[0].ref, True, None, 0.0)
    assert P.decode(d.datagrams_to_send()[0][1]).get_all(P.PROXY_STATE) == [b"p1", b"p2"]
    raw2 = P.encode_request(P.DISCONNECT_REQUEST, 7, [P.attr_str(P.USER_NAME, "x")], SECRET)
    d.datagram_received(raw2, peer, 0.0)
    _events(d)
    assert d.get_timer() == 5.0
    d.handle_timer(5.0)  # the engine never answered: NAK 506
    rep = P.decode(d.datagrams_to_send()[0][1])
    assert rep.code == P.DISCONNECT_NAK and rep.get_int(P.ERROR_CAUSE) == P.ERR_RESOURCES_UNAVAILABLE


def test_dae_drops_forgeries_silently():
    d = _dae()
    good = P.encode_request(P.DISCONNECT_REQUEST, 1, [P.attr_str(P.USER_NAME, "alice")], SECRET)
    d.datagram_received(good, ("203.0.113.5", 3799), 0.0)  # not a configured client
    d.datagram_received(P.encode_request(P.DISCONNECT_REQUEST, 1, [P.attr_str(P.USER_NAME, "alice")], b"guess"),
                        ("192.0.2.1", 1), 0.0)
    d.datagram_received(P.encode_request(P.DISCONNECT_REQUEST, 2, [P.attr_str(P.USER_NAME, "alice")], SECRET,
                                         None, False), ("192.0.2.1", 1), 0.0)  # no Message-Authenticator
    d.datagram_received(P.encode_request(P.ACCOUNTING_REQUEST, 3, [], SECRET), ("192.0.2.1", 1), 0.0)
    d.datagram_received(good[:10], ("192.0.2.1", 1), 0.0)
    assert _events(d) == [] and d.datagrams_to_send() == []
    s = d.stats
    assert (s["unknown_client"], s["bad_authenticator"], s["wrong_code"], s["malformed"]) == (1, 2, 1, 1)


def test_dae_open_table_is_bounded():
    d = DaeListener({"192.0.2.1": SECRET}, max_open=3)
    for i in range(5):
        d.datagram_received(P.encode_request(P.DISCONNECT_REQUEST, i, [P.attr_str(P.USER_NAME, "u")], SECRET),
                            ("192.0.2.1", 1), 0.0)
    assert len(_events(d)) == 3 and d.stats["table_full"] == 2


def test_unencodable_request_fails_cleanly():
    # A PPP peer may send a 255-octet PAP password; RADIUS carries at most 128 (RFC 2865 5.2).
    c = _client()
    h = c.request(P.ACCESS_REQUEST, [(P.USER_NAME, b"alice"), (P.USER_PASSWORD, b"p" * 200)], 0.0)
    ev = _events(c)
    assert len(ev) == 1 and isinstance(ev[0], RadiusFailed) and ev[0].handle == h
    assert ev[0].reason == "RADIUS: the request cannot be encoded: User-Password longer than 128 octets"
    assert c.pending() == 0 and c.datagrams_to_send() == [] and c.get_timer() is None


def test_radius_logins_glue():
    from sluice.ppp.events import VerifyCredentials
    from sluice.radius.auth import RadiusLogins
    c = _client(servers=(S1,), timeout=1.0, retries=0)
    logins = RadiusLogins(c, nas_identifier="gw1")
    logins.ask("link-1", VerifyCredentials("pap", "alice", password=b"pw"), 0.0)
    logins.ask("link-2", VerifyCredentials("pap", "bob", password=b"x" * 200), 0.0)
    logins.ask("link-3", VerifyCredentials("pap", "carol", password=b"pw"), 0.0)
    logins.ask("link-4", VerifyCredentials("pap", "dave", password=b"pw"), 0.0)
    logins.forget("link-4")
    out = c.datagrams_to_send()
    assert len(out) == 3  # link-4 was sent before it was forgotten; its reply will be unmatched
    c.datagram_received(_answer(out[0][1], attrs=[P.attr_ip(P.FRAMED_IP_ADDRESS, "198.51.100.5")]), S1, 0.5)
    c.handle_timer(1.0)  # carol's request: no reply, no other server
    got = dict(logins.verdicts())
    assert sorted(got) == ["link-1", "link-2", "link-3"]
    assert got["link-1"].ok and got["link-1"].address == "198.51.100.5"
    assert not got["link-2"].ok and "User-Password longer than 128" in got["link-2"].reason
    assert not got["link-3"].ok and got["link-3"].reason.startswith("RADIUS unreachable")
    assert got["link-1"].question.username == "alice" and got["link-3"].question.username == "carol"
    assert got["link-1"].auth_result_kwargs()["question"] is got["link-1"].question
    assert logins.verdicts() == []
