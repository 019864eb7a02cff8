"""ISAKMP codec: hand-assembled RFC layouts decoded field by field, strictness, exact re-encoding.

The byte strings below are written field by field from the RFC figures (not produced by our encoder), so a
decode that passes checks our reading of the layout; the scapy and tshark tests in tests/unit check the
same from independent dissectors.
"""

try:
    import harness
except ImportError:  # run from the repository root
    from tests.core import harness

from sluice.ike import constants as C
from sluice.ike import payloads as P
from sluice.ike.message import parse_header, parse_message, Message
from sluice.ike.payloads import IkeMalformed

unhex = harness.unhex

ICKY = unhex("0102030405060708")
RCKY = unhex("0000000000000000")

# RFC 2408 3.4 SA payload (DOI 1 IPsec, situation 1 identity only) holding RFC 2408 3.5 proposal #1
# (protocol 1 ISAKMP, SPI size 0, 1 transform) holding RFC 2408 3.6 transform #1 (KEY_IKE) with RFC 2408 3.3
# attributes: AES (1=7 TV), key length 256 (14 TV), SHA1 (2=2), PSK (3=1), group 14 (4=14), life type seconds
# (11=1), life duration 86400 as a 4-octet TLV (12, length 4, 0x00015180). Transform: 4 + 4 + 6*4 + 8 = 40
# octets, proposal: 4 + 4 + 40 = 48.
SA_BODY = unhex("""
    00000001 00000001
    00 00 0030  01 01 00 01
      00 00 0028  01 01 0000
        8001 0007  800e 0100  8002 0002  8003 0001  8004 000e  800b 0001
        000c 0004 00015180
""")

# RFC 2408 3.1 header: cookies, next payload 1 (SA), version 0x10, exchange 2 (Main), flags 0, message id 0,
# length 28 + 4 + len(SA_BODY) + VID payload (4 + 16).
VID = unhex("4a131c81070358455c5728f20e95452f")
MM1 = (ICKY + RCKY + unhex("01 10 02 00 00000000") + (28 + 4 + len(SA_BODY) + 20).to_bytes(4, "big")
       + unhex("0d 00") + (4 + len(SA_BODY)).to_bytes(2, "big") + SA_BODY
       + unhex("00 00 0014") + VID)


def test_header_fields_from_rfc2408_layout():
    h = parse_header(MM1)
    assert h.icookie == ICKY and h.rcookie == RCKY
    assert h.next_payload == C.PT_SA and h.version == 0x10 and h.exchange == C.EXCH_MAIN
    assert h.flags == 0 and h.message_id == 0 and h.length == len(MM1)


def test_sa_proposal_transform_attributes_decoded():
    m = parse_message(MM1)
    sa, vid = m.payloads
    assert isinstance(sa, P.SaPayload) and sa.doi == C.DOI_IPSEC and sa.situation == C.SIT_IDENTITY_ONLY
    (prop,) = sa.proposals
    assert (prop.number, prop.protocol, prop.spi) == (1, C.PROTO_ISAKMP, b"")
    (tp,) = prop.transforms
    assert (tp.number, tp.transform_id) == (1, C.KEY_IKE)
    assert tp.attributes == [(1, 7), (14, 256), (2, 2), (3, 1), (4, 14), (11, 1), (12, unhex("00015180"))]
    assert tp.get(C.P1_LIFE_DURATION) == 86400
    assert isinstance(vid, P.VendorIdPayload) and vid.data == VID


def test_reencode_is_byte_exact():
    assert parse_message(MM1).encode() == MM1


def test_header_errors():
    harness.raises(IkeMalformed, parse_header, MM1[:27])
    bad_version = MM1[:17] + b"\x20" + MM1[18:]
    e = harness.raises(IkeMalformed, parse_header, bad_version)
    assert "major version 2" in str(e)
    bad_flags = MM1[:19] + b"\x08" + MM1[20:]
    harness.raises(IkeMalformed, parse_header, bad_flags)
    e = harness.raises(IkeMalformed, parse_header, MM1 + b"\x00")
    assert "length field" in str(e)
    harness.raises(IkeMalformed, parse_header, MM1[:-1])


