"""Sluice on the host against L2TP/IPsec reference stacks in a guest (IKEv1 PSK, ESP transport, UDP 1701).

- sluice-lac-ipsec-<stack>: `sluice client` with ipsec '1' dials <stack> (strongSwan or libreswan) + xl2tpd +
  pppd as the server in g1 (the setup-ipsec-vpn style LNS);
- sluice-lns-ipsec-<stack>: <stack> + xl2tpd + pppd as the client in a guest dials `sluice server` with
  ipsec '1' (what Linux NetworkManager-l2tp does).

Beyond the plain cells' checks (addresses, auth, ping, TCP both ways): the guest's kernel holds a
transport-mode ESP state whose byte counters grow by the iperf3 traffic; tshark, reading the capture of the
bridge, finds ISAKMP from both sides, nothing malformed, and not one plaintext L2TP frame (L2TP must never
bypass IPsec); after Sluice stops, the peer's IPsec SA is gone within seconds (ISAKMP Delete, not DPD).
"""

import time

from .. import lab as lab_mod
from .. import peers
from . import capture
from .base import (CellFailure, check, install, start_xl2tpd, stop_xl2tpd, IpsecStack, guest_logs,
                   save_guest_logs, iperf_host_client, iperf_guest_client, result)
from .reference import AUTH_IN_LCP, _auth_used, _esp_counters, dial_xl2tpd
from .sluice import _wait_status, _client_session, _server_sessions, _sluice_failure

UP_TIMEOUT = 60.0
TEARDOWN_TIMEOUT = 15.0
CAPTURE_FILTER = capture.IPSEC_FILTER
SNAPLEN = 2048  # whole IKE messages (Main Mode SA payloads exceed 512 bytes); captures skip the bulk transfer


def _guest_for(bed, flavour):
    for g in bed.guests:
        if g.image.flavour == flavour:
            return g
    raise CellFailure("testbed %s has no %s guest" % (bed.name, flavour))


def _check_wire(cap, guest, phase):
    """tshark on one capture: nothing malformed, no plaintext L2TP/PPP; returns a short note ('' without tshark)."""
    d = capture.dissect(cap.path)
    if d is None:
        return ""
    check(not d["errors"], "%s: Wireshark flags packets as malformed or in error:\n%s" % (
        phase, "\n".join(d["errors"][:20])))
    if d["frames"]:
        frames = capture.tshark_fields(cap.path, "l2tp || isakmp", "_ws.col.Info")
        srcs = capture.tshark_fields(cap.path, "l2tp || isakmp", "ip.src")
        seq = ["%s: %s" % (a, b) for a, b in zip(srcs, frames)]
        raise CellFailure("%s: %d plaintext L2TP frame(s) crossed the bridge (L2TP outside IPsec); "
                          "ISAKMP and L2TP in order:\n  %s" % (phase, d["frames"], "\n  ".join(seq[-12:])))
    isakmp = capture.tshark_fields(cap.path, "isakmp", "ip.src")
    if phase == "set-up":
        check(lab_mod.HOST_IP in isakmp and guest.ip in isakmp, "ISAKMP seen only from %s" % sorted(set(isakmp)))
    return "%d ISAKMP frames" % len(isakmp)


