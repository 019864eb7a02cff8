"""Reliable delivery of L2TP control messages (RFC 2661 5.8 and Appendix A).

Theory of operation. Each control message we send carries Ns (its sequence number, 16 bits, wrapping) and
Nr (the Ns we expect next from the peer, which acknowledges everything before it). The channel

- numbers messages and keeps them until acknowledged, never having more outstanding than the peer's
  Receive Window Size (RFC 2661 4.4.3: 4 when the peer does not say); others wait in order;
- retransmits what is outstanding when the oldest message has gone unacknowledged for 1 s, doubling up to
  8 s (RFC 2661 5.8 suggests exactly this), and declares the peer dead after `max_retries` retransmissions:
  `failed` then holds a reason and the owner tears the tunnel down;
- delivers received messages to its owner in Ns order: duplicates (Ns before our Nr) are acknowledged again
  at once, because the peer evidently missed our acknowledgement (RFC 2661 5.8); messages ahead of a gap but
  within our window are held and delivered once the gap fills (Appendix A.2); others are dropped;
- acknowledges by piggybacking Nr on the next message we send; when we have nothing to send within
  `ack_delay`, it sends a ZLB (a header-only message, RFC 2661 5.8) instead.

Comparisons are modulo 2**16 with the half-space rule (RFC 2661 5.8 / Appendix A). The channel knows nothing
of message contents: the owner gives it (session id, AVP octets) and gets back its parsed messages in order.
It never reads a clock: every entry point takes `now`.
"""

from sluice.l2tp.header import encode_control


def seq_lt(a, b):
    """True when sequence number a comes before b (16-bit wraparound, RFC 2661 5.8)."""
    return a != b and ((b - a) & 0xFFFF) < 0x8000


class ControlChannel:
    """Ns/Nr bookkeeping, windows, retransmission and acknowledgement for one control connection."""

    __slots__ = (
        "ns", "nr", "una", "peer_window", "local_window", "peer_tunnel_id", "unacked", "waiting", "reorder",
        "out", "rtx_at", "rtx_interval", "retries", "ack_at", "failed", "initial", "cap", "max_retries",
        "ack_delay", "stats",
    )

    def __init__(self, local_window=8, retransmit_initial=1.0, retransmit_cap=8.0, max_retries=5, ack_delay=0.2):
        self.ns = 0  # Ns of our next new message
        self.nr = 0  # Ns we expect next from the peer
        self.una = 0  # Ns of our oldest unacknowledged message
        self.peer_window = 4  # RFC 2661 4.4.3 default until the peer's Receive Window Size arrives
        self.local_window = local_window
        self.peer_tunnel_id = 0  # what goes into our headers; 0 until the peer's Assigned Tunnel ID is known
        self.unacked = []  # [ns, session_id, body], oldest first
        self.waiting = []  # [session_id, body] held back by the peer's window
        self.reorder = {}  # ns -> item received ahead of a gap
        self.out = []  # datagrams to send
        self.rtx_at = None
        self.rtx_interval = retransmit_initial
        self.retries = 0
        self.ack_at = None
        self.failed = None
        self.initial = retransmit_initial
        self.cap = retransmit_cap
        self.max_retries = max_retries
        self.ack_delay = ack_delay
        self.stats = {"sent": 0, "received": 0, "retransmits": 0, "duplicates": 0, "out_of_window": 0,
                      "zlb_sent": 0, "queued": 0}

    # -- sending -----------------------------------------------------------------------------------------

    def send(self, session_id, body, now):
        """Queue one control message (AVP octets) for reliable delivery; transmit it if the window allows."""
        if len(self.unacked) < self.peer_window and not self.waiting:
            self._transmit_new(session_id, body, now)
        else:
            self.waiting.append([session_id, body])
            self.stats["queued"] += 1

    def _transmit_new(self, session_id, body, now):
        ns = self.ns
        self.ns = (ns + 1) & 0xFFFF
        self.unacked.append([ns, session_id, body])
        self._put(session_id, ns, body)
        if self.rtx_at is None:
            self.rtx_interval = self.initial
            self.rtx_at = now + self.rtx_interval

    def _put(self, session_id, ns, body):
        self.out.append(encode_control(self.peer_tunnel_id, session_id, ns, self.nr, body))
        self.stats["sent"] += 1
        self.ack_at = None  # Nr rides on this message

    def send_zlb(self):
        """Acknowledge now with a ZLB (RFC 2661 5.8): Ns is our next Ns, which a ZLB does not consume."""
        self.out.append(encode_control(self.peer_tunnel_id, 0, self.ns, self.nr, b""))
        self.stats["zlb_sent"] += 1
        self.ack_at = None

    # -- receiving ---------------------------------------------------------------------------------------

    def receive(self, ns, nr, item, now):
        """Account for one received message; return the items now deliverable in order.

        item is the parsed message, or None for a ZLB (which only acknowledges).
        """
        self.stats["received"] += 1
        self._acknowledged(nr, now)
        if item is None:
            return ()
        if ns == self.nr:
            ready = [item]
            self.nr = (self.nr + 1) & 0xFFFF
            while self.reorder:
                nxt = self.reorder.pop(self.nr, None)
                if nxt is None:
                    break
                ready.append(nxt)
                self.nr = (self.nr + 1) & 0xFFFF
            if self.ack_at is None:
                self.ack_at = now + self.ack_delay
            return ready
        if seq_lt(ns, self.nr):
            self.stats["duplicates"] += 1
            self.send_zlb()
            return ()
        if ((ns - self.nr) & 0xFFFF) < self.local_window:
            if ns in self.reorder:
                self.stats["duplicates"] += 1
            self.reorder[ns] = item
            return ()
        self.stats["out_of_window"] += 1
        return ()

    def _acknowledged(self, nr, now):
        # Only an Nr in (una, ns] acknowledges anything; others are stale or bogus and change nothing.
        if ((nr - self.una) & 0xFFFF) > ((self.ns - self.una) & 0xFFFF) or nr == self.una:
            return
        unacked = self.unacked
        while unacked and seq_lt(unacked[0][0], nr):
            unacked.pop(0)
        self.una = nr
        self.retries = 0
        self.rtx_interval = self.initial
        while self.waiting and len(unacked) < self.peer_window:
            sid, body = self.waiting.pop(0)
            self._transmit_new(sid, body, now)
        self.rtx_at = (now + self.rtx_interval) if unacked else None

    # -- time --------------------------------------------------------------------------------------------

    def get_timer(self):
        a, r = self.ack_at, self.rtx_at
        if a is None:
            return r
        if r is None or a < r:
            return a
        return r

    def handle_timer(self, now):
        if self.rtx_at is not None and now >= self.rtx_at:
            if self.retries >= self.max_retries:
                self.rtx_at = None
                self.failed = "no acknowledgement from the peer after %d retransmissions" % self.retries
                return
            self.retries += 1
            for ns, sid, body in self.unacked:
                self._put(sid, ns, body)
                self.stats["retransmits"] += 1
            self.rtx_interval = min(self.rtx_interval * 2, self.cap)
            self.rtx_at = now + self.rtx_interval
        if self.ack_at is not None and now >= self.ack_at:
            self.send_zlb()

    def idle(self):
        """Nothing outstanding or waiting: everything we sent has been acknowledged."""
        return not self.unacked and not self.waiting

    def drain(self):
        out = self.out
        self.out = []
        return out
