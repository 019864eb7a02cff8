"""PPP server authentication decided by the owner (RADIUS): VerifyCredentials out, auth_result in.

Sequence: c>s credentials ; (server emits VerifyCredentials, waits) ; owner -> auth_result ; s>c verdict.
MicroPython subset.
"""

from sluice.ppp import chap, mschapv2
from sluice.ppp.events import VerifyCredentials

try:
    import ppp_pair
except ImportError:  # run from the repository root
    from tests.core import ppp_pair

Pair = ppp_pair.Pair
client_config = ppp_pair.client_config
server_config = ppp_pair.server_config

REMOTE = {"rita": "remote pw", "DOM\\rita": "remote pw"}  # what the "RADIUS server" knows


def backend(cred):
    """The verdict a RADIUS server would reach, as auth_result keyword arguments."""
    pw = REMOTE.get(cred.username)
    if pw is None:
        return {"ok": False, "reason": "rejected by RADIUS"}
    if cred.method == "pap":
        return {"ok": cred.password == pw.encode(), "reason": "rejected by RADIUS"}
    if cred.method == "chap":
        return {"ok": cred.response == chap.md5_response(cred.ident, pw.encode(), cred.challenge),
                "reason": "rejected by RADIUS"}
    peer_challenge, nt = mschapv2.parse_response_value(cred.response)
    if nt != mschapv2.generate_nt_response(cred.challenge, peer_challenge, cred.username, pw):
        return {"ok": False, "reason": "rejected by RADIUS"}
    return {"ok": True, "authenticator_response": mschapv2.generate_authenticator_response(
        pw, nt, peer_challenge, cred.challenge, cred.username)}


def _asks(p):
    return [e for e in p.events["server"] if isinstance(e, VerifyCredentials)]


def _login(auth, username="rita", password="remote pw", delay=7.0, extra=None):
    p = Pair(client_cfg=client_config(auth=(auth,), username=username, password=password),
             server_cfg=server_config(auth=(auth,), external_auth=True, auth_wait=10.0))
    p.open()
    p.run(delay)  # the backend takes `delay` seconds; the client keeps retransmitting meanwhile
    asks = _asks(p)
    assert len(asks) == 1, (auth, p.events["server"])
    kw = backend(asks[0])
    if extra:
        kw.update(extra)
    assert p.server.auth_result(p.now, asks[0], **kw)
    p.run(p.now + 10)
    return p, asks[0]


def test_each_method_through_the_backend():
    for auth in ("pap", "chap", "mschapv2"):
        p, ask = _login(auth)
        assert ask.method == auth and ask.username == "rita"
        assert p.kinds("server") == ["VerifyCredentials", "Authenticated", "IpUp"], (auth, p.events["server"])
        assert p.kinds("client") == ["Authenticated", "IpUp"], (auth, p.events["client"])
        assert p.first("server", "Authenticated").username == "rita"
        # The client repeated its credentials while the backend decided; one question went out, one verdict came.
        sent = [x for x in p.trace if x[0] == "c>s" and x[1] in (0xC023, 0xC223) and x[2] in (1, 2)]
        verdicts = [x for x in p.trace if x[0] == "s>c" and x[1] in (0xC023, 0xC223) and x[2] in (2, 3, 4)]
        assert len(sent) >= 2 and len(verdicts) == 1, (auth, sent, verdicts)


def test_mschapv2_success_carries_the_backends_authenticator_response():
    # RFC 2759 5: the client verifies "S=..."; the backend's value (RADIUS MS-CHAP2-Success) must be right.
    p, ask = _login("mschapv2")
    assert len(ask.challenge) == 16 and len(ask.response) == 49
    assert p.kinds("client") == ["Authenticated", "IpUp"]
    # A backend that accepts but sends a wrong authenticator response: the client refuses the server.
    p, _ = _login("mschapv2", extra={"authenticator_response": "S=" + "0" * 40})
    assert p.kinds("client") == ["AuthFailed", "LinkDown"]
    assert "did not verify" in p.first("client", "AuthFailed").reason
    # Accepting MS-CHAPv2 without one at all is a failure on our side, said so.
    p, _ = _login("mschapv2", extra={"authenticator_response": None})
    assert "sent no authenticator response" in p.first("server", "AuthFailed").reason


