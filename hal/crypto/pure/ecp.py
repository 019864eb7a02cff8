"""ECDH over the NIST prime curves P-256 and P-384 (RFC 5903) in pure Python.

Jacobian coordinates with a = -3 (the doubling formula "dbl-2001-b", Bernstein-Lange EFD) and a
Montgomery ladder over the scalar's bits, so the sequence of operations does not depend on the
private key's bits (Python's big-int arithmetic is not constant-time itself: this is for ports with
no C library, not a hardened implementation). Peer points are checked to lie on the curve
(RFC 5903 / SP 800-56A 5.6.2.3). Public value x || y, shared secret x (RFC 5903 7, 9).
"""

from sluice.hal.crypto import groups
from sluice.hal.crypto.errors import DhError


def _double(P, p):
    X, Y, Z = P
    if Z == 0 or Y == 0:
        return (1, 1, 0)
    delta = Z * Z % p
    gamma = Y * Y % p
    beta = X * gamma % p
    alpha = 3 * (X - delta) * (X + delta) % p
    X3 = (alpha * alpha - 8 * beta) % p
    Z3 = ((Y + Z) * (Y + Z) - gamma - delta) % p
    Y3 = (alpha * (4 * beta - X3) - 8 * gamma * gamma) % p
    return (X3, Y3, Z3)


def _add(P, Q, p):
    X1, Y1, Z1 = P
    X2, Y2, Z2 = Q
    if Z1 == 0:
        return Q
    if Z2 == 0:
        return P
    Z1Z1 = Z1 * Z1 % p
    Z2Z2 = Z2 * Z2 % p
    U1 = X1 * Z2Z2 % p
    U2 = X2 * Z1Z1 % p
    S1 = Y1 * Z2 * Z2Z2 % p
    S2 = Y2 * Z1 * Z1Z1 % p
    if U1 == U2:
        if S1 != S2:
            return (1, 1, 0)
        return _double(P, p)
    H = (U2 - U1) % p
    I = (2 * H) * (2 * H) % p  # noqa: E741 - the EFD's names
    J = H * I % p
    r = 2 * (S2 - S1) % p
    V = U1 * I % p
    X3 = (r * r - J - 2 * V) % p
    Y3 = (r * (V - X3) - 2 * S1 * J) % p
    Z3 = ((Z1 + Z2) * (Z1 + Z2) - Z1Z1 - Z2Z2) * H % p
    return (X3, Y3, Z3)


def _mul(k, x, y, p, bits):
    r0 = (1, 1, 0)
    r1 = (x, y, 1)
    for i in range(bits - 1, -1, -1):
        if (k >> i) & 1:
            r0 = _add(r0, r1, p)
            r1 = _double(r1, p)
        else:
            r1 = _add(r0, r1, p)
            r0 = _double(r0, p)
    X, Y, Z = r0
    if Z == 0:
        raise DhError("point at infinity")
    zi = pow(Z, p - 2, p)
    zi2 = zi * zi % p
    return X * zi2 % p, Y * zi2 * zi % p


class EcpDh:
    """generate(rng) -> x || y; shared(peer x || y) -> x."""

    __slots__ = ("group", "_curve", "_len", "_d", "public")

    def __init__(self, group):
        self.group = group
        self._curve = groups.ecp(group)
        self._len = groups.ECP_BYTES[group]
        self._d = None
        self.public = None

    def __repr__(self):
        return "<EcpDh group %d>" % self.group

    def generate(self, rng):
        n = self._curve[5]
        return self.set_private(int.from_bytes(rng(self._len + 8), "big") % (n - 1) + 1)

    def set_private(self, d):
        p, _, _, gx, gy, _ = self._curve
        self._d = d
        x, y = _mul(d, gx, gy, p, 8 * self._len)
        self.public = x.to_bytes(self._len, "big") + y.to_bytes(self._len, "big")
        return self.public

    def shared(self, peer_public):
        n = self._len
        if len(peer_public) != 2 * n:
            raise DhError("ECP public value has the wrong length")
        p, a, b, _, _, _ = self._curve
        x = int.from_bytes(peer_public[:n], "big")
        y = int.from_bytes(peer_public[n:], "big")
        if x >= p or y >= p or (y * y - (x * x * x + a * x + b)) % p:
            raise DhError("ECP public value is not a point on the curve")
        # Prime-order curves (cofactor 1): a point on the curve is in the group.
        return _mul(self._d, x, y, p, 8 * n)[0].to_bytes(n, "big")
