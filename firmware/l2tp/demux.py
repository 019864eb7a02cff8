"""The LNS side's table of tunnels: routes control messages by tunnel id, creates tunnels on SCCRQ, and
decides what peers may make it hold.

Theory of operation. Every control message carries our tunnel id in its header (RFC 2661 3.1), except an
SCCRQ, which carries 0 and names the peer's id in its Assigned Tunnel ID AVP (RFC 2661 6.1). The table
therefore keys tunnels two ways: by our id, and by (peer, peer's Assigned Tunnel ID), so that a retransmitted
SCCRQ reaches the tunnel the first copy created instead of creating a second one. `peer` is whatever the
engine uses to tell peers apart (outer address and port now, the IPsec SA as well later); it is only hashed
and compared, which is what lets several clients behind one NAT each have their own tunnel. Its *source*
(`source_of(peer)`, the outer address by default) is what the per-source limits count.

Our tunnel ids are random, non-zero and unique (RFC 2661 3.1 leaves the choice to us; random ids make blind
injection harder). A message for an unknown tunnel id, or from a peer other than the tunnel's, is counted
and dropped: RFC 2661 does not require an answer, and answering would let anyone make us send traffic.
Tunnels that have closed and have nothing left to report are removed.

Cost. Handling one datagram costs O(1) (amortised, O(log n) for the timer heap) however many tunnels the
table holds: tunnels report every change to the table (`Tunnel._touch`), so `datagrams_to_send`,
`next_event` and the removal of closed tunnels look only at the tunnels that changed since the engine last
pulled; `get_timer`/`handle_timer` use a heap of deadlines; the admission limits keep counters per source.
`tunnels()` and `status()` still list everything (they are for the operator, not the packet path).

Admission (admission.py has the reasoning and `TableLimits` the numbers): per-source and total limits on
tunnels, half-open tunnels (no SCCCN yet) and unauthenticated sessions; the oldest half-open tunnel or
pending session is evicted to make room; half-open tunnels and pending sessions time out, sooner while the
table is under pressure; a session counts toward `max_sessions` only from `authenticate(tunnel, sid)` on.
A half-open tunnel that is evicted or times out is dropped silently (`Tunnel.abandon`: no StopCCN to an
unverified source); a pending session that is evicted or times out gets a CDN (its tunnel is verified).

Sans-IO like the tunnels: `datagram_received(data, peer, now)`, `handle_timer(now)`; pull
`datagrams_to_send() -> [(peer, bytes)]`, `next_event() -> (tunnel, event)`, `get_timer()`.
"""

from sluice.l2tp import avp as A
from sluice.l2tp import header as H
from sluice.l2tp import message as M
from sluice.l2tp import session as S
from sluice.l2tp.admission import DeadlineHeap, Fifo, limits_without_authentication, source_of
from sluice.l2tp.errors import L2tpError
from sluice.l2tp.tunnel import CLOSED, IDLE, LNS, WAIT_CTL_CONN, Tunnel, TunnelConfig


class _Entry:
    """What the table keeps per tunnel besides the Tunnel itself."""

    __slots__ = ("tunnel", "source", "half_open", "sched", "key")

    def __init__(self, tunnel, source, key):
        self.tunnel = tunnel
        self.source = source
        self.half_open = True  # counted in the half-open limits until established or gone
        self.sched = None  # the deadline last pushed on the heap for this tunnel
        self.key = key  # (peer, peer's assigned tunnel id)


