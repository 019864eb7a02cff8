"""Sluice's kernel data path in a Debian 13 guest (kernel 6.12) against strongSwan + xl2tpd + pppd.

The same set-up as sluice-guest-lac-ipsec / sluice-guest-lns-ipsec (sluice_guest.py), with
`option datapath 'kernel'`: ESP in XFRM, L2TP data in l2tp_core, PPP data through a kernel ppp unit; Sluice
keeps IKE, L2TP control and PPP negotiation. Testbed `kernel-peer`: Sluice in g2 (Debian 13, kernel 6.12), the
reference stack in g1 (the Debian 12 image of the reference cells).

- sluice-guest-lac-kernel: Sluice client in g2 -> strongSwan + xl2tpd + pppd LNS in g1;
- sluice-guest-lns-kernel: strongSwan + xl2tpd + pppd LAC in g1 -> Sluice server in g2.

Each checks: the ESP transform is the reference cell's (peer kernel and Sluice's log); Sluice's SAs are in its
guest's kernel (`ip xfrm state`: reqid in Sluice's range 0x5c......, mode transport) with byte counters that
grew by the transfers; the session is a kernel ppp unit (`ip -d link`: ppp, named slc0 / sls0-<sid>) and a
kernel L2TP tunnel (`ip l2tp show tunnel`); `sluice status --json` says datapath "kernel"; tshark on the lab
bridge during set-up sees IKE and ESP only (no plaintext L2TP); after Sluice stops (SIGTERM) its guest holds no
SA, policy, L2TP tunnel or ppp unit of ours, and the peer's SA is gone (ISAKMP Delete). The LAC cell then dials
again and is killed with SIGKILL: the kernel drops the tunnel and unit with the sockets, our SAs and policies
stay, and the next start removes them (its log says how many) before it dials; stopped, nothing is left.
Figures as the sluice-guest cells: set-up, iperf3 both ways, the Sluice process's VmRSS. Set-up spans what
ref-l2tp-ipsec-strongswan's does (IKE + L2TP/PPP, daemons already running): the LNS cell `ipsec up` + the xl2tpd
dial, the LAC cell Sluice's dial to up (its "connected: ..., N s"), with the kernels' crypto modules loaded
first in both guests (`warm_xfrm`, `warm_crypto_modules`: OpenWrt loads kmod-crypto-* at boot, Debian at
first use); the LAC's detail also gives spawn to up (Python's start and `crypto auto` on top).
"""

import json
import re
import time

from .. import peers
from . import capture
from .base import (CellFailure, check, install, start_xl2tpd, stop_xl2tpd, IpsecStack, guest_logs, save_guest_logs,
                   iperf_guest_to_guest, result, rss_mb, fmt_rss, warm_xfrm)
from .reference import _esp_counters
from .sluice_guest import (SLUICE_DIR, SLUICE_LOG, UP_TIMEOUT, _esp_checked, _sluice_cmd, _stop, _stop_checked,
                           dial_reference_lac, install_sluice, start_server)

OURS = re.compile(r"reqid (\d+)")
RESTART_WAIT = 20.0


def _our_states(text):
    """The XFRM states/policies of Sluice's reqid range (0x5c000000..0x5cffffff) in `ip xfrm` output."""
    n = 0
    for m in OURS.finditer(text):
        if int(m.group(1)) >> 24 == 0x5C:
            n += 1
    return n


def _kernel_view(g):
    return {"state": g.sh("ip -s xfrm state"), "policy": g.sh("ip xfrm policy"),
            "tunnel": g.sh("ip l2tp show tunnel 2>/dev/null; true"), "link": g.sh("ip -d -o link show"),
            "nft": g.sh("command -v nft >/dev/null && nft list tables 2>/dev/null; true")}


def _status(g, name):
    p = g.ssh("env PYTHONPATH=%s SLUICE_RUNDIR=/run/sluice python3 -m sluice status --json --name %s" % (
        SLUICE_DIR, name), check=False, timeout=60)
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise CellFailure("sluice status --json --name %s printed no JSON:\n%s\n%s" % (name, p.stdout, p.stderr))


