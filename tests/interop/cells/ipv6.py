"""IPv6 through the Sluice server to a real pppd client with `+ipv6` (issue 12 part 1). UNTESTED: written
without running the peer lab (`make interop` was off limits when it was written); expect to adjust it on its
first run.

sluice-guest-lns-ipv6: xl2tpd + pppd LAC in g2 with `+ipv6` -> Sluice server in g1 with ipv6 '1' and
ip6prefix '2001:db8:77::/48'. Checks: pppd's IPv6CP comes up (the kernel's ppp0 has fe80::<ifid>), the
guest kernel configures a global address from Sluice's Router Advertisement (SLAAC, accept_ra), and g2 pings
g1's 2001:db8:1::1 (on g1's loopback, reached through sls0 by the RA's default route) and Sluice's
link-local. Documentation prefixes only.
"""

from .. import peers
from .base import CellFailure, check, guest_logs, install, result, save_guest_logs, start_xl2tpd, stop_xl2tpd
from .reference import dial_xl2tpd
from .sluice_guest import SLUICE_LOG, UP_TIMEOUT, _stop, install_sluice, start_server

SERVER_EXTRA = ("option ipv6 '1'", "option ip6prefix '2001:db8:77::/48'", "list dns6 '2001:db8:1::53'",
                "option mtu '1280'")
FAR6 = "2001:db8:1::1"


def cell_sluice_guest_lns_ipv6(bed):
    srv, lac = bed.g1, bed.g2
    tag = "sluice-guest-lns-ipv6"
    install_sluice(srv)
    srv.write("/etc/sluice-lab.conf", peers.sluice_server(srv.ip, "mschapv2", extra=SERVER_EXTRA), 0o600)
    files = peers.xl2tpd_lac(srv.ip, "mschapv2")
    files["/etc/ppp/options.l2tp-client"] += "+ipv6\n"
    install(lac, files)
    pid = None
    try:
        srv.sh("ip -6 addr replace %s/128 dev lo" % FAR6)
        # A host takes RAs while it does not forward (accept_ra 1); ppp0 is made after this, from "default".
        lac.sh("sysctl -qw net.ipv6.conf.default.accept_ra=1 net.ipv6.conf.default.autoconf=1 "
               "net.ipv6.conf.all.forwarding=0")
        pid = start_server(srv, "Sluice server")
        start_xl2tpd(lac)
        up = dial_xl2tpd(lac, UP_TIMEOUT)
        if not up.get("ok"):
            raise CellFailure("the xl2tpd LAC got no ppp0 from Sluice in %s: %s\n%s\n%s" % (
                srv.name, up.get("error"), guest_logs(srv, SLUICE_LOG),
                guest_logs(lac, "/var/log/xl2tpd.log", "/var/log/pppd.log")))
        # IPv6CP up in pppd, then SLAAC from Sluice's RA in the guest kernel.
        lac.sh("i=0; until ip -6 addr show dev ppp0 scope global | grep -q '2001:db8:77:'; do "
               "[ $i -lt 100 ] || exit 1; sleep 0.2; i=$((i+1)); done", timeout=40)
        addrs = lac.sh("ip -6 addr show dev ppp0")
        check("fe80::" in addrs and "2001:db8:77:" in addrs, "ppp0 in %s has no IPv6 from Sluice:\n%s\n%s" % (
            lac.name, addrs, guest_logs(srv, SLUICE_LOG)))
        check("local  LL address" in lac.read("/var/log/pppd.log") or "local LL address" in
              lac.read("/var/log/pppd.log"), "pppd did not report IPv6CP up")
        lac.sh("ping -6 -c 2 -i 0.3 -W 3 %s" % FAR6, timeout=20)
        router = lac.sh("ip -6 route show default dev ppp0").split()
        check("via" in router, "no default route from the RA on ppp0: %r" % router)
        lac.sh("ping -6 -c 1 -W 3 %s%%ppp0" % router[router.index("via") + 1], timeout=10)
        log = srv.read(SLUICE_LOG)
        check("IPv6 up for" in log, "Sluice did not log the session's IPv6")
        return result(up["elapsed"], None, "pppd +ipv6 LAC %s -> Sluice LNS in %s: SLAAC from the RA, ping %s "
                      "and Sluice's link-local" % (lac.name, srv.name, FAR6))
    finally:
        save_guest_logs(bed, tag, lac, "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lac)
        _stop(srv, pid)
        save_guest_logs(bed, tag, srv, SLUICE_LOG)
