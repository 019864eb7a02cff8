"""Clients behind NAT: strongSwan + xl2tpd + pppd with the Windows profile, NATed, to the Sluice server.

Topology: the lab namespace itself NATs. An nftables `nat` chain on the *input* hook of the lab namespace
source-translates what the guests send to the host (192.0.2.1) to one public address, 203.0.113.5, as a home
router's masquerade would: Sluice (on the host) sees every client as 203.0.113.5 with ports the NAT picked,
and conntrack maps its replies back (the reply direction is de-NATed on the output hook, after which the
kernel re-routes to the guest). Both sides see NAT-D hashes that do not match (RFC 3947 section 3.2), float
IKE to UDP 4500 and use UDP-encapsulated ESP (RFC 3948) in transport mode, which is what a Windows client
behind a home router does (clients.md: UDP-Encapsulated-Transport with NAT-OA).

- client-profile-windows-nat: one client (g1) behind the NAT;
- two-clients-behind-nat: g1 and g2 behind the same NAT and public address at the same time: the NAT gives
  the second one other ports for 500/4500, both use inner L2TP source port 1701 and the same L2TP tunnel
  ids may repeat, so only the outer port tells them apart (clients.md problem 1; docs/design.md: the peer
  key is outer address, outer port, inner source port).

Checks beyond client-profile-*: the NAT rule's counter moved (the translation happened), strongSwan logged
that its host is behind NAT, its ESP state is UDP-encapsulated (`encap type espinudp`), and the captured
traffic has no plaintext L2TP and no plain ESP (protocol 50) frames from the guests.
"""

import re
import time

from .. import lab as lab_mod
from .. import peers
from . import capture
from .base import (check, install, start_xl2tpd, stop_xl2tpd, IpsecStack, save_guest_logs,
                   iperf_guest_client, result)
from .client_profiles import PROFILES, _start_with_profile, _negotiated, _ike_name
from .reference import _auth_used, _esp_counters, dial_xl2tpd
from .sluice import _wait_status, _server_sessions, _sluice_failure
from .sluice_ipsec import _check_wire, CAPTURE_FILTER, SNAPLEN, UP_TIMEOUT, TEARDOWN_TIMEOUT

PUBLIC_IP = "203.0.113.5"  # RFC 5737 TEST-NET-3: the NAT's "public" address as Sluice sees it
NAT_TABLE = "slabnat"


def nat_on(lab, guests):
    """Source-NAT what `guests` send to the host to PUBLIC_IP (ports remapped on collision, as masquerade)."""
    srcs = ", ".join(g.ip for g in guests)
    lab.ns_run("nft", "-f", "-", input="\n".join([
        "table ip %s {" % NAT_TABLE,
        "  chain in {",
        "    type nat hook input priority 100; policy accept;",
        "    ip saddr { %s } ip daddr %s counter snat to %s" % (srcs, lab_mod.HOST_IP, PUBLIC_IP),
        "  }",
        "}",
        ""]))
    # Replies to PUBLIC_IP need a route to leave at all; conntrack then rewrites them to the guest's address.
    lab.ns_run("ip", "route", "replace", PUBLIC_IP + "/32", "dev", "br0")


def nat_off(lab):
    lab.ns_run("nft", "delete", "table", "ip", NAT_TABLE, check=False)
    lab.ns_run("ip", "route", "del", PUBLIC_IP + "/32", check=False)
    # Entries with NAT bindings would otherwise go on translating the next cell's flows for their lifetime.
    lab.ns_run("sh", "-c", "command -v conntrack >/dev/null && conntrack -F; true", check=False)


def nat_packets(lab):
    out = lab.ns_run("nft", "list", "table", "ip", NAT_TABLE, check=False).stdout
    m = re.search(r"counter packets (\d+)", out)
    return int(m.group(1)) if m else 0


def public_ports(lab):
    """The NAT's public source ports of the guests' IKE/NAT-T flows to UDP 4500 (conntrack's reply tuples), or
    None without the conntrack tool."""
    p = lab.ns_run("sh", "-c", "command -v conntrack >/dev/null || exit 3; conntrack -L -p udp --dport 4500 "
                   "2>/dev/null", check=False)
    if p.returncode == 3:
        return None
    ports = []
    for line in p.stdout.splitlines():
        if "dst=%s" % PUBLIC_IP in line:
            ports += re.findall(r"dport=(\d+)", line)[1:2]  # the reply direction's destination port
    return ports


def _client_up(lab, proc, guest, profile, index):
    """strongSwan (profile) + xl2tpd on `guest` dial Sluice through the NAT; returns facts for the checks."""
    stack = IpsecStack("strongswan")
    ike, esp = PROFILES[profile]
    install(guest, peers.xl2tpd_lac(lab_mod.HOST_IP))
    ike, esp, dropped = _start_with_profile(guest, ike, esp, lab_mod.HOST_IP)
    start_xl2tpd(guest)
    ok, r = stack.up(guest)
    if not ok:
        raise _sluice_failure(lab, proc, "%s (behind NAT, %s profile) could not bring up IPsec with Sluice (rc %s):"
                              "\n%s" % (guest.name, profile, r.get("rc"), r.get("output", "")[-2000:]), guest)
    got_ike, got_esp, status = _negotiated(guest)
    check(got_ike in [_ike_name(p) for p in ike], "%s negotiated IKE %r, not in the profile" % (guest.name, got_ike))
    log = guest.read(stack.log)
    check("local host is behind NAT" in log, "%s's charon did not find itself behind NAT (NAT-D):\n%s" % (
        guest.name, log[-1500:]))
    states = guest.sh("ip xfrm state")
    check("mode transport" in states and "encap type espinudp" in states,
          "%s holds no UDP-encapsulated transport ESP state:\n%s" % (guest.name, states))
    up = dial_xl2tpd(guest, UP_TIMEOUT)
    if not up.get("ok"):
        raise _sluice_failure(lab, proc, "%s: the xl2tpd LAC got no ppp0 through the NAT: %s" % (
            guest.name, up.get("error")), guest)
    check(up["peer"] == peers.POOL_LOCAL, "%s got %r" % (guest.name, up))
    used, acks = _auth_used(guest.read("/var/log/pppd.log"), "mschapv2")
    check(used, "%s's pppd did not settle on MS-CHAPv2: %r" % (guest.name, acks))
    return {"ike_s": r["elapsed"], "l2tp_s": up["elapsed"], "ip": up["local"], "ike": got_ike, "esp": got_esp,
            "dropped": dropped}


