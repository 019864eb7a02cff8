"""Hypothesis: random, truncated and mutated ISAKMP bytes only ever raise IkeMalformed; generated payloads
round-trip; the matcher and the reassembler never crash on what the codec accepts. Also the independent
checks that need CPython's hashlib: vendor ID values recomputed as MD5 of their published texts, NAT-D hashes
recomputed with hashlib."""

import hashlib

from hypothesis import given, settings, strategies as st, HealthCheck

from sluice.ike import constants as C
from sluice.ike import natd
from sluice.ike import payloads as P
from sluice.ike import proposals as PR
from sluice.ike import vendor as V
from sluice.ike.fragments import FragmentReassembler
from sluice.ike.message import Message, parse_message
from sluice.hal.crypto import digest

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

ICKY, RCKY = b"\x01" * 8, b"\x02" * 8


def _seed_messages():
    ike = PR.ike_sa_payload(PR.ProposalSet.parse("aes256-sha1-modp2048,3des-md5-modp1024", "ike"))
    esp = PR.esp_sa_payload(PR.ProposalSet.parse("aes256-sha1,aes128gcm16", "esp"), b"\x00\x00\x00\x09",
                            mode=C.ENCAP_UDP_TRANSPORT)
    return [
        Message.build(ICKY, b"\0" * 8, C.EXCH_MAIN, [ike, P.VendorIdPayload(V.NATT_RFC3947)]).encode(),
        Message.build(ICKY, RCKY, C.EXCH_QUICK, [P.HashPayload(b"h" * 20), esp, P.NoncePayload(b"n" * 16),
                                                P.IdPayload.ipv4("192.0.2.1", 17, 1701), P.NatOaPayload("10.0.0.2"),
                                                P.NatDPayload(b"d" * 20)]).encode(),
        Message.build(ICKY, RCKY, C.EXCH_INFORMATIONAL, [P.NotifyPayload(C.N_R_U_THERE, ICKY + RCKY, b"\0\0\0\1"),
                                                        P.DeletePayload(C.PROTO_IPSEC_ESP, [b"abcd"]),
                                                        P.FragmentPayload(1, 1, b"zz", last=True)]).encode(),
    ]


SEEDS = _seed_messages()


def _exercise(data):
    try:
        m = parse_message(data)
    except P.IkeMalformed:
        return
    if m.payloads is None:
        return
    # Reserved octets are not kept, so compare decode(encode(m)) with m rather than with the input bytes.
    again = parse_message(m.encode())
    assert again.payloads == m.payloads and again.encode() == m.encode()
    for sa in m.find_all(P.SaPayload):
        for fn in (lambda: PR.match_ike(sa, PR.default_ike(True)), lambda: PR.match_esp(sa, PR.default_esp(True))):
            try:
                fn()
            except PR.NoProposalChosen:
                pass


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_ikemalformed(data):
    _exercise(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bodies_behind_a_valid_header(body):
    for first in (C.PT_SA, C.PT_ID, C.PT_NOTIFY, C.PT_DELETE, C.PT_NAT_OA, C.PT_FRAGMENT, 77):
        data = ICKY + RCKY + bytes((first, 0x10, 2, 0)) + b"\0\0\0\0" + (28 + len(body)).to_bytes(4, "big") + body
        _exercise(data)


@SETTINGS
@given(st.sampled_from(range(len(SEEDS))), st.integers(min_value=0, max_value=1000),
       st.lists(st.tuples(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=255)),
                max_size=4))
def test_truncated_and_mutated_messages(which, cut, flips):
    data = bytearray(SEEDS[which])
    for pos, val in flips:
        data[pos % len(data)] = val
    cut = cut % (len(data) + 1)
    _exercise(bytes(data[:cut]))
    # Keep the header length consistent so that the payload walker sees the damage.
    fixed = bytearray(data[:max(cut, 28)])
    if len(fixed) >= 28:
        fixed[24:28] = len(fixed).to_bytes(4, "big")
        _exercise(bytes(fixed))


