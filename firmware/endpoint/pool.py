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

    __slots__ = ("start", "end", "reserved", "in_use", "_next")

    def __init__(self, start, end, reserved=()):
        self.start = ip_to_int(start)
        self.end = ip_to_int(end)
        self.reserved = set(ip_to_int(x) for x in reserved)
        self.in_use = set()
        self._next = self.start

    def allocate(self, static=None):
        """An address (dotted string): static if given and free, else the next free pool address."""
        if static:
            n = ip_to_int(static)
            if n in self.in_use:
                raise PoolExhausted("static address %s is already in use by another session" % static)
            self.in_use.add(n)
            return static
        size = self.end - self.start + 1
        for i in range(size):
            n = self.start + (self._next - self.start + i) % size
            if n not in self.in_use and n not in self.reserved:
                self.in_use.add(n)
                self._next = n + 1 if n < self.end else self.start
                return int_to_ip(n)
        raise PoolExhausted("address pool %s-%s is exhausted" % (int_to_ip(self.start), int_to_ip(self.end)))

    def release(self, ip):
        if ip:
            self.in_use.discard(ip_to_int(ip))

    def used(self):
        return len(self.in_use)
