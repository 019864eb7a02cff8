"""Sluice inside a guest against xl2tpd + pppd in the other guest: the fair throughput comparison.

Because the guests' CPU is emulated, Sluice on the host (native CPU) and the kernel stack in a guest cannot
be compared. Here Sluice runs in g2 or g1 under Debian's python3 and python3-cryptography, from the
repository shared read-only over 9p (tag `src`), against the same xl2tpd + pppd peer, so its figures sit
beside ref-l2tp-mschapv2 (kernel l2tp_ppp both ends) on equal terms.

- sluice-guest-lac-<auth>: Sluice client in g2 -> xl2tpd + pppd LNS in g1;
- sluice-guest-lns-<auth>: xl2tpd + pppd LAC in g2 -> Sluice server in g1.
Set-up time: from starting the Sluice process (python start-up included) resp. xl2tpd's dial, to the
addressed interface.
"""

from .. import peers
from .base import (CellFailure, check, install, start_xl2tpd, stop_xl2tpd, guest_logs, save_guest_logs,
                   iperf_guest_to_guest, result)
from .reference import AUTH_IN_LCP, _auth_used, dial_xl2tpd

UP_TIMEOUT = 60.0
SLUICE_DIR = "/opt/sluice"  # /opt/sluice/sluice = firmware/, /opt/sluice/sluice/hal = hal/ (pyproject package-dir)
SLUICE_LOG = "/var/log/sluice.log"


def install_sluice(guest):
    """Mount the repository (9p tag src) and lay out the `sluice` package as pyproject maps it."""
    guest.sh("mkdir -p /src && (mountpoint -q /src || mount -t 9p -o trans=virtio,version=9p2000.L,ro src /src) && "
             "rm -rf %(d)s && mkdir -p %(d)s && cp -r /src/firmware %(d)s/sluice && cp -r /src/hal %(d)s/sluice/hal && "
             "find %(d)s -name __pycache__ -prune -exec rm -rf {} +" % {"d": SLUICE_DIR}, timeout=60)


def _sluice_cmd(role, conf, name):
    return ["env", "PYTHONPATH=" + SLUICE_DIR, "SLUICE_RUNDIR=/run/sluice", "PYTHONUNBUFFERED=1",
            "python3", "-m", "sluice", role, "--config", conf, "--name", name, "-v"]


def _stop(guest, pid):
    if pid:
        # SIGTERM: Sluice sends its StopCCN on the way out; wait (bounded) for it to go.
        guest.ssh("kill %d 2>/dev/null; i=0; while kill -0 %d 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; "
                  "i=$((i+1)); done; kill -9 %d 2>/dev/null; true" % (pid, pid, pid), check=False, timeout=30)


def cell_sluice_guest_lac(bed, auth="mschapv2"):
    lns, lac = bed.g1, bed.g2
    tag = "sluice-guest-lac-" + auth
    install(lns, peers.xl2tpd_lns(auth))
    install_sluice(lac)
    lac.write("/etc/sluice-lab.conf", peers.sluice_client(lns.ip), 0o600)
    pid = None
    try:
        start_xl2tpd(lns)
        up = lac.labctl("spawn-wait", "slc0", UP_TIMEOUT, SLUICE_LOG,
                        *_sluice_cmd("client", "/etc/sluice-lab.conf", "lac"), timeout=UP_TIMEOUT + 20)
        pid = up.get("pid")
        if not up.get("ok"):
            raise CellFailure("Sluice client in %s did not come up: %s\n%s\n%s" % (
                lac.name, up.get("error"), guest_logs(lac, SLUICE_LOG),
                guest_logs(lns, "/var/log/xl2tpd.log", "/var/log/pppd.log")))
        check(up["local"] == peers.POOL_START, "Sluice got %r, expected %s" % (up, peers.POOL_START))
        used, acks = _auth_used(lns.read("/var/log/pppd.log"), auth)
        check(used, "the LNS did not settle on %s (%s): %r" % (auth, AUTH_IN_LCP[auth], acks))
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        tx = iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL)
        rx = iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL, reverse=True)
        return result(up["elapsed"], tx, "Sluice LAC in %s -> xl2tpd+pppd LNS %s, %s, tx %.1f / rx %.1f Mbit/s" % (
            lac.name, lns.name, auth, tx, rx))
    finally:
        save_guest_logs(bed, tag, lac, SLUICE_LOG)
        _stop(lac, pid)
        save_guest_logs(bed, tag, lns, "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lns)


def cell_sluice_guest_lns(bed, auth="mschapv2"):
    srv, lac = bed.g1, bed.g2
    tag = "sluice-guest-lns-" + auth
    install_sluice(srv)
    srv.write("/etc/sluice-lab.conf", peers.sluice_server(srv.ip, auth), 0o600)
    install(lac, peers.xl2tpd_lac(srv.ip, auth))
    pid = None
    try:
        # The server's own TUN gets local_ip as soon as it listens: that is the "ready" signal here.
        ready = srv.labctl("spawn-wait", "sls0", UP_TIMEOUT, SLUICE_LOG,
                           *_sluice_cmd("server", "/etc/sluice-lab.conf", "lns"), timeout=UP_TIMEOUT + 20)
        pid = ready.get("pid")
        if not ready.get("ok"):
            raise CellFailure("Sluice server in %s did not start: %s\n%s" % (
                srv.name, ready.get("error"), guest_logs(srv, SLUICE_LOG)))
        start_xl2tpd(lac)
        up = dial_xl2tpd(lac, UP_TIMEOUT)
        if not up.get("ok"):
            raise CellFailure("the xl2tpd LAC got no ppp0 from Sluice in %s: %s\n%s\n%s" % (
                srv.name, up.get("error"), guest_logs(srv, SLUICE_LOG),
                guest_logs(lac, "/var/log/xl2tpd.log", "/var/log/pppd.log")))
        check(up["local"] == peers.POOL_START and up["peer"] == peers.POOL_LOCAL, "the LAC got %r" % up)
        used, acks = _auth_used(lac.read("/var/log/pppd.log"), auth)
        check(used, "the LAC's pppd did not settle on %s (%s): %r" % (auth, AUTH_IN_LCP[auth], acks))
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        tx = iperf_guest_to_guest(srv, lac, peers.POOL_LOCAL)
        rx = iperf_guest_to_guest(srv, lac, peers.POOL_LOCAL, reverse=True)
        return result(up["elapsed"], tx, "xl2tpd+pppd LAC %s -> Sluice LNS in %s, %s, LAC tx %.1f / rx %.1f Mbit/s" % (
            lac.name, srv.name, auth, tx, rx))
    finally:
        save_guest_logs(bed, tag, lac, "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lac)
        save_guest_logs(bed, tag, srv, SLUICE_LOG)
        _stop(srv, pid)

