"""ISAKMP codec against scapy's independent ISAKMP layer (scapy.layers.isakmp).

Two directions: messages we encode are dissected by scapy and their fields checked; messages scapy builds
(a Windows 10 Main Mode first message laid out per docs clients.md, notifications, deletes, IDs) are parsed by
us, matched, and re-encoded byte-exact.
"""

from scapy.layers.isakmp import (ISAKMP, ISAKMP_payload, ISAKMP_payload_SA, ISAKMP_payload_Proposal,
                                 ISAKMP_payload_Transform, ISAKMP_payload_KE, ISAKMP_payload_Nonce,
                                 ISAKMP_payload_ID, ISAKMP_payload_Hash, ISAKMP_payload_Notify,
                                 ISAKMP_payload_Delete, ISAKMP_payload_VendorID)

from sluice.ike import constants as C
from sluice.ike import payloads as P
from sluice.ike import proposals as PR
from sluice.ike import vendor as V
from sluice.ike.message import Message, parse_message

ICKY = bytes.fromhex("5a1c0e3d9b7f2a01")
RCKY = bytes.fromhex("c3d2e1f0a9b8c7d6")
ZERO = b"\x00" * 8


def transforms_of(prop):
    t = prop.trans
    out = []
    while isinstance(t, ISAKMP_payload_Transform):
        out.append(t)
        t = t.payload
    return out


def payload_chain(pkt):
    """(scapy layer, its next_payload) for every payload after the ISAKMP header."""
    out = []
    p = pkt[ISAKMP].payload
    while isinstance(p, ISAKMP_payload):
        out.append(p)
        p = p.payload
    return out


# --- a Windows 10 Main Mode message 1, built by scapy -------------------------------------------------------

def scapy_transform(num, encr, bits, group, last):
    attrs = [("Encryption", encr)]
    if bits:
        attrs.append(("KeyLength", bits))
    attrs += [("Hash", "SHA"), ("Authentication", "PSK"), ("GroupDesc", group), ("LifeType", "Seconds"),
              ("LifeDuration", 28800)]
    return ISAKMP_payload_Transform(next_payload=0 if last else 3, transform_count=num, transform_id=1,
                                    transforms=attrs)


def windows_mm1():
    # clients.md "Windows 10/11": AES-CBC-256/SHA1/ECP384, AES-CBC-128/SHA1/ECP256, AES-CBC-256/SHA1/MODP2048,
    # 3DES/SHA1/MODP2048, 3DES/SHA1/MODP1024; PSK; vendor IDs MS NT5 ISAKMPOAKLEY v9, RFC 3947, FRAGMENTATION.
    rows = [("AES-CBC", 256, 20), ("AES-CBC", 128, 19), ("AES-CBC", 256, 14), ("3DES-CBC", 0, 14),
            ("3DES-CBC", 0, 2)]
    chain = None
    for k in range(len(rows) - 1, -1, -1):
        t = scapy_transform(k + 1, rows[k][0], rows[k][1], rows[k][2], k == len(rows) - 1)
        chain = t if chain is None else t / chain
    prop = ISAKMP_payload_Proposal(next_payload=0, proposal=1, proto=1, trans_nb=len(rows), trans=chain)
    # [MS-IKEE]: Windows sends both "RFC 3947" and "draft-ietf-ipsec-nat-t-ike-02\n".
    vids = [V.MS_NT5 + bytes.fromhex("00000009"), V.NATT_RFC3947, V.NATT_DRAFT_02N, V.FRAGMENTATION,
            bytes.fromhex("fb1de3cdf341b7ea16b7e5be0855f120"), bytes.fromhex("214ca4faffa7f32d6748e5303395ae83")]
    pkt = ISAKMP(init_cookie=ICKY, resp_cookie=ZERO, next_payload=1, exch_type=2, flags=0, id=0)
    pkt = pkt / ISAKMP_payload_SA(next_payload=13, doi=1, situation=1, prop=prop)
    for k, v in enumerate(vids):
        pkt = pkt / ISAKMP_payload_VendorID(next_payload=13 if k < len(vids) - 1 else 0, VendorID=v)
    return bytes(pkt)