def test_backend_rejects_each_method():
    for auth in ("pap", "chap", "mschapv2"):
        p, _ = _login(auth, password="wrong")
        assert p.kinds("server") == ["VerifyCredentials", "AuthFailed", "LinkDown"], (auth, p.events["server"])
        assert p.first("server", "AuthFailed").reason == "authentication failed for user rita (rejected by RADIUS)"
        assert p.kinds("client") == ["AuthFailed", "LinkDown"], (auth, p.events["client"])


def test_mschapv2_failure_text_from_the_backend_reaches_the_client():
    p, _ = _login("mschapv2", password="wrong", extra={"message": b"E=648 R=0 V=3 M=Password expired"})
    assert "error 648" in p.first("client", "AuthFailed").reason


def test_local_users_stay_local():
    # alice is in the local table: no VerifyCredentials, as before external_auth existed.
    for auth in ("pap", "chap", "mschapv2"):
        p = Pair(client_cfg=client_config(auth=(auth,)), server_cfg=server_config(auth=(auth,), external_auth=True))
        p.open()
        p.run(10)
        assert p.kinds("server") == ["Authenticated", "IpUp"], (auth, p.events["server"])


def test_no_verdict_in_time_fails_the_login_clearly():
    for auth in ("pap", "chap", "mschapv2"):
        p = Pair(client_cfg=client_config(auth=(auth,), username="rita", password="remote pw"),
                 server_cfg=server_config(auth=(auth,), external_auth=True, auth_wait=10.0))
        p.open()
        p.run(60)
        assert p.kinds("server") == ["VerifyCredentials", "AuthFailed", "LinkDown"], (auth, p.events["server"])
        assert p.first("server", "AuthFailed").reason == ("no verdict for user rita from the authentication "
                                                          "backend in 10 s")
        assert p.kinds("client") == ["AuthFailed", "LinkDown"], (auth, p.events["client"])
        assert not p.server.auth_result(p.now, _asks(p)[0], True)  # too late: refused, nothing happens
        assert p.now < 20


def test_backend_address_is_used_for_ipcp():
    # RADIUS Framed-IP-Address: auth_result(address=...) instead of assign_address.
    p, _ = _login("pap", extra={"address": "198.51.100.77"})
    up = p.first("client", "IpUp")
    assert up.local_ip == "198.51.100.77"
    assert p.first("server", "IpUp").peer_ip == "198.51.100.77"


def test_auth_result_without_a_question_is_refused():
    p = Pair(server_cfg=server_config(external_auth=True))
    assert not p.server.auth_result(0.0, None, True)
    p.open()
    p.run(10)
    assert not p.server.auth_result(p.now, VerifyCredentials("pap", "alice"), True)  # alice was local
    assert p.kinds("server") == ["Authenticated", "IpUp"]


def test_a_verdict_only_settles_the_question_it_answers():
    # rita asks; before the verdict comes, another question's answer (another link, or credentials sent
    # before LCP renegotiated) is refused and changes nothing; then rita's own verdict settles it.
    p = Pair(client_cfg=client_config(auth=("chap",), username="rita", password="remote pw"),
             server_cfg=server_config(auth=("chap",), external_auth=True, auth_wait=10.0))
    p.open()
    p.run(1.0)
    ask = _asks(p)[0]
    stale = VerifyCredentials("chap", "rita", ident=ask.ident, challenge=ask.challenge, response=ask.response)
    assert not p.server.auth_result(p.now, stale, True)
    p.run(2.0)
    assert p.kinds("server") == ["VerifyCredentials"]
    assert p.server.auth_result(p.now, ask, **backend(ask))
    assert not p.server.auth_result(p.now, ask, True)  # answered once only
    p.run(10)
    assert p.kinds("server") == ["VerifyCredentials", "Authenticated", "IpUp"]
