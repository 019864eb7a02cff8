"""Kernel PPP (ppp_generic): a channel on a PPPoL2TP socket, a unit (the pppN netdev), and the probe for both.

Theory of operation (the sequence of pppd's sys-linux.c): PPPIOCGCHAN on the session's PPPoL2TP socket gives
the channel index; a first /dev/ppp fd is attached to that channel (PPPIOCATTCHAN); a second /dev/ppp fd makes
a new unit (PPPIOCNEWUNIT, the kernel picks N of pppN); PPPIOCCONNECT joins the channel to the unit; the unit's
MRU is set; the netdev is renamed to the configured `ifname` (SIOCSIFNAME, while it is down).

What crosses to user space after that: the kernel queues frames with protocol >= 0xc000 (LCP, PAP, CHAP, EAP)
on the channel fd, and the network control protocols (IPCP 0x8021, IPv6CP 0x8057, CCP) on the unit fd; IP
data goes to and from the netdev and never reaches Sluice. Each read() returns one frame as
protocol (2 bytes) + information, without the FF 03 address/control bytes; write() takes the same
(the L2TP channel adds FF 03 itself). Closing the unit fd removes the netdev, closing the channel fd and the
PPPoL2TP socket removes the channel and the kernel session.
"""

import os

from sluice.hal.net import sysio

DEV_PPP = "/dev/ppp"
IFNAMSIZ = 16
SIOCSIFNAME = 0x8923  # not _IOC-encoded: the same number on every architecture


def ioctls(machine=None):
    """The PPP ioctl numbers for this architecture (Linux include/uapi/linux/ppp-ioctl.h)."""
    def t(d, nr):
        return sysio.ioc(d, "t", nr, 4 if d != "n" else 0, machine)

    return {"PPPIOCGCHAN": t("r", 55), "PPPIOCATTCHAN": t("w", 56), "PPPIOCDISCONN": t("n", 57),
            "PPPIOCCONNECT": t("w", 58), "PPPIOCDETACH": t("w", 60), "PPPIOCNEWUNIT": t("rw", 62),
            "PPPIOCGUNIT": t("r", 86), "PPPIOCSMRU": t("w", 82), "PPPIOCGFLAGS": t("r", 90),
            "PPPIOCSFLAGS": t("w", 89)}


class PppUnit:
    """One kernel PPP link: the channel fd (LCP/auth frames), the unit fd (NCP frames) and the netdev name."""

    __slots__ = ("chan_fd", "unit_fd", "unit", "ifname", "channel")

    def __init__(self, chan_fd, unit_fd, unit, ifname, channel):
        self.chan_fd = chan_fd    # /dev/ppp attached to the channel: LCP, PAP, CHAP, EAP frames
        self.unit_fd = unit_fd    # /dev/ppp owning the unit: IPCP, IPv6CP, CCP frames
        self.unit = unit          # N of pppN
        self.ifname = ifname      # the netdev's name now
        self.channel = channel    # the channel index

    def __repr__(self):
        return "PppUnit(%s unit=%d channel=%d)" % (self.ifname, self.unit, self.channel)

    def close(self):
        for fd in (self.chan_fd, self.unit_fd):
            if fd is not None and fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.chan_fd = self.unit_fd = -1


def _open_ppp():
    return os.open(DEV_PPP, os.O_RDWR | getattr(os, "O_NONBLOCK", 0o4000) | getattr(os, "O_CLOEXEC", 0))


def rename_netdev(old, new):
    """SIOCSIFNAME: rename a (down) network device."""
    from sluice.hal.net.sockets import socket

    if not new or len(new.encode()) >= IFNAMSIZ:
        raise ValueError("interface name %r must be 1 to 15 bytes" % (new,))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # struct ifreq: ifr_name[16], then the union (ifr_newname[16]); 40 bytes covers 64-bit layouts.
        buf = bytearray(40)
        buf[0:len(old)] = old.encode()
        buf[16:16 + len(new)] = new.encode()
        sysio.ioctl(s.fileno(), SIOCSIFNAME, buf)
    finally:
        s.close()


def make_unit(pppox_sock, ifname=None, mru=1500):
    """Channel + unit for a connected PPPoL2TP socket; the netdev renamed to `ifname` when given. -> PppUnit."""
    n = ioctls()
    channel = sysio.ioctl_int(pppox_sock, n["PPPIOCGCHAN"])
    chan_fd = unit_fd = -1
    try:
        chan_fd = _open_ppp()
        sysio.ioctl_int(chan_fd, n["PPPIOCATTCHAN"], channel)
        unit_fd = _open_ppp()
        unit = sysio.ioctl_int(unit_fd, n["PPPIOCNEWUNIT"], -1)
        sysio.ioctl_int(chan_fd, n["PPPIOCCONNECT"], unit)
        sysio.ioctl_int(unit_fd, n["PPPIOCSMRU"], mru)
        name = "ppp%d" % unit
        if ifname and ifname != name:
            rename_netdev(name, ifname)
            name = ifname
        return PppUnit(chan_fd, unit_fd, unit, name, channel)
    except BaseException:
        for fd in (chan_fd, unit_fd):
            if fd >= 0:
                os.close(fd)
        raise