def test_windows_mm1_from_scapy_parses_matches_and_round_trips():
    raw = windows_mm1()
    m = parse_message(raw)
    assert m.header.exchange == C.EXCH_MAIN and m.header.icookie == ICKY and m.header.rcookie == ZERO
    sa = m.find(P.SaPayload)
    tps = sa.proposals[0].transforms
    assert len(tps) == 5
    assert tps[0].attributes[:5] == [(1, 7), (14, 256), (2, 2), (3, 1), (4, 20)]
    assert tps[4].get(C.P1_ENCRYPTION) == C.ENCR_3DES and tps[4].get(C.P1_GROUP_DESC) == 2
    caps = V.capabilities(m.find_all(P.VendorIdPayload))
    assert caps.windows and caps.windows_version == 9 and caps.natt == "rfc3947" and caps.fragmentation
    assert caps.unknown == 2
    ch = PR.match_ike(sa, PR.default_ike())
    assert ch.algs.name() == "aes256-sha1-ecp384" and ch.life_seconds == 28800
    # Captured-style message round-trips byte-exact.
    assert m.encode() == raw


# --- our messages, dissected by scapy -----------------------------------------------------------------------

def test_our_main_mode_sa_as_scapy_sees_it():
    ours = PR.ProposalSet.parse("aes256-sha256-modp2048,aes128-sha1-ecp256,3des-md5-modp1024", "ike")
    msg = Message.build(ICKY, ZERO, C.EXCH_MAIN, [PR.ike_sa_payload(ours, lifetime=86400)]
                        + [P.VendorIdPayload(v) for v in V.initiator_vids()])
    pkt = ISAKMP(msg.encode())
    assert pkt.init_cookie == ICKY and pkt.exch_type == 2 and pkt.version == 0x10 and pkt.length == len(msg.encode())
    sa = pkt[ISAKMP_payload_SA]
    assert sa.doi == 1 and sa.situation == 1 and sa.next_payload == 13
    prop = sa.prop
    assert prop.proto == 1 and prop.trans_nb == 3 and prop.SPIsize == 0
    ts = transforms_of(prop)
    assert [t.transform_count for t in ts] == [1, 2, 3]
    assert ts[0].transforms == [("Encryption", "AES-CBC"), ("KeyLength", 256), ("Hash", "SHA2-256"),
                                ("Authentication", "PSK"), ("GroupDesc", "2048MODPgr"), ("LifeType", "Seconds"),
                                ("LifeDuration", 86400)]
    assert ts[2].transforms[:4] == [("Encryption", "3DES-CBC"), ("Hash", "MD5"), ("Authentication", "PSK"),
                                    ("GroupDesc", "1024MODPgr")]
    assert ("GroupDesc", 19) in ts[1].transforms
    vids = [p.VendorID for p in payload_chain(pkt) if isinstance(p, ISAKMP_payload_VendorID)]
    assert vids[0] == V.NATT_RFC3947 and len(vids) == 6


def test_our_ke_nonce_natd_as_scapy_sees_it():
    ke, nonce = bytes(range(256)), bytes(range(32))
    msg = Message.build(ICKY, RCKY, C.EXCH_MAIN, [P.KePayload(ke), P.NoncePayload(nonce),
                                                 P.NatDPayload(b"\x01" * 20), P.NatDPayload(b"\x02" * 20)])
    chain = payload_chain(ISAKMP(msg.encode()))
    assert isinstance(chain[0], ISAKMP_payload_KE) and chain[0].ke == ke and chain[0].next_payload == 10
    assert isinstance(chain[1], ISAKMP_payload_Nonce) and chain[1].nonce == nonce and chain[1].next_payload == 20
    # scapy has no NAT-D class: a generic payload with the hash as its load.
    assert chain[2].next_payload == 20 and chain[2].load == b"\x01" * 20 and chain[2].length == 24
    assert chain[3].next_payload == 0 and chain[3].load == b"\x02" * 20


def test_our_id_and_hash_as_scapy_sees_it():
    msg = Message.build(ICKY, RCKY, C.EXCH_MAIN, [P.IdPayload.ipv4("192.0.2.10", 17, 500),
                                                 P.HashPayload(b"\xab" * 20)], flags=0)
    chain = payload_chain(ISAKMP(msg.encode()))
    assert isinstance(chain[0], ISAKMP_payload_ID)
    assert (chain[0].IDtype, chain[0].ProtoID, chain[0].Port, chain[0].IdentData) == (1, 17, 500, "192.0.2.10")
    assert isinstance(chain[1], ISAKMP_payload_Hash) and chain[1].hash == b"\xab" * 20


