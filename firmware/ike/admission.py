"""Admission control for half-open Main Mode negotiations on the responder side (RFC 2408 2.5.3, 2409 5).

Theory of operation
-------------------
A Main Mode message 1 costs a responder state before it knows whether its source address is real: anyone can
send one from any address. What strongSwan does for IKE (`init_limit_half_open`, `block_threshold`, a shorter
`half_open_timeout`) is done here, for every half-open ISAKMP SA the IkeTable holds as responder:

* two stages: UNVERIFIED (only message 1 seen; the source may be spoofed) and VERIFIED (message 3 came back
  with our responder cookie: the source receives at its address). A completed or failed negotiation leaves;
* per source address at most `per_ip` half-open SAs (strongSwan's block_threshold). A message 1 beyond that is
  not dropped but queued (at most `queue_per_ip` per address, `total` in all, each at most `queue_wait` s):
  many clients behind one NAT start together, and each finished negotiation of that address lets the next
  queued one in;
* at most `total` half-open SAs in all (init_limit_half_open). When full, a new message 1 evicts a victim
  chosen by random choices (the power of two choices): of two SAs drawn at random (up to four while only
  VERIFIED ones come up) the one least worth keeping goes, i.e. an UNVERIFIED one before a VERIFIED one, then
  the one whose address holds more half-open SAs, then the older. A flood from a few addresses thus pays for
  itself and a real client's single SA survives; with every source spoofed and distinct, eviction is random
  (the older of two), so a client gets through while its round trip is short against total / flood rate (at
  3,000 message 1s per second from 10,000 addresses, a 50 ms round trip gets in at the first try);
* under pressure (at least `busy_at` half-open SAs), SAs entering a stage get the shorter timeouts
  `timeout_busy` (UNVERIFIED) and twice that (VERIFIED) instead of `timeout`;
* every operation is O(1) per packet: a list with swap-removal for the random draw, a count per address, and one
  deadline-ordered FIFO per timeout value (entries are stamped with a ticket; a stale entry is skipped when it
  reaches the head).

Replies to unverified sources stay small: message 2 echoes one transform of message 1 (sluice.ike.main_mode),
a queued message 1 gets no answer until it is admitted, and nothing is retransmitted to an unverified source.

Nothing here reads a clock or draws randomness itself: `now` and the table's rng come in.
"""

UNVERIFIED = 1
VERIFIED = 2

ADMIT = 0
QUEUE = 1

SAMPLES = 4     # at most this many random draws per eviction


class _Fifo:
    """Entries (deadline, ticket, sa) in the order pushed; with one timeout per FIFO, also deadline order."""

    __slots__ = ("items", "head", "live")

    def __init__(self):
        self.items = []
        self.head = 0
        self.live = 0       # entries still valid (the rest are skipped, or dropped by `left`)

    def push(self, deadline, ticket, sa):
        self.items.append((deadline, ticket, sa))

    def first(self):
        """The first live entry, dropping stale ones on the way (amortised O(1))."""
        items = self.items
        while self.head < len(items):
            e = items[self.head]
            if e[2].admit_ticket == e[1]:
                return e
            self.head += 1
        self._compact()
        return None

    def pop(self):
        self.head += 1
        self.live -= 1
        self._compact()

    def left(self):
        """One entry went stale (its SA moved on): rebuild once stale entries outnumber live ones, so that an
        evicted SA is not kept alive by its entry until its deadline (amortised O(1))."""
        self.live -= 1
        if len(self.items) - self.head > 2 * self.live + 64:
            self.items = [e for e in self.items[self.head:] if e[2].admit_ticket == e[1]]
            self.head = 0

    def _compact(self):
        if self.head >= len(self.items):
            self.items = []
            self.head = 0
        elif self.head >= 64 and self.head * 2 >= len(self.items):
            self.items = self.items[self.head:]
            self.head = 0

    def __len__(self):
        return len(self.items) - self.head


class _Queued:
    __slots__ = ("key", "data", "local", "peer", "at")

    def __init__(self, key, data, local, peer, at):
        self.key = key
        self.data = data
        self.local = local
        self.peer = peer
        self.at = at


