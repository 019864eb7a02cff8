"""PPP authentication between a client and a server PppLink in memory, read as sequence charts.

Each test pins the exchange as the RFCs draw it (protocol, code) and then the events the engine sees.
MicroPython subset.
"""

try:
    import ppp_pair
except ImportError:  # run from the repository root
    from tests.core import ppp_pair

Pair = ppp_pair.Pair
client_config = ppp_pair.client_config
server_config = ppp_pair.server_config

LCP, PAP, CHAP, IPCP = 0xC021, 0xC023, 0xC223, 0x8021


def _auth_trace(p, proto):
    return [(who, code) for who, pr, code in p.trace if pr == proto]


def test_mschapv2_login():
    # LCP: server asks Auth-Protocol C223/81, client Acks (RFC 2759 2)
    # s>c CHAP Challenge(16-octet challenge) ; c>s Response(49 octets) ; s>c Success "S=<40 hex> M=..."
    p = Pair(client_cfg=client_config(auth=("mschapv2",)))
    p.open()
    p.run(10)
    assert _auth_trace(p, CHAP) == [("s>c", 1), ("c>s", 2), ("s>c", 3)]
    assert p.kinds("server") == ["Authenticated", "IpUp"]
    assert p.kinds("client") == ["Authenticated", "IpUp"]
    assert p.first("server", "Authenticated").username == "alice"
    assert p.server.status()["auth"] == "mschapv2"
    assert p.client.status()["phase"] == "network"


def test_chap_md5_login_after_client_naks_mschapv2():
    # s>c LCP Conf-Req(Auth C223/81) ; c>s Conf-Nak(Auth C223/05) ; s>c Conf-Req(Auth C223/05) ; c>s Conf-Ack
    p = Pair(client_cfg=client_config(auth=("chap",)))
    p.open()
    p.run(10)
    assert ("c>s", LCP, 3) in p.trace
    assert _auth_trace(p, CHAP) == [("s>c", 1), ("c>s", 2), ("s>c", 3)]
    assert p.server.status()["auth"] == "chap"
    assert p.kinds("client") == ["Authenticated", "IpUp"]


def test_pap_login_when_client_allows_only_pap():
    # s>c Conf-Req(Auth MS-CHAPv2) ; c>s Conf-Nak(Auth PAP) ; s>c Conf-Req(Auth PAP) ; c>s Conf-Ack
    p = Pair(client_cfg=client_config(auth=("pap",)))
    p.open()
    p.run(10)
    assert [x for x in p.trace if x[1] == LCP and x[0] == "c>s"] == [("c>s", LCP, 1), ("c>s", LCP, 3),
                                                                     ("c>s", LCP, 2)]
    assert _auth_trace(p, PAP) == [("c>s", 1), ("s>c", 2)]
    assert p.server.status()["auth"] == "pap"
    assert p.first("server", "Authenticated").username == "alice"
    assert p.kinds("client") == ["Authenticated", "IpUp"]


def test_server_walks_its_preference_order_when_the_suggestion_is_unknown():
    # A Nak suggesting a protocol we do not know (EAP, C227) moves the server to the next of its own list.
    def eap_nak(direction, frame):
        if direction == "c>s" and frame[2:4] == b"\xc0\x21" and frame[4] == 3:
            b = bytearray(frame)
            i = bytes(b).find(b"\x03\x04\xc0\x23")
            if i < 0:
                i = bytes(b).find(b"\x03\x05\xc2\x23")
            b[i + 2:i + 4] = b"\xc2\x27"
            return bytes(b)
        return frame
    p = Pair(client_cfg=client_config(auth=("pap",)), server_cfg=server_config(auth=("mschapv2", "chap", "pap")))
    p.tamper = eap_nak
    p.open()
    p.run(10)
    # MS-CHAPv2 Nak-ed -> CHAP-MD5 Nak-ed -> PAP Acked.
    assert [x for x in p.trace if x == ("c>s", LCP, 3)] == [("c>s", LCP, 3)] * 2
    assert p.server.status()["auth"] == "pap"
    assert p.kinds("server") == ["Authenticated", "IpUp"]


def _failed(auth, username="alice", password="wrong"):
    p = Pair(client_cfg=client_config(auth=(auth,), username=username, password=password))
    p.open()
    p.run(30)
    return p


def test_wrong_password_each_method():
    for auth in ("mschapv2", "chap", "pap"):
        p = _failed(auth)
        assert p.kinds("server") == ["AuthFailed", "LinkDown"], (auth, p.events["server"])
        assert p.kinds("client") == ["AuthFailed", "LinkDown"], (auth, p.events["client"])
        reason = p.first("server", "AuthFailed").reason
        assert reason.startswith("authentication failed for user alice"), reason
        assert "wrong password" in reason
        assert "wrong" in p.first("client", "AuthFailed").reason
        assert p.first("server", "LinkDown").reason == reason
        assert "IpUp" not in p.kinds("client")
        # Neither the configured nor the tried password leaks into reasons or status.
        for e in p.events["server"] + p.events["client"]:
            assert "correct horse" not in repr(e) and "wrong\"" not in repr(e)
        assert "correct horse" not in repr(p.server.status()) + repr(p.client.status()) + repr(p.client.config)


