"""Admission control for the LNS tunnel table: the limits, and the two small structures that keep it O(1).

Theory of operation. Anyone who can reach UDP 1701 (on a plain-L2TP server) or who holds the PSK (inside
IPsec) can make the LNS hold state: a tunnel per SCCRQ, a session per ICRQ. Every such table is bounded three
ways, the way strongSwan bounds half-open IKE SAs (`init_limit_half_open`, `block_threshold`):

- per source (the peer's outer address: several ports or IPsec SAs from one address are one source), by
  refusing what is over the limit, silently for tunnels (an SCCRQ source is unverified: answering would let
  anyone aim our replies at a victim) and with a CDN for sessions (the tunnel is verified by then);
- in total, by evicting the OLDEST not-yet-established tunnel, or the oldest not-yet-authenticated session,
  to make room: a flood then only ever displaces flood state, and a real client, which completes its
  exchange within a round trip, gets in;
- in time: a half-open tunnel must be established within `half_open_timeout`, a session authenticated within
  `preauth_timeout`; while a table is under pressure (at least `pressure` of its limit in use) the shorter
  `*_pressure` timeouts apply to every entry, old and new.

A session counts toward `max_sessions` only once the endpoint has told the table it authenticated
(`TunnelTable.authenticate`); until then it counts toward `max_pending`.

Replies to an unverified source are bounded by the tunnel itself (`TunnelConfig.amplification`): see
tunnel.py.

`Fifo` holds entries in arrival order and is consumed from the front; entries that went stale (the tunnel
came up, the session authenticated or went away) are skipped lazily, so every operation is amortised O(1).
`DeadlineHeap` is a binary min-heap of (deadline, key) with lazy invalidation: the owner remembers the
deadline it last pushed for a key and ignores heap entries that no longer match. MicroPython has neither
`heapq` nor an indexable deque on every port, hence these few lines.
"""


class TableLimits:
    """Bounds on what peers can make the LNS hold. None for a count means no limit."""

    __slots__ = ("max_tunnels", "max_tunnels_per_source", "max_half_open", "max_half_open_per_source",
                 "half_open_timeout", "half_open_timeout_pressure", "max_sessions", "max_sessions_per_source",
                 "max_pending", "max_pending_per_source", "preauth_timeout", "preauth_timeout_pressure",
                 "pressure")

    def __init__(self, max_tunnels=4096, max_tunnels_per_source=64, max_half_open=1024,
                 max_half_open_per_source=16, half_open_timeout=20.0, half_open_timeout_pressure=3.0,
                 max_sessions=None, max_sessions_per_source=256, max_pending=256, max_pending_per_source=16,
                 preauth_timeout=30.0, preauth_timeout_pressure=5.0, pressure=0.5):
        self.max_tunnels = max_tunnels  # tunnels in total, established or not
        self.max_tunnels_per_source = max_tunnels_per_source  # tunnels from one source address
        self.max_half_open = max_half_open  # tunnels whose SCCCN has not arrived yet
        self.max_half_open_per_source = max_half_open_per_source
        self.half_open_timeout = half_open_timeout  # seconds from SCCRQ to SCCCN before the tunnel is dropped
        self.half_open_timeout_pressure = half_open_timeout_pressure  # the same while under pressure
        self.max_sessions = max_sessions  # authenticated sessions in total (the server's max_sessions)
        self.max_sessions_per_source = max_sessions_per_source  # sessions of any kind from one source
        self.max_pending = max_pending  # sessions not yet authenticated, in total
        self.max_pending_per_source = max_pending_per_source
        self.preauth_timeout = preauth_timeout  # seconds from ICRQ to authentication before the CDN
        self.preauth_timeout_pressure = preauth_timeout_pressure
        self.pressure = pressure  # fraction of a total limit in use from which the short timeouts apply

    def status(self):
        out = {}
        for name in TableLimits.__slots__:
            out[name] = getattr(self, name)
        return out


def limits_without_authentication():
    """The limits for an endpoint that never calls `TunnelTable.authenticate`: every tunnel limit, but no
    pre-authentication timeout and no limit on pending sessions (all its sessions would stay pending and
    be cut after `preauth_timeout`). `TunnelTable(limits=None)` uses these; an endpoint that reports
    authentication passes `TableLimits(...)` and gets everything."""
    return TableLimits(max_pending=None, max_pending_per_source=None, preauth_timeout=None,
                       preauth_timeout_pressure=None)


def source_of(peer):
    """The source address of an engine peer key: its first element ((address, port) for plain UDP,
    (address, port, inner port) inside IPsec); the key itself when it is not a tuple."""
    if isinstance(peer, tuple) and peer:
        return peer[0]
    return peer


class Fifo:
    """Entries in arrival order, consumed from the front; the owner skips entries that went stale."""

    __slots__ = ("items", "head")

    def __init__(self):
        self.items = []
        self.head = 0

    def append(self, item):
        self.items.append(item)

    def first(self):
        """The oldest entry still held, or None."""
        if self.head < len(self.items):
            return self.items[self.head]
        return None

    def pop(self):
        """Drop the oldest entry (the one first() returned)."""
        items = self.items
        if self.head < len(items):
            items[self.head] = None
            self.head += 1
            if self.head >= 64 and self.head * 2 >= len(items):
                del items[:self.head]
                self.head = 0

    def __len__(self):
        return len(self.items) - self.head


class DeadlineHeap:
    """A binary min-heap of (deadline, key); stale entries are the owner's to recognise and pop."""

    __slots__ = ("h",)

    def __init__(self):
        self.h = []

    def push(self, deadline, key):
        h = self.h
        item = (deadline, key)
        h.append(item)
        i = len(h) - 1
        while i > 0:
            parent = (i - 1) >> 1
            if h[parent] <= item:
                break
            h[i] = h[parent]
            i = parent
        h[i] = item

    def first(self):
        return self.h[0] if self.h else None

    def pop(self):
        h = self.h
        last = h.pop()
        if not h:
            return last
        top = h[0]
        n = len(h)
        i = 0
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and h[c + 1] < h[c]:
                c += 1
            if last <= h[c]:
                break
            h[i] = h[c]
            i = c
        h[i] = last
        return top

    def rebuild(self, items):
        """Replace the contents with `items` [(deadline, key)] (used to shed stale entries)."""
        self.h = []
        for d, k in items:
            self.push(d, k)

    def __len__(self):
        return len(self.h)
