"""Dead Peer Detection (RFC 3706), idle-driven, as a small clock-free state holder.

Theory of operation
-------------------
RFC 3706 5: a peer is only probed when it has been quiet: no IKE message and no authenticated inbound ESP
(`traffic(now)`, which the engine reports through IkeTable.traffic_seen) for `delay` seconds. Then we send
R-U-THERE (notify 36136 in a protected informational exchange, SPI = CKY-I | CKY-R, data = a 32-bit sequence
number, RFC 3706 7) and expect R-U-THERE-ACK (36137) echoing that number. While unanswered, the probe is
repeated every `retry` seconds with the next sequence number (RFC 3706 5.5: each R-U-THERE has a new
number; an ACK for any outstanding one counts). If nothing is heard for `timeout` seconds after the first
probe, the peer is dead. The first sequence number is random (RFC 3706 7: a random start is recommended).

`due(now)` returns what to do now: None, PROBE (send R-U-THERE with `next_seq()`), or DEAD.
"""

PROBE = 1
DEAD = 2


class Dpd:
    __slots__ = ("delay", "timeout", "retry", "seq", "last_seen", "probe_started", "last_probe", "outstanding",
                 "cut")

    def __init__(self, delay, timeout, first_seq, now):
        self.delay = delay                # idle seconds before probing
        self.timeout = timeout            # seconds of silence after the first probe before declaring death
        self.retry = max(1.0, min(delay, 5.0))
        self.seq = first_seq & 0x7FFFFFFF  # leaves room before the 32-bit wrap
        self.last_seen = now
        self.probe_started = None
        self.last_probe = None
        self.outstanding = []             # sequence numbers sent and not acknowledged
        self.cut = None                   # an earlier verdict time while the peer is suspect (`suspect`)

    def traffic(self, now):
        """Something authenticated arrived from the peer."""
        if now > self.last_seen:
            self.last_seen = now
        self.probe_started = None
        self.last_probe = None
        self.outstanding = []
        self.cut = None

    def suspect(self, now, within):
        """Something says the peer lost our SA (an unverifiable hint: a restarted peer's INVALID-SPI or
        INVALID-COOKIE, or L2TP unanswered over the SA): probe now, and call the peer dead after `within` s of
        silence instead of the full timeout. An answer clears it; a live peer costs one R-U-THERE."""
        if self.delay <= 0 or (self.cut is not None and self.cut <= now + within):
            return
        self.cut = now + within
        if self.probe_started is None:
            self.last_seen = min(self.last_seen, now - self.delay)
            self.retry = min(self.retry, max(1.0, within / 4.0))

    def next_seq(self, now):
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        if self.probe_started is None:
            self.probe_started = now
        self.last_probe = now
        self.outstanding.append(self.seq)
        if len(self.outstanding) > 16:
            self.outstanding.pop(0)
        return self.seq

    def ack(self, seq, now):
        """True when `seq` answers one of our probes (then the peer is alive)."""
        if seq in self.outstanding:
            self.traffic(now)
            return True
        return False

    def deadline(self):
        if self.delay <= 0:
            return None
        if self.probe_started is None:
            return self.last_seen + self.delay
        d = min(self.last_probe + self.retry, self.probe_started + self.timeout)
        return d if self.cut is None else min(d, self.cut)

    def due(self, now):
        if self.delay <= 0:
            return None
        if self.probe_started is None:
            return PROBE if now >= self.last_seen + self.delay else None
        if now >= self.probe_started + self.timeout or (self.cut is not None and now >= self.cut):
            return DEAD
        if now >= self.last_probe + self.retry:
            return PROBE
        return None