def _msg(first, body, flags=0):
    return ICKY + RCKY + bytes((first, 0x10, 2, flags)) + b"\x00" * 4 + (28 + len(body)).to_bytes(4, "big") + body


def test_trailing_garbage_rejected_but_padding_allowed_when_asked():
    body = unhex("00 00 0014") + VID + b"\x00\x00\x00"
    e = harness.raises(IkeMalformed, parse_message, _msg(C.PT_VENDOR, body))
    assert "trailing" in str(e)
    out = P.parse_payloads(C.PT_VENDOR, body, allow_padding=True)
    assert len(out) == 1 and out[0].data == VID


def test_payload_length_errors():
    # Length shorter than the generic header, and longer than what is left.
    harness.raises(IkeMalformed, P.parse_payloads, C.PT_VENDOR, unhex("00 00 0003"))
    harness.raises(IkeMalformed, P.parse_payloads, C.PT_VENDOR, unhex("00 00 0020") + VID)
    # A next payload announced with nothing after it.
    harness.raises(IkeMalformed, P.parse_payloads, C.PT_VENDOR, unhex("0d 00 0014") + VID)
    harness.raises(IkeMalformed, P.parse_payloads, C.PT_VENDOR, b"")


def test_unknown_payload_skipped_unless_critical():
    body = unhex("0d 00 0008 deadbeef") + unhex("00 00 0014") + VID
    out = P.parse_payloads(99, body)
    assert isinstance(out[0], P.UnknownPayload) and out[0].ptype == 99 and out[0].body == unhex("deadbeef")
    assert isinstance(out[1], P.VendorIdPayload)
    assert P.encode_payloads(out) == (99, body)
    crit = unhex("0d 80 0008 deadbeef") + unhex("00 00 0014") + VID
    e = harness.raises(IkeMalformed, P.parse_payloads, 99, crit)
    assert "critical" in str(e)
    # Proposal/Transform only exist inside an SA.
    harness.raises(IkeMalformed, P.parse_payloads, C.PT_PROPOSAL, unhex("00 00 0008 01010000"))


def test_sa_chain_errors():
    # Transform count says 2, one transform present.
    bad = bytearray(SA_BODY)
    bad[15] = 2
    e = harness.raises(IkeMalformed, P.SaPayload.decode, bytes(bad))
    assert "announces 2 transforms" in str(e)
    # Proposal next payload says "another proposal" but none follows.
    bad = bytearray(SA_BODY)
    bad[8] = C.PT_PROPOSAL
    harness.raises(IkeMalformed, P.SaPayload.decode, bytes(bad))
    # A transform chain member that claims to be a KE payload.
    bad = bytearray(SA_BODY)
    bad[16] = C.PT_KE
    harness.raises(IkeMalformed, P.SaPayload.decode, bytes(bad))
    # SA without proposals, secrecy situation.
    harness.raises(IkeMalformed, P.SaPayload.decode, unhex("00000001 00000001"))
    harness.raises(IkeMalformed, P.SaPayload.decode, unhex("00000001 00000002") + SA_BODY[8:])
    # SPI size larger than the proposal.
    harness.raises(IkeMalformed, P.ProposalPayload.decode, unhex("01 03 10 01 0000"))


def test_attribute_tlv_and_truncation():
    # RFC 2408 3.3: AF=0 -> TLV; AF=1 -> TV.
    attrs = P.parse_attributes(unhex("800b0001 000c0004 00015180 8001 0007"))
    assert attrs == [(11, 1), (12, unhex("00015180")), (1, 7)]
    assert P.encode_attributes(attrs) == unhex("800b0001 000c0004 00015180 8001 0007")
    harness.raises(IkeMalformed, P.parse_attributes, unhex("800b00"))
    harness.raises(IkeMalformed, P.parse_attributes, unhex("000c0004 0001"))
    harness.raises(IkeMalformed, P.encode_attributes, [(1, 70000)])
    assert P.life_attr(28800) == 28800 and P.life_attr(86400) == unhex("00015180")