def _cleanup(bed, lab, proc, guests, cap, tag):
    if cap is not None:
        cap.stop()
    stack = IpsecStack("strongswan")
    for g in guests:
        save_guest_logs(bed, tag, g, stack.log, "/var/log/xl2tpd.log", "/var/log/pppd.log")
    stop_xl2tpd(*guests)
    for g in guests:
        stack.stop(g)
    lab.stop(proc, 5)
    nat_off(lab)


def cell_clients_behind_nat(bed, profile="windows", count=1):
    """`count` (1 or 2) strongSwan+xl2tpd+pppd clients behind one NAT -> Sluice LNS, up at the same time."""
    lab = bed.lab
    guests = bed.guests[:count]
    check(len(guests) == count, "testbed %s has %d guests, need %d" % (bed.name, len(bed.guests), count))
    tag = "client-profile-%s-nat" % profile if count == 1 else "two-clients-behind-nat"
    cap = None
    proc = lab.sluice("server", peers.sluice_server(lab_mod.HOST_IP, "mschapv2", ipsec=True), "lns")
    try:
        st = _wait_status(lab, proc, "lns", lambda s: s.get("role", "server") == "server", 15)
        if st is None:
            raise _sluice_failure(lab, proc, "Sluice LNS (IPsec) did not answer on its control socket", guests[0])
        nat_on(lab, guests)
        cap = capture.Capture(lab, tag + "-setup", CAPTURE_FILTER, SNAPLEN).start()
        ups = [_client_up(lab, proc, g, profile, i) for i, g in enumerate(guests)]
        # Every client still up once all are (a second client behind the NAT must not take the first's place).
        ips = [u["ip"] for u in ups]
        check(len(set(ips)) == count, "clients got the same address: %r" % ips)
        sessions = _server_sessions(lab.sluice_status("lns"))
        check(len(sessions) == count, "Sluice lists %d sessions, expected %d: %r" % (
            len(sessions), count, lab.sluice_status("lns")))
        for g in guests:
            g.sh("ping -c 3 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        check(nat_packets(lab) > 0, "the NAT rule translated nothing")
        ports = public_ports(lab)
        if ports is not None:
            check(len(set(ports)) == count, "conntrack shows public NAT-T ports %r for %d clients" % (ports, count))
        wire = _check_wire(cap.stop(), guests[0], "set-up")
        plain_esp = capture.tshark_fields(cap.path, "ip.proto == 50", "ip.src")
        check(not plain_esp, "%d plain ESP (protocol 50) frames behind NAT: %r" % (len(plain_esp), plain_esp[:5]))
        speeds = []
        for g in guests:
            before = _esp_counters(g)
            tx = iperf_guest_client(lab, g, peers.POOL_LOCAL)
            rx = iperf_guest_client(lab, g, peers.POOL_LOCAL, reverse=True)
            after = _esp_counters(g)
            check(after[1] - before[1] > 1000000, "%s: ESP counters hardly moved (%r -> %r)" % (g.name, before, after))
            speeds.append((tx, rx))
        # Both tunnels survived each other's traffic.
        for g in guests:
            g.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
        nat_n = nat_packets(lab)
        cap = capture.Capture(lab, tag + "-teardown", CAPTURE_FILTER, SNAPLEN).start()
        stop_xl2tpd(*guests)
        st = _wait_status(lab, proc, "lns", lambda s: not _server_sessions(s), TEARDOWN_TIMEOUT)
        check(st is not None, "Sluice still lists sessions %.0f s after xl2tpd stopped" % TEARDOWN_TIMEOUT)
        _check_wire(cap.stop(), guests[0], "teardown")
        with open(proc.log_path) as f:
            slog = f.read()
        check(PUBLIC_IP in slog, "Sluice's log never names the NAT's address %s" % PUBLIC_IP)
        per = "; ".join("%s %s IKE %s + ESP %s, IKE %.2f s + L2TP/PPP %.2f s, tx %.1f / rx %.1f Mbit/s" % (
            g.name, u["ip"], u["ike"], u["esp"], u["ike_s"], u["l2tp_s"], s[0], s[1])
            for g, u, s in zip(guests, ups, speeds))
        dropped = sorted(set(sum((u["dropped"] for u in ups), [])))
        return result(ups[0]["ike_s"] + ups[0]["l2tp_s"], speeds[0][0],
                      "%d client(s), %s profile, behind NAT %s (%d flows translated%s), NAT-T espinudp: %s%s%s" % (
                          count, profile, PUBLIC_IP, nat_n,
                          ", public ports " + "/".join(sorted(set(ports))) if ports else "", per,
                          ", tshark: " + wire + ", no plaintext L2TP/ESP" if wire else "",
                          "; strongSwan refused %s" % ", ".join(dropped) if dropped else ""))
    except lab_mod.LabError as e:
        raise _sluice_failure(lab, proc, str(e), guests[0]) from None
    finally:
        _cleanup(bed, lab, proc, guests, cap, tag)
        time.sleep(0.5)
