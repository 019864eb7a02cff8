"""L2TP header, AVP and message codecs against octets laid out by hand from RFC 2661's figures."""

try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.hal.crypto.digest import md5
from sluice.l2tp import avp as A
from sluice.l2tp import data as D
from sluice.l2tp import header as H
from sluice.l2tp import message as M
from sluice.l2tp.errors import AvpError, HeaderError, L2tpError, MessageError

unhex = harness.unhex
raises = harness.raises

# RFC 2661 3.1 header (T L S set, Ver 2 -> c8 02), Length 0x14, Tunnel 0x0102, Session 0, Ns 3, Nr 4, then
# RFC 2661 4.4.1 Message Type AVP: M bit, length 8, vendor 0, type 0, value 6 (HELLO).
HELLO_WIRE = unhex("c802 0014 0102 0000 0003 0004  8008 0000 0000 0006")


def test_control_header_and_message_type_from_rfc_layout():
    h = H.parse(HELLO_WIRE)
    assert h.is_control and (h.tunnel_id, h.session_id, h.ns, h.nr) == (0x0102, 0, 3, 4)
    assert (h.offset, h.end) == (12, 20)
    m = M.parse(HELLO_WIRE, h.offset, h.end)
    assert m.type == M.HELLO and m.name() == "HELLO" and m.mandatory_type
    assert H.encode_control(0x0102, 0, 3, 4, A.encode(A.MESSAGE_TYPE, 6)) == HELLO_WIRE


def test_zlb_is_a_bare_header():
    # RFC 2661 5.8: a ZLB is a control header with Length 12 and no AVPs.
    zlb = unhex("c802 000c 0102 0000 0005 0007")
    h = H.parse(zlb)
    assert M.parse(zlb, h.offset, h.end).type is None


def test_header_errors():
    for bad in (
        b"",
        unhex("c802 0014 0102"),  # shorter than its Length
        unhex("c803 000c 0102 0000 0000 0000"),  # version 3
        unhex("c801 000c 0102 0000 0000 0000"),  # version 1 (L2F)
        unhex("8802 0102 0000 0000 0000"),  # control without L
        unhex("c002 000c 0102 0000 0000 0000"),  # control without S
        unhex("c802 000c 0102 0000 0000 0000 00"),  # trailing octet after Length
        unhex("c802 0008 0102 0000"),  # Length too short for Ns/Nr
        unhex("ca02 000e 0102 0000 0000 0000 0005"),  # offset beyond the end
    ):
        raises(HeaderError, H.parse, bad)


def test_avp_lengths_are_checked():
    body = A.encode(A.MESSAGE_TYPE, 1)
    for bad in (
        body[:5],  # truncated header
        unhex("8005 0000 0000"),  # length below 6
        unhex("8009 0000 0000 0001"),  # length beyond the message
        body + unhex("8008 0000 0009 00"),  # Assigned Tunnel ID cut short
        body + unhex("8007 0000 0009 00"),  # Assigned Tunnel ID of 1 octet
        body + unhex("8009 0000 0002 010000"),  # Protocol Version of 3 octets
        body + unhex("8009 0000 0001 000100"),  # Result Code of 3 octets
        body + unhex("8006 0000 0007"),  # empty Host Name
        body + unhex("8007 0000 0027 00"),  # Sequencing Required with a value
        body + unhex("800f 0000 000d 0001020304050607 08"),  # Challenge Response of 9 octets
    ):
        raises(L2tpError, M.parse, bad, 0, len(bad))


def test_message_type_must_come_first():
    bad = A.encode(A.HOST_NAME, "x") + A.encode(A.MESSAGE_TYPE, 1)
    raises(MessageError, M.parse, bad, 0, len(bad))
    twice = A.encode(A.MESSAGE_TYPE, 6) + A.encode(A.MESSAGE_TYPE, 6)
    raises(MessageError, M.parse, twice, 0, len(twice))


def test_unknown_avps_m_bit_vendor_and_reserved_bits():
    body = (A.encode(A.MESSAGE_TYPE, M.HELLO)
            + A.encode(1, b"\x01", mandatory=False, vendor=9)  # unknown vendor, no M: ignored
            + A.encode(77, b"", mandatory=False)  # unknown IETF type, no M: ignored
            + A.encode(5, b"\x00\x01", mandatory=True, vendor=311)  # unknown vendor with M
            + unhex("8406 0000 0000"))  # reserved bit set: unrecognised (RFC 2661 4.1), M set
    m = M.parse(body, 0, len(body))
    assert m.unknown == [(311, 5), (-1, 0)]
    assert m.values == {}


