"""Finite-field Diffie-Hellman over the MODP groups (RFC 2409 6, RFC 3526), with pow().

Shared by the backends: the private exponent comes from the injected rng, public and shared values are
padded to the length of p (RFC 2409 5, RFC 7296 2.14's rule applied to IKEv1 as implementations do).
"""

from sluice.hal.crypto import groups
from sluice.hal.crypto.errors import DhError


class ModpDh:
    """generate(rng) -> public bytes; shared(peer_public) -> secret bytes."""

    __slots__ = ("group", "_p", "_g", "_x", "public", "_len")

    def __init__(self, group):
        self.group = group
        self._p, self._g = groups.modp(group)
        self._len = groups.public_len(group)
        self._x = None
        self.public = None

    def __repr__(self):
        return "<ModpDh group %d>" % self.group

    def generate(self, rng):
        # At least twice the group's strength (NIST SP 800-57 part 1, 5.6.1): 512 bits covers them all.
        return self.set_private(int.from_bytes(rng(64), "big") | (1 << 511))

    def set_private(self, x):
        """Use a given private exponent (known-answer tests)."""
        self._x = x
        self.public = pow(self._g, x, self._p).to_bytes(self._len, "big")
        return self.public

    def shared(self, peer_public):
        if len(peer_public) != self._len:
            raise DhError("MODP public value has the wrong length")
        y = int.from_bytes(peer_public, "big")
        if y <= 1 or y >= self._p - 1:  # SP 800-56A 5.6.2.3.1: 1 < y < p-1
            raise DhError("MODP public value out of range")
        return pow(y, self._x, self._p).to_bytes(self._len, "big")