def test_our_quick_mode_sa_transport_udp_encap_as_scapy_sees_it():
    esp = PR.ProposalSet.parse("aes256-sha1,aes128-sha1,3des-sha1", "esp")
    sa = PR.esp_sa_payload(esp, bytes.fromhex("c0010203"), mode=C.ENCAP_UDP_TRANSPORT, lifetime=3600)
    msg = Message.build(ICKY, RCKY, C.EXCH_QUICK, [P.HashPayload(b"\0" * 20), sa, P.NoncePayload(b"n" * 16),
                                                  P.NatOaPayload("10.0.0.2"), P.NatOaPayload("203.0.113.5")],
                        message_id=0xDEADBEEF)
    pkt = ISAKMP(msg.encode())
    assert pkt.exch_type == 32 and pkt.id == 0xDEADBEEF
    prop = pkt[ISAKMP_payload_SA].prop
    assert prop.proto == 3 and prop.SPI == bytes.fromhex("c0010203") and prop.trans_nb == 3
    ts = transforms_of(prop)
    assert [t.transform_id for t in ts] == [C.ESP_AES_CBC, C.ESP_AES_CBC, C.ESP_3DES]
    assert ts[0].transforms == [("LifeType", "seconds"), ("LifeDuration", 3600),
                                ("EncapsulationMode", "UDP-Encapsulated-Transport"),
                                ("AuthenticationAlgorithm", "HMAC-SHA"), ("KeyLength", 256)]
    chain = payload_chain(pkt)
    assert [p.next_payload for p in chain] == [1, 10, 21, 21, 0]
    assert chain[3].load == bytes.fromhex("01000000 0a000002")


def test_our_notify_and_delete_as_scapy_sees_it():
    spi = ICKY + RCKY
    msg = Message.build(ICKY, RCKY, C.EXCH_INFORMATIONAL,
                        [P.NotifyPayload(C.N_R_U_THERE, spi, (42).to_bytes(4, "big")),
                         P.DeletePayload(C.PROTO_IPSEC_ESP, [b"\x11\x22\x33\x44", b"\x55\x66\x77\x88"])],
                        message_id=7)
    chain = payload_chain(ISAKMP(msg.encode()))
    n, d = chain
    assert isinstance(n, ISAKMP_payload_Notify)
    assert (n.doi, n.proto, n.SPIsize, n.notify_msg_type, n.SPI, n.notify_data) == (
        1, 1, 16, 36136, spi, b"\x00\x00\x00\x2a")
    assert isinstance(d, ISAKMP_payload_Delete)
    assert (d.doi, d.proto, d.SPIsize, d.SPIcount) == (1, 3, 4, 2)
    assert d.SPIs == [b"\x11\x22\x33\x44", b"\x55\x66\x77\x88"]


# --- scapy-built payloads, parsed by us ---------------------------------------------------------------------

def test_scapy_built_informational_parsed_by_us():
    pkt = (ISAKMP(init_cookie=ICKY, resp_cookie=RCKY, next_payload=11, exch_type=5, id=99)
           / ISAKMP_payload_Notify(next_payload=12, doi=1, proto=3, SPI=b"\xaa\xbb\xcc\xdd", notify_msg_type=14,
                                   notify_data=b"why")
           / ISAKMP_payload_Delete(next_payload=0, doi=1, proto=1, SPIs=[ICKY + RCKY]))
    raw = bytes(pkt)
    m = parse_message(raw)
    assert m.header.exchange == C.EXCH_INFORMATIONAL and m.header.message_id == 99
    n, d = m.payloads
    assert n.notify_type == C.N_NO_PROPOSAL_CHOSEN and n.protocol == 3 and n.spi == b"\xaa\xbb\xcc\xdd"
    assert n.data == b"why" and n.name() == "NO-PROPOSAL-CHOSEN"
    assert d.protocol == C.PROTO_ISAKMP and d.spi_size == 16 and d.spis == [ICKY + RCKY]
    assert m.encode() == raw


