"""two-clients-behind-nat-kernel: the Sluice SERVER on the kernel data path with two clients behind one NAT.

The Debian 13 guest (kernel 6.12, g2 of testbed `kernel-peer`), four network namespaces as kernel_hal's
`kernel-hal-two-behind-nat`: the server (198.51.100.1), a NAT (198.51.100.2, nftables masquerade) and two
clients on private addresses behind it. The server is `sluice server` with `option datapath 'kernel'`; the
clients are two `sluice client` processes (user-space path, each in its own namespace), so the server sees
two IKE peers at one address with two NAT-T ports, both sending L2TP from inner port 1701. The two clients
dial at the same moment (both spawned, then both waited for), so their SCCRQs reach the server within one
counter poll: only the mark their inbound SA set (SO_RCVMARK) tells them apart.

two-clients-behind-nat-kernel-6.1 is the same on Debian 12 (kernel 6.1, g2 of testbed `strongswan`), before the
6.11 l2tp_core change: one client gets the kernel tunnel and unit, the other a user-space session over its
kernel SAs (`datapath` "user", the TUN as its unit, `shared_address_user` 1, one kernel tunnel); both must
carry the same traffic.

Checks: both clients up at once with different addresses; ping both ways (client -> server's local_ip and
server -> each client's address) and a short iperf3 per client; `sluice status --json` lists two sessions,
each with `datapath` "kernel" and its own ppp unit, and the transport counts the shared address; the kernel
holds one inbound and two marked outbound L2TP policies of Sluice's and two kernel L2TP tunnels; tcpdump on the
server's link sees ESP-in-UDP and no plaintext L2TP; the server attributed SCCRQs by mark and guessed none
(transport `attributed_by_mark` >= 1, `misattributed` 0); after SIGTERM the server's namespace holds no SA,
policy, tunnel or ppp unit of ours.
"""

import json
import re
import time

from .. import peers
from .base import CellFailure, check, result, save_guest_logs
from .sluice_guest import SLUICE_DIR, install_sluice

SRV_IP, NAT_IP = "198.51.100.1", "198.51.100.2"
NSS = ("knsrv", "knnat", "kncl1", "kncl2")
SRV_LOG = "/var/log/sluice-nat-srv.log"
UP_TIMEOUT = 90
ENV = "env PYTHONPATH=%s SLUICE_RUNDIR=/run/sluice-nat PYTHONUNBUFFERED=1" % SLUICE_DIR


def _conf_server():
    return peers.sluice_server(SRV_IP, "mschapv2", ipsec=True, datapath="kernel")


def _conf_client(i):
    text = peers.sluice_client(SRV_IP, ipsec=True, datapath="user")
    return text.replace("option ifname 'slc0'", "option ifname 'slc%d'" % i)


def _ns_setup(g):
    cmds = ["for n in %s; do ip netns del $n 2>/dev/null; done" % " ".join(NSS),
            "for n in %s; do ip netns add $n && ip -n $n link set lo up; done" % " ".join(NSS),
            "ip link add sv netns knsrv type veth peer name nv netns knnat",
            "ip -n knsrv addr add %s/24 dev sv && ip -n knnat addr add %s/24 dev nv" % (SRV_IP, NAT_IP),
            "ip -n knsrv link set sv up && ip -n knnat link set nv up",
            "ip netns exec knnat sysctl -qw net.ipv4.ip_forward=1"]
    for i in ("1", "2"):
        cmds += ["ip link add n%s netns knnat type veth peer name c%s netns kncl%s" % (i, i, i),
                 "ip -n knnat addr add 10.0.%s.1/24 dev n%s && ip -n knnat link set n%s up" % (i, i, i),
                 "ip -n kncl%s addr add 10.0.%s.2/24 dev c%s && ip -n kncl%s link set c%s up" % (i, i, i, i, i),
                 "ip -n kncl%s route add default via 10.0.%s.1" % (i, i)]
    g.sh(cmds[0] + "; " + " && ".join(cmds[1:]))
    # A home router's masquerade: both clients leave as 198.51.100.2, the second one's 500/4500 remapped.
    g.ssh("ip netns exec knnat nft -f -", input=(
        "table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n"
        "  oifname \"nv\" counter masquerade\n }\n}\n"))