def test_id_payload_rfc2407_layouts():
    # RFC 2407 4.6.2: ID type, protocol, port, data.
    ip = P.IdPayload.decode(unhex("01 11 06a5 c0000205"))
    assert (ip.id_type, ip.protocol, ip.port, ip.text()) == (C.ID_IPV4_ADDR, 17, 1701, "192.0.2.5")
    fq = P.IdPayload.decode(unhex("02 00 0000") + b"vpn.example.com")
    assert fq.text() == "vpn.example.com"
    uf = P.IdPayload.decode(unhex("03 00 0000") + b"user@example.com")
    assert uf.id_type == C.ID_USER_FQDN and uf.text() == "user@example.com"
    sn = P.IdPayload.decode(unhex("04 11 06a5 c6336400 ffffff00"))
    assert sn.text() == "198.51.100.0/255.255.255.0"
    dn = P.IdPayload.decode(unhex("09 00 0000 3000"))
    assert dn.id_type == C.ID_DER_ASN1_DN and dn.data == unhex("3000")
    assert P.IdPayload.ipv4("192.0.2.5", 17, 1701).encode_body() == unhex("01 11 06a5 c0000205")
    assert P.IdPayload.ipv4_subnet("198.51.100.0", "255.255.255.0").encode_body() == unhex("04000000c6336400ffffff00")
    harness.raises(IkeMalformed, P.IdPayload.decode, unhex("01 11 06a5 c00002"))
    harness.raises(IkeMalformed, P.IdPayload.decode, unhex("04 11 06a5 c0000205"))
    harness.raises(IkeMalformed, P.IdPayload.decode, unhex("02 00 0000"))
    harness.raises(IkeMalformed, P.IdPayload.decode, unhex("01 11 06"))


def test_notify_and_delete_layouts():
    # RFC 2408 3.14: DOI 1, protocol 1, SPI size 16, type 36136 (R-U-THERE, RFC 3706), SPI, data (sequence).
    body = unhex("00000001 01 10 8d28") + ICKY + RCKY + unhex("00000007")
    n = P.NotifyPayload.decode(body)
    assert (n.doi, n.protocol, n.notify_type, n.spi, n.data) == (1, 1, C.N_R_U_THERE, ICKY + RCKY, unhex("00000007"))
    assert n.name() == "R-U-THERE" and n.encode_body() == body
    harness.raises(IkeMalformed, P.NotifyPayload.decode, unhex("00000001 01 10 8d28 0102"))
    harness.raises(IkeMalformed, P.NotifyPayload.decode, unhex("00000001 01"))
    # RFC 2408 3.15: DOI 1, protocol 3 (ESP), SPI size 4, 2 SPIs.
    body = unhex("00000001 03 04 0002 11223344 55667788")
    d = P.DeletePayload.decode(body)
    assert d.protocol == C.PROTO_IPSEC_ESP and d.spis == [unhex("11223344"), unhex("55667788")]
    assert d.encode_body() == body
    harness.raises(IkeMalformed, P.DeletePayload.decode, unhex("00000001 03 04 0002 11223344"))
    harness.raises(IkeMalformed, P.DeletePayload.decode, unhex("00000001 03 04 0000"))
    isakmp_del = P.DeletePayload(C.PROTO_ISAKMP, [ICKY + RCKY])
    assert isakmp_del.encode_body() == unhex("00000001 01 10 0001") + ICKY + RCKY


def test_nat_payloads_rfc3947_layouts():
    # RFC 3947 5.2 NAT-OA: ID type 1, three reserved octets, IPv4 address.
    oa = P.NatOaPayload.decode(unhex("01 000000 c0a80105"))
    assert oa.text() == "192.168.1.5" and oa.ptype == C.PT_NAT_OA
    assert oa.encode_body() == unhex("01000000c0a80105")
    harness.raises(IkeMalformed, P.NatOaPayload.decode, unhex("01 000000 c0a801"))
    harness.raises(IkeMalformed, P.NatOaPayload.decode, unhex("02 000000 c0a80105"))
    msg = P.parse_payloads(C.PT_NAT_D_DRAFT, unhex("83 00 0018") + b"h" * 20 + unhex("00 00 000c 01000000 c0000205"))
    assert msg[0].ptype == C.PT_NAT_D_DRAFT and msg[0].hash == b"h" * 20
    assert msg[1].ptype == C.PT_NAT_OA_DRAFT and msg[1].text() == "192.0.2.5"


