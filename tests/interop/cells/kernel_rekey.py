"""Sluice's kernel data path under rekeys, and plain L2TP (no IPsec) in kernel mode; testbed `kernel-peer`.

- sluice-guest-lac-kernel-rekey: Sluice client (g2, Debian 13, `datapath 'kernel'`) -> strongSwan + xl2tpd + pppd
  LNS (g1) whose strongSwan has short lifetimes, no fuzz: the CHILD SA is rekeyed REKEY_CHILD s after it was
  made, the ISAKMP SA reauthenticated REKEY_IKE s after it was made (a new Main Mode, new Quick Modes under it),
  both during one paced iperf3 transfer (RATE) with a ping flow beside it. Passes when the PPP session survives
  (the same ppp unit ifindex, the same kernel L2TP tunnel and session ids, no loss in Sluice's log), XFRM
  dropped no packet for want of a state or policy in either guest (/proc/net/xfrm_stat), no ping is lost,
  iperf3 has no one-second interval at zero unless the capture shows the whole wire silent (the emulation
  stalling on a shared host: the ping flow stops too), `ip xfrm monitor SA` in Sluice's guest shows each new SA
  of ours added before the old one was deleted, the SPIs of ours at the end are not the first ones and carried
  bytes, tshark over the whole run sees IKE and ESP and no plaintext L2TP, and SIGTERM leaves nothing of ours.
- sluice-guest-lns-kernel-rekey: the other direction, strongSwan + xl2tpd + pppd LAC (g1, short lifetimes) ->
  Sluice server (g2, kernel path).
- sluice-guest-lac-kernel-plain: Sluice client with `ipsec '0'` and `datapath 'kernel'` -> xl2tpd + pppd LNS
  (the ref-l2tp-* LNS, no IPsec): ping and iperf3 both ways through a kernel L2TP tunnel/session and ppp unit
  (`ip l2tp`, `ip -d link`), the data not passing through Sluice (its CPU time hardly moves while the unit's
  counters grow by megabytes), nothing left after SIGTERM.
- sluice-guest-lns-kernel-plain: xl2tpd + pppd LAC -> Sluice server with `ipsec '0'` and `datapath 'kernel'`.

Set-up figure (all four, and the same span as ref-l2tp-ipsec-strongswan's "IKE + L2TP/PPP"): from the dial
(Sluice's own "connected: ..., N s", which counts from the moment the client starts dialling; the reference
counts from `ipsec up` to ppp0 addressed, daemons already running) to the addressed interface. The detail
also gives the time from spawning the daemon (Python start, crypto self-test).
"""

import re
import time

from .. import peers
from . import capture
from .base import (STRONGSWAN_LOGGING, CellFailure, IpsecStack, check, fmt_rss, guest_logs, install,
                   iperf_guest_to_guest, result, rss_mb, save_guest_logs, start_xl2tpd, stop_xl2tpd)
from .reference import dial_xl2tpd
from .sluice_guest import SLUICE_LOG, UP_TIMEOUT, _sluice_cmd, _stop, dial_reference_lac, install_sluice, start_server
from .sluice_kernel import _check_clean, _check_kernel_up, _conf, _our_states, warm_xfrm

# strongSwan (ipsec.conf): CHILD lifetime 40 s, ISAKMP 55 s, both rekeyed 15 s before (margintime), no fuzz:
# the CHILD SA at +25 s, the ISAKMP SA at +40 s after each was made (IKEv1: a reauthentication, with new
# Quick Modes under the new ISAKMP SA).
REKEY_EXTRA = ("lifetime=40s", "ikelifetime=55s", "margintime=15s", "rekeyfuzz=0%")
REKEY_CHILD = 25
REKEY_IKE = 40
TRANSFER = 46          # iperf3 seconds: past the ISAKMP reauthentication with a few seconds to spare
# A paced transfer (TCP, iperf3 -b): a stall then shows as an interval below the pace, not as the ups and downs
# of a saturated TCG guest on a shared host.
RATE = "8M"
# /proc/net/xfrm_stat counters that count packets dropped for want of a state or policy (RFC 4301 plumbing):
# a rekey that broke make-before-break shows here.
XFRM_DROPS = ("XfrmInNoStates", "XfrmInStateInvalid", "XfrmInStateExpired", "XfrmInNoPols", "XfrmInPolBlock",
              "XfrmOutNoStates", "XfrmOutStateExpired", "XfrmOutPolBlock", "XfrmOutStateInvalid")
