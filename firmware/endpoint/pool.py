"""The server's address pool: dynamic addresses from a range, static ones per user."""


def ip_to_int(ip):
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def int_to_ip(n):
    return "%d.%d.%d.%d" % ((n >> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255)


class PoolExhausted(Exception):
    pass


class IpPool:
    """Hands out each address once; a user's static address is never given to anyone else."""

    __slots__ = ("start", "end", "reserved", "in_use", "_next", "last")

    def __init__(self, start, end, reserved=()):
        self.start = ip_to_int(start)
        self.end = ip_to_int(end)
        self.reserved = set(ip_to_int(x) for x in reserved)
        self.in_use = set()
        self._next = self.start
        # owner (user name) -> the dynamic address it had last: given back on reconnect while still free, the way
        # a DHCP server keeps a lease. Bounded: at most one entry per pool address.
        self.last = {}

    def allocate(self, static=None, owner=None):
        """An address (dotted string): static if given and free; else the address `owner` had last when it is
        free; else the next free pool address."""
        if static:
            n = ip_to_int(static)
            if n in self.in_use:
                raise PoolExhausted("static address %s is already in use by another session" % static)
            self.in_use.add(n)
            return static
        size = self.end - self.start + 1
        n = self.last.get(owner) if owner is not None else None
        if n is not None and n not in self.in_use and n not in self.reserved and self.start <= n <= self.end:
            self.in_use.add(n)
            return int_to_ip(n)
        for i in range(size):
            n = self.start + (self._next - self.start + i) % size
            if n not in self.in_use and n not in self.reserved:
                self.in_use.add(n)
                self._next = n + 1 if n < self.end else self.start
                if owner is not None:
                    if owner not in self.last and len(self.last) >= size:
                        self.last.pop(next(iter(self.last)))  # the oldest remembered owner
                    self.last[owner] = n
                return int_to_ip(n)
        raise PoolExhausted("address pool %s-%s is exhausted" % (int_to_ip(self.start), int_to_ip(self.end)))

    def release(self, ip):
        if ip:
            self.in_use.discard(ip_to_int(ip))

    def used(self):
        return len(self.in_use)