def _status(g, ns, name):
    p = g.ssh("ip netns exec %s %s python3 -m sluice status --json --name %s" % (ns, ENV, name), check=False,
              timeout=60)
    try:
        return json.loads(p.stdout)
    except ValueError:
        raise CellFailure("sluice status --json --name %s printed no JSON:\n%s\n%s" % (name, p.stdout, p.stderr))


def _spawn_cmd(ns, iface, log, role, conf, name):
    return "ip netns exec %s python3 /lab/labctl.py spawn-wait %s %d %s %s python3 -m sluice %s --config %s " \
           "--name %s -v" % (ns, iface, UP_TIMEOUT, log, ENV, role, conf, name)


def _spawn_wait(g, ns, iface, log, role, conf, name):
    p = g.ssh(_spawn_cmd(ns, iface, log, role, conf, name), timeout=UP_TIMEOUT + 30, check=False)
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CellFailure("labctl spawn-wait in %s gave no answer: %s %s" % (ns, p.stdout[-500:], p.stderr[-500:]))


def _spawn_clients_at_once(g):
    """Both clients started together, then both waited for: {1: answer, 2: answer} (labctl's JSON each)."""
    cmds = [_spawn_cmd("kncl%d" % i, "slc%d" % i, "/var/log/sluice-nat-c%d.log" % i, "client",
                       "/etc/sluice-nat-c%d.conf" % i, "c%d" % i) for i in (1, 2)]
    p = g.ssh("rm -f /tmp/knsw1 /tmp/knsw2; %s > /tmp/knsw1 2>/tmp/knsw1.err & %s > /tmp/knsw2 2>/tmp/knsw2.err & "
              "wait; for i in 1 2; do echo \"C$i $(tail -n 1 /tmp/knsw$i)\"; done" % (cmds[0], cmds[1]),
              timeout=UP_TIMEOUT + 30, check=False)
    out = {}
    for line in p.stdout.splitlines():
        if line[:3] in ("C1 ", "C2 "):
            try:
                out[int(line[1])] = json.loads(line[3:])
            except ValueError:
                pass
    if sorted(out) != [1, 2]:
        raise CellFailure("labctl spawn-wait of the two clients gave no answer: %s %s" % (p.stdout[-800:],
                                                                                          p.stderr[-500:]))
    return out


def _stop(g, pid):
    if pid:
        g.ssh("kill %d 2>/dev/null; i=0; while kill -0 %d 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; "
              "i=$((i+1)); done; kill -9 %d 2>/dev/null; true" % (pid, pid, pid), check=False, timeout=30)


def _ours(text):
    return sum(1 for m in re.finditer(r"reqid (\d+)", text) if int(m.group(1)) >> 24 == 0x5C)


def _logs(g):
    return "\n".join("--- %s\n%s" % (f, g.read(f)[-2500:]) for f in (SRV_LOG, "/var/log/sluice-nat-c1.log",
                                                                      "/var/log/sluice-nat-c2.log"))