PING_INTERVAL = 0.25
MONITOR_LOG = "/var/log/xfrm-monitor.log"
MONITOR_PID = "/run/xfrm-monitor.pid"
IPERF_JSON = "/tmp/iperf-rekey.json"
PING_LOG = "/tmp/ping-rekey.log"
# Only small ESP packets (pings, TCP acks) besides IKE and L2TP: the bulk would only make the file large.
REKEY_FILTER = ("udp port 500 or (udp port 4500 and less 300) or udp port 1701 or (ip proto 50 and less 300) "
                "or (ip[6:2] & 0x1fff != 0 and not ip proto 50)")


def _stack_files(guest, server_ip):
    return dict(peers.strongswan_l2tp(server_ip, extra=REKEY_EXTRA), **STRONGSWAN_LOGGING)


def _dial_s(log):
    m = re.search(r"connected: .*, ([\d.]+) s", log)
    return float(m.group(1)) if m else None


def _session_ids(g):
    """(ifindex of the ppp unit, kernel L2TP tunnel and session ids) as the kernel shows them."""
    return (g.sh("ip -o link show | grep link/ppp | cut -d: -f1-2; true").strip(),
            re.sub(r"\s+", " ", g.sh("ip l2tp show session 2>/dev/null | grep -E '^Session|tunnel'; true")).strip())


def _monitor_events(text):
    """[(kind, spi, reqid)] from `ip xfrm monitor SA` output: kind 'add', 'upd' (an early inbound SA given its
    pair's lifetime) or 'del' (expire notices ignored)."""
    out = []
    block = []
    for line in text.splitlines() + ["END"]:
        if line and not line[0].isspace():
            if block:
                head = block[0]
                body = " ".join(block)
                spi = re.search(r"spi (0x[0-9a-f]+)", body)
                reqid = re.search(r"reqid (\d+)", body)
                if spi and " dir " not in body:  # a policy's template names spi 0
                    kind = "del" if head.startswith("Deleted") else "upd" if head.startswith("Updated") else (
                        None if head.startswith(("Expired", "Async")) else "add")
                    if kind:
                        out.append((kind, int(spi.group(1), 16), int(reqid.group(1)) if reqid else None))
            block = [line]
        else:
            block.append(line)
    return out


def _check_make_before_break(events, first_spis):
    """Every deletion of an SA of ours came after at least one other SA of ours in the same direction was there:
    at no point did our inbound or outbound side hold nothing. Returns (adds, dels) of ours."""
    live = set(first_spis)
    adds = dels = 0
    for kind, spi, reqid in events:
        if kind == "upd":
            continue
        if kind == "add":
            if reqid is not None and reqid >> 24 == 0x5C:
                live.add(spi)
                adds += 1
        elif spi in live:
            live.discard(spi)
            dels += 1
            check(len(live) >= 2, "SA 0x%08x was deleted while %d other SA(s) of ours were left (make before "
                  "break broken): %r" % (spi, len(live), events))
    return adds, dels


def _our_spis(state_text):
    """{spi: bytes} of the XFRM states of Sluice's reqid range in `ip -s xfrm state`."""
    out = {}
    for sa in re.split(r"(?m)^src ", state_text)[1:]:   # not "sel src" inside a state
        spi = re.search(r"spi (0x[0-9a-f]+)(?:\(\d+\))? reqid (\d+)", sa)  # -s adds "(decimal)"
        if not spi or int(spi.group(2)) >> 24 != 0x5C:
            continue
        by = re.search(r"(\d+)\(bytes\)", sa)
        out[int(spi.group(1), 16)] = int(by.group(1)) if by else 0
    return out


SILENCE = 0.75   # seconds without any frame on the lab bridge (pings alone make 4 a second): the lab stalled


def _wire_silences(pcap):
    """Lengths of the gaps >= SILENCE between consecutive frames of the transfer capture ([] without tshark)."""
    times = [float(t) for t in capture.tshark_fields(pcap, "frame", "frame.time_epoch") if t]
    return [b - a for a, b in zip(times, times[1:]) if b - a >= SILENCE]


