"""Sluice inside a guest against xl2tpd + pppd in the other guest: the fair throughput comparison.

Because the guests' CPU is emulated, Sluice on the host (native CPU) and the kernel stack in a guest cannot
be compared. Here Sluice runs in g2 or g1 under Debian's python3 and python3-cryptography, from the
repository shared read-only over 9p (tag `src`), against the same xl2tpd + pppd peer, so its figures sit
beside ref-l2tp-mschapv2 (kernel l2tp_ppp both ends) on equal terms.

- sluice-guest-lac-<auth>: Sluice client in g2 -> xl2tpd + pppd LNS in g1;
- sluice-guest-lns-<auth>: xl2tpd + pppd LAC in g2 -> Sluice server in g1;
- sluice-guest-lac-ipsec / sluice-guest-lns-ipsec: the same with ipsec '1' against strongSwan + xl2tpd + pppd
  configured as in ref-l2tp-ipsec-strongswan, so they sit beside that cell: the same ESP transform (checked,
  from the kernel's XFRM state and Sluice's log), ESP counters that grow with the transfer, and the peer's SA
  gone within seconds of Sluice stopping (ISAKMP Delete).
Set-up time: from starting the Sluice process (python start-up included) resp. strongSwan's `ipsec up` plus
xl2tpd's dial, to the addressed interface. RSS: the Sluice process's VmRSS with the session up, after the
transfers (the reference cells give xl2tpd, pppd and charon's at each end).
"""

import re
import time

from .. import peers
from .base import (CellFailure, check, install, start_xl2tpd, stop_xl2tpd, IpsecStack, guest_logs, save_guest_logs,
                   iperf_guest_to_guest, result, rss_mb, fmt_rss)
from .reference import AUTH_IN_LCP, _auth_used, _esp_counters, dial_xl2tpd, esp_transform

UP_TIMEOUT = 60.0
SLUICE_DIR = "/opt/sluice"  # /opt/sluice/sluice = firmware/, /opt/sluice/sluice/hal = hal/ (pyproject package-dir)
SLUICE_LOG = "/var/log/sluice.log"
TEARDOWN_TIMEOUT = 15.0
# What ref-l2tp-ipsec-strongswan negotiates: both ends offer peers.ESP_PROPOSALS and the first one wins.
REFERENCE_ESP = peers.ESP_PROPOSALS.rstrip("!").split(",")[0]


def install_sluice(guest):
    """Mount the repository (9p tag src) and lay out the `sluice` package as pyproject maps it, byte-compiled
    as an installed package ships (else every cell's set-up time would include compiling it under TCG)."""
    guest.sh("mkdir -p /src && (mountpoint -q /src || mount -t 9p -o trans=virtio,version=9p2000.L,ro src /src) && "
             "rm -rf %(d)s && mkdir -p %(d)s && cp -r /src/firmware %(d)s/sluice && cp -r /src/hal %(d)s/sluice/hal && "
             "find %(d)s -name __pycache__ -prune -exec rm -rf {} + && python3 -m compileall -q %(d)s >/dev/null"
             % {"d": SLUICE_DIR}, timeout=120)


def _sluice_cmd(role, conf, name):
    return ["env", "PYTHONPATH=" + SLUICE_DIR, "SLUICE_RUNDIR=/run/sluice", "PYTHONUNBUFFERED=1",
            "python3", "-m", "sluice", role, "--config", conf, "--name", name, "-v"]


def _wait_listening(guest):
    """The server's TUN is addressed before it binds its ports (with ipsec '1', after the crypto backends'
    self-test, seconds under TCG): wait for its "server up" line, or a peer's first packet is refused."""
    r = guest.labctl("timed", UP_TIMEOUT, "sh", "-c", "until grep -q 'server up' %s; do sleep 0.1; done" % SLUICE_LOG,
                     timeout=UP_TIMEOUT + 20)
    check(r.get("ok"), "Sluice in %s did not say 'server up'\n%s" % (guest.name, guest_logs(guest, SLUICE_LOG)))


def _crypto_choose_s(guest):
    """Seconds Sluice's `crypto auto` spends at start (every backend's known answers, then a timing), which the
    LAC's set-up includes; run after the cell's figures were taken, so that it warms no cache for them."""
    r = guest.labctl("timed", UP_TIMEOUT, "env", "PYTHONPATH=" + SLUICE_DIR, "python3", "-c",
                     "import time; from sluice.hal.crypto import select; t = time.monotonic(); select.choose(); "
                     "print('%.2f' % (time.monotonic() - t))", timeout=UP_TIMEOUT + 20)
    check(r.get("ok"), "%s: timing crypto auto failed: %s" % (guest.name, r.get("output")))
    return float(r["output"].split()[-1])


