"""Random bytes for CBC IVs without one `getrandom` call per packet.

RFC 3602 3 (and RFC 4303 3.3.2's rules for the IV field) asks that a CBC IV be unpredictable to anyone
who does not hold the key, so each one comes from a cryptographically secure generator; nothing says the
generator must be entered once per packet. An `IvSource` asks its `rng` (the engine passes `os.urandom`,
i.e. the kernel's CSPRNG through getrandom(2)) for `chunk` bytes at a time and hands them out a block at a
time, each byte once. The values are exactly as unpredictable as single draws: the bytes waiting in the
buffer are only readable by someone who can read the process's memory, and that someone already has the
ESP keys. What this does not do: derive IVs from a counter or from the previous ciphertext (a predictable
IV is the chosen-plaintext hole RFC 3602 warns about), or share one buffer between processes (each SA
transform owns its own, allocated on the first seal: an inbound-only transform never holds one).

With the default 1 KiB chunk an AES SA makes one syscall per 64 packets instead of one per packet.
An `rng` that returns more or fewer bytes than asked is tolerated as long as one call gives at least
one IV (known-answer tests pass a function that always returns the same IV).
"""

IV_CHUNK = 1024


class IvSource:
    """`take(n)`: the next n unused random bytes (n = the cipher's block)."""

    __slots__ = ("_rng", "_buf", "_pos", "_chunk")

    def __init__(self, rng, chunk=IV_CHUNK):
        self._rng = rng
        self._buf = b""
        self._pos = 0
        self._chunk = chunk

    def __repr__(self):
        return "<IvSource>"

    def take(self, n):
        p = self._pos
        if p + n > len(self._buf):
            self._buf = self._rng(self._chunk)
            p = 0
            if n > len(self._buf):
                raise ValueError("the rng returned %d bytes for a %d-byte IV" % (len(self._buf), n))
        self._pos = p + n
        return self._buf[p:p + n]
