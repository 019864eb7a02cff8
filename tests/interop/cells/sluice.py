"""Cells with Sluice on the host (in the lab namespace) against the reference peers in a guest, plain L2TP.

- sluice-lac-<auth>: `sluice client` (LAC) dials xl2tpd + pppd LNS on g1, which demands <auth>;
- sluice-lns-<auth>: xl2tpd + pppd LAC on g2 dials `sluice server` (LNS) offering <auth>.

Each cell checks what the reference peer saw, not only what Sluice says: the address pppd assigned or got,
the authentication protocol in the LCP ConfAck pppd logged, a ping and TCP through the tunnel both ways
(iperf3), and a clean teardown (the peer's ppp0 or Sluice's session is gone within seconds of the other
side stopping, which only happens when StopCCN/CDN or LCP Terminate are sent and understood).
Set-up time: sluice-lac from starting the daemon to its status 'up'; sluice-lns from xl2tpd's dial to
the guest's ppp0 having its address.
"""

import time

from .. import lab as lab_mod
from .. import peers
from . import capture
from .base import (CellFailure, check, install, start_xl2tpd, stop_xl2tpd, guest_logs, save_guest_logs,
                   iperf_host_client, iperf_guest_client, result)
from .reference import AUTH_IN_LCP, _auth_used, dial_xl2tpd

UP_TIMEOUT = 45.0
TEARDOWN_TIMEOUT = 15.0
PEER_LOGS = ("/var/log/xl2tpd.log", "/var/log/pppd.log")


def _check_wire(cap, phase, expect):
    """tshark's reading of a capture: nothing malformed, and each (sender, message) in `expect` present.

    Returns a short note for the cell's detail ('' when tshark is missing: the check is then skipped)."""
    d = capture.dissect(cap.path)
    if d is None:
        return ""
    check(not d["errors"], "Wireshark flags %s packets as malformed or in error:\n%s" % (
        phase, "\n".join(d["errors"][:20])))
    for src, types in expect:
        sent = capture.sent_by(d, src)
        for t in types:
            if isinstance(t, tuple):
                check(any(x in sent for x in t), "%s: %s sent none of %s (tshark saw %s)" % (phase, src, t, sent))
            else:
                check(t in sent, "%s: %s sent no %s (tshark saw %s)" % (phase, src, t, sent))
    return "%d L2TP frames" % d["frames"]


def _sluice_failure(lab, proc, what, guest, extra=""):
    code = proc.poll()
    state = "exited with status %s" % code if code is not None else "still running"
    return CellFailure("%s (sluice %s)%s\n--- sluice log (%s)\n%s\n%s" % (
        what, state, extra, proc.log_path, lab.log_of(proc),
        guest_logs(guest, "/var/log/xl2tpd.log", "/var/log/pppd.log")))


