"""RADIUS wire codec: RFC vectors, the authenticators, Message-Authenticator, vendor attributes, strictness.

MicroPython subset.
"""

from sluice.radius import auth, packet as P
from sluice.ppp import mschapv2
from sluice.ppp.events import VerifyCredentials

try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

unhex = harness.unhex

# RFC 2865 7.1: "User Telnet", NAS 192.168.1.16 port 3, user nemo, password arctangent, secret xyzzy5461.
RFC2865_SECRET = b"xyzzy5461"
RFC2865_REQ_AUTH = unhex("0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a")
RFC2865_REQUEST = unhex("""01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb 98 f4 22 7a
    01 06 6e 65 6d 6f 02 12 0d be 70 8d 93 d4 13 ce 31 96 e4 3f 78 2a 0a ee
    04 06 c0 a8 01 10 05 06 00 00 00 03""")
RFC2865_ACCEPT = unhex("""02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf 9b 55 e0 b2
    06 06 00 00 00 01 0f 06 00 00 00 00 0e 06 c0 a8 01 03""")

# RFC 2865 7.2: "Framed User Authenticating with CHAP", user flopsy on NAS port 20 (the RFC gives no password).
RFC2865_CHAP_REQUEST = unhex("""01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e
    0d 33 67 a2 01 08 66 6c 6f 70 73 79 03 13 16 e9 75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75 04
    06 c0 a8 01 10 05 06 00 00 00 14 06 06 00 00 00 02 07 06 00 00 00 01""")

# RFC 2759 9.2: MS-CHAPv2 worked example.
MS_USER = "User"
MS_PASSWORD = "clientPass"
MS_AUTH_CHALLENGE = unhex("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28")
MS_PEER_CHALLENGE = unhex("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E")
MS_NT_RESPONSE = unhex("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF")
MS_AUTH_RESPONSE = "S=407A5589115FD0D6209F510FE9C04566932CDA56"

SECRET = b"a-long-shared-secret-1"


def test_rfc2865_access_request_user_password_hiding():
    # RFC 2865 5.2 and 7.1: the example's User-Password, hidden with the example's Request Authenticator.
    pkt = P.decode(RFC2865_REQUEST)
    assert pkt.code == P.ACCESS_REQUEST and pkt.ident == 0 and pkt.authenticator == RFC2865_REQ_AUTH
    assert pkt.get(P.USER_NAME) == b"nemo"
    assert P.unhide_password(pkt.get(P.USER_PASSWORD), RFC2865_SECRET, RFC2865_REQ_AUTH) == b"arctangent"
    attrs = [(P.USER_NAME, b"nemo"), (P.USER_PASSWORD, b"arctangent"), P.attr_ip(P.NAS_IP_ADDRESS, "192.168.1.16"),
             P.attr_int(P.NAS_PORT, 3)]
    raw = P.encode_request(P.ACCESS_REQUEST, 0, attrs, RFC2865_SECRET, RFC2865_REQ_AUTH, False)
    assert raw == RFC2865_REQUEST


def test_rfc2865_access_accept_response_authenticator():
    # RFC 2865 7.1: Service-Type Login, Login-Service Telnet, Login-IP-Host 192.168.1.3.
    assert P.verify_reply(RFC2865_ACCEPT, RFC2865_REQ_AUTH, RFC2865_SECRET, False) is None
    assert P.verify_reply(RFC2865_ACCEPT, RFC2865_REQ_AUTH, b"wrong", False) is not None
    # BlastRADIUS: the same (genuine, old-style) Accept has no Message-Authenticator, so we refuse it.
    assert P.verify_reply(RFC2865_ACCEPT, RFC2865_REQ_AUTH, RFC2865_SECRET, True) == \
        "Message-Authenticator missing or wrong"
    rebuilt = P.encode_reply(P.ACCESS_ACCEPT, 0, RFC2865_REQ_AUTH, P.decode(RFC2865_ACCEPT).attrs, RFC2865_SECRET,
                             False)
    assert rebuilt == RFC2865_ACCEPT