def test_mschapv2_failure_packet_format():
    # RFC 2759 6: "E=691 R=0 C=<32 hex> V=3 M=<text>"
    seen = []

    def tap(direction, frame):
        if frame[2:4] == b"\xc2\x23" and frame[4] == 4:
            seen.append(bytes(frame[8:]))
        return frame
    p = Pair(client_cfg=client_config(auth=("mschapv2",), password="nope"))
    p.tamper = tap
    p.open()
    p.run(30)
    assert len(seen) == 1
    text = seen[0].decode()
    assert text.startswith("E=691 R=0 C=") and " V=3 M=" in text
    assert len(text.split()[2]) == 2 + 32
    assert "error 691" in p.first("client", "AuthFailed").reason


def test_unknown_user():
    p = _failed("mschapv2", username="mallory", password="x")
    assert p.first("server", "AuthFailed").reason == "authentication failed for user mallory (unknown user)"


def test_mschapv2_domain_user():
    # Windows sends "DOMAIN\\user"; the hash uses "user" (RFC 2759 8.2), the lookup the name as sent.
    p = Pair(client_cfg=client_config(auth=("mschapv2",), username="DOM\\carol", password="pa55"))
    p.open()
    p.run(10)
    assert p.kinds("server") == ["Authenticated", "IpUp"]
    assert p.first("server", "Authenticated").username == "DOM\\carol"


def test_client_rejects_a_server_that_does_not_know_the_password():
    # RFC 2759 5: the client MUST check "S=": flip one hex digit of the server's Success and it refuses.
    def forge(direction, frame):
        if direction == "s>c" and frame[2:4] == b"\xc2\x23" and frame[4] == 3:
            b = bytearray(frame)
            b[10] = ord("0") if b[10] != ord("0") else ord("1")
            return bytes(b)
        return frame
    p = Pair(client_cfg=client_config(auth=("mschapv2",)))
    p.tamper = forge
    p.open()
    p.run(30)
    assert p.kinds("client") == ["AuthFailed", "LinkDown"]
    assert "did not verify" in p.first("client", "AuthFailed").reason
    assert "IpUp" not in p.kinds("client")


def test_no_common_auth_protocol_names_what_to_allow():
    p = Pair(client_cfg=client_config(auth=("pap",)), server_cfg=server_config(auth=("mschapv2",)))
    p.open()
    p.run(60)
    down = p.first("server", "LinkDown")
    assert down.reason == ("peer rejected every authentication protocol we allow (offered: MS-CHAPv2); "
                           "allow 'pap'"), down.reason
    cdown = p.first("client", "LinkDown")
    assert "the server offered MS-CHAPv2; we allow PAP" in cdown.reason, cdown.reason
    assert p.now < 10  # ended by the exchange, not by waiting out Max-Configure


def test_no_common_protocol_without_a_hint_suggests_the_others():
    # A peer that Naks with something we do not know: suggest every method not allowed yet.
    p = Pair(client_cfg=client_config(auth=()), server_cfg=server_config(auth=("mschapv2",)))
    p.open()
    p.run(60)
    down = p.first("server", "LinkDown")
    assert "refused to authenticate" in down.reason or "allow 'chap' or 'pap'" in down.reason, down.reason


def test_server_ignores_credentials_for_a_stale_challenge():
    # A Response with an old Identifier is dropped and counted (RFC 1994 4.1: the id must match).
    p = Pair(client_cfg=client_config(auth=("chap",)))

    def stale(direction, frame):
        if direction == "c>s" and frame[2:4] == b"\xc2\x23" and frame[4] == 2:
            b = bytearray(frame)
            b[5] = (b[5] + 100) & 0xFF
            return bytes(b)
        return frame
    p.tamper = stale
    p.open()
    p.run(200)
    assert p.server.stats["malformed"] >= 1
    assert "Authenticated" not in p.kinds("server")
    assert "the peer did not answer 10 CHAP challenges" in p.first("server", "AuthFailed").reason


def test_lost_success_is_recovered_by_a_repeated_response():
    # s>c Success (lost) ; c>s Response (repeated after 3 s) ; s>c Success (the same verdict again)
    for auth in ("mschapv2", "chap", "pap"):
        dropped = []

        def lose_first_verdict(direction, frame):
            if direction == "s>c" and frame[2:4] in (b"\xc2\x23", b"\xc0\x23") and frame[4] in (2, 3) and not dropped:
                dropped.append(frame)
                return None
            return frame
        p = Pair(client_cfg=client_config(auth=(auth,)))
        p.tamper = lose_first_verdict
        p.open()
        p.run(20)
        assert dropped, auth
        assert p.kinds("client") == ["Authenticated", "IpUp"], (auth, p.events["client"])
        assert p.kinds("server") == ["Authenticated", "IpUp"], (auth, p.events["server"])


def test_forged_user_names_reach_events_and_status_as_one_escaped_line():
    # Issue 13, item 6: a user name with a newline must not write a line of its own into the server's log.
    evil = "mallory\nsession up: admin at 10.77.0.2"
    for auth in ("pap", "chap", "mschapv2"):
        p = Pair(client_cfg=client_config(auth=(auth,), username=evil, password="x"))
        p.open()
        p.run(10)
        failed = p.first("server", "AuthFailed")
        assert failed is not None, auth
        assert "\n" not in failed.reason and "mallory\\nsession up: admin" in failed.reason, failed.reason
    # MS-CHAPv2 strips a DOMAIN\ prefix to find the password; the prefix is the peer's own text.
    users = dict(ppp_pair.USERS)
    p = Pair(client_cfg=client_config(auth=("mschapv2",), username="EVIL\nuser admin logged in\\bob",
                                      password="hunter2"),
             server_cfg=server_config(get_password=users.get))
    p.open()
    p.run(10)
    name = p.first("server", "Authenticated").username
    assert name == "EVIL\\nuser admin logged in\\bob", name
    assert p.server.status()["username"] == name
