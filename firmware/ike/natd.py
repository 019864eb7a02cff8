"""NAT discovery (RFC 3947 section 3) and NAT original address (section 5.2).

Theory of operation
-------------------
Each side sends, in Main Mode messages 3 and 4 (aggressive 2 and 3), NAT-D payloads holding
HASH(CKY-I | CKY-R | IP | Port) computed with the negotiated phase 1 hash (RFC 3947 3.2; not the PRF). The first
NAT-D is the *destination* (the peer's address as the sender sees it), the following ones are the sender's own
source address(es). The receiver recomputes:

* the hash of its own local address/port: if it does not equal the first received NAT-D, the packet's
  destination was rewritten on the way, so *we* are behind a NAT (we must send keep-alives and float to 4500);
* the hash of the peer's address/port as seen in the UDP packet: if none of the other NAT-Ds matches, the
  peer's source was rewritten, so *the peer* is behind a NAT (UDP-encapsulated modes, NAT-OA for transport).

The hash function is injected (a `bytes -> bytes` callable, e.g. `sluice.hal.crypto.digest.sha1`);
`hash_for(alg)` maps a phase 1 hash attribute value to one from sluice.hal.crypto.digest. Addresses are
'a.b.c.d' strings or raw 4/16-octet values; the IPv6 text form is not parsed here.
"""

from sluice.ike import constants as C
from sluice.ike.payloads import NatDPayload, NatOaPayload, address_bytes


def hash_for(hash_alg):
    """Phase 1 hash attribute (RFC 2409 appendix A) -> digest callable from sluice.hal.crypto.digest."""
    from sluice.hal.crypto import digest
    fn = {C.HASH_MD5: "md5", C.HASH_SHA1: "sha1", C.HASH_SHA2_256: "sha256",
          C.HASH_SHA2_384: "sha384", C.HASH_SHA2_512: "sha512"}.get(hash_alg)
    f = getattr(digest, fn, None) if fn else None
    if f is None:
        raise ValueError("no digest available for phase 1 hash %s"
                         % C.P1_HASH_NAMES.get(hash_alg, hash_alg))
    return f


def natd_hash(hashfn, icookie, rcookie, addr, port):
    """RFC 3947 3.2: HASH(CKY-I | CKY-R | IP | Port), the port in network order."""
    if len(icookie) != 8 or len(rcookie) != 8:
        raise ValueError("cookies are 8 octets each")
    if not 0 <= port <= 0xFFFF:
        raise ValueError("port out of range")
    return hashfn(bytes(icookie) + bytes(rcookie) + address_bytes(addr) + bytes((port >> 8, port & 0xFF)))


def natd_payloads(hashfn, icookie, rcookie, local, remote, ptype=C.PT_NAT_D):
    """The NAT-D payloads we send: first the remote (destination), then our local (source) address.

    `local`/`remote` are (address, port) as our socket sees them.
    """
    return [NatDPayload(natd_hash(hashfn, icookie, rcookie, remote[0], remote[1]), ptype),
            NatDPayload(natd_hash(hashfn, icookie, rcookie, local[0], local[1]), ptype)]


class NatStatus:
    """The result of NAT detection."""

    __slots__ = ("local_behind_nat", "remote_behind_nat")

    def __init__(self, local_behind_nat, remote_behind_nat):
        self.local_behind_nat = local_behind_nat    # our address was rewritten (we float and keep alive)
        self.remote_behind_nat = remote_behind_nat  # the peer's address was rewritten

    @property
    def any(self):
        return self.local_behind_nat or self.remote_behind_nat

    def __repr__(self):
        return "NatStatus(local=%s, remote=%s)" % (self.local_behind_nat, self.remote_behind_nat)


def detect(hashfn, icookie, rcookie, local, remote, received):
    """RFC 3947 3.2 comparison of the received NAT-D hashes (in order) with our view of the packet.

    `local`: (our address, port) the packet arrived on; `remote`: (the peer's address, port) it came from;
    `received`: the NAT-D payloads (or hash bytes) from the peer's message, first one = destination.
    """
    hashes = [bytes(getattr(r, "hash", r)) for r in received]
    if len(hashes) < 2:
        raise ValueError("RFC 3947 3.2 needs at least two NAT-D payloads, got %d" % len(hashes))
    mine = natd_hash(hashfn, icookie, rcookie, local[0], local[1])
    theirs = natd_hash(hashfn, icookie, rcookie, remote[0], remote[1])
    return NatStatus(hashes[0] != mine, theirs not in hashes[1:])


def nat_oa(address, ptype=C.PT_NAT_OA):
    """A NAT-OA payload for `address` ('a.b.c.d' or raw octets); ptype 21, or 131 for draft peers."""
    return NatOaPayload(address, ptype)


def nat_oa_address(payload):
    """The original address carried in a NAT-OA payload, as text."""
    return payload.text()