class HalfOpenTable:
    """The responder's half-open ISAKMP SAs: limits, eviction, timeouts and the message 1 queue."""

    def __init__(self, cfg, rng):
        self.total = cfg.half_open_total
        self.per_ip = cfg.half_open_per_ip
        self.queue_per_ip = cfg.half_open_queue
        self.queue_wait = cfg.half_open_queue_wait
        self.timeout = cfg.half_open_timeout
        self.timeout_busy = min(cfg.half_open_timeout_busy, cfg.half_open_timeout)
        busy = cfg.half_open_busy
        self.busy_at = busy if busy is not None else (self.total + 1) // 2
        self.max_queued_size = 2048     # a larger message 1 is never held
        self.rng = rng
        self._all = []          # tracked SAs; sa.admit_ix is the index here
        self._per_ip = {}       # ip -> half-open SAs of that address
        self._fifos = {}        # timeout -> _Fifo
        self._ticket = 0
        self._queue = {}        # ip -> [_Queued] in arrival order
        self._queued_keys = {}  # (icookie, peer) -> _Queued
        self._queued = 0
        self.freed = []         # addresses that got a slot back (the table lets their queued message 1s in)
        self.peak = 0
        self.stats = {"evicted": 0, "expired": 0, "queued": 0, "queue_dropped": 0, "queue_expired": 0,
                      "dequeued": 0}

    def __len__(self):
        return len(self._all)

    def __repr__(self):
        return "<HalfOpenTable %d/%d half-open, %d queued%s>" % (len(self._all), self.total, self._queued,
                                                                 ", busy" if self.busy() else "")

    def busy(self):
        return len(self._all) >= self.busy_at

    def queued(self):
        return self._queued

    def count(self, ip):
        return self._per_ip.get(ip, 0)

    def check(self, ip):
        """ADMIT when `ip` may open another half-open SA now, else QUEUE."""
        return ADMIT if self._per_ip.get(ip, 0) < self.per_ip else QUEUE

    def victim(self):
        """None while there is room; else the SA to evict before one more can be admitted."""
        n = len(self._all)
        if n < self.total or n == 0:
            return None
        r = self.rng(4 * SAMPLES)
        best = None
        for k in range(SAMPLES):
            c = self._all[int.from_bytes(r[4 * k:4 * k + 4], "big") % n]
            if best is None or self._before(c, best):
                best = c
            if k and best.admit == UNVERIFIED:
                break       # two draws are enough unless both were verified peers (then up to SAMPLES)
        return best

    def _before(self, a, b):
        """True when `a` should be evicted before `b`."""
        if a.admit != b.admit:
            return a.admit == UNVERIFIED
        ca, cb = self._per_ip.get(a.peer[0], 0), self._per_ip.get(b.peer[0], 0)
        if ca != cb:
            return ca > cb
        return a.created <= b.created

    # --- stages ------------------------------------------------------------------------------------------

    def add(self, sa, now):
        """A new responder SA (message 1 accepted): UNVERIFIED."""
        ip = sa.peer[0]
        sa.admit_ix = len(self._all)
        self._all.append(sa)
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        if len(self._all) > self.peak:
            self.peak = len(self._all)
        self._enter(sa, UNVERIFIED, now, self.timeout_busy if self.busy() else self.timeout)

    def verified(self, sa, now):
        """Message 3 arrived with our cookie: the source is real."""
        if sa.admit == UNVERIFIED:
            self._enter(sa, VERIFIED, now, min(2 * self.timeout_busy, self.timeout) if self.busy() else self.timeout)

    def _enter(self, sa, stage, now, timeout):
        if sa.admit_ticket is not None:
            sa.admit_ticket = None
            sa.admit_fifo.left()
        self._ticket += 1
        sa.admit = stage
        sa.admit_ticket = self._ticket
        sa.half_open_until = now + timeout
        f = self._fifos.get(timeout)
        if f is None:
            f = self._fifos[timeout] = _Fifo()
        f.push(sa.half_open_until, self._ticket, sa)
        f.live += 1
        sa.admit_fifo = f

    def remove(self, sa):
        """`sa` is no longer half-open (established, failed, evicted, expired); frees its address's slot."""
        if sa.admit is None:
            return
        i = sa.admit_ix
        last = self._all.pop()
        if last is not sa:
            self._all[i] = last
            last.admit_ix = i
        ip = sa.peer[0]
        n = self._per_ip.get(ip, 1) - 1
        if n <= 0:
            self._per_ip.pop(ip, None)
        else:
            self._per_ip[ip] = n
        sa.admit = None
        sa.admit_ix = None
        if sa.admit_ticket is not None:
            sa.admit_ticket = None
            sa.admit_fifo.left()
        sa.admit_fifo = None
        if ip in self._queue:
            self.freed.append(ip)

    # --- time --------------------------------------------------------------------------------------------

    def deadline(self):
        best = None
        for f in self._fifos.values():
            e = f.first()
            if e is not None and (best is None or e[0] < best):
                best = e[0]
        return best

    def expired(self, now):
        """The SAs whose half-open time is over (still tracked: the caller removes them)."""
        out = []
        for f in self._fifos.values():
            while True:
                e = f.first()
                if e is None or e[0] > now:
                    break
                f.pop()
                e[2].admit_ticket = None    # its entry is gone: remove() must not count it again
                out.append(e[2])
        return out

    # --- the message 1 queue -----------------------------------------------------------------------------

    def enqueue(self, key, data, local, peer, now):
        """Hold a message 1 from an address at its limit; False when it cannot be held (then it is dropped)."""
        if key in self._queued_keys:
            return True             # a retransmission of one already waiting
        ip = peer[0]
        q = self._queue.get(ip)
        if q is not None:
            self._prune(ip, q, now)
            q = self._queue.get(ip)
        if len(data) > self.max_queued_size or self._queued >= self.total or \
                (q is not None and len(q) >= self.queue_per_ip) or self.queue_per_ip <= 0:
            self.stats["queue_dropped"] += 1
            return False
        if q is None:
            q = self._queue[ip] = []
        e = _Queued(key, data, local, peer, now)
        q.append(e)
        self._queued_keys[key] = e
        self._queued += 1
        self.stats["queued"] += 1
        return True

    def dequeue(self, ip, now):
        """The oldest message 1 of `ip` still worth answering, or None."""
        q = self._queue.get(ip)
        if q is None:
            return None
        self._prune(ip, q, now)
        q = self._queue.get(ip)
        if q is None:
            return None
        e = q.pop(0)
        self._forget(ip, q, e)
        self.stats["dequeued"] += 1
        return e

    def _prune(self, ip, q, now):
        while q and now - q[0].at > self.queue_wait:
            e = q.pop(0)
            self._forget(ip, q, e)
            self.stats["queue_expired"] += 1

    def _forget(self, ip, q, e):
        self._queued_keys.pop(e.key, None)
        self._queued -= 1
        if not q:
            self._queue.pop(ip, None)

    def sizes(self):
        """Sizes of every internal structure (tests check that each stays bounded)."""
        fifo = 0
        for f in self._fifos.values():
            fifo += len(f.items)
        return {"half_open": len(self._all), "addresses": len(self._per_ip), "fifo_entries": fifo,
                "queued": self._queued, "queue_addresses": len(self._queue), "queue_keys": len(self._queued_keys),
                "freed": len(self.freed)}
