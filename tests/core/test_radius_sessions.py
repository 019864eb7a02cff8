"""RadiusSessions: accounting Start/Interim/Stop and Session-/Idle-Timeout, with a fake clock and counters.

MicroPython subset.
"""

from sluice.radius import auth, packet as P
from sluice.radius.client import RadiusClient, RadiusServer
from sluice.radius.dae import identify
from sluice.radius.sessions import RadiusSessions

try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

SECRET = b"a-long-shared-secret-1"
ACCT = ("192.0.2.1", 1813)


def _table(interim_default=None):
    acct = RadiusClient([RadiusServer(ACCT, SECRET)], harness.SeededRng(4), kind="RADIUS accounting")
    return RadiusSessions(acct, auth.nas_attrs("gw1"), harness.SeededRng(9), interim_default), acct


def _verdict(**kw):
    v = auth.AccessVerdict()
    v.ok = True
    for k in kw:
        setattr(v, k, kw[k])
    return v


def _sent(acct, ack=True):
    """Decoded requests the accounting client sent; each answered with an Accounting-Response when ack."""
    out = []
    for key, raw in acct.datagrams_to_send():
        pkt = P.decode(raw)
        out.append(pkt)
        if ack:
            acct.datagram_received(P.encode_reply(P.ACCOUNTING_RESPONSE, pkt.ident, pkt.authenticator, [], SECRET),
                                   key, 0.0)
    return out


def test_start_interim_stop():
    t, acct = _table()
    counters = {"s1": (0, 0, 0, 0)}
    sid = t.start("s1", "alice", "198.51.100.10", 100.0, _verdict(interim_interval=300, class_=[b"c1"]))
    assert len(sid) == 16 and t.session_id("s1") == sid
    start, = _sent(acct)
    assert start.get_int(P.ACCT_STATUS_TYPE) == P.ACCT_START and start.get(P.ACCT_SESSION_ID) == sid.encode()
    assert start.get(P.CLASS) == b"c1" and start.get_ip(P.FRAMED_IP_ADDRESS) == "198.51.100.10"
    assert t.get_timer() == 400.0
    counters["s1"] = (1000, 2000, 10, 20)
    t.handle_timer(400.0, counters.get)
    interim, = _sent(acct)
    assert interim.get_int(P.ACCT_STATUS_TYPE) == P.ACCT_INTERIM and interim.get_int(P.ACCT_SESSION_TIME) == 300
    assert interim.get_int(P.ACCT_INPUT_OCTETS) == 1000 and interim.get_int(P.ACCT_OUTPUT_PACKETS) == 20
    t.stop("s1", 461.0, (1 << 33, 5, 11, 21), P.TERM_USER_REQUEST)
    stop, = _sent(acct)
    assert stop.get_int(P.ACCT_STATUS_TYPE) == P.ACCT_STOP and stop.get_int(P.ACCT_SESSION_TIME) == 361
    assert stop.get_int(P.ACCT_INPUT_GIGAWORDS) == 2 and stop.get_int(P.ACCT_TERMINATE_CAUSE) == 1
    assert len(t) == 0 and t.get_timer() is None and t.messages() == []


def test_local_user_is_accounted_as_local_and_interim_floor():
    t, acct = _table(interim_default=10)  # below RFC 2869's 60 s floor
    t.start("s1", "bob", "198.51.100.11", 0.0)
    start, = _sent(acct)
    assert start.get_int(P.ACCT_AUTHENTIC) == P.ACCT_AUTH_LOCAL
    assert t.get_timer() == 60.0


def test_session_timeout_expires_once():
    t, acct = _table()
    t.start("s1", "alice", "198.51.100.10", 0.0, _verdict(session_timeout=900))
    _sent(acct)
    assert t.get_timer() == 900.0
    t.handle_timer(900.0, lambda k: (0, 0, 0, 0))
    assert t.expired() == [("s1", P.TERM_SESSION_TIMEOUT, "Session-Timeout from RADIUS reached (900 s)")]
    t.handle_timer(901.0, lambda k: (0, 0, 0, 0))
    assert t.expired() == [] and t.get_timer() is None
    t.stop("s1", 901.0, (0, 0, 0, 0), P.TERM_SESSION_TIMEOUT)
    assert _sent(acct)[0].get_int(P.ACCT_TERMINATE_CAUSE) == P.TERM_SESSION_TIMEOUT


def test_idle_timeout_sees_moving_counters_as_activity():
    t, acct = _table()
    c = {"s1": (0, 0, 0, 0)}
    t.start("s1", "alice", "198.51.100.10", 0.0, _verdict(idle_timeout=600), counters=c["s1"])
    now = 0.0
    for _ in range(20):  # traffic every check until 900 s, then silence
        now = t.get_timer()
        if now <= 900:
            c["s1"] = (c["s1"][0] + 1, 0, c["s1"][2] + 1, 0)
        t.handle_timer(now, c.get)
        got = t.expired()
        if got:
            break
    assert got == [("s1", P.TERM_IDLE_TIMEOUT, "Idle-Timeout from RADIUS reached (no traffic for 600 s)")]
    assert 900 + 600 <= now <= 900 + 600 + 150  # within a quarter of the timeout


def test_coa_session_timeout_and_dae_find():
    t, acct = _table()
    sid1 = t.start("s1", "alice", "198.51.100.10", 0.0)
    t.start("s2", "alice", "198.51.100.12", 0.0)
    t.start("s3", "bob", "198.51.100.11", 0.0)
    assert len(_sent(acct)) == 3
    assert sorted(t.find({"user_name": "alice"})) == ["s1", "s2"]
    assert t.find({"acct_session_id": sid1, "user_name": "alice"}) == ["s1"]
    assert t.find({"acct_session_id": sid1, "user_name": "bob"}) == []
    assert t.find({"framed_ip": "198.51.100.11"}) == ["s3"]
    assert t.find({"nas_identifier": "gw1"}) == []  # names no session
    pkt = P.Packet(P.DISCONNECT_REQUEST, 0, attrs=[P.attr_str(P.USER_NAME, "bob")])
    assert t.find(identify(pkt)) == ["s3"]
    assert t.set_session_timeout("s3", 120, 50.0) and t.get_timer() == 120.0
    assert not t.set_session_timeout("nope", 120, 50.0)


def test_lost_accounting_is_said():
    t, acct = _table()
    t.start("s1", "alice", "198.51.100.10", 0.0)
    _sent(acct, ack=False)
    now = 0.0
    for _ in range(10):
        now = t.get_timer()
        if now is None:
            break
        t.handle_timer(now, lambda k: (0, 0, 0, 0))
        acct.datagrams_to_send()
    msgs = t.messages()
    assert msgs == ["accounting record lost: RADIUS accounting unreachable: no reply from 192.0.2.1:1813 after 3 "
                    "tries each, 3 s apart"]
    assert t.stats["acct_failed"] == 1


def test_limits_without_accounting():
    t = RadiusSessions(None, auth.nas_attrs("gw1"), harness.SeededRng(1))
    t.start("s1", "alice", "198.51.100.10", 0.0, _verdict(session_timeout=60))
    t.handle_timer(60.0, lambda k: (0, 0, 0, 0))
    assert t.expired()[0][1] == P.TERM_SESSION_TIMEOUT
