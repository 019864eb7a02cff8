"""One ISAKMP SA: cookies, state, keys, peer address, NAT state, message ids and retransmission.

Theory of operation
-------------------
An `IkeSa` is the task manager of strongSwan's model for one peer: the exchanges (sluice.ike.main_mode,
quick_mode, informational) are small objects that build and check messages; the SA owns what they share:

* identity: cookies (RFC 2408 2.5.3; the initiator's, then the responder's, both from the injected rng), our
  role in phase 1, the peer's current (ip, port) and our local port (500, or 4500 after the float, RFC 3947 4);
* keys: SKEYID_d/a and the phase 1 cipher with its IV chains (sluice.ike.crypt);
* message ids: Quick Mode and Informational ids are random and never reused on this SA (RFC 2408 3.1); the
  ids seen are kept in bounded sets (`MessageIds`): a protected message whose id was already used is a replay
  (the Quick Mode ids, ours and the peer's, in `used_mids`; the peer's Informational ids in `peer_mids`);
* retransmission: a message that expects an answer is resent after 1, 2, 4, 8 ... seconds (`Rtx`), up to
  `retransmit_tries` times, then the exchange fails;
* duplicates: IKEv1 has no request/response bit, so the last datagram received in each exchange is kept
  with our reply to it: the same bytes again (the peer did not get our reply) are answered with the cached
  reply and never processed twice (RFC 2408 leaves this to implementations; racoon and strongSwan do so).

Nothing here reads a clock or draws randomness itself; `now` and the table's rng come in.
"""

from sluice.ike.fragments import fragment_message
from sluice.ike.natt import IKE_PORT

EXCH_MAIN = 2   # RFC 2408 3.1 (sluice.ike.constants.EXCH_MAIN)

MM_INIT = "mm-init"      # initiator: nothing sent yet
MM_SA = "mm-sa"          # SA sent (initiator) / SA answered (responder)
MM_KE = "mm-ke"          # KE + nonce exchanged
MM_AUTH = "mm-auth"      # initiator: ID + HASH_I sent, waiting for HASH_R
ESTABLISHED = "established"
DELETED = "deleted"


class MessageIds:
    """A bounded set of message ids: the oldest is forgotten first once `size` are held (O(1) per id)."""

    __slots__ = ("size", "_set", "_ring", "_next")

    def __init__(self, size=128):
        self.size = max(1, size)
        self._set = {}
        self._ring = []
        self._next = 0

    def __contains__(self, mid):
        return mid in self._set

    def __len__(self):
        return len(self._set)

    def add(self, mid):
        if mid in self._set:
            return
        if len(self._ring) < self.size:
            self._ring.append(mid)
        else:
            old = self._ring[self._next]
            self._set.pop(old, None)
            self._ring[self._next] = mid
            self._next = (self._next + 1) % self.size
        self._set[mid] = True


class Rtx:
    """One datagram we resend until the answer comes (RFC 2408 leaves timing to us: 1, 2, 4, 8 ... s)."""

    __slots__ = ("data", "due", "count", "what")

    def __init__(self, data, now, base, what):
        self.data = data
        self.due = now + base
        self.count = 0
        self.what = what    # plain words for the failure message ("Main Mode message 1", ...)


class ChildSa:
    """The bookkeeping of one negotiated ESP SA pair (the keys went out in ChildSaUp and are not kept)."""

    __slots__ = ("peer", "ike", "spi_in", "spi_out", "transform", "encap", "lifetime", "created", "soft_at",
                 "hard_at", "initiated", "replaced_by", "down_at", "ids", "mode", "rekeying", "serial")

    def __init__(self, peer, ike, spi_in, spi_out, transform, encap, lifetime, created, soft_at, initiated, ids,
                 mode):
        self.peer = peer
        self.ike = ike                  # IkeSa it was negotiated on (a newer one may take over)
        self.spi_in = spi_in
        self.spi_out = spi_out
        self.transform = transform
        self.encap = encap
        self.lifetime = lifetime
        self.created = created
        self.soft_at = soft_at          # when we start a rekey Quick Mode
        self.hard_at = created + lifetime
        self.initiated = initiated      # we ran the Quick Mode as initiator
        self.replaced_by = None         # spi_in of the SA that replaced this one
        self.down_at = None             # end of the grace period after replacement
        self.ids = ids                  # (our ID payload, peer's ID payload) as negotiated, or None
        self.mode = mode                # the encapsulation mode attribute value
        self.rekeying = False           # a rekey Quick Mode is under way
        self.serial = 0                 # creation order in the table (INITIAL-CONTACT removes older ones)

    def __repr__(self):
        return "<ChildSa in=0x%08x out=0x%08x %s>" % (self.spi_in, self.spi_out, self.transform)