def test_rfc2865_chap_request_layout():
    # RFC 2865 5.3: CHAP-Password is the CHAP Identifier (22 here) and the 16-octet response; with no
    # CHAP-Challenge the Request Authenticator is the challenge. Our attribute builder gives the same layout.
    pkt = P.decode(RFC2865_CHAP_REQUEST)
    assert pkt.ident == 1 and pkt.get(P.USER_NAME) == b"flopsy"
    chap_pw = pkt.get(P.CHAP_PASSWORD)
    assert len(chap_pw) == 17 and chap_pw[0] == 22
    assert pkt.get_int(P.NAS_PORT) == 20 and pkt.get_int(P.SERVICE_TYPE) == P.SERVICE_FRAMED
    assert pkt.get_int(P.FRAMED_PROTOCOL) == P.FRAMED_PPP and pkt.get(P.CHAP_CHALLENGE) is None
    cred = VerifyCredentials("chap", "flopsy", ident=22, challenge=pkt.authenticator, response=chap_pw[1:])
    ours = auth.access_request_attrs(cred, [])
    assert ours[1] == (P.CHAP_PASSWORD, chap_pw)
    again = P.encode_request(P.ACCESS_REQUEST, 1, pkt.attrs, b"any", pkt.authenticator, False)
    assert again == RFC2865_CHAP_REQUEST