def _check_kernel_up(g, name, unit_re, peer_mru=peers.PPPD_MRU):
    """Sluice's kernel state with the session up; peer_mru: the MRU the peer asked for (None: not checked)."""
    v = _kernel_view(g)
    check(_our_states(v["state"]) >= 2 and "mode transport" in v["state"],
          "%s: no XFRM state of Sluice's reqid range:\n%s" % (g.name, v["state"]))
    check(_our_states(v["policy"]) >= 2, "%s: no XFRM policy of Sluice's:\n%s" % (g.name, v["policy"]))
    check("Tunnel" in v["tunnel"], "%s: no kernel L2TP tunnel:\n%s" % (g.name, v["tunnel"]))
    units = [l for l in v["link"].splitlines() if re.search(unit_re, l) and "link/ppp" in l]
    check(units, "%s: no ppp unit matching %r:\n%s" % (g.name, unit_re, v["link"]))
    st = _status(g, name)
    check(st.get("datapath") == "kernel", "%s: sluice status says datapath %r" % (g.name, st.get("datapath")))
    if st.get("role") == "server" and g.sh("command -v nft || true").strip():
        check("table inet sluice_" in v["nft"], "%s: no source-check table of Sluice's in nftables:\n%s" % (
            g.name, v["nft"]))
    sessions = [s for t in st.get("tunnels", []) for s in t.get("sessions", [])]
    check(sessions and all(s.get("datapath") == "kernel" for s in sessions),
          "%s: sessions in status: %r" % (g.name, sessions))
    unit = re.search(r"^\d+: ([^:@]+)", units[0]).group(1)
    if peer_mru is not None:
        # The peer's LCP MRU (pppd's is below our option mtu 1400) caps what the unit sends.
        mtu = re.search(r" mtu (\d+) ", units[0])
        check(mtu and int(mtu.group(1)) == peer_mru, "%s: unit %s has %s, the peer's MRU is %d" % (
            g.name, unit, mtu.group(0).strip() if mtu else "no mtu", peer_mru))
    return unit, _our_states(v["state"])


def _check_clean(g):
    v = _kernel_view(g)
    left = []
    if _our_states(v["state"]):
        left.append("XFRM state")
    if _our_states(v["policy"]):
        left.append("XFRM policy")
    if "Tunnel" in v["tunnel"]:
        left.append("L2TP tunnel")
    if "link/ppp" in v["link"]:
        left.append("ppp unit")
    if "sluice_" in v["nft"]:
        left.append("nftables table (source check)")
    check(not left, "%s: Sluice left %s behind:\n%s" % (g.name, ", ".join(left), json.dumps(v, indent=1)[-3000:]))


def _wire(cap):
    """tshark over the set-up capture: no plaintext L2TP, some ESP; '' without tshark."""
    cap.stop()
    d = capture.dissect(cap.path)
    if d is None:
        return "no tshark: wire not checked"
    check(d["frames"] == 0, "plaintext L2TP on the wire: %r" % (d["control"],))
    check(not d["errors"], "tshark flags malformed frames: %r" % d["errors"][:5])
    esp = len(capture.tshark_fields(cap.path, "esp", "ip.src"))
    isakmp = len(capture.tshark_fields(cap.path, "isakmp", "ip.src"))
    check(esp > 0, "tshark saw no ESP during set-up")
    return "tshark: %d IKE, %d ESP, 0 plaintext L2TP frames" % (isakmp, esp)