class TunnelTable:
    """All LNS tunnels of one listening socket."""

    def __init__(self, rng, config=None, max_tunnels=None, limits=None, source=None):
        self.rng = rng
        self.config = config or TunnelConfig()
        # No limits given: the endpoint does not report authentication, so no pre-authentication limits.
        self.limits = limits or limits_without_authentication()
        if max_tunnels is not None:
            self.limits.max_tunnels = max_tunnels
        self.source_of = source or source_of
        self.by_id = {}  # our tunnel id -> Tunnel
        self.by_peer = {}  # (peer, peer's assigned tunnel id) -> Tunnel
        self.entries = {}  # our tunnel id -> _Entry
        self.dirty = {}  # our tunnel id -> Tunnel: changed since the engine last pulled
        self.heap = DeadlineHeap()
        self.half_open_q = Fifo()  # (created, tunnel id, tunnel) in creation order
        self.pending_q = Fifo()  # (started, tunnel, session) in arrival order
        self.half_open = 0
        self.pending = 0  # sessions not yet authenticated
        self.authenticated = 0
        self.sids = {}  # our session id -> sessions holding it (ids are unique across the table's tunnels)
        self.by_source = {}  # source -> [tunnels, half-open tunnels, sessions, pending sessions]
        self.stats = {"malformed": 0, "not_control": 0, "unknown_tunnel": 0, "wrong_peer": 0, "created": 0,
                      "full": 0, "removed": 0, "source_limit": 0, "half_open_evicted": 0,
                      "half_open_expired": 0, "pending_evicted": 0, "pending_expired": 0,
                      "sessions_refused": 0, "sessions_full": 0}

    @property
    def max_tunnels(self):
        return self.limits.max_tunnels

    @max_tunnels.setter
    def max_tunnels(self, n):
        self.limits.max_tunnels = n

    def tunnels(self):
        return list(self.by_id.values())

    def get(self, tunnel_id):
        return self.by_id.get(tunnel_id)

    # -- input -------------------------------------------------------------------------------------------

    def datagram_received(self, data, peer, now):
        try:
            h = H.parse(data)
        except L2tpError:
            self.stats["malformed"] += 1
            return None
        if not h.is_control:
            self.stats["not_control"] += 1  # data messages take the engine's own path
            return None
        if h.tunnel_id == 0:
            tunnel = self._for_sccrq(data, h, peer, now)
        else:
            tunnel = self.by_id.get(h.tunnel_id)
            if tunnel is None:
                self.stats["unknown_tunnel"] += 1
                return None
            if tunnel.peer != peer:
                self.stats["wrong_peer"] += 1
                return None
        if tunnel is not None:
            tunnel.datagram_received(data, now)
            self._update(tunnel)
        return tunnel

    def _for_sccrq(self, data, h, peer, now):
        try:
            msg = M.parse(data, h.offset, h.end, self.config.secret)
        except L2tpError:
            self.stats["malformed"] += 1
            return None
        peer_tid = msg.get(A.ASSIGNED_TUNNEL_ID)
        if msg.type != M.SCCRQ or not peer_tid:
            self.stats["unknown_tunnel"] += 1
            return None
        key = (peer, peer_tid)
        tunnel = self.by_peer.get(key)
        if tunnel is not None:
            return tunnel  # a retransmitted SCCRQ: the tunnel's channel re-acknowledges it
        self._expire(now)
        if not self._admit_tunnel(peer, now):
            return None
        tid = self._new_id()
        if tid is None:
            self.stats["full"] += 1
            return None
        tunnel = Tunnel(LNS, tid, self.rng, self.config)
        tunnel.peer = peer
        tunnel.owner = self
        src = self.source_of(peer)
        self.by_id[tid] = tunnel
        self.by_peer[key] = tunnel
        self.entries[tid] = _Entry(tunnel, src, key)
        counts = self.by_source.get(src)
        if counts is None:
            counts = self.by_source[src] = [0, 0, 0, 0]
        counts[0] += 1
        counts[1] += 1
        self.half_open += 1
        self.half_open_q.append((now, tid, tunnel))
        self.stats["created"] += 1
        return tunnel

    def move_peer(self, tunnel, peer):
        """The peer of `tunnel` is now reached at `peer` (its NAT mapping moved and IPsec followed it): use
        this instead of assigning `tunnel.peer`, so that the indexes and per-source counts follow too."""
        e = self.entries.get(tunnel.local_tunnel_id)
        if e is None or e.tunnel is not tunnel:
            tunnel.peer = peer
            return
        if self.by_peer.get(e.key) is tunnel:
            del self.by_peer[e.key]
        e.key = (peer, e.key[1])
        if e.key not in self.by_peer:
            self.by_peer[e.key] = tunnel
        tunnel.peer = peer
        src = self.source_of(peer)
        if src == e.source:
            return
        old = self.by_source[e.source]
        new = self.by_source.get(src)
        if new is None:
            new = self.by_source[src] = [0, 0, 0, 0]
        moved = (1, 1 if e.half_open else 0, len(tunnel.sessions), tunnel.pending)
        for i in range(4):
            old[i] -= moved[i]
            new[i] += moved[i]
        if old[0] <= 0 and old[2] <= 0:
            del self.by_source[e.source]
        e.source = src

    def _admit_tunnel(self, peer, now):
        """Room for one more tunnel from `peer`, evicting the oldest half-open one if need be."""
        lim = self.limits
        counts = self.by_source.get(self.source_of(peer))
        if counts is not None:
            if ((lim.max_tunnels_per_source is not None and counts[0] >= lim.max_tunnels_per_source)
                    or (lim.max_half_open_per_source is not None and counts[1] >= lim.max_half_open_per_source)):
                self.stats["source_limit"] += 1
                return False
        while ((lim.max_half_open is not None and self.half_open >= lim.max_half_open)
               or (lim.max_tunnels is not None and len(self.by_id) >= lim.max_tunnels)):
            victim = self._oldest_half_open()
            if victim is None:
                self.stats["full"] += 1
                return False
            self.half_open_q.pop()
            self.stats["half_open_evicted"] += 1
            victim.abandon(now, "evicted: too many tunnels waiting for their SCCCN")
            self._update(victim)
        return True

    def _oldest_half_open(self):
        q = self.half_open_q
        while True:
            item = q.first()
            if item is None:
                return None
            e = self.entries.get(item[1])
            if e is not None and e.tunnel is item[2] and e.half_open:
                return item[2]
            q.pop()

    def _new_id(self):
        for _ in range(64):
            b = self.rng(2)
            tid = (b[0] << 8) | b[1]
            if tid and tid not in self.by_id:
                return tid
        return None

    # -- bookkeeping --------------------------------------------------------------------------------------

    def _touched(self, tunnel):
        self.dirty[tunnel.local_tunnel_id] = tunnel

    def _update(self, tunnel):
        """Account for a state change of `tunnel`: half-open no more, closed and reported (then removed)."""
        e = self.entries.get(tunnel.local_tunnel_id)
        if e is None or e.tunnel is not tunnel:
            return
        if e.half_open and tunnel.state != WAIT_CTL_CONN and tunnel.state != IDLE:
            e.half_open = False
            self.half_open -= 1
            self.by_source[e.source][1] -= 1
        if tunnel.state == CLOSED and not tunnel.has_output():
            self._remove(e)

    def _remove(self, e):
        t = e.tunnel
        tid = t.local_tunnel_id
        for sess in list(t.sessions.values()):
            t._forget_session(sess)
        del self.by_id[tid]
        del self.entries[tid]
        self.dirty.pop(tid, None)
        if self.by_peer.get(e.key) is t:
            del self.by_peer[e.key]
        counts = self.by_source[e.source]
        counts[0] -= 1
        if e.half_open:
            e.half_open = False
            self.half_open -= 1
            counts[1] -= 1
        if counts[0] <= 0 and counts[2] <= 0:
            del self.by_source[e.source]
        t.owner = None
        self.stats["removed"] += 1

    def _settle(self):
        """After the engine pulled everything: re-arm the changed tunnels' timers, remove finished ones."""
        keep = {}
        for tid, t in list(self.dirty.items()):
            e = self.entries.get(tid)
            if e is None or e.tunnel is not t:
                continue
            self._update(t)
            if tid not in self.entries:
                continue
            d = t.get_timer()
            if d is not None and d != e.sched:
                self.heap.push(d, tid)
            e.sched = d
            if t.has_output():
                keep[tid] = t
        self.dirty = keep
        if len(self.heap) > 2 * len(self.entries) + 64:
            # Stale entries (deadlines that moved) pile up with lazy deletion: shed them, in O(n) once per
            # n pushes or more.
            self.heap.rebuild([(x.sched, k) for k, x in self.entries.items() if x.sched is not None])

    # -- sessions (called by the tunnels) -----------------------------------------------------------------

    def _admit_session(self, tunnel, now):
        """None when `tunnel` may take one more unauthenticated session, else why not (the tunnel refuses
        the ICRQ with a CDN saying so)."""
        lim = self.limits
        e = self.entries.get(tunnel.local_tunnel_id)
        if e is None:
            return None
        counts = self.by_source[e.source]
        if lim.max_sessions_per_source is not None and counts[2] >= lim.max_sessions_per_source:
            self.stats["sessions_refused"] += 1
            return "too many sessions from this address"
        if lim.max_pending_per_source is not None and counts[3] >= lim.max_pending_per_source:
            self.stats["sessions_refused"] += 1
            return "too many sessions waiting for authentication from this address"
        self._expire(now)
        while lim.max_pending is not None and self.pending >= lim.max_pending:
            item = self._oldest_pending()
            if item is None:
                self.stats["sessions_refused"] += 1
                return "too many sessions waiting for authentication"
            self.pending_q.pop()
            self.stats["pending_evicted"] += 1
            t, sess = item[1], item[2]
            t.close_session(sess.local_id, now, S.CDN_TEMPORARY,
                            "evicted: too many sessions waiting for authentication", S.ERR_NO_RESOURCES)
        return None

    def sid_taken(self, sid):
        """Is session id `sid` used in any tunnel of the table? Our session ids are unique across the server, so
        that a kernel that looks a session up by its id alone (L2TPv2 before Linux 6.11, on whichever tunnel
        socket received it) cannot hand one client's data to another's session."""
        return sid in self.sids

    def _session_added(self, tunnel, sess, now):
        e = self.entries.get(tunnel.local_tunnel_id)
        if e is None:
            return
        self.sids[sess.local_id] = self.sids.get(sess.local_id, 0) + 1
        counts = self.by_source[e.source]
        counts[2] += 1
        if not sess.authenticated:
            counts[3] += 1
            self.pending += 1
            self.pending_q.append((now, tunnel, sess))
        else:
            self.authenticated += 1

    def _session_removed(self, tunnel, sess):
        e = self.entries.get(tunnel.local_tunnel_id)
        if e is None:
            return
        n = self.sids.get(sess.local_id, 0) - 1
        if n > 0:
            self.sids[sess.local_id] = n
        else:
            self.sids.pop(sess.local_id, None)
        counts = self.by_source[e.source]
        counts[2] -= 1
        if sess.authenticated:
            self.authenticated -= 1
        else:
            counts[3] -= 1
            self.pending -= 1

    def _oldest_pending(self):
        q = self.pending_q
        while True:
            item = q.first()
            if item is None:
                return None
            t, sess = item[1], item[2]
            if not sess.authenticated and t.sessions.get(sess.local_id) is sess and t.owner is self:
                return item
            q.pop()

    def authenticate(self, tunnel, local_sid, now=None):
        """The endpoint's PPP authenticated the user on this session. True: the session now counts toward
        `limits.max_sessions` (and no longer toward the pending limits or the pre-authentication timeout).
        False: `max_sessions` authenticated sessions are already up (the endpoint should close this one,
        "server is full"), or the session is unknown; it stays pending until closed or timed out."""
        sess = tunnel.sessions.get(local_sid)
        if sess is None:
            return False
        if sess.authenticated:
            return True
        lim = self.limits
        if lim.max_sessions is not None and self.authenticated >= lim.max_sessions:
            self.stats["sessions_full"] += 1
            return False
        e = self.entries.get(tunnel.local_tunnel_id)
        if not tunnel.authenticate_session(local_sid):
            return False
        if e is not None and e.tunnel is tunnel:
            self.by_source[e.source][3] -= 1
            self.pending -= 1
            self.authenticated += 1
        return True

    def admission(self):
        """The admission state for `sluice status`: what is held, the limits, whether under pressure."""
        lim = self.limits
        return {
            "tunnels": len(self.by_id), "half_open": self.half_open, "pending_sessions": self.pending,
            "authenticated_sessions": self.authenticated, "sources": len(self.by_source),
            "tunnel_pressure": self._pressured(self.half_open, lim.max_half_open),
            "session_pressure": self._pressured(self.pending, lim.max_pending),
            "limits": lim.status(),
        }

    # -- time ----------------------------------------------------------------------------------------------

    def _pressured(self, held, limit):
        return limit is not None and held >= limit * self.limits.pressure

    def _half_open_timeout(self):
        lim = self.limits
        if self._pressured(self.half_open, lim.max_half_open):
            return lim.half_open_timeout_pressure
        return lim.half_open_timeout

    def _preauth_timeout(self):
        lim = self.limits
        if self._pressured(self.pending, lim.max_pending):
            return lim.preauth_timeout_pressure
        return lim.preauth_timeout

    def _expire(self, now):
        """Drop half-open tunnels and pending sessions past their (current) timeout, oldest first."""
        while True:
            victim = self._oldest_half_open()
            limit = self._half_open_timeout()
            if victim is None or limit is None or self.half_open_q.first()[0] + limit > now:
                break
            self.half_open_q.pop()
            self.stats["half_open_expired"] += 1
            victim.abandon(now, "no SCCCN within %g s of the SCCRQ" % self._half_open_timeout())
            self._update(victim)
        while True:
            item = self._oldest_pending()
            limit = self._preauth_timeout()
            if item is None or limit is None or item[0] + limit > now:
                break
            self.pending_q.pop()
            self.stats["pending_expired"] += 1
            t, sess = item[1], item[2]
            t.close_session(sess.local_id, now, S.CDN_TEMPORARY,
                            "not authenticated within %g s" % self._preauth_timeout(), S.ERR_NO_RESOURCES)
            self._update(t)

    def _admission_deadline(self):
        best = None
        limit = self._half_open_timeout()
        if limit is not None and self._oldest_half_open() is not None:
            best = self.half_open_q.first()[0] + limit
        limit = self._preauth_timeout()
        item = self._oldest_pending() if limit is not None else None
        if item is not None:
            d = item[0] + limit
            if best is None or d < best:
                best = d
        return best

    def get_timer(self):
        self._settle()
        heap, entries = self.heap, self.entries
        best = None
        while True:
            top = heap.first()
            if top is None:
                break
            d, tid = top
            e = entries.get(tid)
            if e is None or e.sched != d:
                heap.pop()  # stale: the tunnel is gone or its deadline moved
                continue
            best = d
            break
        a = self._admission_deadline()
        if a is not None and (best is None or a < best):
            best = a
        return best

    def handle_timer(self, now):
        self._settle()
        heap, entries = self.heap, self.entries
        while True:
            top = heap.first()
            if top is None or top[0] > now:
                break
            heap.pop()
            d, tid = top
            e = entries.get(tid)
            if e is None or e.sched != d:
                continue
            e.sched = None
            t = e.tunnel
            t.handle_timer(now)
            self._update(t)
        self._expire(now)
        self._settle()

    # -- output ------------------------------------------------------------------------------------------

    def datagrams_to_send(self):
        out = []
        for t in list(self.dirty.values()):
            if t.channel.out:
                peer = t.peer
                for d in t.datagrams_to_send():
                    out.append((peer, d))
        return out

    def next_event(self):
        for t in self.dirty.values():
            if t.events:
                return (t, t.events.pop(0))
        self._settle()  # everything reported: closed tunnels can go now
        return None

    def status(self):
        return {"tunnels": [t.status() for t in self.by_id.values()], "counters": dict(self.stats),
                "admission": self.admission()}