def cell_two_clients_kernel(bed, before_611=False):
    """before_611: a kernel without the 6.11 l2tp_core change (Debian 12's 6.1): the first client to install its
    SAs gets the kernel tunnel and unit, the other a user-space session over its kernel SAs (usersessions)."""
    g = bed.last
    install_sluice(g)
    g.sh("ls /lab/labctl.py /lab/kdp.py >/dev/null")   # mounted on first use (autofs): before `ip netns exec`
    _ns_setup(g)
    g.write("/etc/sluice-nat-srv.conf", _conf_server(), 0o600)
    for i in (1, 2):
        g.write("/etc/sluice-nat-c%d.conf" % i, _conf_client(i), 0o600)
    pids = {}
    try:
        r = _spawn_wait(g, "knsrv", "sls0", SRV_LOG, "server", "/etc/sluice-nat-srv.conf", "lns")
        pids["srv"] = r.get("pid")
        if not r.get("ok"):
            raise CellFailure("Sluice server (kernel path) did not start: %s\n%s" % (r.get("error"), _logs(g)))
        g.labctl("timed", UP_TIMEOUT, "sh", "-c", "until grep -q 'server up' %s; do sleep 0.1; done" % SRV_LOG,
                 timeout=UP_TIMEOUT + 20)
        g.spawn("ip netns exec knsrv tcpdump -i sv -nn -U -w /tmp/knat-wire.pcap udp", "/tmp/knat-tcpdump.log")
        time.sleep(1)
        # Both clients dial at the same moment: their Quick Modes and SCCRQs overlap at the server.
        ups = _spawn_clients_at_once(g)
        for i in (1, 2):
            pids["c%d" % i] = ups[i].get("pid")
        for i in (1, 2):
            r = ups[i]
            if not r.get("ok"):
                raise CellFailure("client %d behind the NAT did not come up: %s\n%s\n%s" % (
                    i, r.get("error"), g.sh("ip -n knsrv xfrm policy; ip -n knsrv -s xfrm state")[-3000:], _logs(g)))
        ips = [ups[i]["local"] for i in (1, 2)]
        check(len(set(ips)) == 2, "both clients got %r" % ips)
        # Both at once, both ways.
        both = g.ssh("ip netns exec kncl1 ping -c 5 -i 0.2 -W 2 %s > /tmp/knp1 & "
                     "ip netns exec kncl2 ping -c 5 -i 0.2 -W 2 %s > /tmp/knp2; wait; "
                     "grep -h 'packets transmitted' /tmp/knp1 /tmp/knp2" % (peers.POOL_LOCAL, peers.POOL_LOCAL),
                     check=False, timeout=60).stdout
        check(both.count(" 0% packet loss") == 2, "clients -> server at once: %s\n%s" % (both, _logs(g)))
        for ip in ips:
            p = g.ssh("ip netns exec knsrv ping -c 3 -i 0.2 -W 2 %s" % ip, check=False, timeout=30)
            check(p.returncode == 0, "server -> client %s: %s\n%s" % (ip, p.stdout, _logs(g)))
        speeds = []
        for i in (1, 2):
            g.ssh("ip netns exec knsrv iperf3 -s -1 -B %s -D" % peers.POOL_LOCAL, check=False)
            time.sleep(0.5)
            p = g.ssh("ip netns exec kncl%d iperf3 -c %s -t 2 -J" % (i, peers.POOL_LOCAL), check=False, timeout=60)
            try:
                speeds.append(round(json.loads(p.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6, 1))
            except (ValueError, KeyError):
                raise CellFailure("iperf3 from client %d failed: %s %s" % (i, p.stdout[-800:], p.stderr[-300:]))
        st = _status(g, "knsrv", "lns")
        sessions = [s for t in st.get("tunnels", []) for s in t.get("sessions", [])]
        paths = sorted(s.get("datapath") for s in sessions)
        want = ["kernel", "user"] if before_611 else ["kernel", "kernel"]
        check(len(sessions) == 2 and paths == want and len(set(s.get("unit") for s in sessions)) == 2
              and all(s.get("rx_packets", 0) >= 5 and s.get("tx_packets", 0) >= 5 for s in sessions),
              "server status sessions (want 2, datapath %s, own units or the TUN, traffic on each): %r" % (
                  " + ".join(want), sessions))
        tr = st.get("transport", {})
        check(tr.get("shared_address_clients", 0) >= 1 and tr.get("shared_address_user", 0) == (1 if before_611 else 0),
              "transport counters: %r" % (tr,))
        # Dialled at once, yet no SCCRQ was guessed: the inbound SAs' set-mark named each client.
        check(tr.get("misattributed", -1) == 0 and tr.get("attributed_by_mark", 0) >= 1,
              "SCCRQ attribution (want attributed_by_mark >= 1, misattributed 0): %r\n%s" % (tr, _logs(g)))
        pol = g.sh("ip -n knsrv xfrm policy")
        ins = len(re.findall(r"dir in", pol))
        marks = re.findall(r"mark (0x5c[0-9a-f]+)", pol)
        check(_ours(pol) == 3 and ins == 1 and len(set(marks)) == 2,
              "server policies: want 1 in + 2 marked out of ours:\n%s" % pol)
        tunnels = g.sh("ip -n knsrv l2tp show tunnel").count("Tunnel ")
        check(tunnels == (1 if before_611 else 2), "server kernel L2TP tunnels: %d" % tunnels)
        g.ssh("pkill -INT -x tcpdump", check=False)
        time.sleep(1)
        plain = g.ssh("tcpdump -nn -r /tmp/knat-wire.pcap 'udp port 1701 and not udp port 4500' | wc -l",
                      check=False).stdout.strip()
        natt = g.ssh("tcpdump -nn -r /tmp/knat-wire.pcap 'udp port 4500' | wc -l", check=False).stdout.strip()
        check(plain == "0" and natt.isdigit() and int(natt) > 0,
              "on the server's link: %s plaintext L2TP packets, %s on 4500" % (plain, natt))
        ports = sorted(set(re.findall(r"%s\.(\d+) > %s\.4500" % (re.escape(NAT_IP), re.escape(SRV_IP)),
                                      g.ssh("tcpdump -nn -r /tmp/knat-wire.pcap 'udp port 4500' 2>/dev/null | "
                                            "head -400", check=False).stdout)))
        check(len(ports) >= 2, "the server saw NAT-T source ports %r from the NAT, want two" % ports)
        # SIGTERM: nothing of ours left in the server's namespace.
        for k in ("c1", "c2", "srv"):
            _stop(g, pids.pop(k, None))
        left = g.sh("ip -n knsrv xfrm state; ip -n knsrv xfrm policy")
        tun = g.sh("ip -n knsrv l2tp show tunnel 2>/dev/null; true")
        links = g.sh("ip -n knsrv -o link show")
        check(_ours(left) == 0 and "Tunnel" not in tun and "sls0-" not in links,
              "left behind after SIGTERM:\n%s\n%s\n%s" % (left, tun, links))
        return result(ups[1]["elapsed"] + ups[2]["elapsed"], speeds[0],
                      "Sluice server (kernel path, %s) with two Sluice clients behind one NAT %s (NAT-T ports "
                      "%s): dialled at once, both up (%s), %d SCCRQs told apart by mark, none guessed, ping both ways, iperf3 client1 %.1f / client2 %.1f Mbit/s; "
                      "status: 2 sessions datapath %s (units %s); 1 inbound + 2 marked outbound policies, "
                      "%d kernel tunnel(s); wire: %s ESP-in-UDP packets, no plaintext L2TP; clean after SIGTERM"
                      % (g.sh("uname -r").strip(), NAT_IP, "/".join(ports), " ".join(ips),
                         tr.get("attributed_by_mark", 0), speeds[0], speeds[1], " + ".join(paths),
                         " ".join(sorted(s.get("unit", "?") for s in sessions)), tunnels, natt))
    finally:
        for k in list(pids):
            _stop(g, pids[k])
        g.ssh("pkill -x tcpdump; for n in %s; do ip netns del $n 2>/dev/null; done; true" % " ".join(NSS),
              check=False)
        save_guest_logs(bed, "two-clients-behind-nat-kernel", g, SRV_LOG, "/var/log/sluice-nat-c1.log",
                        "/var/log/sluice-nat-c2.log")
