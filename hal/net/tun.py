"""TUN devices: the packet interface between the kernel's routing and Sluice's user-space data path.

`TunDevice` is the real one (/dev/net/tun, IFF_TUN | IFF_NO_PI: each read is one bare IP packet).
`MemoryTun` is its in-memory twin for tests that run the engine without a kernel.
"""

import os
import struct

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFNAMSIZ = 16


class TunError(OSError):
    pass


class TunDevice:
    """A TUN interface opened non-blocking; `fileno()` goes into the engine's select loop."""

    __slots__ = ("name", "fd")

    def __init__(self, name):
        import fcntl

        if not name or len(name) >= IFNAMSIZ:
            raise TunError("interface name %r must be 1 to 15 characters" % (name,))
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError as e:
            raise TunError("cannot open /dev/net/tun (%s): is the tun module loaded (kmod-tun)?" % e.strerror)
        try:
            ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
            res = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as e:
            os.close(fd)
            raise TunError("cannot create TUN device %s: %s" % (name, e.strerror))
        self.fd = fd
        self.name = res[:IFNAMSIZ].rstrip(b"\0").decode()

    def fileno(self):
        return self.fd

    def read_into(self, buf):
        """Read one packet into buf; returns its length, or 0 when nothing is waiting."""
        try:
            return os.readv(self.fd, (buf,))
        except BlockingIOError:
            return 0

    def write(self, packet):
        try:
            return os.write(self.fd, packet)
        except (BlockingIOError, OSError):
            # A full or downed interface drops the packet, as a NIC would.
            return 0

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class MemoryTun:
    """TunDevice's twin: packets written by the engine land in `.written`; `.inject()` queues packets to read."""

    def __init__(self, name="mem0"):
        self.name = name
        self.written = []
        self.pending = []

    def fileno(self):
        return -1

    def inject(self, packet):
        self.pending.append(bytes(packet))

    def read_into(self, buf):
        if not self.pending:
            return 0
        p = self.pending.pop(0)
        buf[: len(p)] = p
        return len(p)

    def write(self, packet):
        self.written.append(bytes(packet))
        return len(packet)

    def close(self):
        pass