def _crash_and_restart(g, iface, role, name):
    """kill -9 with the session up: the kernel drops the L2TP tunnel and ppp unit with the sockets, our SAs and
    policies stay; the next start removes them ("left behind" in the log) before it dials. Returns a note."""
    cmd = _sluice_cmd(role, "/etc/sluice-lab.conf", name)
    up = g.labctl("spawn-wait", iface, UP_TIMEOUT, SLUICE_LOG, *cmd, timeout=UP_TIMEOUT + 20)
    pid = up.get("pid")
    if not up.get("ok"):
        _stop(g, pid)
        raise CellFailure("Sluice did not come up again in %s: %s\n%s" % (g.name, up.get("error"),
                                                                        guest_logs(g, SLUICE_LOG)))
    g.ssh("kill -9 %d" % pid, check=False)
    time.sleep(1.0)
    v = _kernel_view(g)
    left = _our_states(v["state"])
    check(left >= 2, "%s: after kill -9 no SA of ours is left (the test expects the kernel to keep them)" % g.name)
    check("Tunnel" not in v["tunnel"] and "link/ppp" not in v["link"],
          "%s: the kernel kept the L2TP tunnel or ppp unit of a killed process:\n%s" % (g.name, v))
    # Whether this dial comes up is the peer's business: xl2tpd on Debian 12's 6.1 kernel still holds the killed
    # client's tunnel on a socket connected to the same address and port, and before the 2024 l2tp_core series
    # that socket takes the new session's data (the kernel-hal-two-one-address-6.1 cell shows the limitation).
    up = g.labctl("spawn-wait", iface, RESTART_WAIT, SLUICE_LOG, *cmd, timeout=RESTART_WAIT + 20)
    pid = up.get("pid")
    try:
        log = g.read(SLUICE_LOG)
        m = re.search(r"removed (\d+) XFRM states and (\d+) policies an earlier run left behind", log)
        check(m and int(m.group(1)) >= 2, "%s: no leftovers removed at start:\n%s" % (g.name, log[-2000:]))
    finally:
        _stop(g, pid)
    _check_clean(g)
    return "kill -9 left %d SAs (no tunnel, no unit), the next start removed %s SAs + %s policies" % (
        left, m.group(1), m.group(2))


def warm_crypto_modules(g):
    """Load the crypto modules of every ESP transform Sluice knows in `g`'s kernel, as a router's boot does
    (OpenWrt's kmod-crypto-* packages AutoLoad them, /etc/modules.d/09-crypto-*); Debian loads them at first
    use, which under TCG put about 1.5 s of modprobe into the first start's kernel probe. Sluice's own probe,
    run once before the measured start."""
    g.sh("env PYTHONPATH=%s python3 -c 'from sluice.hal.crypto import transforms as t; "
         "from sluice.hal.net.ppp_kernel import kernel_transforms; print(kernel_transforms(sorted(t.ESP)))'"
         % SLUICE_DIR, timeout=120)


def _conf(text):
    return text.replace("    option datapath 'user'", "    option datapath 'kernel'", 1)


def cell_lac_kernel(bed):
    lns, lac = bed.g1, bed.g2
    stack = IpsecStack("strongswan")
    tag = "sluice-guest-lac-kernel"
    install(lns, dict(stack.files(lns, None), **peers.xl2tpd_lns("mschapv2")))
    install_sluice(lac)
    lac.write("/etc/sluice-lab.conf", _conf(peers.sluice_client(lns.ip, ipsec=True)), 0o600)
    pid = None
    cap = capture.Capture(bed.lab, tag + "-setup", capture.IPSEC_FILTER, 2048)
    try:
        stack.start(lns)
        start_xl2tpd(lns)
        warm_xfrm(lns)
        warm_crypto_modules(lac)
        cap.start()
        up = lac.labctl("spawn-wait", "slc0", UP_TIMEOUT, SLUICE_LOG,
                        *_sluice_cmd("client", "/etc/sluice-lab.conf", "lac"), timeout=UP_TIMEOUT + 20)
        pid = up.get("pid")
        if not up.get("ok"):
            raise CellFailure("Sluice client (kernel path) in %s did not come up: %s\n%s\n%s" % (
                lac.name, up.get("error"), guest_logs(lac, SLUICE_LOG),
                guest_logs(lns, "/var/log/xl2tpd.log", "/var/log/pppd.log", stack.log)))
        check(up["local"] == peers.POOL_START, "Sluice got %r, expected %s" % (up, peers.POOL_START))
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        wire = _wire(cap)
        unit, nstates = _check_kernel_up(lac, "lac", r"\bslc0\b")
        esp = _esp_checked(lac, lns)
        before = _esp_counters(lns)
        ours_before = _esp_counters(lac)
        tx = iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL)
        rx = iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL, reverse=True)
        rss = {lac.name: rss_mb(lac, "sluice=%d" % pid)}
        ours_after = _esp_counters(lac)
        check(ours_after[1] - ours_before[1] > 1000000, "Sluice's kernel SAs hardly moved (%r -> %r)" % (
            ours_before, ours_after))
        dial = re.search(r"connected: .*, ([\d.]+) s", lac.read(SLUICE_LOG))
        check(dial, "no 'connected: ..., N s' line in Sluice's log")
        dial_s = float(dial.group(1))
        # Set-up column: dial to the addressed unit, the span of ref-l2tp-ipsec-strongswan's "IKE + L2TP/PPP"
        # (from `ipsec up` / the xl2tpd dial, daemons running); spawn to up adds Python's start and crypto auto.
        detail = ("Sluice LAC (kernel path) in %s -> strongSwan+xl2tpd+pppd LNS %s, mschapv2, tx %.1f / rx %.1f "
                  "Mbit/s; set-up = dial to slc0 up %.2f s (spawn to up %.2f s); ppp unit %s, %d XFRM states of "
                  "ours; %s" % (lac.name, lns.name, tx, rx, dial_s, up["elapsed"], unit, nstates, wire))
        detail += "; %s, %d packets" % (esp, _stop_checked(stack, lns, lac, pid, before))
        pid = None
        _check_clean(lac)
        crash = _crash_and_restart(lac, "slc0", "client", "lac")
        return result(dial_s, tx, "%s; nothing left behind; %s; %s" % (detail, crash, fmt_rss(rss)), rss,
                      mbps_rx=rx)
    finally:
        cap.stop()
        _stop(lac, pid)
        save_guest_logs(bed, tag, lac, SLUICE_LOG)
        save_guest_logs(bed, tag, lns, "/var/log/xl2tpd.log", "/var/log/pppd.log", stack.log)
        stop_xl2tpd(lns)
        stack.stop(lns)


