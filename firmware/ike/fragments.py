"""IKEv1 fragmentation, the Cisco/Microsoft format (payload type 132), reassembly and splitting.

Theory of operation
-------------------
A peer that announced the FRAGMENTATION vendor ID (sluice.ike.vendor) may send a large Main/Aggressive Mode
message (certificates, Apple's 1280-octet limit) as several datagrams, each an ISAKMP header with next payload
132 and one fragment payload: fragment id (16 bits, the same for every piece of one message), fragment number
(from 1) and a flags octet whose bit 0 marks the last piece. The pieces concatenated in number order are the
whole original ISAKMP message, header included (Wireshark packet-isakmp.c dissect_cisco_fragmentation,
strongSwan PLV1_FRAGMENT).

`FragmentReassembler` keeps at most one message in reassembly per peer key (a new fragment id replaces the old
one, as a peer only retransmits its latest message), at most `max_pending` in total (the oldest is evicted),
at most `max_fragments` pieces and `max_bytes` octets per message; each message is dropped `timeout` seconds
after its first piece. Time comes in as `now`; nothing here reads a clock. Drops are counted in `stats`.
"""

from sluice.ike import constants as C
from sluice.ike.message import encode_header
from sluice.ike.payloads import FragmentPayload, IkeMalformed

_OVERHEAD = C.HEADER_LEN + 4 + 4  # ISAKMP header + generic payload header + fragment header


class _Pending:
    __slots__ = ("frag_id", "started", "pieces", "size", "total")

    def __init__(self, frag_id, now):
        self.frag_id = frag_id
        self.started = now
        self.pieces = {}    # number -> data
        self.size = 0       # octets held
        self.total = 0      # number of the last piece once seen, else 0


class FragmentReassembler:
    """Bounded reassembly of type-132 fragments, keyed by an opaque peer key."""

    def __init__(self, max_fragments=16, max_bytes=65536, max_pending=32, timeout=15.0):
        self.max_fragments = max_fragments
        self.max_bytes = max_bytes
        self.max_pending = max_pending
        self.timeout = timeout
        self._pending = {}  # peer -> _Pending
        self.stats = {"complete": 0, "duplicate": 0, "dropped": 0, "expired": 0, "replaced": 0, "evicted": 0}

    def __len__(self):
        return len(self._pending)

    def add(self, peer, frag, now):
        """Take one FragmentPayload from `peer`; return the whole message's bytes once complete, else None."""
        self.expire(now)
        if frag.number < 1 or frag.number > self.max_fragments:
            self.stats["dropped"] += 1
            return None
        p = self._pending.get(peer)
        if p is not None and p.frag_id != frag.frag_id:
            del self._pending[peer]
            self.stats["replaced"] += 1
            p = None
        if p is None:
            if len(self._pending) >= self.max_pending:
                oldest = None
                for k, v in self._pending.items():
                    if oldest is None or v.started < self._pending[oldest].started:
                        oldest = k
                del self._pending[oldest]
                self.stats["evicted"] += 1
            p = _Pending(frag.frag_id, now)
            self._pending[peer] = p
        if frag.number in p.pieces:
            self.stats["duplicate"] += 1
            return None
        if (p.total and frag.number > p.total) or (frag.last and (p.total or max(p.pieces or [0]) > frag.number)):
            # A piece past the announced end, or a second/contradicting "last": the set cannot be trusted.
            del self._pending[peer]
            self.stats["dropped"] += 1
            return None
        if p.size + len(frag.data) > self.max_bytes:
            del self._pending[peer]
            self.stats["dropped"] += 1
            return None
        p.pieces[frag.number] = frag.data
        p.size += len(frag.data)
        if frag.last:
            p.total = frag.number
        if p.total and len(p.pieces) == p.total:
            del self._pending[peer]
            self.stats["complete"] += 1
            return b"".join(p.pieces[k] for k in range(1, p.total + 1))
        return None

    def expire(self, now):
        """Drop messages whose first piece is older than `timeout`; return how many."""
        old = [k for k, v in self._pending.items() if now - v.started >= self.timeout]
        for k in old:
            del self._pending[k]
        self.stats["expired"] += len(old)
        return len(old)

    def get_timer(self):
        """The next deadline at which `expire` has something to do, or None."""
        best = None
        for v in self._pending.values():
            t = v.started + self.timeout
            if best is None or t < best:
                best = t
        return best


def fragment_message(message, frag_id, max_datagram=576, exchange=None, message_id=0):
    """Split an encoded ISAKMP `message` into datagrams of at most `max_datagram` octets, each a type-132 fragment.

    The fragments carry the original cookies and exchange type (as strongSwan and Windows do), flags 0.
    """
    message = bytes(message)
    if len(message) < C.HEADER_LEN:
        raise IkeMalformed("not an ISAKMP message")
    room = max_datagram - _OVERHEAD
    if room < 1:
        raise ValueError("max_datagram %d leaves no room for data" % max_datagram)
    count = (len(message) + room - 1) // room
    if count > 255:
        raise ValueError("message needs %d fragments, at most 255" % count)
    chunks = [message[i:i + room] for i in range(0, len(message), room)]
    if exchange is None:
        exchange = message[18]
    out = []
    for k in range(len(chunks)):
        frag = FragmentPayload(frag_id, k + 1, chunks[k], last=(k == len(chunks) - 1))
        body = frag.encode_body()
        generic = bytes((0, 0, (len(body) + 4) >> 8, (len(body) + 4) & 0xFF))
        head = encode_header(message[0:8], message[8:16], C.PT_FRAGMENT, exchange, 0, message_id,
                             C.HEADER_LEN + 4 + len(body))
        out.append(head + generic + body)
    return out
