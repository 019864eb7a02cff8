"""Phase 1 encryption and IV bookkeeping (RFC 2409 Appendix B): a message that fails to authenticate must not
move the IV chain; exchanges keep separate chains. The IVs themselves are checked from outside (Wireshark
decrypts our exchanges) in tests/unit/test_ike_exchange_tshark.py."""

try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.hal.crypto import backend as load_backend
from sluice.ike import constants as C
from sluice.ike.crypt import IkeCrypt, chain_spans, raw_body
from sluice.ike.message import parse_header
from sluice.ike.payloads import HashPayload, IkeMalformed, NoncePayload, encode_payloads

KEY = bytes(range(32))
IV0 = bytes(range(100, 116))
ICKY, RCKY = b"\x01" * 8, b"\x02" * 8


def _pair():
    be = load_backend("pure")
    return IkeCrypt(be, "sha1", "aes-cbc", KEY, IV0), IkeCrypt(be, "sha1", "aes-cbc", KEY, IV0)


def test_both_sides_follow_the_same_chain_and_pad_to_blocks():
    a, b = _pair()
    for k in range(3):
        data = a.seal(ICKY, RCKY, C.EXCH_MAIN, 0, [NoncePayload(bytes((k,)) * (9 + k))])
        assert (len(data) - 28) % 16 == 0 and data[19] & C.FLAG_E
        h = parse_header(data)
        payloads, plain, nxt = b.open_payloads(h, data[28:])
        assert payloads[0].data == bytes((k,)) * (9 + k)
        assert nxt == data[-16:]
        b.commit(0, nxt)
    assert a.p1_iv == b.p1_iv


def test_open_does_not_move_the_chain_until_commit():
    a, b = _pair()
    data = a.seal(ICKY, RCKY, C.EXCH_MAIN, 0, [NoncePayload(b"n" * 16)])
    h = parse_header(data)
    b.open(h, data[28:])
    assert b.p1_iv == IV0             # a forged message decrypted to garbage changes nothing
    harness.raises(IkeMalformed, b.open, h, data[28:-1])


def test_phase2_exchanges_have_their_own_chains():
    a, b = _pair()
    m1 = a.seal(ICKY, RCKY, C.EXCH_QUICK, 0x11111111, [HashPayload(b"h" * 20)])
    m2 = a.seal(ICKY, RCKY, C.EXCH_QUICK, 0x22222222, [HashPayload(b"h" * 20)])
    assert m1[28:] != m2[28:]                    # same plaintext, different IV per message id
    assert a.p1_iv == IV0                        # phase 2 never moves the phase 1 chain
    for m in (m2, m1):
        h = parse_header(m)
        p, plain, nxt = b.open_payloads(h, m[28:])
        assert p[0].data == b"h" * 20


def test_chain_spans_and_raw_body():
    first, raw = encode_payloads([HashPayload(b"x" * 20), NoncePayload(b"n" * 16)])
    assert chain_spans(first, raw + bytes(12)) == [(C.PT_HASH, 0, 24), (C.PT_NONCE, 24, 44)]
    assert raw_body(first, raw, C.PT_NONCE) == b"n" * 16 and raw_body(first, raw, C.PT_SA) is None
    harness.raises(IkeMalformed, chain_spans, first, raw[:30])