# --- probe -----------------------------------------------------------------------------------------------------

def probe():
    """(ok, reason) for `option datapath 'auto'`: can this kernel carry ESP, L2TPv2 and PPP for us?

    Functional checks, each of which also makes the kernel load the module on demand: a NETLINK_XFRM socket
    (xfrm_user), the generic netlink family `l2tp` (l2tp_netlink), an AF_PPPOX/PX_PROTO_OL2TP socket (l2tp_ppp),
    /dev/ppp (ppp_generic), and the ESP transform itself (esp4, checked by `probe_esp`). `reason` says in plain
    words what is missing and which OpenWrt package brings it."""
    from sluice.hal.net.sockets import socket

    from sluice.hal.net import l2tp_kernel, netlink

    try:
        s = netlink.NetlinkSocket(netlink.NETLINK_XFRM)
        s.close()
    except OSError as e:
        return False, "no kernel IPsec (NETLINK_XFRM: %s): kmod-ipsec4 / xfrm_user missing" % _why(e)
    try:
        l2 = l2tp_kernel.L2tpKernel()
        l2.close()
    except OSError as e:
        return False, "no kernel L2TP netlink (%s): kmod-l2tp / l2tp_netlink missing" % _why(e)
    try:
        p = socket.socket(l2tp_kernel.AF_PPPOX, l2tp_kernel.SOCK_DGRAM, l2tp_kernel.PX_PROTO_OL2TP)
        p.close()
    except OSError as e:
        return False, "no PPP over L2TP sockets (%s): kmod-pppol2tp / l2tp_ppp missing" % _why(e)
    try:
        fd = os.open(DEV_PPP, os.O_RDWR)
        os.close(fd)
    except OSError as e:
        return False, "cannot open %s (%s): kmod-ppp / ppp_generic missing" % (DEV_PPP, _why(e))
    ok, why = probe_esp()
    if not ok:
        return False, why
    return True, "kernel XFRM, L2TP and PPP are there"


def _why(e):
    return getattr(e, "strerror", None) or str(e)


PROBE_SPI = 0x5C5C5C5C
PROBE_SRC = "127.0.0.2"
PROBE_DST = "127.0.0.3"


def probe_esp(transforms=("aes128-sha1",), xfrm_api=None):
    """(ok, reason): add and remove a throw-away SA per transform on loopback addresses (reqid in Sluice's range,
    so a crash in between leaves nothing flush_ours misses). Fails when esp4 or an algorithm is missing.
    xfrm_api: an open sluice.hal.net.xfrm.Xfrm to use (and leave open); default a new one."""
    from sluice.hal.crypto import transforms as tf
    from sluice.hal.net import netlink, xfrm

    x = xfrm_api
    try:
        if x is None:
            x = xfrm.Xfrm()
    except OSError as e:
        return False, "no kernel IPsec (%s)" % _why(e)
    try:
        for name in transforms:
            ek, ak, sl = tf.esp_key_lengths(name)
            spec = xfrm.SaSpec(PROBE_SRC, PROBE_DST, PROBE_SPI, name, bytes(ek), bytes(ak), bytes(sl),
                               reqid=xfrm.REQID_BASE | 0xFFFFFF)
            try:
                x.add_sa(spec)
            except netlink.NetlinkError as e:
                if e.args[0] == 17:     # a leftover of an earlier probe
                    x.delete_sa(PROBE_DST, PROBE_SPI, src=PROBE_SRC)
                    x.add_sa(spec)
                else:
                    return False, "the kernel refuses ESP %s (%s): esp4 or the algorithm missing" % (name, _why(e))
            x.delete_sa(PROBE_DST, PROBE_SPI, src=PROBE_SRC)
    except OSError as e:
        return False, "kernel IPsec probe failed: %s" % _why(e)
    finally:
        if xfrm_api is None:
            x.close()
    return True, "ESP %s in the kernel" % ", ".join(transforms)


def kernel_transforms(candidates, xfrm_api=None):
    """The ESP transform names from `candidates` this kernel can install (for kernel-mode proposals)."""
    out = []
    for name in candidates:
        if probe_esp((name,), xfrm_api)[0]:
            out.append(name)
    return out