def start_server(guest, what="Sluice server"):
    """Start the Sluice server of /etc/sluice-lab.conf in `guest` and wait until it listens; its pid. A server
    that does not come up is stopped and the cell fails with its log."""
    ready = guest.labctl("spawn-wait", "sls0", UP_TIMEOUT, SLUICE_LOG,
                         *_sluice_cmd("server", "/etc/sluice-lab.conf", "lns"), timeout=UP_TIMEOUT + 20)
    pid = ready.get("pid")
    try:
        if not ready.get("ok"):
            raise CellFailure("%s in %s did not start: %s\n%s" % (what, guest.name, ready.get("error"),
                                                                  guest_logs(guest, SLUICE_LOG)))
        _wait_listening(guest)
    except BaseException:
        _stop(guest, pid)
        raise
    return pid


def dial_reference_lac(lac, srv, stack=None, what="Sluice"):
    """The reference LAC in `lac` (strongSwan when `stack`, then xl2tpd + pppd) dials the Sluice server in
    `srv`: (IKE seconds, dial_xl2tpd's answer). Fails the cell with both sides' logs."""
    ike = 0.0
    if stack is not None:
        stack.start(lac)
        ok, r = stack.up(lac)
        if not ok:
            raise CellFailure("strongSwan in %s could not bring up IPsec with %s in %s (rc %s):\n%s\n%s" % (
                lac.name, what, srv.name, r.get("rc"), r.get("output", "")[-1500:], guest_logs(srv, SLUICE_LOG)))
        ike = r["elapsed"]
    start_xl2tpd(lac)
    up = dial_xl2tpd(lac, UP_TIMEOUT)
    if not up.get("ok"):
        raise CellFailure("the xl2tpd LAC got no ppp0 from %s in %s: %s\n%s\n%s" % (
            what, srv.name, up.get("error"), guest_logs(srv, SLUICE_LOG),
            guest_logs(lac, "/var/log/xl2tpd.log", "/var/log/pppd.log")))
    return ike, up


def _stop(guest, pid):
    if pid:
        # SIGTERM: Sluice sends its StopCCN on the way out; wait (bounded) for it to go.
        guest.ssh("kill %d 2>/dev/null; i=0; while kill -0 %d 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; "
                  "i=$((i+1)); done; kill -9 %d 2>/dev/null; true" % (pid, pid, pid), check=False, timeout=30)


def _esp_checked(sluice_guest, peer):
    """The ESP transform, the same in the peer's kernel, in Sluice's log and in ref-l2tp-ipsec-strongswan
    (else the throughput figures would not compare like with like); plus Sluice's crypto backend."""
    log = sluice_guest.read(SLUICE_LOG)
    ours = re.search(r"ESP SA (\S+) with", log)
    backend = re.search(r"crypto backend: (\S+)", log)
    kernel = esp_transform(peer)
    check(ours and kernel == ours.group(1) == REFERENCE_ESP,
          "ESP transform: %s's kernel %s, Sluice %s, ref-l2tp-ipsec-strongswan %s" % (
              peer.name, kernel, ours and ours.group(1), REFERENCE_ESP))
    if "ESP is the kernel's (XFRM)" in log:
        return "ESP %s in both kernels (Sluice's IKE on backend %s)" % (kernel, backend.group(1) if backend else "?")
    return "ESP %s (Sluice backend %s)" % (kernel, backend.group(1) if backend else "?")


def _stop_checked(stack, peer, sluice_guest, pid, before):
    """ESP carried the transfers (the peer's counters); then stop Sluice and expect its ISAKMP Delete to take
    the peer's SA within seconds. Returns the ESP packet count."""
    after = _esp_counters(peer)
    check(after[1] - before[1] > 1000000, "ESP counters hardly moved (%r -> %r)" % (before, after))
    _stop(sluice_guest, pid)
    deadline = time.monotonic() + TEARDOWN_TIMEOUT
    while stack.has_sa(peer, sluice_guest.ip) and time.monotonic() < deadline:
        time.sleep(0.3)
    check(not stack.has_sa(peer, sluice_guest.ip), "%s still holds the SA %.0f s after Sluice stopped in %s" % (
        peer.name, TEARDOWN_TIMEOUT, sluice_guest.name))
    return after[0] - before[0]