def test_typed_values_round_trip():
    items = [
        (A.RESULT_CODE, (2, 6, "vendor trouble")),
        (A.PROTOCOL_VERSION, (1, 0)),
        (A.FRAMING_CAPABILITIES, 3),
        (A.BEARER_CAPABILITIES, 0),
        (A.TIE_BREAKER, unhex("0102030405060708")),
        (A.FIRMWARE_REVISION, 0x0A00),
        (A.HOST_NAME, "lns.example"),
        (A.VENDOR_NAME, "Microsoft"),
        (A.ASSIGNED_TUNNEL_ID, 0xBEEF),
        (A.RECEIVE_WINDOW_SIZE, 8),
        (A.CHALLENGE, b"\x99" * 16),
        (A.Q931_CAUSE_CODE, (16, 2, "normal")),
        (A.CHALLENGE_RESPONSE, b"\x42" * 16),
        (A.ASSIGNED_SESSION_ID, 7),
        (A.CALL_SERIAL_NUMBER, 0xDEADBEEF),
        (A.MINIMUM_BPS, 9600),
        (A.MAXIMUM_BPS, 100000000),
        (A.BEARER_TYPE, 2),
        (A.FRAMING_TYPE, 1),
        (A.CALLED_NUMBER, "5551234"),
        (A.CALLING_NUMBER, "203.0.113.9"),
        (A.SUB_ADDRESS, ""),
        (A.TX_CONNECT_SPEED, 100000000),
        (A.PHYSICAL_CHANNEL_ID, 5),
        (A.INITIAL_RECEIVED_LCP_CONFREQ, unhex("0104 05dc")),
        (A.LAST_SENT_LCP_CONFREQ, unhex("0104 0578")),
        (A.LAST_RECEIVED_LCP_CONFREQ, b""),
        (A.PROXY_AUTHEN_TYPE, 2),
        (A.PROXY_AUTHEN_NAME, "alice"),
        (A.PROXY_AUTHEN_CHALLENGE, b"\x01\x02"),
        (A.PROXY_AUTHEN_ID, 9),
        (A.PROXY_AUTHEN_RESPONSE, b"\x03" * 16),
        (A.CALL_ERRORS, (1, 2, 3, 4, 5, 6)),
        (A.ACCM, (0xFFFFFFFF, 0)),
        (A.PRIVATE_GROUP_ID, b"grp"),
        (A.RX_CONNECT_SPEED, 54000000),
        (A.SEQUENCING_REQUIRED, True),
    ]
    body = M.build(M.ICCN, items)
    m = M.parse(body, 0, len(body))
    for attr, value in items:
        assert m.get(attr) == value, (attr, m.get(attr), value)
    assert m.missing == []


def test_result_code_forms():
    # RFC 2661 4.4.2: result only; result + error; result + error + message.
    for raw, want in ((unhex("0001"), (1, None, None)), (unhex("0002 0006"), (2, 6, None)),
                      (unhex("0002 0006") + b"oops", (2, 6, "oops"))):
        assert A.decode_value(A.RESULT_CODE, raw) == want
    assert A.encode_value(A.RESULT_CODE, (3, None, "msg")) == unhex("0003 0000") + b"msg"


def test_apple_byte_swapped_result_code():
    # macOS/iOS put the StopCCN/CDN Result Code in little-endian order (docs/clients.md).
    wire = A.encode(A.MESSAGE_TYPE, M.CDN) + unhex("800a 0000 0001 0300 0000") + A.encode(A.ASSIGNED_SESSION_ID, 5)
    m = M.parse(wire, 0, len(wire))
    assert m.get(A.RESULT_CODE) == (3, 0, None)
    stop = A.encode(A.MESSAGE_TYPE, M.STOPCCN) + unhex("8008 0000 0001 0600") + A.encode(A.ASSIGNED_TUNNEL_ID, 9)
    assert M.parse(stop, 0, len(stop)).get(A.RESULT_CODE) == (6, None, None)
    # In-range values stay as they are; a value out of range either way is left for the caller to see.
    assert M.fix_result_order(M.CDN, (11, 0, None)) == (11, 0, None)
    assert M.fix_result_order(M.CDN, (0x0C00, None, None)) == (0x0C00, None, None)
    assert M.fix_result_order(M.STOPCCN, (0x0200, 0x0600, "x")) == (2, 6, "x")
    assert M.fix_result_order(M.ICRP, (0x0200, None, None)) == (0x0200, None, None)


def _rfc2661_4_3_hide(attr, value, secret, vector, pad):
    # RFC 2661 4.3 written out independently of sluice.l2tp.avp: p = len(2) + value + pad,
    # b1 = MD5(type(2) + secret + RV), c1 = p1 ^ b1, b(i) = MD5(secret + c(i-1)).
    p = len(value).to_bytes(2, "big") + value + pad
    out = b""
    b = md5(attr.to_bytes(2, "big") + secret + vector)
    while p:
        chunk, p = p[:16], p[16:]
        c = bytes(x ^ y for x, y in zip(chunk, b))
        out += c
        b = md5(secret + c)
    return out


