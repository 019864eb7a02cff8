"""Cells that need neither IPsec in Sluice nor the Sluice engine: they prove the lab and give reference figures.

- boot: each guest boots, has /dev/ppp, loaded l2tp_ppp/xfrm/af_alg (AF_ALG HMAC-SHA1 matches hashlib),
  and answers ping from the host side; set-up time is the boot time (QEMU start to ssh).
- link: plain guest <-> guest TCP throughput (the ceiling every tunnel figure compares with).
- ref-l2tp-<auth>: xl2tpd + pppd LAC (g2) <-> xl2tpd + pppd LNS (g1), kernel data path, ppp0 up and ping.
- ref-ipsec-strongswan: strongSwan IKEv1 Main + Quick Mode, transport mode for UDP 1701, g2 -> g1.
- ref-l2tp-ipsec-<server>-<client>: full L2TP/IPsec between reference stacks (strongSwan and libreswan as
  server and client), the stack Sluice replaces, with ESP counted and the SA's removal on Delete checked.
"""

import re
import time

from .. import peers
from .base import (CellFailure, check, install, start_xl2tpd, stop_xl2tpd, start_strongswan, stop_strongswan,
                   IpsecStack, guest_logs, iperf_guest_to_guest, result, rss_mb, fmt_rss, STRONGSWAN_LOGGING,
                   warm_xfrm)

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


def run_ref_l2tp(lns, lac, auth, measure=True, on_up=None, daemons=None):
    """xl2tpd LNS on `lns`, xl2tpd LAC on `lac` dialing it; returns (setup_s, mbps, detail, rss_mb), mbps the
    LAC's (send, receive) or None.

    With measure, also each end's RSS with the session up: xl2tpd, pppd and daemons[guest] (its IPsec stack)."""
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
        if on_up is not None:
            on_up()
        used, acks = _auth_used(lns.read("/var/log/pppd.log"), auth)
        check(used, "the LNS did not settle on %s: %r" % (auth, acks))
        # Kernel data path (no `ipsec saref`): pppd runs the pppol2tp plugin, not a pty.
        mode = "kernel" if "pppol2tp" in lns.sh("cat /proc/$(cat /run/ppp0.pid)/cmdline | tr '\\0' ' '") else "user"
        detail = "%s -> %s, %s, %s mode" % (lac.name, lns.name, auth, mode)
        mbps = rss = None
        if measure:
            mbps = (iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL),
                    iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL, reverse=True))
            detail += ", LAC tx %.1f / rx %.1f Mbit/s" % mbps
            rss = {g.name: rss_mb(g, *(daemons or {}).get(g, ()) + ("xl2tpd", "pppd"), optional=("starter",))
                   for g in (lac, lns)}
        return up["elapsed"], mbps, detail, rss
    finally:
        stop_xl2tpd(lac, lns)


def cell_ref_l2tp(bed, auth="mschapv2", measure=True):
    setup, mbps, detail, rss = run_ref_l2tp(bed.g1, bed.g2, auth, measure)
    tx, rx = mbps or (None, None)
    return result(setup, tx, "xl2tpd+pppd " + detail + ("; " + fmt_rss(rss) if rss else ""), rss, mbps_rx=rx)


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


