"""TUN devices: the packet interface between the kernel's routing and Sluice's user-space data path.

`TunDevice` is the real one (/dev/net/tun, IFF_TUN | IFF_NO_PI: each read is one bare IP packet).
`PairTun` is its twin for tests that run the engine without root or a kernel TUN.
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


class PairTun:
    """TunDevice's twin for tests: a datagram socketpair, one packet per datagram like a TUN fd.

    The engine gets the `fileno()` end; the test plays the kernel through `kernel_send()` / `kernel_recv()`.
    """

    def __init__(self, name="pair0"):
        from sluice.hal.net.sockets import socket

        self.name = name
        self._dev, self._kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._dev.setblocking(False)
        self._kernel.settimeout(5.0)

    def fileno(self):
        return self._dev.fileno()

    def read_into(self, buf):
        try:
            return self._dev.recv_into(buf)
        except BlockingIOError:
            return 0

    def write(self, packet):
        try:
            return self._dev.send(packet)
        except OSError:
            return 0

    def kernel_send(self, packet):
        self._kernel.send(packet)

    def kernel_recv(self):
        return self._kernel.recv(65535)

    def kernel_pending(self):
        self._kernel.setblocking(False)
        try:
            out = []
            while True:
                out.append(self._kernel.recv(65535))
        except BlockingIOError:
            return out
        finally:
            self._kernel.settimeout(5.0)

    def close(self):
        self._dev.close()
        self._kernel.close()