def _iperf_intervals(text, who):
    import json

    try:
        data = json.loads(text)
    except ValueError:
        raise CellFailure("%s: iperf3 gave no JSON: %s" % (who, text[-1500:])) from None
    if data.get("error"):
        raise CellFailure("%s: iperf3: %s" % (who, data["error"]))
    rates = [iv.get("sum", {}).get("bits_per_second", 0) / 1e6 for iv in data.get("intervals", [])]
    total = data.get("end", {}).get("sum_received", {}).get("bits_per_second", 0) / 1e6
    start = data.get("start", {}).get("timestamp", {}).get("timesecs")
    return rates, total, start


def _xfrm_drops(g):
    """{counter: value} of XFRM_DROPS in the guest's /proc/net/xfrm_stat."""
    out = {}
    for line in g.sh("cat /proc/net/xfrm_stat").splitlines():
        f = line.split()
        if len(f) == 2 and f[0] in XFRM_DROPS:
            out[f[0]] = int(f[1])
    return out


def _grown(before, after):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


def _rekey_times(log, date_of):
    """Guest epoch seconds of Sluice's log lines about rekeys: a new ESP SA '(rekey)', an ISAKMP SA up after the
    first, an ISAKMP SA deleted by the peer."""
    out = []
    ike_ups = 0
    for line in log.splitlines():
        m = re.match(r"(\d\d):(\d\d):(\d\d) ", line)
        if not m:
            continue
        t = date_of(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if "IKE SA up" in line:
            ike_ups += 1
            if ike_ups > 1:
                out.append(t)
        elif "(rekey)" in line or "deleted by the peer" in line:
            out.append(t)
    return out


def _ping_result(text):
    m = re.search(r"(\d+) packets transmitted, (\d+) received", text)
    check(m, "ping printed no summary:\n%s" % text[-800:])
    return int(m.group(1)), int(m.group(2))


def _charon_rekeys(log):
    child = len(re.findall(r"CHILD_SA l2tp\{\d+\} established", log))
    ike = len(re.findall(r"IKE_SA l2tp\[\d+\] established", log))
    return ike, child


def _run_transfer(bed, sender, receiver_ip, iperf_server, sluice_guest, tag):
    """iperf3 sender -> receiver_ip for TRANSFER s with a ping flow beside it, `ip xfrm monitor sa` in Sluice's
    guest; returns (interval rates, total, (sent, received) pings, monitor text, capture path)."""
    sluice_guest.spawn("echo $$ > %s; exec ip xfrm monitor SA" % MONITOR_PID, MONITOR_LOG)
    cap = capture.Capture(bed.lab, tag + "-transfer", REKEY_FILTER, 2048).start()
    try:
        iperf_server.spawn("exec iperf3 -s -1 -p 5201", "/var/log/iperf3-server.log")
        time.sleep(0.5)
        # A count that fits in the transfer, a deadline well after it (an emulated guest's ping falls behind its
        # interval under load; -w ends it, a reply still in flight then counting as lost).
        count = int((TRANSFER - 6) / PING_INTERVAL)
        sender.spawn("exec ping -n -q -i %s -W 2 -c %d -w %d %s" % (PING_INTERVAL, count, TRANSFER + 25, receiver_ip),
                     PING_LOG)
        p = sender.ssh("iperf3 -c %s -p 5201 -t %d -b %s -i 1 -J --connect-timeout 5000 > %s 2>&1; cat %s" % (
            receiver_ip, TRANSFER, RATE, IPERF_JSON, IPERF_JSON), timeout=TRANSFER + 60, check=False)
        rates, total, start = _iperf_intervals(p.stdout, "%s -> %s" % (sender.name, receiver_ip))
        deadline = time.monotonic() + 30
        while "packets transmitted" not in sender.read(PING_LOG) and time.monotonic() < deadline:
            time.sleep(0.5)
        pings = _ping_result(sender.read(PING_LOG))
    finally:
        cap.stop()
        sluice_guest.ssh("[ -f %s ] && kill $(cat %s); rm -f %s; true" % ((MONITOR_PID,) * 3), check=False)
    return rates, total, start, pings, sluice_guest.read(MONITOR_LOG), cap.path


def _midnight(g):
    """hh:mm:ss of the guest's log lines -> guest epoch seconds (the run does not cross midnight)."""
    epoch, hms = g.sh("date +'%s %H:%M:%S'").split()
    h, m, sec = (int(x) for x in hms.split(":"))
    base = int(epoch) - (h * 3600 + m * 60 + sec)
    return lambda hh, mm, ss: base + hh * 3600 + mm * 60 + ss


def _rekey_checks(sluice_guest, charon_guest, stack, before, run):
    """The common verdict of both rekey cells; `before`: what was read with the session up, `run`: what
    _run_transfer returned. Returns the detail text."""
    rates, total, start, pings, monitor, pcap = run
    ids_after = _session_ids(sluice_guest)
    check(ids_after == before["ids"], "the PPP/L2TP session did not survive the rekeys: %r -> %r" % (
        before["ids"], ids_after))
    log = sluice_guest.read(SLUICE_LOG)
    check("PPP link down" not in log and "IPsec lost" not in log, "Sluice lost the session:\n%s" % log[-2500:])
    ike, child = _charon_rekeys(charon_guest.read(stack.log))
    ike -= before["charon"][0]
    child -= before["charon"][1]
    check(ike >= 1 and child >= 2, "strongSwan did not rekey both during the transfer (%d new ISAKMP SAs, %d new "
          "CHILD SAs):\n%s" % (ike, child, guest_logs(charon_guest, stack.log)))
    drops = {g.name: _grown(before["drops"][g.name], _xfrm_drops(g)) for g in (sluice_guest, charon_guest)}
    check(not any(drops.values()), "XFRM dropped packets for want of a state or policy: %r" % drops)
    sent, got = pings
    check(sent > 0 and got == sent, "ping lost %d of %d during the rekeys" % (sent - got, sent))
    # Intervals at zero. A rekey that lost packets shows as XFRM drops or lost pings (both checked above: none).
    # What is left is the emulation stalling on a shared host (two cores, several labs): then the whole wire
    # goes silent, the ping flow (a frame every PING_INTERVAL) included. Zero intervals pass only with such
    # silences in the capture, and the detail lists both.
    rekeys = _rekey_times(log, _midnight(sluice_guest))
    zero = [i for i, r in enumerate(rates) if r <= 0.0]
    silences = _wire_silences(pcap)
    check(rates and (not zero or silences), "iperf3 intervals at zero %r while the wire never went silent (rekeys "
          "at +%r s; rates %r)" % (zero, [t - start for t in rekeys] if start else "?", [round(r, 1) for r in rates]))
    events = _monitor_events(monitor)
    adds, dels = _check_make_before_break(events, before["spis"])
    spis_after = _our_spis(sluice_guest.sh("ip -s xfrm state"))
    check(dels >= 2 and adds >= 2, "xfrm monitor saw %d adds and %d deletions of ours: %r" % (adds, dels, events))
    check(not (set(spis_after) & set(before["spis"])), "the first SAs of ours are still there: %r -> %r" % (
        sorted(before["spis"]), sorted(spis_after)))
    # The newest pair carries the traffic; a pair replaced moments ago may still be there (its grace period).
    check(len([b for b in spis_after.values() if b > 0]) >= 2 and sum(spis_after.values()) > 100000,
          "the new SAs of ours carried no bytes: %r" % spis_after)
    d = capture.dissect(pcap)
    if d is None:
        wire = "no tshark: wire not checked"
    else:
        check(d["frames"] == 0, "plaintext L2TP on the wire during the rekeys: %r" % (d["control"][:10],))
        isakmp = len(capture.tshark_fields(pcap, "isakmp", "ip.src"))
        esp = len(capture.tshark_fields(pcap, "esp", "ip.src"))
        check(isakmp > 0 and esp > 0, "tshark saw %d IKE and %d ESP frames over the transfer" % (isakmp, esp))
        wire = "tshark over the transfer: %d IKE, %d small ESP, 0 plaintext L2TP" % (isakmp, esp)
    return ("strongSwan made %d ISAKMP and %d CHILD SAs during the transfer (Sluice's rekey lines at +%s s); "
            "the ppp unit %s and L2TP session kept; %d one-second iperf3 intervals (paced %s), lowest %.1f Mbit/s%s; "
            "ping %d/%d; XFRM drops 0; xfrm monitor: %d SAs of ours added, %d deleted, each deletion with the "
            "new pair in place; SPIs %s -> %s (%d bytes on the new); %s" % (
                ike, child, ",".join(str(t - start) for t in rekeys) if start else "?",
                before["ids"][0].split(":")[-1].strip(), len(rates), RATE, min(rates),
                "; at zero %r, with %d silences of the whole wire >= %.2f s (host stalls: %s s)" % (
                    zero, len(silences), SILENCE, ",".join("%.1f" % g for g in silences)) if zero else "",
                got, sent, adds, dels,
                ",".join("%08x" % x for x in sorted(before["spis"])), ",".join("%08x" % x for x in sorted(spis_after)),
                sum(spis_after.values()), wire))


def _before(sluice_guest, charon_guest, stack):
    return {"ids": _session_ids(sluice_guest), "spis": _our_spis(sluice_guest.sh("ip -s xfrm state")),
            "charon": _charon_rekeys(charon_guest.read(stack.log)),
            "drops": {g.name: _xfrm_drops(g) for g in (sluice_guest, charon_guest)}}


def cell_lac_kernel_rekey(bed):
    lns, lac = bed.g1, bed.g2
    stack = IpsecStack("strongswan")
    tag = "sluice-guest-lac-kernel-rekey"
    install(lns, dict(_stack_files(lns, None), **peers.xl2tpd_lns("mschapv2")))
    install_sluice(lac)
    lac.write("/etc/sluice-lab.conf", _conf(peers.sluice_client(lns.ip, ipsec=True)), 0o600)
    pid = None
    try:
        stack.start(lns)
        start_xl2tpd(lns)
        warm_xfrm(lns)
        up = lac.labctl("spawn-wait", "slc0", UP_TIMEOUT, SLUICE_LOG,
                        *_sluice_cmd("client", "/etc/sluice-lab.conf", "lac"), timeout=UP_TIMEOUT + 20)
        pid = up.get("pid")
        if not up.get("ok"):
            raise CellFailure("Sluice client (kernel path) in %s did not come up: %s\n%s\n%s" % (
                lac.name, up.get("error"), guest_logs(lac, SLUICE_LOG), guest_logs(lns, stack.log)))
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        _check_kernel_up(lac, "lac", r"\bslc0\b")
        before = _before(lac, lns, stack)
        run = _run_transfer(bed, lac, peers.POOL_LOCAL, lns, lac, tag)
        total = run[1]
        detail = _rekey_checks(lac, lns, stack, before, run)
        rss = {lac.name: rss_mb(lac, "sluice=%d" % pid)}
        _stop(lac, pid)
        pid = None
        _check_clean(lac)
        return result(_dial_s(lac.read(SLUICE_LOG)), total, "Sluice LAC (kernel) %s -> strongSwan+xl2tpd LNS %s "
                      "(%s), %d s transfer %.1f Mbit/s; %s; nothing left after SIGTERM; %s" % (
                          lac.name, lns.name, ", ".join(REKEY_EXTRA), TRANSFER, total, detail, fmt_rss(rss)), rss)
    finally:
        _stop(lac, pid)
        save_guest_logs(bed, tag, lac, SLUICE_LOG, MONITOR_LOG)
        save_guest_logs(bed, tag, lns, "/var/log/xl2tpd.log", "/var/log/pppd.log", stack.log)
        stop_xl2tpd(lns)
        stack.stop(lns)


def cell_lns_kernel_rekey(bed):
    srv, lac = bed.g2, bed.g1
    stack = IpsecStack("strongswan")
    tag = "sluice-guest-lns-kernel-rekey"
    install_sluice(srv)
    srv.write("/etc/sluice-lab.conf", _conf(peers.sluice_server(srv.ip, "mschapv2", ipsec=True)), 0o600)
    install(lac, dict(_stack_files(lac, srv.ip), **peers.xl2tpd_lac(srv.ip, "mschapv2")))
    pid = None
    try:
        pid = start_server(srv, "Sluice server (kernel path)")
        ike, up = dial_reference_lac(lac, srv, stack, "Sluice (kernel path)")
        lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        _check_kernel_up(srv, "lns", r"\bsls0-\d+\b")
        before = _before(srv, lac, stack)
        # The server sends: the transfer LNS -> LAC through the rekeys (pppd's address on the LAC is POOL_START).
        run = _run_transfer(bed, srv, peers.POOL_START, lac, srv, tag)
        total = run[1]
        detail = _rekey_checks(srv, lac, stack, before, run)
        rss = {srv.name: rss_mb(srv, "sluice=%d" % pid)}
        _stop(srv, pid)
        pid = None
        _check_clean(srv)
        return result(ike + up["elapsed"], total, "strongSwan+xl2tpd LAC %s (%s) -> Sluice LNS (kernel) %s, %d s "
                      "transfer LNS -> LAC %.1f Mbit/s; %s; nothing left after SIGTERM; %s" % (
                          lac.name, ", ".join(REKEY_EXTRA), srv.name, TRANSFER, total, detail, fmt_rss(rss)), rss)
    finally:
        save_guest_logs(bed, tag, lac, "/var/log/xl2tpd.log", "/var/log/pppd.log", stack.log)
        stop_xl2tpd(lac)
        stack.stop(lac)
        _stop(srv, pid)
        save_guest_logs(bed, tag, srv, SLUICE_LOG, MONITOR_LOG)


# -- plain L2TP in kernel mode ---------------------------------------------------------------------------------

def _cpu_s(g, pid):
    """User + system CPU seconds of a guest process (/proc/PID/stat, clock ticks)."""
    out = g.sh("cut -d' ' -f14,15 /proc/%d/stat; getconf CLK_TCK" % pid).split()
    return (int(out[0]) + int(out[1])) / float(out[2])


def _unit_bytes(g, unit):
    """(rx, tx) bytes of a network device (/sys/class/net/UNIT/statistics)."""
    out = g.sh("cat /sys/class/net/%s/statistics/rx_bytes /sys/class/net/%s/statistics/tx_bytes" % (unit, unit))
    rx, tx = out.split()
    return int(rx), int(tx)


def _plain_kernel_view(g, unit_re):
    tunnel = g.sh("ip l2tp show tunnel 2>/dev/null; true")
    session = g.sh("ip l2tp show session 2>/dev/null; true")
    link = g.sh("ip -d -o link show")
    check("Tunnel" in tunnel and "Session" in session, "%s: no kernel L2TP tunnel/session:\n%s\n%s" % (
        g.name, tunnel, session))
    units = [l for l in link.splitlines() if re.search(unit_re, l) and "link/ppp" in l]
    check(units, "%s: no ppp unit matching %r:\n%s" % (g.name, unit_re, link))
    check(_our_states(g.sh("ip xfrm state")) == 0, "%s: XFRM states of ours with ipsec '0'" % g.name)
    enc = re.search(r"encap (\w+)", tunnel)
    return re.search(r"^\d+: ([^:@]+)", units[0]).group(1), (enc.group(1) if enc else "?")


def cell_lac_kernel_plain(bed):
    lns, lac = bed.g1, bed.g2
    tag = "sluice-guest-lac-kernel-plain"
    install(lns, peers.xl2tpd_lns("mschapv2"))
    install_sluice(lac)
    lac.write("/etc/sluice-lab.conf", _conf(peers.sluice_client(lns.ip, ipsec=False)), 0o600)
    pid = None
    try:
        start_xl2tpd(lns)
        up = lac.labctl("spawn-wait", "slc0", UP_TIMEOUT, SLUICE_LOG,
                        *_sluice_cmd("client", "/etc/sluice-lab.conf", "lac"), timeout=UP_TIMEOUT + 20)
        pid = up.get("pid")
        if not up.get("ok"):
            raise CellFailure("Sluice client (kernel path, no IPsec) in %s did not come up: %s\n%s\n%s" % (
                lac.name, up.get("error"), guest_logs(lac, SLUICE_LOG),
                guest_logs(lns, "/var/log/xl2tpd.log", "/var/log/pppd.log")))
        check(up["local"] == peers.POOL_START, "Sluice got %r, expected %s" % (up, peers.POOL_START))
        unit, encap = _plain_kernel_view(lac, r"\bslc0\b")
        st = _status_datapath(lac, "lac")
        # iperf3 server on the LNS, client on Sluice's side: tx is Sluice -> LNS.
        lac.sh("ping -c 3 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        tx, rx, moved, cpu = _transfer_through_unit(lac, pid, unit, lns, lac)
        rss = {lac.name: rss_mb(lac, "sluice=%d" % pid)}
        _stop(lac, pid)
        pid = None
        _check_clean(lac)
        log = lac.read(SLUICE_LOG)
        return result(_dial_s(log), tx, "Sluice LAC (kernel path, ipsec '0') %s -> xl2tpd+pppd LNS %s, mschapv2, "
                      "tx %.1f / rx %.1f Mbit/s; spawn to slc0 up %.2f s; kernel L2TP tunnel (encap %s), ppp unit "
                      "%s moved %.1f / %.1f MB, Sluice used %.2f s CPU meanwhile; status datapath %s; nothing left "
                      "after SIGTERM; %s" % (lac.name, lns.name, tx, rx, up["elapsed"], encap, unit, moved[0] / 1e6,
                                             moved[1] / 1e6, cpu, st, fmt_rss(rss)), rss)
    finally:
        _stop(lac, pid)
        save_guest_logs(bed, tag, lac, SLUICE_LOG)
        save_guest_logs(bed, tag, lns, "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lns)


def _transfer_through_unit(g, pid, unit, server, client):
    """iperf3 both ways between `server` and `client` (iperf_guest_to_guest's roles) through Sluice's unit in
    `g`: (tx, rx, (rx, tx) bytes the unit moved, Sluice's CPU seconds meanwhile), checked. The user-space path
    spends seconds of CPU per megabyte under TCG; the kernel path's Sluice only wakes for its timers (LCP echo,
    counters poll)."""
    cpu0, b0 = _cpu_s(g, pid), _unit_bytes(g, unit)
    tx = iperf_guest_to_guest(server, client, peers.POOL_LOCAL)
    rx = iperf_guest_to_guest(server, client, peers.POOL_LOCAL, reverse=True)
    cpu1, b1 = _cpu_s(g, pid), _unit_bytes(g, unit)
    moved = (b1[0] - b0[0], b1[1] - b0[1])
    check(min(moved) > 1000000, "%s's unit %s moved %r bytes (rx, tx)" % (g.name, unit, moved))
    cpu = cpu1 - cpu0
    check(cpu < 0.5, "Sluice used %.2f s of CPU while %r bytes went through %s: data through Sluice?" % (
        cpu, moved, unit))
    return tx, rx, moved, cpu


def cell_lns_kernel_plain(bed):
    srv, lac = bed.g2, bed.g1
    tag = "sluice-guest-lns-kernel-plain"
    install_sluice(srv)
    srv.write("/etc/sluice-lab.conf", _conf(peers.sluice_server(srv.ip, "mschapv2", ipsec=False)), 0o600)
    install(lac, peers.xl2tpd_lac(srv.ip, "mschapv2"))
    pid = None
    try:
        pid = start_server(srv, "Sluice server (kernel path, no IPsec)")
        start_xl2tpd(lac)
        up = dial_xl2tpd(lac, UP_TIMEOUT)
        if not up.get("ok"):
            raise CellFailure("the xl2tpd LAC got no ppp0 from Sluice (kernel path, no IPsec) in %s: %s\n%s\n%s" % (
                srv.name, up.get("error"), guest_logs(srv, SLUICE_LOG),
                guest_logs(lac, "/var/log/xl2tpd.log", "/var/log/pppd.log")))
        check(up["local"] == peers.POOL_START and up["peer"] == peers.POOL_LOCAL, "the LAC got %r" % up)
        unit, encap = _plain_kernel_view(srv, r"\bsls0-\d+\b")
        st = _status_datapath(srv, "lns")
        lac.sh("ping -c 3 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        tx, rx, moved, cpu = _transfer_through_unit(srv, pid, unit, srv, lac)
        rss = {srv.name: rss_mb(srv, "sluice=%d" % pid)}
        _stop(srv, pid)
        pid = None
        _check_clean(srv)
        return result(up["elapsed"], tx, "xl2tpd+pppd LAC %s -> Sluice LNS (kernel path, ipsec '0') %s, mschapv2, "
                      "LAC tx %.1f / rx %.1f Mbit/s; kernel L2TP tunnel (encap %s), ppp unit %s moved %.1f / %.1f "
                      "MB, Sluice used %.2f s CPU meanwhile; status datapath %s; nothing left after SIGTERM; %s" % (
                          lac.name, srv.name, tx, rx, encap, unit, moved[0] / 1e6, moved[1] / 1e6, cpu, st,
                          fmt_rss(rss)), rss)
    finally:
        save_guest_logs(bed, tag, lac, "/var/log/xl2tpd.log", "/var/log/pppd.log")
        stop_xl2tpd(lac)
        _stop(srv, pid)
        save_guest_logs(bed, tag, srv, SLUICE_LOG)


def _status_datapath(g, name):
    from .sluice_kernel import _status

    st = _status(g, name)
    sessions = [s for t in st.get("tunnels", []) for s in t.get("sessions", [])]
    check(st.get("datapath") == "kernel" and sessions and all(s.get("datapath") == "kernel" for s in sessions),
          "%s: sluice status: datapath %r, sessions %r" % (g.name, st.get("datapath"), sessions))
    return st.get("datapath")