def cell_sluice_guest_lac(bed, auth="mschapv2", ipsec=False):
    lns, lac = bed.g1, bed.g2
    stack = IpsecStack("strongswan") if ipsec else None
    tag = "sluice-guest-lac-" + ("ipsec" if ipsec else auth)
    install(lns, dict(stack.files(lns, None), **peers.xl2tpd_lns(auth)) if ipsec else peers.xl2tpd_lns(auth))
    install_sluice(lac)
    lac.write("/etc/sluice-lab.conf", peers.sluice_client(lns.ip, ipsec=ipsec), 0o600)
    pid = None
    try:
        if ipsec:
            stack.start(lns)
        start_xl2tpd(lns)
        up = lac.labctl("spawn-wait", "slc0", UP_TIMEOUT, SLUICE_LOG,
                        *_sluice_cmd("client", "/etc/sluice-lab.conf", "lac"), timeout=UP_TIMEOUT + 20)
        pid = up.get("pid")
        if not up.get("ok"):
            raise CellFailure("Sluice client in %s did not come up: %s\n%s\n%s" % (
                lac.name, up.get("error"), guest_logs(lac, SLUICE_LOG),
                guest_logs(lns, "/var/log/xl2tpd.log", "/var/log/pppd.log", *([stack.log] if ipsec else []))))
        check(up["local"] == peers.POOL_START, "Sluice got %r, expected %s" % (up, peers.POOL_START))
        used, acks = _auth_used(lns.read("/var/log/pppd.log"), auth)
        check(used, "the LNS did not settle on %s (%s): %r" % (auth, AUTH_IN_LCP[auth], acks))
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        esp = _esp_checked(lac, lns) if ipsec else None
        before = _esp_counters(lns) if ipsec else None
        tx = iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL)
        rx = iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL, reverse=True)
        rss = {lac.name: rss_mb(lac, "sluice=%d" % pid)}
        # Sluice's own figure starts at its dial, after Python start-up: the set-up figure's split.
        dial = re.search(r"connected: .*, ([\d.]+) s", lac.read(SLUICE_LOG))
        detail = "Sluice LAC in %s -> %sxl2tpd+pppd LNS %s, %s, tx %.1f / rx %.1f Mbit/s; dial to up %s s" % (
            lac.name, "strongSwan+" if ipsec else "", lns.name, auth, tx, rx, dial.group(1) if dial else "?")
        if ipsec:
            detail += "; %s, %d packets" % (esp, _stop_checked(stack, lns, lac, pid, before))
            pid = None
            detail += "; crypto auto (in the dial) timed alone %.1f s" % _crypto_choose_s(lac)
        return result(up["elapsed"], tx, "%s; %s" % (detail, fmt_rss(rss)), rss, mbps_rx=rx)
    finally:
        _stop(lac, pid)
        save_guest_logs(bed, tag, lac, SLUICE_LOG)
        save_guest_logs(bed, tag, lns, "/var/log/xl2tpd.log", "/var/log/pppd.log", *([stack.log] if ipsec else []))
        stop_xl2tpd(lns)
        if ipsec:
            stack.stop(lns)


def cell_sluice_guest_lns(bed, auth="mschapv2", ipsec=False):
    srv, lac = bed.g1, bed.g2
    stack = IpsecStack("strongswan") if ipsec else None
    tag = "sluice-guest-lns-" + ("ipsec" if ipsec else auth)
    install_sluice(srv)
    srv.write("/etc/sluice-lab.conf", peers.sluice_server(srv.ip, auth, ipsec=ipsec), 0o600)
    files = peers.xl2tpd_lac(srv.ip, auth)
    install(lac, dict(stack.files(lac, srv.ip), **files) if ipsec else files)
    pid = None
    try:
        # The server's own TUN gets local_ip at start, then start_server waits until its ports are bound.
        pid = start_server(srv)
        ike, up = dial_reference_lac(lac, srv, stack if ipsec else None)
        check(up["local"] == peers.POOL_START and up["peer"] == peers.POOL_LOCAL, "the LAC got %r" % up)
        used, acks = _auth_used(lac.read("/var/log/pppd.log"), auth)
        check(used, "the LAC's pppd did not settle on %s (%s): %r" % (auth, AUTH_IN_LCP[auth], acks))
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        esp = _esp_checked(srv, lac) if ipsec else None
        before = _esp_counters(lac) if ipsec else None
        tx = iperf_guest_to_guest(srv, lac, peers.POOL_LOCAL)
        rx = iperf_guest_to_guest(srv, lac, peers.POOL_LOCAL, reverse=True)
        rss = {srv.name: rss_mb(srv, "sluice=%d" % pid)}
        detail = "%sxl2tpd+pppd LAC %s -> Sluice LNS in %s, %s, LAC tx %.1f / rx %.1f Mbit/s" % (
            "strongSwan+" if ipsec else "", lac.name, srv.name, auth, tx, rx)
        if ipsec:
            detail += "; IKE %.2f s + L2TP/PPP %.2f s; %s, %d packets" % (
                ike, up["elapsed"], esp, _stop_checked(stack, lac, srv, pid, before))
            pid = None
        return result(ike + up["elapsed"], tx, "%s; %s" % (detail, fmt_rss(rss)), rss, mbps_rx=rx)
    finally:
        save_guest_logs(bed, tag, lac, "/var/log/xl2tpd.log", "/var/log/pppd.log", *([stack.log] if ipsec else []))
        stop_xl2tpd(lac)
        if ipsec:
            stack.stop(lac)
        _stop(srv, pid)
        save_guest_logs(bed, tag, srv, SLUICE_LOG)