attr = st.one_of(st.tuples(st.integers(0, 0x7FFF), st.integers(0, 0xFFFF)),
                 st.tuples(st.integers(0, 0x7FFF), st.binary(max_size=12)))


@SETTINGS
@given(st.lists(st.lists(attr, max_size=6), min_size=1, max_size=4), st.binary(max_size=8),
       st.sampled_from([C.EXCH_MAIN, C.EXCH_QUICK, C.EXCH_AGGRESSIVE]), st.integers(0, 0xFFFFFFFF))
def test_generated_sa_round_trips(attr_lists, spi, exch, mid):
    tps = [P.TransformPayload(k + 1, 12, a) for k, a in enumerate(attr_lists)]
    sa = P.SaPayload([P.ProposalPayload(1, C.PROTO_IPSEC_ESP, spi, tps)])
    data = Message.build(ICKY, RCKY, exch, [sa, P.KePayload(spi)], message_id=mid).encode()
    m = parse_message(data)
    assert m.payloads == [sa, P.KePayload(spi)] and m.header.message_id == mid and m.encode() == data


@SETTINGS
@given(st.lists(st.tuples(st.text(alphabet="abc", min_size=1, max_size=1), st.integers(0, 3),
                          st.integers(1, 20), st.booleans(), st.binary(max_size=200), st.floats(0, 100)),
                max_size=40))
def test_reassembler_stays_bounded(ops):
    r = FragmentReassembler(max_fragments=8, max_bytes=500, max_pending=2, timeout=5.0)
    now = 0.0
    for peer, fid, num, last, data, dt in ops:
        now += dt
        out = r.add(peer, P.FragmentPayload(fid, num, data, last=last), now)
        assert out is None or len(out) <= 500
        assert len(r) <= 2


# --- independent values ---------------------------------------------------------------------------------------

def test_vendor_ids_are_md5_of_their_published_texts():
    md5 = lambda s: hashlib.md5(s).digest()
    assert V.NATT_RFC3947 == md5(b"RFC 3947")  # RFC 3947 3.1
    assert V.NATT_DRAFT_02 == md5(b"draft-ietf-ipsec-nat-t-ike-02")
    assert V.NATT_DRAFT_02N == md5(b"draft-ietf-ipsec-nat-t-ike-02\n")
    assert V.NATT_DRAFT_03 == md5(b"draft-ietf-ipsec-nat-t-ike-03")
    assert V.STRONGSWAN == md5(b"strongSwan")
    assert V.XAUTH == md5(b"draft-ietf-ipsra-isakmp-xauth-06.txt")[:8]
    assert V.FRAGMENTATION == md5(b"FRAGMENTATION")
    assert V.MS_NT5 == md5(b"MS NT5 ISAKMPOAKLEY")
    assert V.CISCO_UNITY[:14] == md5(b"CISCO-UNITY")[:14]


def test_natd_hash_matches_hashlib():
    # RFC 3947 3.2 with SHA1 and MD5, recomputed by CPython's hashlib from the same inputs.
    want = hashlib.sha1(ICKY + RCKY + bytes([198, 51, 100, 1]) + (4500).to_bytes(2, "big")).digest()
    assert natd.natd_hash(digest.sha1, ICKY, RCKY, "198.51.100.1", 4500) == want
    want = hashlib.md5(ICKY + RCKY + bytes([192, 0, 2, 1]) + (500).to_bytes(2, "big")).digest()
    assert natd.natd_hash(natd.hash_for(C.HASH_MD5), ICKY, RCKY, "192.0.2.1", 500) == want


@SETTINGS
@given(st.text(alphabet="aes0123456789gcmdhmopc-,_ shaAB", max_size=60), st.sampled_from(["ike", "esp"]))
def test_proposal_strings_only_raise_proposal_error(text, kind):
    try:
        ps = PR.ProposalSet.parse(text, kind)
    except PR.ProposalError as e:
        assert str(e)
        return
    assert len(ps) >= 1
    for t in ps:
        assert PR.ProposalSet.parse(t.name(), kind).transforms == [t]
