"""Anti-replay window (RFC 4303 3.4.3, Appendix A2 without ESN).

The window is `size` bits of one integer: bit i set means sequence number top - i has been received and
authenticated. `check` runs before the ICV (cheap rejection of duplicates and stale packets), `update`
only after the ICV verified, so a forged packet never moves the window. Sequence number 0 is never
sent (the counter starts at 1, RFC 4303 3.3.3), so it is always rejected.
"""


class ReplayWindow:
    """A sliding window of `size` sequence numbers (at least 32, RFC 4303 recommends 64 or more)."""

    __slots__ = ("size", "top", "bitmap", "_mask")

    def __init__(self, size=64):
        if size < 32:
            raise ValueError("replay window must cover at least 32 packets")
        self.size = size
        self.top = 0
        self.bitmap = 0
        self._mask = (1 << size) - 1

    def __repr__(self):
        return "<ReplayWindow size=%d top=%d>" % (self.size, self.top)

    def check(self, seq):
        """True when seq may be new: right of the window's left edge and not yet seen."""
        if seq == 0:
            return False
        top = self.top
        if seq > top:
            return True
        diff = top - seq
        if diff >= self.size:
            return False
        return not (self.bitmap >> diff) & 1

    def update(self, seq):
        """Record an authenticated seq (call only after check() and the ICV passed)."""
        top = self.top
        if seq > top:
            shift = seq - top
            if shift >= self.size:
                self.bitmap = 1
            else:
                self.bitmap = ((self.bitmap << shift) | 1) & self._mask
            self.top = seq
        else:
            self.bitmap |= 1 << (top - seq)