def test_fragment_payload_layout():
    f = P.FragmentPayload.decode(unhex("0005 02 01 aabbcc"))
    assert (f.frag_id, f.number, f.last, f.data) == (5, 2, True, unhex("aabbcc"))
    assert f.encode_body() == unhex("000502 01 aabbcc")
    harness.raises(IkeMalformed, P.FragmentPayload.decode, unhex("0005 00 01 aa"))
    harness.raises(IkeMalformed, P.FragmentPayload.decode, unhex("0005 01"))


def test_nonce_bounds_and_other_opaque_payloads():
    harness.raises(IkeMalformed, P.NoncePayload.decode, b"1234567")
    harness.raises(IkeMalformed, P.NoncePayload.decode, b"x" * 257)
    assert P.NoncePayload.decode(b"x" * 16).data == b"x" * 16
    cert = P.CertPayload.decode(unhex("04 3082"))
    assert cert.encoding == C.CERT_X509_SIG and cert.data == unhex("3082")
    cr = P.CertRequestPayload.decode(unhex("04"))
    assert cr.ptype == C.PT_CR and cr.data == b""
    harness.raises(IkeMalformed, P.CertPayload.decode, b"")


def test_secret_payloads_do_not_print_their_bytes():
    k = P.KePayload(b"\x13\x37" * 64)
    assert "1337" not in repr(k) and "128 octets" in repr(k)
    assert "1337" not in repr(P.HashPayload(b"\x13\x37" * 10))


def test_encrypted_message_keeps_body_for_the_layer_above():
    body = b"\x99" * 32
    m = parse_message(_msg(C.PT_HASH, body, C.FLAG_E))
    assert m.payloads is None and m.body == body and m.header.flags == C.FLAG_E
    assert m.encode() == _msg(C.PT_HASH, body, C.FLAG_E)
    harness.raises(IkeMalformed, parse_message, _msg(C.PT_HASH, b"", C.FLAG_E))


def test_quick_mode_message_round_trip():
    sa = P.SaPayload([P.ProposalPayload(1, C.PROTO_IPSEC_ESP, unhex("c0ffee01"), [
        P.TransformPayload(1, C.ESP_AES_CBC, [(C.P2_LIFE_TYPE, 1), (C.P2_LIFE_DURATION, 3600),
                                              (C.P2_ENCAP_MODE, C.ENCAP_UDP_TRANSPORT), (C.P2_AUTH_ALG, 2),
                                              (C.P2_KEY_LENGTH, 256)])])])
    pl = [P.HashPayload(b"\x00" * 20), sa, P.NoncePayload(b"n" * 32),
          P.IdPayload.ipv4("192.0.2.10", 17, 1701), P.IdPayload.ipv4("203.0.113.5", 17, 1701),
          P.NatOaPayload("10.0.0.2"), P.NatOaPayload("203.0.113.5")]
    m = Message.build(ICKY, unhex("1112131415161718"), C.EXCH_QUICK, pl, flags=0, message_id=0x01020304)
    data = m.encode()
    back = parse_message(data)
    assert back.header.message_id == 0x01020304 and back.header.exchange == C.EXCH_QUICK
    assert back.payloads == pl
    assert back.encode() == data
    assert back.find(P.NatOaPayload).text() == "10.0.0.2"
    assert len(back.find_all(P.IdPayload)) == 2


def test_too_many_payloads_bounded():
    body = (unhex("0d 00 0008 00000000") * 70) + unhex("00 00 0008 00000000")
    harness.raises(IkeMalformed, P.parse_payloads, C.PT_VENDOR, body)
