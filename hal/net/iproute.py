"""Addresses and routes through the `ip` tool (iproute2 or BusyBox).

Shelling out costs a fork per change but nothing resident: pyroute2 would keep ~24 MB in the daemon
(architecture.md, rule 6), and these calls happen only when a session comes up or goes down.
"""

import subprocess


class IpError(RuntimeError):
    pass


def ip(*args, check=True):
    """Run `ip ARGS`; raise IpError with ip's own message when it fails and check is set."""
    p = subprocess.run(("ip",) + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        raise IpError("ip %s: %s" % (" ".join(args), (p.stderr or p.stdout).strip()))
    return p.stdout


def link_up(ifname, mtu):
    ip("link", "set", "dev", ifname, "mtu", str(mtu), "up")


def addr_add(ifname, local, peer=None):
    if peer:
        ip("addr", "add", local, "peer", peer, "dev", ifname)
    else:
        ip("addr", "add", local + "/32", "dev", ifname)


def addr_flush(ifname):
    ip("addr", "flush", "dev", ifname, check=False)


def route_add(dst, ifname, src=None, table=None, replace=True):
    args = ["route", "replace" if replace else "add", dst, "dev", ifname]
    if src:
        args += ["src", src]
    if table:
        args += ["table", str(table)]
    ip(*args)


def route_via(dst, gateway, ifname=None):
    args = ["route", "replace", dst, "via", gateway]
    if ifname:
        args += ["dev", ifname]
    ip(*args)


def route_del(dst, ifname=None, check=False):
    args = ["route", "del", dst]
    if ifname:
        args += ["dev", ifname]
    ip(*args, check=check)


def route_get(dst):
    """The kernel's current route to dst as a dict with 'via', 'dev', 'src' where present."""
    out = ip("-o", "route", "get", dst, check=False)
    words = out.split()
    info = {}
    for key in ("via", "dev", "src"):
        if key in words:
            i = words.index(key)
            if i + 1 < len(words):
                info[key] = words[i + 1]
    return info


def enable_forwarding():
    """Turn on IPv4 forwarding if it is off; returns True if it changed anything."""
    path = "/proc/sys/net/ipv4/ip_forward"
    try:
        with open(path) as f:
            if f.read().strip() == "1":
                return False
        with open(path, "w") as f:
            f.write("1")
        return True
    except OSError:
        return False