def cell_lns_kernel(bed):
    srv, lac = bed.g2, bed.g1
    stack = IpsecStack("strongswan")
    tag = "sluice-guest-lns-kernel"
    install_sluice(srv)
    srv.write("/etc/sluice-lab.conf", _conf(peers.sluice_server(srv.ip, "mschapv2", ipsec=True)), 0o600)
    install(lac, dict(stack.files(lac, srv.ip), **peers.xl2tpd_lac(srv.ip, "mschapv2")))
    pid = None
    cap = capture.Capture(bed.lab, tag + "-setup", capture.IPSEC_FILTER, 2048)
    try:
        pid = start_server(srv, "Sluice server (kernel path)")
        cap.start()
        ike, up = dial_reference_lac(lac, srv, stack, "Sluice (kernel path)")
        check(up["local"] == peers.POOL_START and up["peer"] == peers.POOL_LOCAL, "the LAC got %r" % up)
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        wire = _wire(cap)
        unit, nstates = _check_kernel_up(srv, "lns", r"\bsls0-\d+\b")
        esp = _esp_checked(srv, lac)
        before = _esp_counters(lac)
        ours_before = _esp_counters(srv)
        tx = iperf_guest_to_guest(srv, lac, peers.POOL_LOCAL)
        rx = iperf_guest_to_guest(srv, lac, peers.POOL_LOCAL, reverse=True)
        rss = {srv.name: rss_mb(srv, "sluice=%d" % pid)}
        ours_after = _esp_counters(srv)
        check(ours_after[1] - ours_before[1] > 1000000, "Sluice's kernel SAs hardly moved (%r -> %r)" % (
            ours_before, ours_after))
        detail = ("strongSwan+xl2tpd+pppd LAC %s -> Sluice LNS (kernel path) in %s, mschapv2, LAC tx %.1f / rx %.1f "
                  "Mbit/s; IKE %.2f s + L2TP/PPP %.2f s; ppp unit %s, %d XFRM states of ours; %s" % (
                      lac.name, srv.name, tx, rx, ike, up["elapsed"], unit, nstates, wire))
        detail += "; %s, %d packets" % (esp, _stop_checked(stack, lac, srv, pid, before))
        pid = None
        _check_clean(srv)
        return result(ike + up["elapsed"], tx, "%s; nothing left behind; %s" % (detail, fmt_rss(rss)), rss,
                      mbps_rx=rx)
    finally:
        cap.stop()
        save_guest_logs(bed, tag, lac, "/var/log/xl2tpd.log", "/var/log/pppd.log", stack.log)
        stop_xl2tpd(lac)
        stack.stop(lac)
        _stop(srv, pid)
        save_guest_logs(bed, tag, srv, SLUICE_LOG)
