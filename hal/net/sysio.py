"""The two system calls Python's socket module cannot make for the kernel data path: ioctl and a raw connect.

`ioctl(fd, request, buf)`: the kernel's PPP calls (PPPIOCGCHAN, PPPIOCNEWUNIT...) and SIOCSIFNAME.
`connect_raw(sock, sockaddr)`: connect() with a sockaddr given as bytes: CPython's socket.connect() knows only
the families it was built with and refuses AF_PPPOX. It goes through an AF_UNIX view of the same descriptor
there (see `_connect_as_unix`), through libc (ctypes, about 1 MB resident once loaded) only where the kernel
refuses that; MicroPython's connect() takes raw bytes itself.

ioctl request numbers are encoded per architecture (Linux include/uapi/asm-generic/ioctl.h): MIPS, PowerPC,
SPARC and Alpha use a 3-bit direction field and different direction values, and OpenWrt runs on MIPS.
"""

import os
import struct

from sluice.hal.net.netlink import NE


def _machine():
    try:
        return os.uname().machine
    except (AttributeError, OSError):
        return ""


def ioc_layout(machine=None):
    """(none, write, read, size bits) for `machine` (os.uname().machine); generic unless MIPS/PPC/SPARC/Alpha."""
    m = _machine() if machine is None else machine
    if m.startswith(("mips", "ppc", "powerpc", "sparc", "alpha")):
        return 1, 4, 2, 13
    return 0, 1, 2, 14


def ioc(direction, type_char, nr, size, machine=None):
    """_IOC(): direction is 'n', 'r', 'w' or 'rw'."""
    none, write, read, size_bits = ioc_layout(machine)
    d = {"n": none, "w": write, "r": read, "rw": read | write}[direction]
    return (d << (16 + size_bits)) | (size << 16) | (ord(type_char) << 8) | nr


_libc = None


def _cpython_libc():
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def ioctl(fd, request, buf):
    """ioctl(fd, request, buf) with buf a bytearray the kernel reads and writes; returns the call's result."""
    if hasattr(fd, "fileno"):
        fd = fd.fileno()
    try:
        import fcntl
    except ImportError:
        fcntl = None
    if fcntl is not None and hasattr(fcntl, "ioctl"):
        return fcntl.ioctl(fd, request, buf, True)
    return _ffi_call("ioctl", "iip", fd, request, buf)


def ioctl_int(fd, request, value=0):
    """An ioctl whose argument is a pointer to one int: in `value`, out the int the kernel wrote."""
    buf = bytearray(struct.pack(NE + "i", value))
    ioctl(fd, request, buf)
    return struct.unpack(NE + "i", bytes(buf))[0]


def connect_raw(sock, sockaddr):
    """connect(2) with a raw sockaddr (bytes): what AF_PPPOX sockets need."""
    try:
        sock.connect(sockaddr)        # MicroPython: raw sockaddr
        return
    except TypeError:
        pass
    except OSError as e:
        if "family" not in str(e) and getattr(e, "errno", None) not in (None, 97):
            raise
    if _connect_as_unix(sock, sockaddr):
        return
    import ctypes

    libc = _cpython_libc()
    buf = ctypes.create_string_buffer(bytes(sockaddr), len(sockaddr))
    if libc.connect(sock.fileno(), buf, len(sockaddr)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _connect_as_unix(sock, sockaddr):
    """connect(2) with `sockaddr` but for its first two bytes, through a CPython AF_UNIX socket object on the
    same descriptor; False where that cannot carry it or the kernel refuses it (then libc does it).

    CPython's AF_UNIX connect() puts its family in sa_family and copies the path bytes after it unparsed,
    embedded NULs and all. A path starting with NUL (Linux's abstract names) goes with its exact length; any
    other gets a NUL appended and counted, so it carries a sockaddr ending in a zero byte, given without it
    (l2tp_kernel.sockaddr_pppol2tp is built to end in one). The kernel gets the sockaddr with sa_family
    AF_UNIX: AF_PPPOX reads its address by length and never looks at sa_family (l2tp_ppp's
    pppol2tp_sockaddr_get_info; a check proposed upstream in 2025 was declined because callers pass other
    values there). A kernel that does check answers EAFNOSUPPORT, as AF_INET does, and we fall back."""
    import errno

    try:
        import _socket
    except ImportError:
        return False
    path = bytes(sockaddr[2:])
    if path[:1] != b"\0":
        if path[-1:] != b"\0":
            return False
        path = path[:-1]
    if not path or len(path) >= 108:  # sizeof(sun_path)
        return False
    view = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM, 0, sock.fileno())
    try:
        view.connect(path)
    except OSError as e:
        if e.errno in (errno.EAFNOSUPPORT, errno.EINVAL):
            return False
        raise
    finally:
        view.detach()  # the descriptor stays the caller's
    return True


def _ffi_call(name, sig, *args):
    """MicroPython (unix port): call libc through `ffi`; errno is not reachable there, so failures say -1."""
    import ffi  # noqa: F401  (MicroPython only)

    lib = None
    for so in ("libc.so.6", "libc.so"):
        try:
            lib = ffi.open(so)
            break
        except OSError:
            continue
    if lib is None:
        raise OSError(38, "no libc for %s" % name)
    r = lib.func("i", name, sig)(*args)
    if r < 0:
        raise OSError(5, "%s failed" % name)
    return r
