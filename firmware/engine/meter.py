"""A session's rate limit: one token bucket per direction, shared by the data planes that police in Python."""


class Meter:
    """A token bucket: a session's rate limit in one direction (bytes per second, policed: excess is dropped
    and TCP adapts). The burst allows a quarter second at the rate (at least 32 kB), enough for TCP to reach it."""

    __slots__ = ("rate", "burst", "tokens", "t", "dropped")

    def __init__(self, rate):
        self.rate = float(rate)
        self.burst = max(rate / 4.0, 32768.0)
        self.tokens = self.burst
        self.t = None
        self.dropped = 0

    def allow(self, n, now):
        t = self.t
        if t is not None and now > t:
            tokens = self.tokens + (now - t) * self.rate
            self.tokens = tokens if tokens < self.burst else self.burst
        self.t = now
        if self.tokens < n:
            self.dropped += 1
            return False
        self.tokens -= n
        return True
