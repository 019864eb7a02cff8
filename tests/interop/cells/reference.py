"""Cells that need neither IPsec in Sluice nor the Sluice engine: they prove the lab and give reference figures.

- boot: each guest boots, has /dev/ppp, loaded l2tp_ppp/xfrm/af_alg (AF_ALG HMAC-SHA1 matches hashlib),
  and answers ping from the host side; set-up time is the boot time (QEMU start to ssh).
- link: plain guest <-> guest TCP throughput (the ceiling every tunnel figure compares with).
- ref-l2tp-<auth>: xl2tpd + pppd LAC (g2) <-> xl2tpd + pppd LNS (g1), kernel data path, ppp0 up and ping.
- ref-ipsec-strongswan: strongSwan IKEv1 Main + Quick Mode, transport mode for UDP 1701, g2 -> g1.
- ref-l2tp-ipsec-strongswan: L2TP/IPsec between the two, the full stack Sluice replaces, with ESP counted.
- ref-ipsec-libreswan: strongSwan (g2) initiating to libreswan (g1), IKEv1 transport.
"""

import re

from .. import peers
from .base import (CellFailure, check, install, start_xl2tpd, stop_xl2tpd, start_strongswan, stop_strongswan,
                   start_libreswan, stop_libreswan, guest_logs, iperf_guest_to_guest, result, STRONGSWAN_LOGGING)

# What pppd's debug log shows in the LCP ConfAck that settles the authentication protocol (pppd 2.4.9,
# lcp.c print_string of CI_AUTHTYPE): how a cell checks which method was really used.
AUTH_IN_LCP = {"mschapv2": "<auth chap MS-v2>", "chap": "<auth chap MD5>", "pap": "<auth pap>"}


def cell_boot(bed):
    details = []
    for g in bed.guests:
        info = g.labctl("check-boot")
        check(info.get("ok"), "%s (%s): boot check failed: %r" % (g.name, g.image.flavour, info))
        bed.lab.ns_run("ping", "-c", "1", "-W", "3", g.ip, timeout=10)
        details.append("%s %s kernel %s" % (g.name, g.image.flavour, info["kernel"]))
    return result(setup_s=max(bed.boot_s), detail="; ".join(details))


def cell_link(bed):
    g1, g2 = bed.g1, bed.g2
    g2.sh("ping -c 1 -W 3 %s" % g1.ip)
    mbps = iperf_guest_to_guest(g1, g2, g1.ip)
    return result(mbps=mbps, detail="guest-guest TCP, no tunnel")


def _auth_used(lns_log, auth):
    want = AUTH_IN_LCP[auth]
    acks = [l for l in lns_log.splitlines() if "LCP ConfAck" in l and "<auth" in l]
    return any(want in l for l in acks), acks


def dial_xl2tpd(lac_guest, timeout=30):
    """Dial the [lac lab] section and wait for ppp0 with an address; returns labctl's answer (elapsed = set-up)."""
    return lac_guest.labctl("xl2tpd-dial", "lab", "ppp0", timeout, timeout=timeout + 15)


def run_ref_l2tp(lns, lac, auth, measure=True):
    """xl2tpd LNS on `lns`, xl2tpd LAC on `lac` dialing it; returns (setup_s, mbps, detail)."""
    install(lns, peers.xl2tpd_lns(auth))
    install(lac, peers.xl2tpd_lac(lns.ip, auth))
    try:
        start_xl2tpd(lns)
        start_xl2tpd(lac)
        up = dial_xl2tpd(lac)
        if not up.get("ok"):
            raise CellFailure("%s: ppp0 did not come up: %s\n%s\n%s" % (
                lac.name, up.get("error"), guest_logs(lac, "/var/log/xl2tpd.log", "/var/log/pppd.log"),
                guest_logs(lns, "/var/log/xl2tpd.log", "/var/log/pppd.log")))
        check(up["local"] == peers.POOL_START and up["peer"] == peers.POOL_LOCAL,
              "LAC got %s peer %s, expected %s peer %s" % (up["local"], up["peer"], peers.POOL_START, peers.POOL_LOCAL))
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        used, acks = _auth_used(lns.read("/var/log/pppd.log"), auth)
        check(used, "the LNS did not settle on %s: %r" % (auth, acks))
        # Kernel data path (no `ipsec saref`): pppd runs the pppol2tp plugin, not a pty.
        mode = "kernel" if "pppol2tp" in lns.sh("cat /proc/$(cat /run/ppp0.pid)/cmdline | tr '\\0' ' '") else "user"
        mbps = iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL) if measure else None
        return up["elapsed"], mbps, "%s -> %s, %s, %s mode" % (lac.name, lns.name, auth, mode)
    finally:
        stop_xl2tpd(lac)
        stop_xl2tpd(lns)