def test_scapy_built_id_ke_nonce_parsed_by_us():
    pkt = (ISAKMP(init_cookie=ICKY, resp_cookie=RCKY, next_payload=4, exch_type=4)
           / ISAKMP_payload_KE(next_payload=10, ke=b"K" * 128)
           / ISAKMP_payload_Nonce(next_payload=5, nonce=b"N" * 20)
           / ISAKMP_payload_ID(next_payload=0, IDtype=1, ProtoID=17, Port=1701, IdentData="198.51.100.7"))
    raw = bytes(pkt)
    ke, nonce, ident = parse_message(raw).payloads
    assert ke.data == b"K" * 128 and nonce.data == b"N" * 20
    assert (ident.id_type, ident.protocol, ident.port, ident.text()) == (1, 17, 1701, "198.51.100.7")
    assert parse_message(raw).encode() == raw


def test_scapy_built_quick_mode_sa_matched_by_us():
    ts = (ISAKMP_payload_Transform(next_payload=3, transform_count=1, transform_id=12,
                                   transforms=[("LifeType", "seconds"), ("LifeDuration", 3600),
                                               ("EncapsulationMode", "Transport"),
                                               ("AuthenticationAlgorithm", "HMAC-SHA2-256"), ("KeyLength", 256)])
          / ISAKMP_payload_Transform(next_payload=0, transform_count=2, transform_id=12,
                                     transforms=[("LifeType", "seconds"), ("LifeDuration", 3600),
                                                 ("EncapsulationMode", "Transport"),
                                                 ("AuthenticationAlgorithm", "HMAC-SHA"), ("KeyLength", 128)]))
    prop = ISAKMP_payload_Proposal(next_payload=0, proposal=1, proto=3, SPI=b"\x01\x02\x03\x04", trans_nb=2,
                                   trans=ts)
    pkt = (ISAKMP(init_cookie=ICKY, resp_cookie=RCKY, next_payload=1, exch_type=32, id=5)
           / ISAKMP_payload_SA(next_payload=0, doi=1, situation=1, prop=prop))
    raw = bytes(pkt)
    sa = parse_message(raw).payloads[0]
    ch = PR.match_esp(sa, PR.default_esp(), modes=C.ENCAP_TRANSPORT_MODES)
    # SHA2-256 first, SHA1 second: the SHA1 one is preferred (clients.md), echoed as number 2.
    assert ch.algs.name() == "aes128-sha1" and ch.transform.number == 2 and ch.mode == C.ENCAP_TRANSPORT
    assert parse_message(raw).encode() == raw


def test_apple_fourteen_transform_offer_as_scapy_sees_it():
    # clients.md "macOS / iOS": AES-256 x {SHA256, SHA1, MD5, SHA512} x MODP2048; AES-256 x {SHA256, SHA1, MD5} x
    # MODP1536 and x MODP1024; AES-128 x {SHA1, MD5} x MODP1024; 3DES x {SHA1, MD5} x MODP1024.
    apple = PR.ProposalSet.parse("aes256-sha256-sha1-md5-sha512-modp2048,aes256-sha256-sha1-md5-modp1536,"
                                 "aes256-sha256-sha1-md5-modp1024,aes128-sha1-md5-modp1024,3des-sha1-md5-modp1024",
                                 "ike")
    assert len(apple) == 14
    raw = Message.build(ICKY, ZERO, C.EXCH_MAIN, [PR.ike_sa_payload(apple, lifetime=3600)]).encode()
    prop = ISAKMP(raw)[ISAKMP_payload_SA].prop
    ts = transforms_of(prop)
    assert prop.trans_nb == 14 and len(ts) == 14
    hashes = [dict(t.transforms)["Hash"] for t in ts]
    assert hashes[:4] == ["SHA2-256", "SHA", "MD5", "SHA2-512"]
    groups = [dict(t.transforms)["GroupDesc"] for t in ts]
    assert groups == ["2048MODPgr"] * 4 + ["1536MODPgr"] * 3 + ["1024MODPgr"] * 7
    assert [dict(t.transforms)["Encryption"] for t in ts][-2:] == ["3DES-CBC", "3DES-CBC"]
    # As a responder with the default set we take Apple's first transform.
    assert PR.match_ike(parse_message(raw).payloads[0], PR.default_ike()).algs.name() == "aes256-sha256-modp2048"
