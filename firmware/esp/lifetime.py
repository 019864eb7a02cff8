"""SA lifetimes by time, bytes and packets, soft and hard (RFC 4301 4.4.2.1; IKEv1 RFC 2407 4.5).

The SA never reads a clock: it keeps the `now` it was created at and is asked about later instants.
Soft: time to rekey (the IKE layer starts a new Quick Mode). Hard: the SA must stop carrying traffic.
Bytes count the protected payload, as IKEv1's kilobyte lifetime does.
"""

OK = 0
SOFT = 1
HARD = 2

# Refuse to come near a 32-bit wrap (RFC 4303 3.3.3): ask for a rekey well before it.
SEQ_SOFT = 0xF0000000
SEQ_HARD = 0xFFFFFFFF


class Lifetime:
    """Limits of an SA; None means unlimited. Times are seconds after creation."""

    __slots__ = ("soft_seconds", "hard_seconds", "soft_bytes", "hard_bytes", "soft_packets", "hard_packets")

    def __init__(self, soft_seconds=None, hard_seconds=None, soft_bytes=None, hard_bytes=None,
                 soft_packets=None, hard_packets=None):
        self.soft_seconds = soft_seconds
        self.hard_seconds = hard_seconds
        self.soft_bytes = soft_bytes
        self.hard_bytes = hard_bytes
        self.soft_packets = soft_packets
        self.hard_packets = hard_packets

    def __repr__(self):
        return "<Lifetime soft=%r/%r/%r hard=%r/%r/%r>" % (
            self.soft_seconds, self.soft_bytes, self.soft_packets,
            self.hard_seconds, self.hard_bytes, self.hard_packets)

    def state(self, age, nbytes, npackets):
        """OK, SOFT or HARD for an SA of this age that has carried nbytes in npackets."""
        if _over(age, self.hard_seconds) or _over(nbytes, self.hard_bytes) or _over(npackets, self.hard_packets):
            return HARD
        if _over(age, self.soft_seconds) or _over(nbytes, self.soft_bytes) or _over(npackets, self.soft_packets):
            return SOFT
        return OK

    def deadline(self, created, now):
        """The next instant (absolute) at which the time-based state changes, or None."""
        for limit in (self.soft_seconds, self.hard_seconds):
            if limit is not None and created + limit > now:
                return created + limit
        return None


def _over(value, limit):
    return limit is not None and value >= limit