def _wait_status(lab, proc, name, predicate, timeout):
    """Poll the daemon's control socket until predicate(status) is true; None when it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        st = lab.sluice_status(name)
        if "error" not in st and predicate(st):
            return st
        time.sleep(0.05)
    return None


def _client_session(st):
    if st.get("state") != "up":
        return None
    for t in st.get("tunnels", []):
        for s in t.get("sessions", []):
            if s.get("ip"):
                return s
    return None


def _server_sessions(st):
    out = []
    for t in st.get("tunnels", []):
        out.extend(s for s in t.get("sessions", []) if s.get("state", "up") == "up")
    return out


def cell_sluice_lac(bed, auth="mschapv2", measure=True):
    lab, lns = bed.lab, bed.g1
    install(lns, peers.xl2tpd_lns(auth))
    proc = cap = None
    tag = "sluice-lac-" + auth
    try:
        start_xl2tpd(lns)
        cap = capture.Capture(lab, tag + "-setup").start()
        t0 = time.monotonic()
        proc = lab.sluice("client", peers.sluice_client(lns.ip), "lac")
        st = _wait_status(lab, proc, "lac", _client_session, UP_TIMEOUT)
        if st is None:
            raise _sluice_failure(lab, proc, "Sluice LAC did not come up (waited up to %.0f s)" % UP_TIMEOUT, lns,
                                  "\nlast status: %r" % lab.sluice_status("lac"))
        setup = time.monotonic() - t0
        sess = _client_session(st)
        # What the reference LNS saw: its ppp0 faces the address it handed out.
        g = lns.labctl("wait-iface", "ppp0", 5)
        check(g.get("ok"), "the LNS has no addressed ppp0 although Sluice says up: %r" % g)
        check(sess["ip"] == g["peer"] == peers.POOL_START and g["local"] == peers.POOL_LOCAL,
              "addresses disagree: Sluice %r, LNS ppp0 %s peer %s (pool starts at %s)" % (
                  sess, g["local"], g["peer"], peers.POOL_START))
        used, acks = _auth_used(lns.read("/var/log/pppd.log"), auth)
        check(used, "the LNS did not settle on %s (%s): %r" % (auth, AUTH_IN_LCP[auth], acks))
        lab.ns_run("ping", "-c", "3", "-i", "0.3", "-W", "3", peers.POOL_LOCAL, timeout=20)
        lns.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_START, timeout=20)
        wire = _check_wire(cap.stop(), "set-up", [
            (lab_mod.HOST_IP, ["SCCRQ", "SCCCN", "ICRQ", "ICCN"]), (lns.ip, ["SCCRP", "ICRP"])])
        up = down = None
        if measure:
            up = iperf_host_client(lab, lns, peers.POOL_LOCAL)
            down = iperf_host_client(lab, lns, peers.POOL_LOCAL, reverse=True)
        # Clean teardown: SIGTERM makes Sluice send StopCCN; xl2tpd then ends pppd and ppp0 goes away.
        cap = capture.Capture(lab, tag + "-teardown").start()
        lab.stop(proc, 10)
        gone = lns.labctl("timed", TEARDOWN_TIMEOUT, "sh", "-c",
                          "while [ -e /sys/class/net/ppp0 ]; do sleep 0.1; done", timeout=TEARDOWN_TIMEOUT + 15)
        check(gone.get("ok"), "the LNS still had ppp0 %.0f s after Sluice stopped (no StopCCN/CDN?)\n%s" % (
            TEARDOWN_TIMEOUT, guest_logs(lns, "/var/log/xl2tpd.log")))
        _check_wire(cap.stop(), "teardown", [(lab_mod.HOST_IP, [("StopCCN", "CDN")])])
        detail = "Sluice LAC -> xl2tpd+pppd LNS %s, %s, got %s" % (lns.name, auth, sess["ip"])
        if wire:
            detail += ", tshark: %s clean" % wire
        if measure:
            detail += ", up %.1f / down %.1f Mbit/s" % (up, down)
        return result(setup, up, detail)
    except lab_mod.LabError as e:
        if proc is not None:
            raise _sluice_failure(lab, proc, str(e), lns) from None
        raise
    finally:
        if cap is not None:
            cap.stop()
        if proc is not None:
            lab.stop(proc, 5)
        save_guest_logs(bed, tag, lns, *PEER_LOGS)
        stop_xl2tpd(lns)


def cell_sluice_lns(bed, auth="mschapv2", measure=True):
    lab, lac = bed.lab, bed.g2
    tag = "sluice-lns-" + auth
    cap = None
    proc = lab.sluice("server", peers.sluice_server(lab_mod.HOST_IP, auth), "lns")
    try:
        st = _wait_status(lab, proc, "lns", lambda s: s.get("role", "server") == "server", 15)
        if st is None:
            raise _sluice_failure(lab, proc, "Sluice LNS did not answer on its control socket", lac)
        install(lac, peers.xl2tpd_lac(lab_mod.HOST_IP, auth))
        start_xl2tpd(lac)
        cap = capture.Capture(lab, tag + "-setup").start()
        up = dial_xl2tpd(lac, UP_TIMEOUT)
        if not up.get("ok"):
            raise _sluice_failure(lab, proc, "the xl2tpd LAC got no ppp0 from Sluice: %s" % up.get("error"), lac)
        check(up["local"] == peers.POOL_START and up["peer"] == peers.POOL_LOCAL,
              "the LAC got %s peer %s, expected %s peer %s" % (up["local"], up["peer"], peers.POOL_START,
                                                              peers.POOL_LOCAL))
        used, acks = _auth_used(lac.read("/var/log/pppd.log"), auth)
        check(used, "the LAC's pppd did not settle on %s (%s): %r" % (auth, AUTH_IN_LCP[auth], acks))
        st = lab.sluice_status("lns")
        sessions = _server_sessions(st)
        check(len(sessions) == 1 and sessions[0].get("ip") == peers.POOL_START,
              "Sluice's status does not show the one session at %s: %r" % (peers.POOL_START, st))
        lac.sh("ping -c 3 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        lab.ns_run("ping", "-c", "2", "-i", "0.3", "-W", "3", peers.POOL_START, timeout=20)
        wire = _check_wire(cap.stop(), "set-up", [
            (lab_mod.HOST_IP, ["SCCRP", "ICRP"]), (lac.ip, ["SCCRQ", "SCCCN", "ICRQ", "ICCN"])])
        tx = rx = None
        if measure:
            tx = iperf_guest_client(lab, lac, peers.POOL_LOCAL)
            rx = iperf_guest_client(lab, lac, peers.POOL_LOCAL, reverse=True)
        # Clean teardown from the peer's side: xl2tpd sends CDN/StopCCN when it exits; Sluice drops the session.
        cap = capture.Capture(lab, tag + "-teardown").start()
        stop_xl2tpd(lac)
        st = _wait_status(lab, proc, "lns", lambda s: not _server_sessions(s), TEARDOWN_TIMEOUT)
        check(st is not None, "Sluice still lists the session %.0f s after xl2tpd stopped: %r" % (
            TEARDOWN_TIMEOUT, lab.sluice_status("lns")))
        _check_wire(cap.stop(), "teardown", [(lac.ip, [("StopCCN", "CDN")])])
        detail = "xl2tpd+pppd LAC %s -> Sluice LNS, %s" % (lac.name, auth)
        if wire:
            detail += ", tshark: %s clean" % wire
        if measure:
            detail += ", guest->host %.1f / host->guest %.1f Mbit/s" % (tx, rx)
        return result(up["elapsed"], tx, detail)
    except lab_mod.LabError as e:
        raise _sluice_failure(lab, proc, str(e), lac) from None
    finally:
        if cap is not None:
            cap.stop()
        save_guest_logs(bed, tag, lac, *PEER_LOGS)
        stop_xl2tpd(lac)
        lab.stop(proc, 5)