def esp_transform(guest):
    """The ESP transform in the guest's XFRM states, named as strongSwan's esp= and Sluice's log name it
    ('aes256-sha1', 'aes128gcm16'), read from the kernel (algorithm, key length): what was negotiated."""
    names = set()
    for sa in guest.sh("ip xfrm state").split("src ")[1:]:
        enc = re.search(r"\benc cbc\((aes|des3_ede)\) 0x([0-9a-f]+)", sa)
        auth = re.search(r"\bauth-trunc hmac\((\w+)\) ", sa)
        aead = re.search(r"\baead rfc4106\(gcm\(aes\)\) 0x([0-9a-f]+) (\d+)", sa)
        if aead:  # the key carries the 4-byte salt
            names.add("aes%dgcm%d" % (len(aead.group(1)) * 4 - 32, int(aead.group(2)) // 8))
        elif enc and auth:
            cipher = "3des" if enc.group(1) == "des3_ede" else "aes%d" % (len(enc.group(2)) * 4)
            names.add("%s-%s" % (cipher, auth.group(1)))
    return ",".join(sorted(names)) or None


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


def _pick(bed, server, client):
    """(server guest, client guest) for the stacks named, by image flavour; g1 serves when both are the same."""
    if server == client:
        return bed.g1, bed.g2
    by = {g.image.flavour: g for g in bed.guests}
    check(server in by and client in by, "testbed %s lacks %s or %s" % (bed.name, server, client))
    return by[server], by[client]


def cell_ref_l2tp_ipsec(bed, server="strongswan", client="strongswan", auth="mschapv2", swap=False):
    """Full L2TP/IPsec between reference stacks: <server>+xl2tpd LNS <- <client>+xl2tpd LAC.

    Also checks what the Sluice IPsec cells demand of Sluice, on the reference stacks themselves: ESP
    counters grow with the traffic, and the server drops its SA within seconds of the client going down.
    swap: g2 serves (the same stack at both ends: on testbed kernel-peer, the Debian 13 guest then is the
    server, where sluice-guest-lns-kernel runs Sluice)."""
    srv, cli = _pick(bed, server, client)
    if swap:
        srv, cli = cli, srv
    s_stack, c_stack = IpsecStack(server), IpsecStack(client)
    install(srv, s_stack.files(srv, None))
    install(cli, c_stack.files(cli, srv.ip))
    try:
        s_stack.start(srv)
        c_stack.start(cli)
        warm_xfrm(srv)  # the crypto modules in, as the Sluice kernel cells have them (and OpenWrt at boot)
        warm_xfrm(cli)
        from .capture import Capture, dissect, IPSEC_FILTER  # the same wire check the Sluice IPsec cells make
        cap = Capture(bed.lab, "ref-l2tp-ipsec-%s-%s%s-setup" % (server, client, "-swap" if swap else ""), IPSEC_FILTER,
                      2048).start()
        ok, r = c_stack.up(cli)
        if not ok:
            raise CellFailure("%s: %s could not bring up IPsec with %s (rc %s):\n%s\n%s" % (
                cli.name, client, server, r.get("rc"), r.get("output", "")[-1500:], guest_logs(srv, s_stack.log)))
        ike = r["elapsed"]
        states = srv.sh("ip xfrm state")
        check("mode transport" in states and "proto esp" in states, "%s holds no transport ESP state:\n%s" % (
            server, states))
        before = _esp_counters(srv)
        try:
            l2tp, mbps, detail, rss = run_ref_l2tp(srv, cli, auth, measure=True, on_up=cap.stop,
                                                   daemons={cli: c_stack.daemons, srv: s_stack.daemons})
            transform = esp_transform(srv)
        finally:
            cap.stop()
        wire = dissect(cap.path)
        if wire is not None:
            detail += "; tshark: %d plaintext L2TP frames%s" % (wire["frames"], " %r" % wire["control"] if wire["frames"] else "")
        after = _esp_counters(srv)
        # The iperf3 runs alone are megabytes: if ESP counters hardly moved, L2TP went around IPsec.
        check(after[1] - before[1] > 1000000, "ESP counters did not move (%r -> %r): L2TP bypassed IPsec" % (
            before, after))
        c_stack.stop(cli)
        deadline = time.monotonic() + 15
        while s_stack.has_sa(srv, cli.ip) and time.monotonic() < deadline:
            time.sleep(0.3)
        check(not s_stack.has_sa(srv, cli.ip), "%s kept the SA 15 s after %s went down" % (server, client))
        version = srv.sh("ipsec --version 2>/dev/null | head -1").strip()
        return result(ike + l2tp, mbps[0], "%s -> %s (%s): IKE %.2f s + L2TP/PPP %.2f s; %s; ESP %s, %d packets; %s" % (
            client, server, version[:40], ike, l2tp, detail, transform, after[0] - before[0], fmt_rss(rss)), rss,
            mbps_rx=mbps[1])
    finally:
        c_stack.stop(cli)
        s_stack.stop(srv)
