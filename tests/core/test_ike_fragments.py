"""IKE fragment (payload 132) reassembly: order, duplicates, bounds, timeout with injected time."""

try:
    import harness
except ImportError:
    from tests.core import harness

from sluice.ike import constants as C
from sluice.ike.fragments import FragmentReassembler, fragment_message
from sluice.ike.message import parse_message, Message
from sluice.ike.payloads import FragmentPayload, CertPayload, VendorIdPayload

ICKY = harness.unhex("0102030405060708")
RCKY = harness.unhex("1112131415161718")


def _big_message():
    # A Main Mode message 5-sized body: a 1500-octet certificate does not fit one 1280-octet datagram.
    # A fixed pattern rather than SeededRng: its 32-bit state is a heap-allocated long on MicroPython/wasm.
    data = bytes((i * 7 + 3) & 0xFF for i in range(1500))
    return Message.build(ICKY, RCKY, C.EXCH_MAIN, [CertPayload(C.CERT_X509_SIG, data),
                                                   VendorIdPayload(data[:16])]).encode()


def _frags(data, size=576, fid=9):
    return [parse_message(d).payloads[0] for d in fragment_message(data, fid, size)]


def test_split_then_reassemble_in_order():
    data = _big_message()
    dgrams = fragment_message(data, 9, 576)
    assert len(dgrams) == 3 and all(len(d) <= 576 for d in dgrams)
    for d in dgrams:
        m = parse_message(d)
        assert m.header.next_payload == C.PT_FRAGMENT and m.header.icookie == ICKY
        assert m.header.exchange == C.EXCH_MAIN
    r = FragmentReassembler()
    out = [r.add("peer", f, 0.0) for f in _frags(data)]
    assert out[:2] == [None, None] and out[2] == data and len(r) == 0 and r.stats["complete"] == 1
    frags = _frags(data)
    assert [f.number for f in frags] == [1, 2, 3] and [f.last for f in frags] == [False, False, True]


def test_out_of_order_and_duplicates():
    data = _big_message()
    f1, f2, f3 = _frags(data)
    r = FragmentReassembler()
    assert r.add("p", f3, 1.0) is None
    assert r.add("p", f1, 1.1) is None
    assert r.add("p", f1, 1.2) is None and r.stats["duplicate"] == 1
    assert r.add("p", f2, 1.3) == data


def test_timeout_uses_injected_now():
    f1, f2, f3 = _frags(_big_message())
    r = FragmentReassembler(timeout=10.0)
    r.add("p", f1, 100.0)
    assert r.get_timer() == 110.0
    r.add("p", f2, 105.0)
    assert r.add("p", f3, 110.0) is None and r.stats["expired"] == 1
    assert len(r) == 1  # f3 started a new (incomplete) set
    assert r.expire(200.0) == 1 and len(r) == 0 and r.get_timer() is None


def test_bounds_count_bytes_and_pending():
    r = FragmentReassembler(max_fragments=4, max_bytes=100, max_pending=2)
    assert r.add("p", FragmentPayload(1, 5, b"x"), 0.0) is None and r.stats["dropped"] == 1 and len(r) == 0
    r.add("p", FragmentPayload(1, 1, b"x" * 60), 0.0)
    assert r.add("p", FragmentPayload(1, 2, b"x" * 60), 0.0) is None and len(r) == 0 and r.stats["dropped"] == 2
    r.add("a", FragmentPayload(1, 1, b"a"), 0.0)
    r.add("b", FragmentPayload(1, 1, b"b"), 1.0)
    r.add("c", FragmentPayload(1, 1, b"c"), 2.0)
    assert len(r) == 2 and r.stats["evicted"] == 1
    assert r.add("a", FragmentPayload(1, 2, b"a", last=True), 3.0) is None  # "a" was evicted: 1 piece only


def test_new_fragment_id_replaces_and_contradictions_drop():
    r = FragmentReassembler()
    r.add("p", FragmentPayload(1, 1, b"old"), 0.0)
    r.add("p", FragmentPayload(2, 1, b"new"), 0.0)
    assert r.stats["replaced"] == 1
    assert r.add("p", FragmentPayload(2, 2, b"!", last=True), 0.0) == b"new!"
    r.add("p", FragmentPayload(3, 2, b"x", last=True), 0.0)
    assert r.add("p", FragmentPayload(3, 3, b"y"), 0.0) is None and r.stats["dropped"] == 1 and len(r) == 0
    r.add("p", FragmentPayload(4, 3, b"x"), 0.0)
    assert r.add("p", FragmentPayload(4, 2, b"y", last=True), 0.0) is None and len(r) == 0


def test_fragment_message_limits():
    harness.raises(ValueError, fragment_message, _big_message(), 1, 36)
    harness.raises(ValueError, fragment_message, b"x" * 4000, 1, 40)