def lac_session_checks(lab, lns, proc, sess, cap, tag, stack="strongswan", auth="mschapv2", measure=True):
    """What every Sluice-client-over-IPsec cell checks once Sluice reports the session up: transport ESP in
    the LNS kernel, its ppp0 peer is Sluice's address, pppd settled on `auth`, ping, the set-up capture (`cap`)
    clean, ESP counters grow by a transfer (iperf3 both ways, or 5 pings when not measure), and after Sluice
    stops the LNS drops the SA within TEARDOWN_TIMEOUT (ISAKMP Delete, not DPD) with a clean teardown capture.

    Returns (tshark note, up Mbit/s, down Mbit/s, ESP bytes moved); up/down are None when not measure."""
    states = lns.sh("ip xfrm state")
    check("mode transport" in states and "proto esp" in states,
          "%s holds no transport-mode ESP state:\n%s" % (stack, states))
    g = lns.labctl("wait-iface", "ppp0", 5)
    check(g.get("ok") and g["peer"] == sess["ip"] == peers.POOL_START, "LNS ppp0 %r vs Sluice %r" % (g, sess))
    used, acks = _auth_used(lns.read("/var/log/pppd.log"), auth)
    check(used, "the LNS did not settle on %s (%s): %r" % (auth, AUTH_IN_LCP[auth], acks))
    lab.ns_run("ping", "-c", "3", "-i", "0.3", "-W", "3", peers.POOL_LOCAL, timeout=20)
    wire = _check_wire(cap.stop(), lns, "set-up")
    before = _esp_counters(lns)
    if measure:
        up = iperf_host_client(lab, lns, peers.POOL_LOCAL)
        down = iperf_host_client(lab, lns, peers.POOL_LOCAL, reverse=True)
    else:
        up = down = None
        lab.ns_run("ping", "-c", "5", "-i", "0.2", "-s", "1000", "-W", "3", peers.POOL_LOCAL, timeout=20)
    after = _esp_counters(lns)
    check(after[1] - before[1] > (1000000 if measure else 5000), "ESP counters hardly moved (%r -> %r)" % (
        before, after))
    st_ = IpsecStack(stack)
    down_cap = capture.Capture(lab, tag + "-teardown", CAPTURE_FILTER, SNAPLEN).start()
    try:
        lab.stop(proc, 10)
        deadline = time.monotonic() + TEARDOWN_TIMEOUT
        while st_.has_sa(lns, lab_mod.HOST_IP) and time.monotonic() < deadline:
            time.sleep(0.3)
        check(not st_.has_sa(lns, lab_mod.HOST_IP), "%s still holds the SA %.0f s after Sluice stopped (no ISAKMP "
              "Delete?)" % (stack, TEARDOWN_TIMEOUT))
        time.sleep(1.0)  # late acknowledgements (LCP Terminate-Ack, ZLB) would show here
    finally:
        down_cap.stop()
    _check_wire(down_cap, lns, "teardown")
    return wire, up, down, after[1] - before[1]


