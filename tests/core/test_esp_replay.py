"""Anti-replay window, RFC 4303 3.4.3: the window's right edge is the highest authenticated sequence
number; anything left of the window, zero, or already seen is refused; update() only after the ICV."""

try:
    import harness
except ImportError:
    from tests.core import harness


from sluice.esp.replay import ReplayWindow


def test_first_packets_in_order():
    w = ReplayWindow(64)
    for seq in range(1, 200):
        assert w.check(seq)
        w.update(seq)
        assert not w.check(seq)  # duplicate
    assert w.top == 199


def test_zero_is_never_valid():
    # RFC 4303 3.3.3: the first packet sent has sequence number 1.
    w = ReplayWindow(64)
    assert not w.check(0)


def test_reordering_inside_window_accepted_once():
    w = ReplayWindow(64)
    w.update(100)
    for seq in (99, 50, 37):  # 100 - 37 = 63: the window's left edge
        assert w.check(seq)
        w.update(seq)
        assert not w.check(seq)
    assert not w.check(36)  # 64 behind the right edge: outside
    assert w.top == 100


def test_jump_beyond_window_clears_history():
    w = ReplayWindow(64)
    for seq in range(1, 10):
        w.update(seq)
    w.update(1000)
    assert not w.check(1000)
    assert w.check(999)
    assert not w.check(1000 - 64)
    assert w.bitmap == 1


def test_check_does_not_move_window():
    # A forged packet passes check() but fails the ICV: the window must be unchanged.
    w = ReplayWindow(64)
    w.update(5)
    assert w.check(5000)
    assert w.top == 5
    assert w.check(4)


def test_larger_window():
    w = ReplayWindow(1024)
    w.update(2000)
    assert w.check(2000 - 1023)
    assert not w.check(2000 - 1024)


def test_window_too_small_refused():
    harness.raises(ValueError, ReplayWindow, 16)


def test_matches_reference_model():
    # Against the RFC's description as a set: accept iff seq > 0, not seen, and seq > top - size.
    rng = harness.SeededRng(7)
    w = ReplayWindow(32)
    seen = {}
    top = 0
    for _ in range(2000):
        seq = max(0, top + (rng(1)[0] % 48) - 40)
        expect = seq > 0 and seq not in seen and seq > top - 32
        assert w.check(seq) == expect
        if expect:
            w.update(seq)
            seen[seq] = True
            top = max(top, seq)
