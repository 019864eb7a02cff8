"""The reliable control channel (RFC 2661 5.8, Appendix A) on its own, with hand-fed Ns/Nr."""

from sluice.l2tp import header as H
from sluice.l2tp.control import ControlChannel, seq_lt


def hdr(data):
    h = H.parse(data)
    return h.ns, h.nr, h.end - h.offset


def test_sequence_comparison_wraps_at_16_bits():
    # RFC 2661 5.8: comparisons are modulo 2**16 with a half-space window.
    assert seq_lt(1, 2) and not seq_lt(2, 1) and not seq_lt(5, 5)
    assert seq_lt(0xFFFF, 0) and seq_lt(0xFFF0, 0x0010) and not seq_lt(0x0010, 0xFFF0)
    assert seq_lt(0, 0x7FFF) and not seq_lt(0, 0x8000)


def test_in_order_out_of_order_duplicate_and_out_of_window():
    ch = ControlChannel(local_window=4)
    assert ch.receive(0, 0, "m0", 0.0) == ["m0"]
    # Appendix A.2: m2, m3 arrive before m1: held, then delivered in order when m1 comes.
    assert ch.receive(2, 0, "m2", 0.1) == ()
    assert ch.receive(3, 0, "m3", 0.1) == ()
    assert ch.receive(1, 0, "m1", 0.2) == ["m1", "m2", "m3"]
    assert ch.nr == 4
    # Ns 4 + window 4 = 8 is outside our window: dropped, not held.
    assert ch.receive(8, 0, "m8", 0.3) == () and ch.reorder == {}
    assert ch.stats["out_of_window"] == 1
    # A duplicate of m1 is acknowledged again at once with a ZLB carrying Nr 4.
    ch.drain()
    assert ch.receive(1, 0, "m1", 0.4) == ()
    out = ch.drain()
    assert len(out) == 1 and hdr(out[0]) == (0, 4, 0)


def test_delayed_ack_becomes_zlb_unless_piggybacked():
    ch = ControlChannel(ack_delay=0.2)
    ch.receive(0, 0, "m0", 1.0)
    assert ch.get_timer() == 1.2
    ch.handle_timer(1.1)
    assert ch.drain() == []
    ch.handle_timer(1.2)
    out = ch.drain()
    assert [hdr(d) for d in out] == [(0, 1, 0)]
    # Next time a reply goes out first: the ack rides on it and no ZLB follows.
    ch.receive(1, 0, "m1", 2.0)
    ch.send(0, b"\x80\x08\x00\x00\x00\x00\x00\x06", 2.05)
    ch.handle_timer(2.3)
    assert [hdr(d)[:2] for d in ch.drain()] == [(0, 2)]


def test_peer_window_limits_outstanding_and_zlb_nr_releases():
    ch = ControlChannel()
    ch.peer_window = 2
    for i in range(5):
        ch.send(0, b"\x80\x08\x00\x00\x00\x00\x00\x06", 0.0)
    assert [hdr(d)[0] for d in ch.drain()] == [0, 1]
    assert len(ch.unacked) == 2 and len(ch.waiting) == 3
    # A ZLB with Nr 1 acknowledges Ns 0: one more may go.
    assert ch.receive(0, 1, None, 0.5) == ()
    assert [hdr(d)[0] for d in ch.drain()] == [2]
    # Nr beyond what we sent is bogus and changes nothing.
    ch.receive(0, 9, None, 0.6)
    assert len(ch.unacked) == 2 and ch.drain() == []
    ch.receive(0, 3, None, 0.7)
    assert [hdr(d)[0] for d in ch.drain()] == [3, 4]
    ch.receive(0, 5, None, 0.8)
    assert ch.idle() and ch.get_timer() is None


def test_retransmission_doubles_to_the_cap_and_gives_up_after_max_retries():
    ch = ControlChannel(retransmit_initial=1.0, retransmit_cap=8.0, max_retries=7)
    ch.send(0, b"\x80\x08\x00\x00\x00\x00\x00\x06", 0.0)
    times = []
    for _ in range(20):
        t = ch.get_timer()
        if t is None:
            break
        ch.handle_timer(t)
        if ch.drain():
            times.append(t)
    assert times == [1.0, 3.0, 7.0, 15.0, 23.0, 31.0, 39.0]
    assert ch.failed is not None and "7 retransmissions" in ch.failed
    assert ch.stats["retransmits"] == 7


def test_ack_resets_the_backoff():
    ch = ControlChannel()
    ch.send(0, b"\x80\x08\x00\x00\x00\x00\x00\x06", 0.0)
    ch.handle_timer(1.0)
    ch.handle_timer(3.0)
    ch.drain()
    ch.receive(0, 1, None, 3.5)
    ch.send(0, b"\x80\x08\x00\x00\x00\x00\x00\x06", 4.0)
    assert ch.get_timer() == 5.0 and ch.retries == 0