def cell_sluice_lac_ipsec(bed, stack="strongswan", auth="mschapv2", measure=True):
    """measure=False: ping instead of the iperf3 transfers (the other PPP authentications)."""
    lab, lns = bed.lab, _guest_for(bed, stack)
    st_ = IpsecStack(stack)
    tag = "sluice-lac-ipsec-" + stack + ("" if auth == "mschapv2" else "-" + auth)
    install(lns, dict(st_.files(lns, None), **peers.xl2tpd_lns(auth)))
    proc = cap = None
    try:
        st_.start(lns)
        start_xl2tpd(lns)
        cap = capture.Capture(lab, tag + "-setup", CAPTURE_FILTER, SNAPLEN).start()
        t0 = time.monotonic()
        proc = lab.sluice("client", peers.sluice_client(lns.ip, ipsec=True), "lac")
        st = _wait_status(lab, proc, "lac", _client_session, UP_TIMEOUT)
        if st is None:
            raise _sluice_failure(lab, proc, "Sluice LAC (IPsec) did not come up (waited up to %.0f s)" % UP_TIMEOUT, lns,
                                  "\nlast status: %r\n%s" % (lab.sluice_status("lac"), guest_logs(lns, st_.log)))
        setup = time.monotonic() - t0
        wire, up, down, esp_bytes = lac_session_checks(lab, lns, proc, _client_session(st), cap, tag, stack, auth,
                                                        measure)
        speed = ", up %.1f / down %.1f Mbit/s" % (up, down) if measure else ", ESP %d bytes for 5 pings" % esp_bytes
        return result(setup, up, "Sluice LAC -> %s+xl2tpd+pppd %s, %s%s%s" % (
            stack, lns.name, auth, speed, ", tshark: " + wire + ", no plaintext L2TP" if wire else ""))
    except lab_mod.LabError as e:
        if proc is not None:
            raise _sluice_failure(lab, proc, str(e), lns) from None
        raise
    finally:
        if cap is not None:
            cap.stop()
        if proc is not None:
            lab.stop(proc, 5)
        save_guest_logs(bed, tag, lns, st_.log, "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lns)
        st_.stop(lns)


def lns_session_checks(lab, lac, proc, cap, tag, auth="mschapv2"):
    """What every cell with a guest LAC dialling the Sluice server over IPsec checks once the guest's IPsec is
    up: xl2tpd dials and its ppp0 gets the first pool address, pppd settled on `auth`, Sluice lists one
    session, ping, the set-up capture (`cap`) clean, ESP counters grow by iperf3 both ways, and Sluice drops
    the session within TEARDOWN_TIMEOUT of xl2tpd stopping, with a clean teardown capture.

    Returns (dial_xl2tpd's dict, tshark note, LAC tx Mbit/s, LAC rx Mbit/s)."""
    up = dial_xl2tpd(lac, UP_TIMEOUT)
    if not up.get("ok"):
        raise _sluice_failure(lab, proc, "the xl2tpd LAC got no ppp0 over IPsec: %s" % up.get("error"), lac)
    check(up["local"] == peers.POOL_START and up["peer"] == peers.POOL_LOCAL, "the LAC got %r" % up)
    used, acks = _auth_used(lac.read("/var/log/pppd.log"), auth)
    check(used, "the LAC's pppd did not settle on %s (%s): %r" % (auth, AUTH_IN_LCP[auth], acks))
    check(len(_server_sessions(lab.sluice_status("lns"))) == 1, "Sluice does not list the session: %r" % (
        lab.sluice_status("lns"),))
    lac.sh("ping -c 3 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
    wire = _check_wire(cap.stop(), lac, "set-up")
    before = _esp_counters(lac)
    tx = iperf_guest_client(lab, lac, peers.POOL_LOCAL)
    rx = iperf_guest_client(lab, lac, peers.POOL_LOCAL, reverse=True)
    after = _esp_counters(lac)
    check(after[1] - before[1] > 1000000, "ESP counters hardly moved (%r -> %r)" % (before, after))
    down_cap = capture.Capture(lab, tag + "-teardown", CAPTURE_FILTER, SNAPLEN).start()
    try:
        stop_xl2tpd(lac)
        st = _wait_status(lab, proc, "lns", lambda s: not _server_sessions(s), TEARDOWN_TIMEOUT)
        check(st is not None, "Sluice still lists the session %.0f s after xl2tpd stopped" % TEARDOWN_TIMEOUT)
    finally:
        down_cap.stop()
    _check_wire(down_cap, lac, "teardown")
    return up, wire, tx, rx


def cell_sluice_lns_ipsec(bed, stack="strongswan", auth="mschapv2"):
    lab, lac = bed.lab, _guest_for(bed, stack)
    st_ = IpsecStack(stack)
    tag = "sluice-lns-ipsec-" + stack
    cap = None
    proc = lab.sluice("server", peers.sluice_server(lab_mod.HOST_IP, auth, ipsec=True), "lns")
    try:
        st = _wait_status(lab, proc, "lns", lambda s: s.get("role", "server") == "server", 15)
        if st is None:
            raise _sluice_failure(lab, proc, "Sluice LNS (IPsec) did not answer on its control socket", lac)
        install(lac, dict(st_.files(lac, lab_mod.HOST_IP), **peers.xl2tpd_lac(lab_mod.HOST_IP, auth)))
        st_.start(lac)
        start_xl2tpd(lac)
        cap = capture.Capture(lab, tag + "-setup", CAPTURE_FILTER, SNAPLEN).start()
        ok, r = st_.up(lac)
        if not ok:
            raise _sluice_failure(lab, proc, "%s could not bring up IPsec with Sluice (rc %s):\n%s" % (
                stack, r.get("rc"), r.get("output", "")[-2000:]), lac)
        ike = r["elapsed"]
        up, wire, tx, rx = lns_session_checks(lab, lac, proc, cap, tag, auth)
        return result(ike + up["elapsed"], tx, "%s+xl2tpd+pppd %s -> Sluice LNS, %s, IKE %.2f s + L2TP/PPP %.2f s, "
                      "LAC tx %.1f / rx %.1f Mbit/s%s" % (stack, lac.name, auth, ike, up["elapsed"], tx, rx,
                                                          ", tshark: " + wire + ", no plaintext L2TP" if wire else ""))
    except lab_mod.LabError as e:
        raise _sluice_failure(lab, proc, str(e), lac) from None
    finally:
        if cap is not None:
            cap.stop()
        save_guest_logs(bed, tag, lac, st_.log, "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lac)
        st_.stop(lac)
        lab.stop(proc, 5)
