"""IPv6 and DHCPINFORM answers on Sluice's kernel data path (issue 10), server side.

sluice-guest-lns-ipv6-kernel, testbed `kernel-peer`: strongSwan + xl2tpd + pppd `+ipv6` LAC in g1 (Debian 12)
-> Sluice server in g2 (Debian 13, kernel 6.12) with `option datapath 'kernel'`, ipv6 '1', ip6prefix
'2001:db8:77::/48', client_routes and domain (DHCPINFORM answers). Data never passes through Sluice: the session's
ppp unit carries it in g2's kernel; Sluice reads only DHCPINFORMs and Router Solicitations from the unit's
filtered AF_PACKET socket and writes its answers there.

Checks: the session is a kernel ppp unit (sls0-<sid>) with fe80::<Sluice's IPv6CP id>/64 and the session's /64
routed to it in g2's kernel (`ip -6 route`), the /64 that `sluice status --json` gives the session; pppd's
IPv6CP comes up and g1's kernel takes a global address from Sluice's RA (SLAAC) and its default route; ping -6
from g1 to g2's 2001:db8:1::1 (on g2's loopback, through the unit), to Sluice's link-local, and from g2 to g1's
SLAAC address; a Router Solicitation from g1 is answered with an RA (Sluice's RS count in status grows); a DHCPINFORM sent by g1 through ppp0 (from its PPP address; the ACK read on ppp0) gets a DHCPACK with
the configured classless static routes (option 121), the DNS server (6) and the domain (15); tshark on the lab
bridge sees IKE and ESP only (no plaintext L2TP) from set-up to the last check; after Sluice stops, g2 holds no
SA, policy, tunnel, ppp unit or /64 route of ours.
"""

import json
import re
import socket

from .. import peers
from . import capture
from .base import (CellFailure, IpsecStack, check, guest_logs, install, result, save_guest_logs, start_xl2tpd,
                   stop_xl2tpd)
from .reference import _esp_counters, dial_xl2tpd
from .sluice_guest import SLUICE_LOG, UP_TIMEOUT, _sluice_cmd, _stop, install_sluice, start_server
from .sluice_kernel import _check_clean, _check_kernel_up, _conf, _status, _wire

FAR6 = "2001:db8:1::1"
ROUTES = ("198.51.100.0/24", "203.0.113.0/25")
DOMAIN = "corp.example.org"
SERVER_EXTRA = ("option ipv6 '1'", "option ip6prefix '2001:db8:77::/48'", "list dns6 '2001:db8:1::53'",
                "option mtu '1280'") + tuple("list client_routes '%s'" % r for r in ROUTES) + (
                "option domain '%s'" % DOMAIN,)

# Run in g1: a DHCPINFORM (RFC 2131 4.4.3) from the PPP address to the server through ppp0; prints the DHCPACK's
# options as JSON {code: hex}, or {} after three tries. The ACK goes to the PPP address :68, which a DHCP client of
# the guest may hold (0.0.0.0:68): it is read with an AF_PACKET socket on ppp0 (a ppp unit has no link header).
INFORM_PY = r"""
import json, os, select, socket, sys
me, server = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"ppp0")
s.bind((me, 0))
r = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
r.bind(("ppp0", 0x0800))
xid = os.urandom(4)
msg = (bytes([1, 1, 6, 0]) + xid + bytes(4) + socket.inet_aton(me) + bytes(12) + bytes(16) + bytes(192) +
       b"\x63\x82\x53\x63" + b"\x35\x01\x08" + b"\x37\x04\x79\x06\x0f\xf9" + b"\xff")
out = {}
for _ in range(3):
    s.sendto(msg, (server, 67))
    for _ in range(20):
        ready, _, _ = select.select([r], [], [], 1.0)
        if not ready:
            break
        p = r.recv(4096)
        h = (p[0] & 15) * 4
        if p[0] >> 4 != 4 or p[9] != 17 or p[h + 2:h + 4] != b"\x00\x44":
            continue
        b = p[h + 8:]
        if len(b) < 240 or b[0] != 2 or b[4:8] != xid or b[236:240] != b"\x63\x82\x53\x63":
            continue
        i = 240
        while i < len(b) and b[i] != 255:
            if b[i] == 0:
                i += 1
                continue
            out[b[i]] = b[i + 2:i + 2 + b[i + 1]].hex()
            i += 2 + b[i + 1]
        break
    if out:
        break
print(json.dumps(out))
"""


