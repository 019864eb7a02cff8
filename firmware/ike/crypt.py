"""Phase 1 encryption of ISAKMP messages (RFC 2408 3.1 E flag, RFC 2409 5.3 and Appendix B), with IV chaining.

Theory of operation
-------------------
After the DH exchange every message body is CBC-encrypted under the phase 1 key; the header stays in clear.
The IV is not sent; both sides track it:

* Main Mode (message id 0): the first encrypted message uses hash(g^xi | g^xr) (sluice.ike.keys.phase1_iv);
  each later one uses the last ciphertext block of the message before it, whoever sent it.
* Every Quick Mode or Informational exchange (message id != 0) starts from hash(last phase 1 block | M-ID)
  and then chains inside that exchange the same way. The "last phase 1 block" is frozen when Main Mode ends
  and informational exchanges never move it (what racoon, strongSwan and Windows do).

The plaintext is padded with zero octets to the block size (RFC 2409 5.3); the receiver ignores what follows
the last payload. `open()` does not move any IV: it returns the IV that *would* follow, and the caller
`commit()`s it only after the message authenticated (HASH or HASH_I/R checked), so a forged or garbled datagram
cannot desynchronise the chain. Per-exchange IVs are kept for at most `max_exchanges` message ids.
"""

from sluice.ike import constants as C
from sluice.ike.keys import phase2_iv
from sluice.ike.message import encode_header
from sluice.ike.payloads import IkeMalformed, encode_payloads, parse_payloads


class IkeCrypt:
    """The phase 1 cipher of one ISAKMP SA and its IV state."""

    __slots__ = ("_be", "_h", "_c", "block", "p1_iv", "_ivs", "_order", "max_exchanges")

    def __init__(self, backend, hash_name, cipher_name, key, first_iv, max_exchanges=32):
        self._be = backend
        self._h = hash_name
        self._c = backend.cipher(cipher_name, key)
        self.block = len(first_iv)
        self.p1_iv = first_iv        # Main Mode chain; after Main Mode, the frozen last phase 1 block
        self._ivs = {}               # message id -> current IV of that exchange
        self._order = []
        self.max_exchanges = max_exchanges

    def __repr__(self):
        return "<IkeCrypt block=%d exchanges=%d>" % (self.block, len(self._ivs))

    def iv_for(self, message_id):
        if message_id == 0:
            return self.p1_iv
        iv = self._ivs.get(message_id)
        if iv is None:
            iv = phase2_iv(self._be, self._h, self.p1_iv, message_id, self.block)
        return iv

    def commit(self, message_id, iv):
        """Move the chain of `message_id` to `iv` (the last ciphertext block of the message just handled)."""
        if message_id == 0:
            self.p1_iv = iv
            return
        if message_id not in self._ivs:
            self._order.append(message_id)
            if len(self._order) > self.max_exchanges:
                self._ivs.pop(self._order.pop(0), None)
        self._ivs[message_id] = iv

    def forget(self, message_id):
        if message_id in self._ivs:
            del self._ivs[message_id]
            self._order.remove(message_id)

    def seal(self, icookie, rcookie, exchange, message_id, payloads, flags=0):
        """Encode `payloads`, pad, encrypt and prepend the header; moves the IV chain. Returns the datagram."""
        first, plain = encode_payloads(payloads)
        return self.seal_raw(icookie, rcookie, exchange, message_id, first, plain, flags)

    def seal_raw(self, icookie, rcookie, exchange, message_id, first, plain, flags=0):
        pad = (-len(plain)) % self.block
        ct = self._c.encrypt(self.iv_for(message_id), plain + bytes(pad))
        self.commit(message_id, ct[-self.block:])
        head = encode_header(icookie, rcookie, first, exchange, flags | C.FLAG_E, message_id,
                             C.HEADER_LEN + len(ct))
        return head + ct

    def open(self, header, body):
        """(plaintext, next_iv) of an encrypted body; raises IkeMalformed when it cannot be CBC ciphertext."""
        n = len(body)
        if n == 0 or n % self.block:
            raise IkeMalformed("encrypted body of %d octets is not a whole number of %d-octet blocks"
                               % (n, self.block))
        plain = self._c.decrypt(self.iv_for(header.message_id), bytes(body))
        return plain, bytes(body[-self.block:])

    def open_payloads(self, header, body, max_payloads=64):
        """(payloads, plaintext, next_iv); the plaintext is returned for hash computations over raw payloads."""
        plain, nxt = self.open(header, body)
        return parse_payloads(header.next_payload, plain, allow_padding=True, max_payloads=max_payloads), plain, nxt


def chain_spans(first_type, plain):
    """[(type, start, end)] of each payload in a decoded chain (generic header included); stops at NONE.

    Used to hash payloads exactly as they were sent (RFC 2409 5.5 HASH over "the rest of the message").
    """
    out = []
    ptype = first_type
    i = 0
    n = len(plain)
    while ptype != C.PT_NONE:
        if n - i < 4:
            raise IkeMalformed("payload chain truncated")
        plen = (plain[i + 2] << 8) | plain[i + 3]
        if plen < 4 or i + plen > n:
            raise IkeMalformed("payload length %d does not fit" % plen)
        out.append((ptype, i, i + plen))
        ptype = plain[i]
        i += plen
        if len(out) > 64:
            raise IkeMalformed("too many payloads")
    return out


def raw_body(first_type, plain, ptype):
    """The body (generic header excluded) of the first payload of `ptype` in a chain, as received."""
    for t, s, e in chain_spans(first_type, plain):
        if t == ptype:
            return bytes(plain[s + 4:e])
    return None