def cell_ref_l2tp(bed, auth="mschapv2", measure=True):
    setup, mbps, detail = run_ref_l2tp(bed.g1, bed.g2, auth, measure)
    return result(setup, mbps, "xl2tpd+pppd " + detail)


def _ipsec_up_strongswan(initiator, responder_logs):
    r = initiator.labctl("timed", 30, "ipsec", "up", "l2tp", timeout=45)
    if not r.get("ok") or "established successfully" not in r.get("output", ""):
        raise CellFailure("%s: ipsec up l2tp failed (%s)\n%s\n%s" % (
            initiator.name, r.get("rc"), r.get("output", "")[-1500:], responder_logs()))
    return r["elapsed"]


def _esp_counters(guest):
    """(packets, bytes) summed over the guest's XFRM states (`ip -s xfrm state`), to prove ESP carried data."""
    out = guest.sh("ip -s xfrm state")
    pk = by = 0
    for m in re.finditer(r"(\d+)\(bytes\), (\d+)\(packets\)", out):
        by += int(m.group(1))
        pk += int(m.group(2))
    return pk, by


def cell_ref_ipsec_strongswan(bed):
    g1, g2 = bed.g1, bed.g2
    install(g1, dict(peers.strongswan_l2tp(None), **STRONGSWAN_LOGGING))
    install(g2, dict(peers.strongswan_l2tp(g1.ip), **STRONGSWAN_LOGGING))
    try:
        start_strongswan(g1)
        start_strongswan(g2)
        setup = _ipsec_up_strongswan(g2, lambda: guest_logs(g1, "/var/log/charon.log"))
        states = g1.sh("ip xfrm state")
        check("mode transport" in states and "proto esp" in states,
              "responder has no transport-mode ESP state:\n%s" % states)
        return result(setup, None, "strongSwan %s -> strongSwan %s, IKEv1 Main+Quick, transport" % (g2.name, g1.name))
    finally:
        stop_strongswan(g2)
        stop_strongswan(g1)


def cell_ref_l2tp_ipsec_strongswan(bed, auth="mschapv2"):
    g1, g2 = bed.g1, bed.g2
    install(g1, dict(peers.strongswan_l2tp(None), **STRONGSWAN_LOGGING))
    install(g2, dict(peers.strongswan_l2tp(g1.ip), **STRONGSWAN_LOGGING))
    try:
        start_strongswan(g1)
        start_strongswan(g2)
        ike = _ipsec_up_strongswan(g2, lambda: guest_logs(g1, "/var/log/charon.log"))
        before = _esp_counters(g1)
        l2tp, mbps, detail = run_ref_l2tp(g1, g2, auth, measure=True)
        after = _esp_counters(g1)
        # The iperf3 run alone is megabytes: if ESP counters hardly moved, L2TP went around IPsec.
        check(after[1] - before[1] > 1000000, "ESP counters did not move (%r -> %r): L2TP bypassed IPsec" % (before, after))
        return result(ike + l2tp, mbps, "IKE %.2f s + L2TP/PPP %.2f s; %s; ESP %d packets" % (
            ike, l2tp, detail, after[0] - before[0]))
    finally:
        stop_strongswan(g2)
        stop_strongswan(g1)


def cell_ref_ipsec_libreswan(bed):
    """libreswan (g1, responder) <- strongSwan (g2, initiator)."""
    g1, g2 = bed.g1, bed.g2
    check(g1.image.flavour == "libreswan", "this cell needs g1 from the libreswan image")
    install(g1, peers.libreswan_l2tp(g1.ip, None))
    install(g2, dict(peers.strongswan_l2tp(g1.ip), **STRONGSWAN_LOGGING))
    try:
        start_libreswan(g1)
        start_strongswan(g2)
        setup = _ipsec_up_strongswan(g2, lambda: guest_logs(g1, "/var/log/pluto.log"))
        states = g1.sh("ip xfrm state")
        check("mode transport" in states, "libreswan has no transport-mode state:\n%s" % states)
        version = g1.sh("ipsec --version 2>/dev/null | head -1").strip()
        return result(setup, None, "strongSwan %s -> %s %s, IKEv1 transport" % (g2.name, version, g1.name))
    finally:
        stop_strongswan(g2)
        stop_libreswan(g1)