def test_hidden_avp_matches_rfc_2661_4_3_and_round_trips():
    secret, vector = b"tunnel secret", unhex("00112233445566778899aabbccddeeff")
    for value in (b"\x12\x34", b"a" * 15, b"b" * 30, b"c" * 100):
        pad = b"\x00" * ((16 - (len(value) + 2) % 16) % 16)
        want = _rfc2661_4_3_hide(A.PROXY_AUTHEN_NAME, value, secret, vector, pad)
        assert A.hide(A.PROXY_AUTHEN_NAME, value, secret, vector, pad) == want
        assert A.unhide(A.PROXY_AUTHEN_NAME, want, secret, vector) == value
    # In a message: Random Vector first, then the hidden AVP with the H bit.
    rng = harness.SeededRng(4)
    body = M.build(M.ICRQ, [(A.ASSIGNED_SESSION_ID, 0x4242), (A.CALL_SERIAL_NUMBER, 1)], secret,
                   (A.ASSIGNED_SESSION_ID,), rng)
    avps = list(A.iter_avps(body, 0, len(body), secret))
    assert [a.attr for a in avps] == [A.MESSAGE_TYPE, A.RANDOM_VECTOR, A.ASSIGNED_SESSION_ID, A.CALL_SERIAL_NUMBER]
    assert avps[2].hidden and not avps[1].hidden
    assert (body[8 + 22] & 0x40) == 0x40  # H bit on the wire, after MT (8) and RV (22) AVPs
    assert M.parse(body, 0, len(body), secret).get(A.ASSIGNED_SESSION_ID) == 0x4242
    # Without the secret the message cannot be read: recorded as a problem, not raised.
    m = M.parse(body, 0, len(body))
    assert m.problem is not None and "secret" in m.problem
    # With a different secret the length check inside the hidden value catches it (almost always).
    raises(AvpError, M.parse, body, 0, len(body), b"wrong secret")


def test_required_avps_are_recorded_missing():
    body = M.build(M.SCCRQ, [(A.HOST_NAME, "h"), (A.PROTOCOL_VERSION, (1, 0))])
    m = M.parse(body, 0, len(body))
    assert sorted(m.missing) == [A.FRAMING_CAPABILITIES, A.ASSIGNED_TUNNEL_ID]


def test_mandatory_bits_per_rfc_2661_4_4():
    body = M.build(M.SCCRQ, [(A.HOST_NAME, "h"), (A.FIRMWARE_REVISION, 1), (A.VENDOR_NAME, "v"),
                             (A.TIE_BREAKER, b"12345678")])
    flags = [a.mandatory for a in A.iter_avps(body, 0, len(body))]
    assert flags == [True, True, False, False, False]


def test_secrets_stay_out_of_reprs():
    body = M.build(M.SCCRQ, [(A.CHALLENGE, b"SECRETCHALLENGE!"), (A.HOST_NAME, "h")])
    m = M.parse(body, 0, len(body))
    assert "SECRET" not in repr(m)
    assert "SECRET" not in repr(list(A.iter_avps(body, 0, len(body))))
    from sluice.l2tp.tunnel import TunnelConfig

    assert "pa55" not in repr(TunnelConfig(secret="pa55"))


def test_data_header_parse_and_encode():
    # RFC 2661 3.1 data message: flags 0x0002, tunnel 0x0a0b, session 0x0c0d, then the PPP frame.
    ppp = unhex("ff03 0021 4500")
    m = unhex("0002 0a0b 0c0d") + ppp
    assert D.parse_data(m, 0, len(m)) == (0x0a0b, 0x0c0d, None, 6, len(m))
    # L, S and O bits: length, Ns 7 / Nr 0, offset size 2 with two pad octets, padding after Length.
    msg = unhex("4a02 0014 0a0b 0c0d 0007 0000 0002 aaaa") + ppp + b"\x00\x00"
    assert D.parse_data(msg, 0, len(msg)) == (0x0a0b, 0x0c0d, 7, 16, 20)
    # The same message at an offset inside a larger buffer (how the data plane reads it, in place).
    buf = b"\xee" * 8 + msg
    assert D.parse_data(buf, 8, len(buf)) == (0x0a0b, 0x0c0d, 7, 24, 28)
    for bad in (b"", unhex("0002 0a0b 0c"), unhex("0003 0a0b 0c0d"), unhex("4002 00ff 0a0b 0c0d"),
                unhex("0802 0a0b 0c0d 00"), unhex("0202 0a0b 0c0d 0009"), unhex("8002 0a0b 0c0d"),
                HELLO_WIRE, unhex("4002 0004 0a0b 0c0d")):
        raises(HeaderError, D.parse_data, bad, 0, len(bad))
    enc = D.DataEncoder(0x0a0b, 0x0c0d)
    assert enc.encode(ppp) == unhex("0002 0a0b 0c0d") + ppp
    seq = D.DataEncoder(0x0a0b, 0x0c0d, sequencing=True)
    first = seq.encode(ppp)
    second = seq.encode(ppp)
    assert first == unhex("0802 0a0b 0c0d 0000 0000") + ppp and D.parse_data(second, 0, len(second))[2] == 1
    seq.ns = 0xFFFF
    last = seq.encode(ppp)
    assert D.parse_data(last, 0, len(last))[2] == 0xFFFF and seq.ns == 0