# Run in g1: a Router Solicitation out of ppp0 (RFC 4861 4.1, hop limit 255, the kernel sums it); prints how many
# seconds the Router Advertisement took, or -1 after 6 s.
RS_PY = r"""
import select, socket, time
r = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
r.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
r.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"ppp0")
t0 = time.monotonic()
r.sendto(b"\x85\x00\x00\x00\x00\x00\x00\x00", ("ff02::2", 0, 0, socket.if_nametoindex("ppp0")))
took = -1
while time.monotonic() - t0 < 6 and took < 0:
    ready, _, _ = select.select([r], [], [], 0.5)
    if ready and r.recv(2048)[:1] == b"\x86":
        took = time.monotonic() - t0
print("%.2f" % took)
"""


def _classless(routes, gateway):
    """Option 121's value (RFC 3442) for routes via gateway."""
    out = b""
    for r in routes:
        net, plen = r.split("/")
        plen = int(plen)
        out += bytes([plen]) + socket.inet_aton(net)[:(plen + 7) // 8] + socket.inet_aton(gateway)
    return out.hex()


def cell_lns_ipv6_kernel(bed):
    srv, lac = bed.g2, bed.g1
    stack = IpsecStack("strongswan")
    tag = "sluice-guest-lns-ipv6-kernel"
    install_sluice(srv)
    srv.write("/etc/sluice-lab.conf", _conf(peers.sluice_server(srv.ip, "mschapv2", ipsec=True, extra=SERVER_EXTRA)),
              0o600)
    files = dict(stack.files(lac, srv.ip), **peers.xl2tpd_lac(srv.ip, "mschapv2"))
    files["/etc/ppp/options.l2tp-client"] += "+ipv6\n"
    install(lac, files)
    lac.write("/tmp/inform.py", INFORM_PY, 0o644)
    lac.write("/tmp/rs.py", RS_PY, 0o644)
    pid = None
    cap = capture.Capture(bed.lab, tag, capture.IPSEC_FILTER, 2048)
    try:
        srv.sh("ip -6 addr replace %s/128 dev lo" % FAR6)
        # A host takes RAs while it does not forward (accept_ra 1); ppp0 is made after this, from "default".
        lac.sh("sysctl -qw net.ipv6.conf.default.accept_ra=1 net.ipv6.conf.default.autoconf=1 "
               "net.ipv6.conf.all.forwarding=0")
        pid = start_server(srv, "Sluice server (kernel path, IPv6)")
        check("data path: kernel" in srv.read(SLUICE_LOG), "Sluice did not take the kernel data path:\n%s"
              % guest_logs(srv, SLUICE_LOG))
        cap.start()
        stack.start(lac)
        ok, r = stack.up(lac)
        if not ok:
            raise CellFailure("strongSwan in %s could not bring up IPsec with Sluice in %s (rc %s):\n%s\n%s" % (
                lac.name, srv.name, r.get("rc"), r.get("output", "")[-1500:], guest_logs(srv, SLUICE_LOG)))
        ike = r["elapsed"]
        esp_before = _esp_counters(lac)
        start_xl2tpd(lac)
        up = dial_xl2tpd(lac, UP_TIMEOUT)
        if not up.get("ok"):
            raise CellFailure("the xl2tpd LAC got no ppp0 from Sluice (kernel path) in %s: %s\n%s\n%s" % (
                srv.name, up.get("error"), guest_logs(srv, SLUICE_LOG),
                guest_logs(lac, "/var/log/xl2tpd.log", "/var/log/pppd.log")))
        check(up["local"] == peers.POOL_START and up["peer"] == peers.POOL_LOCAL, "the LAC got %r" % up)
        # IPv6CP up in pppd, then SLAAC from Sluice's RA (answer to pppd's kernel's RS, or the first RA).
        lac.sh("i=0; until ip -6 addr show dev ppp0 scope global | grep -q '2001:db8:77:'; do "
               "[ $i -lt 100 ] || exit 1; sleep 0.2; i=$((i+1)); done", timeout=40)
        addrs = lac.sh("ip -6 addr show dev ppp0 scope global")
        mine = re.search(r"inet6 (2001:db8:77:[0-9a-f:]+)/64", addrs)
        check(mine, "ppp0 in %s has no SLAAC address:\n%s" % (lac.name, addrs))
        mine = mine.group(1)
        unit, nstates = _check_kernel_up(srv, "lns", r"\bsls0-\d+\b")
        link6 = srv.sh("ip -6 addr show dev %s" % unit)
        check("fe80::" in link6, "no link-local address on %s:\n%s" % (unit, link6))
        routes6 = srv.sh("ip -6 route show dev %s" % unit)
        net = re.search(r"(2001:db8:77:[0-9a-f:]*)/64", routes6)
        check(net, "no /64 route to %s in %s:\n%s" % (unit, srv.name, routes6))
        sess = [s for t in _status(srv, "lns").get("tunnels", []) for s in t.get("sessions", [])]
        prefix = (sess[0].get("ipv6") or {}).get("prefix") if sess else None
        check(prefix == net.group(0) and mine.startswith(net.group(1).rstrip(":")),
              "status says %r, route %s, client address %s" % (prefix, net.group(0), mine))
        lac.sh("ping -6 -c 2 -i 0.3 -W 3 %s" % FAR6, timeout=20)
        router = lac.sh("ip -6 route show default dev ppp0").split()
        check("via" in router, "no default route from the RA on ppp0: %r" % router)
        lac.sh("ping -6 -c 1 -W 3 %s%%ppp0" % router[router.index("via") + 1], timeout=10)
        srv.sh("ping -6 -c 2 -i 0.3 -W 3 %s" % mine, timeout=20)
        # A Router Solicitation through the unit's filtered socket to Sluice, answered with an RA on the unit.
        rs_before = sess[0]["ipv6"].get("rs", 0)
        took = float(lac.sh("python3 /tmp/rs.py", timeout=20).strip().splitlines()[-1])
        s6 = [s for t in _status(srv, "lns").get("tunnels", []) for s in t.get("sessions", [])][0]
        v6 = s6["ipv6"]
        check(took >= 0 and v6.get("rs", 0) > rs_before, "RS from %s: RA after %s s, Sluice's RS count %s -> %s"
              % (lac.name, took, rs_before, v6.get("rs")))
        # The session's IPv6 counters, read from the kernel (the pings and the RS/RA above went through the unit)
        check(s6.get("rx6_packets", 0) >= 4 and s6.get("tx6_packets", 0) >= 4 and s6.get("rx6_bytes", 0) > 0 and
              s6.get("rx6_bytes", 0) <= s6.get("rx_bytes", 0), "IPv6 counters in status: %r" % {
                  k: s6.get(k) for k in ("rx6_packets", "rx6_bytes", "tx6_packets", "tx6_bytes", "rx_bytes")})
        # DHCPINFORM through ppp0: the ACK carries the routes (121), DNS (6) and domain (15).
        got = json.loads(lac.sh("python3 /tmp/inform.py %s %s" % (up["local"], peers.POOL_LOCAL), timeout=30)
                         .strip().splitlines()[-1])
        check(got.get("121") == _classless(ROUTES, peers.POOL_LOCAL),
              "DHCPACK option 121 %r, expected %s\n%s" % (got, _classless(ROUTES, peers.POOL_LOCAL),
                                                          guest_logs(srv, SLUICE_LOG)))
        check(got.get("6") == socket.inet_aton(peers.POOL_LOCAL).hex(), "DHCPACK DNS: %r" % got)
        check(bytes.fromhex(got.get("15", "")).rstrip(b"\0") == DOMAIN.encode(), "DHCPACK domain: %r" % got)
        esp_after = _esp_counters(lac)
        check(esp_after[0] > esp_before[0], "no ESP packets counted by %s: %r -> %r" % (lac.name, esp_before,
                                                                                       esp_after))
        wire = _wire(cap)
        log = srv.read(SLUICE_LOG)
        check("IPv6 up for" in log, "Sluice did not log the session's IPv6")
        _stop(srv, pid)
        pid = None
        _check_clean(srv)
        left6 = srv.sh("ip -6 route show | grep '2001:db8:77:' ; true")
        check(not left6.strip(), "a /64 route of ours is left in %s: %s" % (srv.name, left6))
        return result(ike + up["elapsed"], None, (
            "pppd +ipv6 LAC %s -> Sluice LNS (kernel path) in %s: IKE %.2f s + L2TP/PPP %.2f s; unit %s with %s "
            "routed to it, SLAAC %s, ping -6 both ways and Sluice's link-local, RS answered in %.2f s; DHCPINFORM answered with %d "
            "classless routes, DNS and domain; status IPv6 rx %d / tx %d packets (kernel MIB); %d XFRM states of ours; %s; "
            "nothing left behind" % (
                lac.name, srv.name, ike, up["elapsed"], unit, net.group(0), mine, took, len(ROUTES),
                s6["rx6_packets"], s6["tx6_packets"], nstates, wire)))
    finally:
        cap.stop()
        save_guest_logs(bed, tag, lac, "/var/log/xl2tpd.log", "/var/log/pppd.log", stack.log)
        stop_xl2tpd(lac)
        stack.stop(lac)
        _stop(srv, pid)
        save_guest_logs(bed, tag, srv, SLUICE_LOG)


def cell_lac_ipv6_kernel(bed):
    """sluice-guest-lac-ipv6-kernel: the client side. Sluice client in g2 (Debian 13) with `datapath 'kernel'`,
    ipv6 '1' and routes6 '2001:db8:1::/64' -> Sluice server in g1 on the user-space path with IPv6 (its RAs are
    checked against a real pppd by sluice-guest-lns-ipv6). The kernel carries the client's data; Sluice reads only
    the server's Router Advertisements from the unit's filtered socket (its RS leaves there too) and applies
    them: slc0 gets the SLAAC address of the session's /64 and the route, ping -6 reaches 2001:db8:1::1 on g1's
    loopback through the unit, the kernel took no RA itself (accept_ra 0 on the unit, no default route), tshark
    sees only IKE and ESP, and nothing of ours is left in g2 after SIGTERM."""
    srv, lac = bed.g1, bed.g2
    tag = "sluice-guest-lac-ipv6-kernel"
    install_sluice(srv)
    install_sluice(lac)
    srv.write("/etc/sluice-lab.conf", peers.sluice_server(srv.ip, "mschapv2", ipsec=True, extra=SERVER_EXTRA[:4]),
              0o600)
    conf = _conf(peers.sluice_client(srv.ip, ipsec=True)).replace(
        "    option ifname", "    option ipv6 '1'\n    list routes6 '2001:db8:1::/64'\n    option ifname", 1)
    lac.write("/etc/sluice-lab.conf", conf, 0o600)
    spid = cpid = None
    cap = None
    try:
        srv.sh("ip -6 addr replace %s/128 dev lo" % FAR6)
        spid = start_server(srv, "Sluice server")
        cap = capture.Capture(bed.lab, tag, capture.IPSEC_FILTER, 2048)
        cap.start()
        up = lac.labctl("spawn-wait", "slc0", UP_TIMEOUT, SLUICE_LOG,
                        *_sluice_cmd("client", "/etc/sluice-lab.conf", "lac"), timeout=UP_TIMEOUT + 20)
        cpid = up.get("pid")
        if not up.get("ok"):
            raise CellFailure("the kernel-path client in %s did not come up: %s\n%s\n%s" % (
                lac.name, up.get("error"), guest_logs(lac, SLUICE_LOG), guest_logs(srv, SLUICE_LOG)))
        _check_kernel_up(lac, "lac", r"\bslc0\b", peer_mru=None)   # the peer is a Sluice server
        r = lac.ssh("i=0; until ip -6 addr show dev slc0 scope global | grep -q '2001:db8:77:'; do "
                    "[ $i -lt 100 ] || exit 1; sleep 0.2; i=$((i+1)); done", check=False, timeout=40)
        addrs = lac.sh("ip -6 addr show dev slc0")
        check(r.returncode == 0 and "fe80::" in addrs, "slc0 in %s has no IPv6 from the server's RA:\n%s\n%s" % (
            lac.name, addrs, guest_logs(lac, SLUICE_LOG)))
        routes = lac.sh("ip -6 route show dev slc0")
        check("2001:db8:1::/64" in routes and "default" not in routes,
              "routes on slc0 (want routes6 only, no default from the kernel): %s" % routes)
        check(lac.sh("cat /proc/sys/net/ipv6/conf/slc0/accept_ra").strip() == "0", "the kernel takes RAs on slc0")
        lac.sh("ping -6 -c 3 -i 0.3 -W 3 %s" % FAR6, timeout=20)
        st = _status(lac, "lac")
        v6 = [s.get("ipv6") or {} for t in st.get("tunnels", []) for s in t.get("sessions", [])]
        v6 = v6[0] if v6 else {}
        wire = _wire(cap)
        cap = None
        _stop(lac, cpid)
        cpid = None
        _check_clean(lac)
        got = [a for a in addrs.split() if a.startswith("2001:db8:77:")]
        return result(up["elapsed"], None, "Sluice client (kernel path, IPv6) in %s -> Sluice server (user path) in "
                      "%s: %s on slc0 from the RA read on the unit, route 2001:db8:1::/64, ping -6 %s through the "
                      "unit; kernel accept_ra 0; %s; status datapath %s%s; nothing left behind" % (
                          lac.name, srv.name, got[0] if got else "?", FAR6, wire, st.get("datapath"),
                          " (status ipv6 %s)" % v6.get("address") if v6 else ""))
    finally:
        if cap is not None:
            cap.stop()
        _stop(lac, cpid)
        _stop(srv, spid)
        save_guest_logs(bed, tag, lac, SLUICE_LOG)
        save_guest_logs(bed, tag, srv, SLUICE_LOG)