class IkeSa:
    __slots__ = ("table", "role", "icookie", "rcookie", "peer", "local_port", "local_ip", "state", "mm",
                 "hash", "prf_hash", "skeyid_d", "skeyid_a", "crypt", "auth", "caps", "nat", "created",
                 "established_at", "lifetime", "rekey_at", "rtx", "last_in", "qms", "used_mids", "dpd",
                 "replaced", "initial_contact", "half_open_until", "stats", "peer_id", "algs", "mark",
                 "peer_mids", "peer_dpd_seq", "admit", "admit_ix", "admit_ticket", "admit_fifo", "resp_key")

    def __init__(self, table, role, icookie, rcookie, peer, local_ip, now):
        self.table = table
        self.role = role                # 'initiator' or 'responder' of Main Mode
        self.icookie = icookie
        self.rcookie = rcookie
        self.peer = peer                # (ip, port) now
        self.local_port = IKE_PORT
        self.local_ip = local_ip
        self.state = MM_INIT
        self.mm = None                  # the Main Mode exchange object while it runs
        self.hash = None                # HAL hash name of the negotiated phase 1 hash (also the PRF)
        self.prf_hash = None
        self.skeyid_d = None
        self.skeyid_a = None
        self.crypt = None               # sluice.ike.crypt.IkeCrypt once keys exist
        self.auth = None                # C.AUTH_*
        self.caps = None                # sluice.ike.vendor.PeerCapabilities
        self.nat = None                 # sluice.ike.natd.NatStatus, or None without NAT-T
        self.created = now
        self.established_at = None
        self.lifetime = None            # seconds
        self.rekey_at = None            # initiator: when to start a new Main Mode
        self.rtx = {}                   # message id -> Rtx
        self.last_in = {}               # message id -> (datagram, our reply or None)
        self.qms = {}                   # message id -> Quick Mode exchange object
        ids = table.cfg.seen_message_ids
        self.used_mids = MessageIds(ids)  # Quick Mode ids, ours and the peer's, and our Informational ids
        self.peer_mids = MessageIds(ids)  # the peer's protected Informational ids seen (replays are dropped)
        self.peer_dpd_seq = None        # highest R-U-THERE sequence number from the peer (RFC 3706 7)
        self.dpd = None
        self.replaced = False           # a newer IKE SA with this peer took over
        self.initial_contact = False    # the peer sent INITIAL-CONTACT in phase 1
        self.half_open_until = now + table.cfg.half_open_timeout
        self.stats = {"malformed": 0, "duplicate": 0, "retransmit": 0}
        self.peer_id = None             # the peer's phase 1 ID, in words
        self.algs = None                # the phase 1 IkeTransform agreed
        self.mark = None                # table child serial when this SA came up: older children predate it
        self.admit = None               # responder, half-open: its stage in sluice.ike.admission, else None
        self.admit_ix = None
        self.admit_ticket = None
        self.admit_fifo = None
        self.resp_key = None            # responder: its key in the table's index of message 1s

    def __repr__(self):
        return "<IkeSa %s %s %s/%s %r>" % (self.role, self.state, self.icookie.hex(), self.rcookie.hex(),
                                          self.peer)

    def spi(self):
        return self.icookie + self.rcookie

    @property
    def established(self):
        return self.state == ESTABLISHED

    # --- output ---------------------------------------------------------------------------------------------

    def send(self, data):
        out = self.table._out
        limit = self.table.cfg.fragment_size
        if limit and len(data) > limit and data[18] == EXCH_MAIN and self.caps is not None \
                and self.caps.fragmentation:
            # A certificate-sized Main Mode message to a peer that announced FRAGMENTATION goes as type-132
            # fragments (sluice.ike.fragments), each piece fitting `fragment_size`.
            self.table._frag_id = (self.table._frag_id + 1) & 0xFFFF or 1
            for piece in fragment_message(data, self.table._frag_id, limit):
                out.append((self.local_port, self.peer, piece))
            return
        out.append((self.local_port, self.peer, data))

    def send_expecting_reply(self, mid, data, now, what):
        """Send and keep resending `data` until a reply in exchange `mid` arrives (or we give up)."""
        self.send(data)
        self.rtx[mid] = Rtx(data, now, self.table.cfg.retransmit_base, what)

    def answered(self, mid):
        self.rtx.pop(mid, None)

    def remember(self, mid, datagram, reply):
        """Keep the last datagram of exchange `mid` and our reply, to answer a retransmission of it."""
        if mid not in self.last_in and len(self.last_in) >= 16:
            for k in list(self.last_in)[:4]:
                if k != 0:
                    del self.last_in[k]
        self.last_in[mid] = (bytes(datagram), reply)

    def is_duplicate(self, mid, datagram):
        """True (and the cached reply resent) when `datagram` repeats the last one of exchange `mid`."""
        seen = self.last_in.get(mid)
        if seen is None or seen[0] != datagram:
            return False
        self.stats["duplicate"] += 1
        if seen[1] is not None:
            self.send(seen[1])
        return True

    def new_message_id(self):
        rng = self.table.rng
        for _ in range(16):
            mid = int.from_bytes(rng(4), "big")
            if mid and mid not in self.used_mids:
                self.used_mids.add(mid)
                return mid
        raise ValueError("no free message id")

    # --- timers ---------------------------------------------------------------------------------------------

    def deadline(self):
        best = None
        for r in self.rtx.values():
            if best is None or r.due < best:
                best = r.due
        cands = []
        if self.state != ESTABLISHED:
            cands.append(self.half_open_until)
        else:
            if self.dpd is not None:
                cands.append(self.dpd.deadline())
            if self.rekey_at is not None and not self.replaced:
                cands.append(self.rekey_at)
            if self.lifetime is not None:
                cands.append(self.established_at + self.lifetime)
        for c in cands:
            if c is not None and (best is None or c < best):
                best = c
        return best

    def retransmit_due(self, now):
        """Resend what is due; returns the Rtx entries that ran out of tries (the caller fails them)."""
        failed = []
        cfg = self.table.cfg
        for mid in list(self.rtx):
            r = self.rtx[mid]
            if now < r.due:
                continue
            if r.count >= cfg.retransmit_tries:
                del self.rtx[mid]
                failed.append((mid, r))
                continue
            r.count += 1
            r.due = now + cfg.retransmit_base * (1 << r.count)
            self.stats["retransmit"] += 1
            self.send(r.data)
        return failed