def test_long_password_hiding_roundtrip():
    # RFC 2865 5.2: blocks chain on the previous cipher block; 0, 16, 17 and 128 octets.
    for pw in (b"", b"x" * 16, b"y" * 17, b"z" * 128):
        h = P.hide_password(pw, SECRET, RFC2865_REQ_AUTH)
        assert len(h) == max(16, (len(pw) + 15) // 16 * 16)
        assert P.unhide_password(h, SECRET, RFC2865_REQ_AUTH) == pw
    harness.raises(P.RadiusError, P.hide_password, b"a" * 129, SECRET, RFC2865_REQ_AUTH)


def test_message_authenticator_first_and_verified():
    # RFC 3579 3.2: HMAC-MD5 over the packet with the MA zeroed; replies sign over the Request Authenticator.
    req = P.encode_request(P.ACCESS_REQUEST, 7, [(P.USER_NAME, b"alice"), (P.USER_PASSWORD, b"pw")], SECRET,
                           RFC2865_REQ_AUTH)
    pkt = P.decode(req)
    assert pkt.attrs[0][0] == P.MESSAGE_AUTHENTICATOR and len(pkt.attrs[0][1]) == 16
    assert P.verify_access_request(req, SECRET) is None
    bad = bytearray(req)
    bad[-1] ^= 1  # a flipped bit in the hidden password breaks the HMAC
    assert P.verify_access_request(bytes(bad), SECRET) is not None
    rep = P.encode_reply(P.ACCESS_ACCEPT, 7, RFC2865_REQ_AUTH, [P.attr_int(P.SESSION_TIMEOUT, 60)], SECRET)
    assert P.verify_reply(rep, RFC2865_REQ_AUTH, SECRET, True) is None
    # A second Message-Authenticator is refused (RFC 3579 3.2: at most one).
    two = P.encode_reply(P.ACCESS_ACCEPT, 7, RFC2865_REQ_AUTH, [(P.MESSAGE_AUTHENTICATOR, b"\x00" * 16)], SECRET,
                         False)
    two2 = two[:2] + bytes((0, len(two) + 18)) + two[4:] + bytes((80, 18)) + b"\x00" * 16
    assert P.verify_reply(two2, RFC2865_REQ_AUTH, SECRET, True) is not None


def test_accounting_and_dae_request_authenticator():
    # RFC 2866 3: MD5(Code|Id|Length|16 zeros|attributes|secret); RFC 5176 3.5 the same for Disconnect/CoA.
    for code in (P.ACCOUNTING_REQUEST, P.DISCONNECT_REQUEST, P.COA_REQUEST):
        raw = P.encode_request(code, 9, [P.attr_str(P.USER_NAME, "bob")], SECRET)
        assert P.verify_request(raw, SECRET, True) is None
        assert P.verify_request(raw, b"other-secret", False) is not None
        plain = P.encode_request(code, 9, [P.attr_str(P.USER_NAME, "bob")], SECRET, None, False)
        assert P.verify_request(plain, SECRET, False) is None
        assert P.verify_request(plain, SECRET, True) == "Message-Authenticator missing or wrong"


def test_strict_decode():
    good = P.encode_reply(P.ACCESS_REJECT, 1, RFC2865_REQ_AUTH, [P.attr_str(P.REPLY_MESSAGE, "no")], SECRET)
    assert P.decode(good + b"\x00\x00").code == P.ACCESS_REJECT  # RFC 2865 3: octets past Length are padding
    bad = [
        good[:19],  # shorter than the header
        good[:2] + b"\x00\x13" + good[4:],  # Length 19
        good[:2] + bytes((0, len(good) + 1)) + good[4:],  # Length beyond the datagram
        good[:2] + b"\x10\x01" + good[4:] + b"\x00" * 4000,  # Length 4097
        good[:20] + b"\x01\x01",  # attribute length 1
        good[:2] + b"\x00\x17" + good[4:20] + b"\x12\x05\x41",  # attribute overruns Length
        good[:2] + b"\x00\x16" + good[4:20] + b"\x00\x02",  # type 0
    ]
    for b in bad:
        harness.raises(P.RadiusError, P.decode, b)


def test_vendor_attributes():
    a = P.vsa(P.VENDOR_MICROSOFT, P.MS_CHAP2_SUCCESS, b"\x05" + MS_AUTH_RESPONSE.encode())
    assert a[1][:6] == b"\x00\x00\x01\x37\x1a\x2d"  # RFC 2548 2.3.3: Vendor-Id 311, type 26, length 45
    pkt = P.Packet(P.ACCESS_ACCEPT, 0, attrs=[(P.VENDOR_SPECIFIC, b"\x00\x00\x00\x09\x01\x04ab"), a])
    assert pkt.get_vsa(P.VENDOR_MICROSOFT, P.MS_CHAP2_SUCCESS) == b"\x05" + MS_AUTH_RESPONSE.encode()
    assert pkt.get_vsa(P.VENDOR_MICROSOFT, P.MS_CHAP_ERROR) is None
    harness.raises(P.RadiusError, P.parse_vsa, b"\x00\x00\x01\x37\x1a\x30abc", P.VENDOR_MICROSOFT)


def test_mschapv2_request_attributes_from_rfc2759_example():
    # RFC 2759 9.2 values through the PPP Response Value into RFC 2548 2.3.2 MS-CHAP2-Response.
    nt = mschapv2.generate_nt_response(MS_AUTH_CHALLENGE, MS_PEER_CHALLENGE, MS_USER, MS_PASSWORD)
    assert nt == MS_NT_RESPONSE
    value = mschapv2.build_response_value(MS_PEER_CHALLENGE, nt)
    cred = VerifyCredentials("mschapv2", MS_USER, ident=0x1F, challenge=MS_AUTH_CHALLENGE, response=value)
    pkt = P.Packet(P.ACCESS_REQUEST, 0, attrs=auth.access_request_attrs(cred, auth.nas_attrs("gw1")))
    assert pkt.get(P.USER_NAME) == b"User"
    assert pkt.get_vsa(P.VENDOR_MICROSOFT, P.MS_CHAP_CHALLENGE) == MS_AUTH_CHALLENGE
    r = pkt.get_vsa(P.VENDOR_MICROSOFT, P.MS_CHAP2_RESPONSE)
    assert len(r) == 50 and r[0] == 0x1F and r[1] == 0
    assert r[2:18] == MS_PEER_CHALLENGE and r[18:26] == b"\x00" * 8 and r[26:50] == MS_NT_RESPONSE
    assert pkt.get(P.NAS_IDENTIFIER) == b"gw1" and pkt.get_int(P.SERVICE_TYPE) == P.SERVICE_FRAMED


def test_chap_request_attributes():
    # RFC 2865 5.3: CHAP-Password = CHAP Ident + 16-octet response; 5.40 CHAP-Challenge = our challenge.
    cred = VerifyCredentials("chap", "bob", ident=3, challenge=b"C" * 16, response=b"R" * 16)
    pkt = P.Packet(P.ACCESS_REQUEST, 0, attrs=auth.access_request_attrs(cred, auth.nas_attrs(None, "192.0.2.1")))
    assert pkt.get(P.CHAP_PASSWORD) == b"\x03" + b"R" * 16
    assert pkt.get(P.CHAP_CHALLENGE) == b"C" * 16
    assert pkt.get_ip(P.NAS_IP_ADDRESS) == "192.0.2.1"


def test_access_verdicts():
    ms = P.vsa(P.VENDOR_MICROSOFT, P.MS_CHAP2_SUCCESS, b"\x01" + MS_AUTH_RESPONSE.encode())
    ok = P.Packet(P.ACCESS_ACCEPT, 0, attrs=[ms, P.attr_ip(P.FRAMED_IP_ADDRESS, "198.51.100.77"),
                                             P.attr_int(P.SESSION_TIMEOUT, 3600), P.attr_int(P.IDLE_TIMEOUT, 600),
                                             (P.CLASS, b"cls"), P.attr_str(P.REPLY_MESSAGE, "hi\x07there")])
    v = auth.access_verdict(ok, "mschapv2")
    assert v.ok and v.authenticator_response == MS_AUTH_RESPONSE and v.address == "198.51.100.77"
    assert v.session_timeout == 3600 and v.idle_timeout == 600 and v.class_ == [b"cls"]
    assert v.reply_message == "hi?there"  # peer strings made printable
    assert v.auth_result_kwargs()["address"] == "198.51.100.77"
    # Accept without MS-CHAP2-Success: not a success for MS-CHAPv2 (the client could not verify us).
    v = auth.access_verdict(P.Packet(P.ACCESS_ACCEPT, 0, attrs=[]), "mschapv2")
    assert not v.ok and "MS-CHAP2-Success" in v.reason
    # 255.255.255.254: the NAS picks (our pool).
    v = auth.access_verdict(P.Packet(P.ACCESS_ACCEPT, 0, attrs=[P.attr_ip(P.FRAMED_IP_ADDRESS, "255.255.255.254")]),
                            "pap")
    assert v.ok and v.address is None
    rej = P.Packet(P.ACCESS_REJECT, 0, attrs=[P.vsa(P.VENDOR_MICROSOFT, P.MS_CHAP_ERROR, b"\x01E=691 R=0 V=3"),
                                              P.attr_str(P.REPLY_MESSAGE, "Denied")])
    v = auth.access_verdict(rej, "mschapv2")
    assert not v.ok and v.reason == "rejected by RADIUS: Denied" and v.message == b"E=691 R=0 V=3"
    assert not auth.access_verdict(P.Packet(P.ACCESS_CHALLENGE, 0), "pap").ok
    bad = P.Packet(P.ACCESS_ACCEPT, 0, attrs=[(P.SESSION_TIMEOUT, b"\x00\x01")])
    assert "malformed" in auth.access_verdict(bad, "pap").reason


def test_accounting_attributes_with_gigawords():
    nas = auth.nas_attrs("gw1")
    a = auth.accounting_attrs(P.ACCT_STOP, "0001", "alice", nas, "198.51.100.10", 61, in_octets=(5 << 32) + 7,
                              out_octets=9, in_packets=3, out_packets=4, terminate_cause=P.TERM_USER_REQUEST)
    pkt = P.Packet(P.ACCOUNTING_REQUEST, 0, attrs=a)
    assert pkt.get_int(P.ACCT_STATUS_TYPE) == P.ACCT_STOP
    assert pkt.get_int(P.ACCT_INPUT_OCTETS) == 7 and pkt.get_int(P.ACCT_INPUT_GIGAWORDS) == 5
    assert pkt.get_int(P.ACCT_OUTPUT_OCTETS) == 9 and pkt.get(P.ACCT_OUTPUT_GIGAWORDS) is None
    assert pkt.get_int(P.ACCT_SESSION_TIME) == 61 and pkt.get_int(P.ACCT_TERMINATE_CAUSE) == 1
    start = P.Packet(P.ACCOUNTING_REQUEST, 0, attrs=auth.accounting_attrs(P.ACCT_START, "0001", "alice", nas))
    assert start.get(P.ACCT_SESSION_TIME) is None and start.get(P.ACCT_TERMINATE_CAUSE) is None
