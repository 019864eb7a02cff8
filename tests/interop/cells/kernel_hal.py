"""Sluice's kernel glue (sluice.hal.net.xfrm, l2tp_kernel, ppp_kernel) against a real kernel: Debian 13, 6.12.

One guest, no peer: what is installed is read back with the kernel's own tools.

- `kernel-hal-probe`: `option datapath 'auto'`'s probe says yes, and which ESP transforms the kernel installs.
- `kernel-hal-roundtrip`: an SA pair (out: aes256-sha1 over ESPINUDP 4500, marked, with lifetimes; in:
  aes128gcm16) and the two UDP/1701 transport policies, a kernel L2TPv2 tunnel on our connected UDP socket, a
  session through a PPPoL2TP socket and a PPP unit renamed `l2tp-kdp`: `ip xfrm state`/`policy`,
  `ip l2tp show tunnel`/`session` and `ip link` show them as we meant them; then our code removes everything
  and the same commands show nothing of ours.
- `kernel-hal-kill9`: the same installed by a process that is then killed with SIGKILL: the kernel drops the
  L2TP tunnel, session and ppp unit with the process's sockets, the XFRM state and policies stay, and
  `flush_ours` removes exactly those (a foreign SA with reqid 1 survives).
- `kernel-hal-expire`: an SA with 1 s / 2 s lifetimes; XfrmEvents reads the soft, then the hard EXPIRE.
"""

import json
import shlex
import time

from .base import CellFailure, check, result
from .sluice_guest import SLUICE_DIR, install_sluice

PEER = "192.0.2.99"   # nobody: the SAs and the tunnel only need an address
HOLD_FILE = "/tmp/kdp-hold.json"


def _kdp(g, *args, timeout=120, check_ok=True):
    p = g.ssh("env PYTHONPATH=%s python3 /lab/kdp.py %s" % (SLUICE_DIR, " ".join(shlex.quote(a) for a in args)),
              timeout=timeout, check=False)
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CellFailure("kdp.py %s printed no JSON (%d):\n%s\n%s" % (" ".join(args), p.returncode,
                                                                    p.stdout[-3000:], p.stderr[-3000:]))
    if check_ok and not res.get("ok"):
        raise CellFailure("kdp.py %s failed: %s" % (" ".join(args), json.dumps(res)[-3000:]))
    return res


def _ready(g):
    if not getattr(g, "_kdp_ready", False):
        install_sluice(g)
        g._kdp_ready = True


def cell_probe(bed):
    g = bed.last
    _ready(g)
    r = _kdp(g, "probe")
    have = r["kernel_transforms"]
    check("aes256-sha1" in have and "aes128gcm16" in have, "the kernel refuses common transforms: %r" % (have,))
    return result(detail="%s; kernel ESP: %s" % (r["reason"], " ".join(have)))


def _ours_left(view):
    """Lines of `ip` output that show something of ours (reqid 0x5c......, our ids, our interface)."""
    bad = []
    for line in view["state"].splitlines() + view["policy"].splitlines():
        if "0x5c" in line.lower() or "reqid 1543" in line or "c1000001" in line or "c1000002" in line:
            bad.append(line.strip())
    if "4242" in view["tunnel"]:
        bad.append(view["tunnel"].strip())
    if "l2tp-kdp" in view["link"]:
        bad.append("l2tp-kdp in ip link")
    return bad


def cell_roundtrip(bed):
    g = bed.last
    _ready(g)
    r = _kdp(g, "cycle", g.ip, PEER)
    up = r["up"]
    st = up["state"]
    for want in ("spi 0xc1000001", "spi 0xc1000002", "enc cbc(aes)", "auth-trunc hmac(sha1)",
                 "aead rfc4106(gcm(aes))", "encap type espinudp sport 4500 dport 4500", "mark 0x5c000101/0xffffffff",
                 "mode transport", "reqid 1543504129", "reqid 1543504130"):
        check(want in st, "ip xfrm state lacks %r:\n%s" % (want, st))
    check("expire add: soft 3000(sec), hard 3600(sec)" in st, "lifetimes not as installed:\n%s" % st)
    pol = up["policy"]
    for want in ("src %s/32 dst %s/32 proto udp sport 1701 dport 1701" % (g.ip, PEER),
                 "src %s/32 dst %s/32 proto udp sport 1701 dport 1701" % (PEER, g.ip), "dir out", "dir in",
                 "mark 0x5c000101/0xffffffff", "proto esp reqid 1543504129 mode transport"):
        check(want in pol, "ip xfrm policy lacks %r:\n%s" % (want, pol))
    tun = up["tunnel"]
    for want in ("Tunnel 4242, encap UDP", "From %s to %s" % (g.ip, PEER), "Peer tunnel 4343",
                 "UDP source / dest ports: 1701/1701"):
        check(want in tun, "ip l2tp show tunnel lacks %r:\n%s" % (want, tun))
    ses = up["session"]
    check("Session 17 in tunnel 4242" in ses and "Peer session 18, tunnel 4343" in ses,
          "ip l2tp show session:\n%s" % ses)
    check("l2tp-kdp:" in up["link"] and "mtu" in up["link"], "no ppp unit l2tp-kdp in ip link:\n%s" % up["link"])
    sa = r["ours"]["sa_out"]
    check(sa["crypt"] == ["cbc(aes)", 256] and sa["auth"] == ["hmac(sha1)", 160, 96] and sa["encap"] == [2, 4500, 4500],
          "our GETSA reading: %r" % (sa,))
    left = _ours_left(r["down"])
    check(not left, "left behind after removal: %r" % (left,))
    check(r["after_ours"] == {"sas": 0, "policies": 0, "tunnels": 0}, "our dumps after removal: %r" % r["after_ours"])
    return result(setup_s=r["install_s"], detail="installed SA pair + 2 policies + L2TP tunnel/session + %s in %.3f s, "
                  "removed in %.3f s; ip xfrm/l2tp clean" % (r["unit"], r["install_s"], r["remove_s"]))


def cell_kernel_path(bed):
    """The same through KernelPath, the object a kernel data-plane backend holds: an IKE ChildSaUp (GCM,
    NAT-T) becomes an SA pair, the server's policies (any client port), a tunnel + LNS session + PPP unit;
    stop() removes it all."""
    g = bed.last
    _ready(g)
    r = _kdp(g, "path", g.ip, PEER)
    st, pol, tun = r["up"]["state"], r["up"]["policy"], r["up"]["tunnel"]
    for want in ("spi 0xc4000001", "spi 0xc4000002", "aead rfc4106(gcm(aes))", "encap type espinudp sport 4500 "
                 "dport 4500", "mark 0x5c000401/0xffffffff"):
        check(want in st, "ip xfrm state lacks %r:\n%s" % (want, st))
    check("src %s/32 dst %s/32 proto udp sport 1701" % (g.ip, PEER) in pol and "dir in" in pol,
          "ip xfrm policy:\n%s" % pol)
    check("Tunnel 77, encap UDP" in tun and "l2tp-path" in r["up"]["link"], "tunnel/ppp: %s" % tun)
    check("spi=0xc4000002" in r["out"] and "spi=0xc4000001" in r["in"], "counters: %r %r" % (r["in"], r["out"]))
    left = [line for line in r["down"]["state"].splitlines() + r["down"]["policy"].splitlines()
            if "c400000" in line or "0x5c000401" in line]
    check(not left and "Tunnel 77" not in r["down"]["tunnel"] and "l2tp-path" not in r["down"]["link"],
          "KernelPath.stop() left: %r %s" % (left, r["down"]["tunnel"]))
    return result(detail="KernelPath: ChildSaUp -> SA pair, policies, %s; stop() clean" % r["session"])


def cell_kill9(bed):
    g = bed.last
    _ready(g)
    g.ssh("rm -f %s; ip xfrm state add src %s dst %s proto esp spi 0x0bad0001 reqid 1 mode transport "
          "enc 'cbc(aes)' 0x00112233445566778899aabbccddeeff auth-trunc 'hmac(sha1)' "
          "0x0102030405060708090a0b0c0d0e0f1011121314 96" % (HOLD_FILE, g.ip, PEER))
    g.spawn("env PYTHONPATH=%s python3 /lab/kdp.py hold %s %s %s" % (SLUICE_DIR, g.ip, PEER, HOLD_FILE),
            "/tmp/kdp-hold.log")
    r = g.labctl("timed", 60, "sh", "-c", "while [ ! -s %s ]; do sleep 0.2; done" % HOLD_FILE)
    held = g.read(HOLD_FILE)
    if not held:
        raise CellFailure("kdp.py hold never came up: %r\n%s" % (r, g.read("/tmp/kdp-hold.log")))
    pid = json.loads(held)["pid"]
    before = g.sh("ip l2tp show tunnel; ip -o link show")
    check("Tunnel 4242" in before and "l2tp-kdp" in before, "hold did not install: %s" % before)
    g.ssh("kill -9 %d" % pid)
    g.labctl("timed", 20, "sh", "-c", "while kill -0 %d 2>/dev/null; do sleep 0.1; done" % pid)
    after_kill = g.sh("ip l2tp show tunnel; ip -o link show; ip xfrm state; ip xfrm policy")
    check("Tunnel 4242" not in after_kill and "l2tp-kdp" not in after_kill,
          "the kernel kept the L2TP tunnel or ppp unit of a killed process:\n%s" % after_kill)
    check("0xc1000001" in after_kill and "1543504129" in after_kill,
          "expected XFRM leftovers after kill -9:\n%s" % after_kill)
    f = _kdp(g, "flush")
    check((f["sas"], f["policies"]) == (2, 2), "flush_ours removed %r SAs, %r policies (want 2, 2)" % (
        f["sas"], f["policies"]))
    left = _ours_left(f["after"])
    check(not left, "left behind after flush: %r" % (left,))
    check("spi 0x0bad0001" in f["after"]["state"], "flush_ours removed a foreign SA:\n%s" % f["after"]["state"])
    g.ssh("ip xfrm state delete src %s dst %s proto esp spi 0x0bad0001" % (g.ip, PEER), check=False)
    return result(detail="kill -9: kernel dropped tunnel/session/ppp with the sockets; flush_ours removed 2 SAs + "
                  "2 policies, kept the foreign SA")


def cell_expire(bed):
    g = bed.last
    _ready(g)
    r = _kdp(g, "expire", g.ip, PEER)
    ev = r["events"]
    check([e["hard"] for e in ev] == [False, True], "EXPIRE events: %r" % (ev,))
    check("c1000009" not in r["after"], "the hard-expired SA is still there:\n%s" % r["after"])
    return result(detail="soft EXPIRE at %.1f s, hard at %.1f s" % (ev[0]["at_s"], ev[1]["at_s"]))


# --- the whole kernel data path between two network namespaces of one guest -----------------------------------

NS = (("kha", "198.51.100.1", "10.77.9.1", 11, 22, 111, 222, "0xc2000001", "0xc2000002", "ppp-kha"),
      ("khb", "198.51.100.2", "10.77.9.2", 22, 11, 222, 111, "0xc2000002", "0xc2000001", "ppp-khb"))


def cell_datapath(bed):
    """Two ends, each in its own network namespace, each set up by our code only: ESP-in-UDP (NAT-T encap) SA
    pair and L2TP/1701 policies, the 4500 socket with UDP_ENCAP, a kernel L2TPv2 tunnel on a marked connected
    UDP socket, a session and a PPP unit. IP then flows ppp <-> ppp with no user space in the path: ping
    and a short iperf3, the SA counters (read with our GETSA) grow, no plain L2TP crosses the veth, and
    SIGTERM makes each end remove everything."""
    g = bed.last
    _ready(g)
    g.sh("for n in kha khb; do ip netns del $n 2>/dev/null; done; ip netns add kha && ip netns add khb && "
         "ip link add va netns kha type veth peer name vb netns khb && "
         "ip -n kha addr add 198.51.100.1/24 dev va && ip -n khb addr add 198.51.100.2/24 dev vb && "
         "ip -n kha link set va up && ip -n khb link set vb up && ip -n kha link set lo up && "
         "ip -n khb link set lo up")
    files = []
    try:
        for (ns, me, ppp_me, tid, ptid, sid, psid, spi_out, spi_in, ifname), other in zip(NS, reversed(NS)):
            f = "/tmp/kdp-%s.json" % ns
            files.append((ns, f))
            g.ssh("rm -f %s %s.stopped" % (f, f))
            g.spawn("ip netns exec %s env PYTHONPATH=%s python3 /lab/kdp.py side %s %s %d %d %d %d %s %s %s %s %s %s"
                    % (ns, SLUICE_DIR, me, other[1], tid, ptid, sid, psid, spi_out, spi_in, ifname, ppp_me,
                       other[2], f), "/tmp/kdp-%s.log" % ns)
        for ns, f in files:
            g.labctl("timed", 60, "sh", "-c", "while [ ! -s %s ]; do sleep 0.2; done" % f)
            if not g.read(f):
                raise CellFailure("%s end never came up:\n%s" % (ns, g.read("/tmp/kdp-%s.log" % ns)))
        g.spawn("ip netns exec khb tcpdump -i vb -nn -U -w /tmp/kdp-wire.pcap udp", "/tmp/kdp-tcpdump.log")
        time.sleep(2)
        ping = g.ssh("ip netns exec kha ping -c 5 -i 0.2 -W 2 10.77.9.2", check=False, timeout=60)
        check(ping.returncode == 0, "no ping over the kernel data path:\n%s\n%s\n%s" % (
            ping.stdout, g.sh("ip -n kha -s xfrm state; ip -n kha l2tp show session; ip -n kha -s link"),
            g.read("/tmp/kdp-kha.log")))
        g.ssh("ip netns exec khb iperf3 -s -1 -B 10.77.9.2 -D", check=False)
        time.sleep(1)
        ip3 = g.ssh("ip netns exec kha iperf3 -c 10.77.9.2 -t 3 -J", check=False, timeout=60)
        mbps = None
        try:
            mbps = round(json.loads(ip3.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6, 1)
        except (ValueError, KeyError):
            pass
        limited = _rate_limited(g)
        g.ssh("pkill -INT -x tcpdump", check=False)
        time.sleep(1)
        plain = g.ssh("tcpdump -nn -r /tmp/kdp-wire.pcap udp port 1701 | wc -l", check=False).stdout.strip()
        natt = g.ssh("tcpdump -nn -r /tmp/kdp-wire.pcap udp port 4500 | wc -l", check=False).stdout.strip()
        check(plain == "0" and natt.isdigit() and int(natt) > 0,
              "on the wire: %s plain L2TP (udp 1701) packets, %s ESP-in-UDP (4500): want 0 and some" % (plain, natt))
        c = json.loads(g.ssh("ip netns exec kha env PYTHONPATH=%s python3 /lab/kdp.py counters 198.51.100.2 "
                             "0xc2000001 198.51.100.1 0x5c000001" % SLUICE_DIR).stdout.strip().splitlines()[-1])
        check(c["packets"] >= 5 and c["encap"] == [2, 4500, 4500], "outbound SA counters: %r" % (c,))
        for ns, f in files:
            g.ssh("kill -TERM $(python3 -c \"import json; print(json.load(open('%s'))['pid'])\")" % f)
        for ns, f in files:
            g.labctl("timed", 30, "sh", "-c", "while [ ! -s %s.stopped ]; do sleep 0.2; done" % f)
            st = json.loads(g.read(f + ".stopped") or "{}")
            left = _ours_left(st.get("after") or {"state": "?0x5c", "policy": "", "tunnel": "", "link": ""})
            left += [line for line in (st.get("after") or {}).get("link", "").splitlines() if "ppp-kh" in line]
            check(not left and "Tunnel" not in st["after"]["tunnel"], "%s left behind: %r %r" % (
                ns, left, st["after"]["tunnel"]))
    finally:
        g.ssh("ip netns del kha; ip netns del khb", check=False)
    return result(mbps=mbps, detail="ping + iperf3 ppp<->ppp through kernel L2TPv2 + ESP-in-UDP, all set up by "
                  "hal/net; out SA %d packets %d bytes; on the wire only ESP-in-UDP (%s packets seen), no plain "
                  "udp/1701; %s; both ends clean after "
                  "SIGTERM (one guest, both ends: throughput not comparable with two-guest cells)"
                  % (c["packets"], c["bytes"], natt, limited))


RATE_KBIT = 4000


def _rate_limited(g):
    """rate_kbit on the kernel path: the tc commands sluice.engine.host runs for a session's unit (tbf out,
    ingress policer in), applied to kha's unit; iperf3 each way must stay under the rate (+10 %) and reach half of it."""
    argvs = json.loads(g.ssh("env PYTHONPATH=%s python3 -c 'import json; from sluice.engine.host import tc_argvs; "
                             "print(json.dumps(tc_argvs(\"rate_limit\", (\"ppp-kha\", %d))))'"
                             % (SLUICE_DIR, RATE_KBIT * 125)).stdout)
    for argv in argvs:
        r = g.ssh("ip netns exec kha tc " + " ".join(argv), check=False)
        check(r.returncode == 0, "tc %s: %s" % (" ".join(argv), r.stderr.strip()))
    got = []
    for reverse in ("", "-R"):
        g.ssh("ip netns exec khb iperf3 -s -1 -B 10.77.9.2 -D", check=False)
        time.sleep(1)
        r = g.ssh("ip netns exec kha iperf3 -c 10.77.9.2 -t 4 -J %s" % reverse, check=False, timeout=60)
        try:
            kbit = json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e3
        except (ValueError, KeyError):
            raise CellFailure("iperf3 %s under rate_kbit %d failed:\n%s" % (reverse, RATE_KBIT, r.stdout[-800:]))
        check(RATE_KBIT * 0.5 <= kbit <= RATE_KBIT * 1.1, "rate_kbit %d: iperf3 %s got %.0f kbit/s" % (
            RATE_KBIT, reverse or "out", kbit))
        got.append(kbit)
    return "rate_kbit %d on the unit (tc tbf + ingress police): %.0f out / %.0f in kbit/s" % (RATE_KBIT, got[0], got[1])


# --- two clients behind one NAT, kernel path on the server ----------------------------------------------------

NAT_IP, SRV_IP = "198.51.100.2", "198.51.100.1"
# server end: (ifname, tid, ptid, sid, psid, spi_out, spi_in, ppp_local, ppp_peer, nat port)
NAT_CLIENTS = (("1", 101, 201, 1101, 2101, "0xc3000011", "0xc3000012", "10.77.1.1", "10.77.1.2", 4501),
               ("2", 102, 202, 1102, 2102, "0xc3000021", "0xc3000022", "10.77.2.1", "10.77.2.2", 4502))
SHARED_REQID_IN = "0x5c00beef"   # the inbound SAs of every client at NAT_IP: one inbound policy for all


def _side(g, ns, args, tag, opts=()):
    """Start `kdp.py side` in namespace ns; returns the file it writes when ready."""
    f = "/tmp/kdp-%s.json" % tag
    g.ssh("rm -f %s %s.stopped" % (f, f))
    g.spawn("ip netns exec %s env PYTHONPATH=%s python3 /lab/kdp.py side %s %s %s" % (
        ns, SLUICE_DIR, " ".join(str(a) for a in args), f, " ".join(opts)), "/tmp/kdp-%s.log" % tag)
    return f


def _wait_file(g, f, tag):
    g.labctl("timed", 60, "sh", "-c", "while [ ! -s %s ]; do sleep 0.2; done" % f)
    if not g.read(f):
        raise CellFailure("%s never came up:\n%s" % (tag, g.read("/tmp/kdp-%s.log" % tag)))


def cell_two_behind_nat(bed, nat=True, before_2024=False):
    """Two clients (each its own namespace, private address) behind one source NAT (nftables, ESP-in-UDP
    4500 -> 4501 and 4502 of one public address) to a server namespace whose two ends share 198.51.100.1:1701
    and :4500: per client an outbound SA + policy with its own mark (the tunnel socket's SO_MARK), one shared
    inbound policy. Both clients must ping their server end through the kernel path at once: what the
    June 2024 l2tp_core change (session found by tunnel/session ID whatever socket received it) allows.

    nat=False needs no nftables (the Debian 12 image has none): both clients sit in one namespace at the
    public address itself, on ESP-in-UDP ports 4501 and 4502, which is what the server sees behind a NAT;
    their own two tunnels then share one address/port pair too.

    before_2024=True is the control on a kernel older than the l2tp_core change (Debian 12's 6.1): it passes
    when exactly one client gets through (the tunnel whose socket the kernel picks for the shared address
    pair), which is the limitation the kernel backend has to route around there."""
    g = bed.last
    _ready(g)
    if nat:
        cmds = [
            "for n in knsrv knnat kncl1 kncl2; do ip netns del $n 2>/dev/null; done",
            "for n in knsrv knnat kncl1 kncl2; do ip netns add $n && ip -n $n link set lo up; done",
            "ip link add sv netns knsrv type veth peer name nv netns knnat",
            "ip -n knsrv addr add %s/24 dev sv && ip -n knnat addr add %s/24 dev nv" % (SRV_IP, NAT_IP),
            "ip -n knsrv link set sv up && ip -n knnat link set nv up",
            "ip netns exec knnat sysctl -qw net.ipv4.ip_forward=1",
        ]
        for i in ("1", "2"):
            cmds += ["ip link add n%s netns knnat type veth peer name c%s netns kncl%s" % (i, i, i),
                     "ip -n knnat addr add 10.0.%s.1/24 dev n%s && ip -n knnat link set n%s up" % (i, i, i),
                     "ip -n kncl%s addr add 10.0.%s.2/24 dev c%s && ip -n kncl%s link set c%s up" % (i, i, i, i, i),
                     "ip -n kncl%s route add default via 10.0.%s.1" % (i, i)]
        g.sh(cmds[0] + "; " + " && ".join(cmds[1:]))
        g.ssh("ip netns exec knnat nft -f -", input=(
            "table ip nat {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n"
            "  oifname \"nv\" ip saddr 10.0.1.2 udp sport 4500 snat to %s:4501\n"
            "  oifname \"nv\" ip saddr 10.0.2.2 udp sport 4500 snat to %s:4502\n }\n}\n" % (NAT_IP, NAT_IP)))
    else:
        g.sh("for n in knsrv knnat kncl1 kncl2; do ip netns del $n 2>/dev/null; done; "
             "ip netns add knsrv && ip netns add kncl1 && ip -n knsrv link set lo up && ip -n kncl1 link set lo up && "
             "ip link add sv netns knsrv type veth peer name c1 netns kncl1 && "
             "ip -n knsrv addr add %s/24 dev sv && ip -n kncl1 addr add %s/24 dev c1 && "
             "ip -n knsrv link set sv up && ip -n kncl1 link set c1 up" % (SRV_IP, NAT_IP))

    def cl_ns(i):
        return "kncl" + i if nat else "kncl1"

    try:
        # The server's two ends first (they share 198.51.100.1:1701 and :4500; the second finds the shared
        # inbound policy in place), then the clients.
        for i, tid, ptid, sid, psid, spi_out, spi_in, ppp_me, ppp_peer, nat_port in NAT_CLIENTS:
            f = _side(g, "knsrv", [SRV_IP, NAT_IP, tid, ptid, sid, psid, spi_out, spi_in, "ppp-s" + i, ppp_me,
                                   ppp_peer], "srv" + i,
                      ["dport=%d" % nat_port, "reqid_in=" + SHARED_REQID_IN, "shared=1"])
            _wait_file(g, f, "srv" + i)
        for i, tid, ptid, sid, psid, spi_out, spi_in, ppp_me, ppp_peer, nat_port in NAT_CLIENTS:
            if nat:
                f = _side(g, "kncl" + i, ["10.0.%s.2" % i, SRV_IP, ptid, tid, psid, sid, spi_in, spi_out, "ppp-c",
                                          ppp_peer, ppp_me], "cl" + i)
            else:
                f = _side(g, "kncl1", [NAT_IP, SRV_IP, ptid, tid, psid, sid, spi_in, spi_out, "ppp-c" + i, ppp_peer,
                                       ppp_me], "cl" + i, ["sport=%d" % nat_port, "reqid_in=0x5c00cafe", "shared=1"])
            _wait_file(g, f, "cl" + i)
        pings = {}
        for i, _t, _pt, _s, _ps, _so, _si, ppp_me, _pp, _np in NAT_CLIENTS:
            pings[i] = g.ssh("ip netns exec %s ping -c 5 -i 0.2 -W 2 %s" % (cl_ns(i), ppp_me), check=False,
                             timeout=60)
        # and both at once
        both = g.ssh("ip netns exec %s ping -c 10 -i 0.1 -W 2 10.77.1.1 > /tmp/p1 & "
                     "ip netns exec %s ping -c 10 -i 0.1 -W 2 10.77.2.1 > /tmp/p2; wait; " % (cl_ns("1"), cl_ns("2")) +
                     "grep -h 'packets transmitted' /tmp/p1 /tmp/p2", check=False, timeout=60).stdout
        diag = g.sh("ip netns exec knnat conntrack -L 2>/dev/null; ip -n knsrv -s xfrm state; "
                    "ip -n knsrv xfrm policy; ip -n knsrv l2tp show tunnel; ip -n knsrv l2tp show session; "
                    "ip -n knsrv -s link show ppp-s1; ip -n knsrv -s link show ppp-s2")
        ok = [i for i in pings if pings[i].returncode == 0]
        if before_2024:
            kernel = g.sh("uname -r").strip()
            check(len(ok) == 1, "kernel %s: expected exactly one of two clients at one address to get through "
                  "(the pre-2024 l2tp_core limitation), got %r\n%s" % (kernel, ok, diag[-3000:]))
            return result(detail="control: kernel %s carries only client %s of two at one address (the other's "
                          "ESP is decrypted but its L2TP data never reaches its session: no reply goes out)"
                          % (kernel, ok[0]))
        counts = []
        for i, _t, _pt, _s, _ps, spi_out, _si, _pm, _pp, _np in NAT_CLIENTS:
            out = g.ssh("ip netns exec knsrv env PYTHONPATH=%s python3 /lab/kdp.py counters %s %s %s 0x5c0000%s1"
                        % (SLUICE_DIR, NAT_IP, spi_out, SRV_IP, i)).stdout
            c = json.loads(out.strip().splitlines()[-1])
            counts.append("client %s: server's out SA %d packets" % (i, c["packets"]))
        check(len(ok) == 2,
              "two clients behind one NAT through the kernel path: ping ok for %r; at once: %s\n%s\n%s\n%s" % (
                  ok, both, pings["1"].stdout, pings["2"].stdout, diag[-6000:]))
        check(both.count(" 0% packet loss") == 2, "at once: %s" % both)
        mapping = ""
        if nat:
            mapping = _mapping(g)
        return result(detail="two clients %s (198.51.100.2:4501/4502), kernel L2TPv2 + ESP-in-UDP on "
                      "one server address, per-client mark: both ping, one after the other and at once (%s); "
                      "kernel %s%s" % ("behind one NAT" if nat else "at one address, no NAT", "; ".join(counts),
                                       g.sh("uname -r").strip(), mapping))
    finally:
        g.ssh("pkill -TERM -f 'kdp.py side'; sleep 1; "
              "for n in knsrv knnat kncl1 kncl2; do ip netns del $n 2>/dev/null; done", check=False)


def _mapping(g):
    """Client 1's outbound SA moves to ESP-in-UDP source port 4600 (our UPDSA); the NAT rule only maps 4500, so
    the server sees 10.0.1.2:4600 instead of 198.51.100.2:4501: the kernel reports XFRM_MSG_MAPPING, which our
    XfrmEvents reads."""
    f = "/tmp/kdp-watch.json"
    g.ssh("rm -f %s %s.ready" % (f, f))
    g.spawn("ip netns exec knsrv env PYTHONPATH=%s python3 /lab/kdp.py watch 12 %s" % (SLUICE_DIR, f),
            "/tmp/kdp-watch.log")
    g.labctl("timed", 30, "sh", "-c", "while [ ! -e %s.ready ]; do sleep 0.2; done" % f)
    r = json.loads(g.ssh("ip netns exec kncl1 env PYTHONPATH=%s python3 /lab/kdp.py reencap 10.0.1.2 %s 0xc3000012 "
                         "4600" % (SLUICE_DIR, SRV_IP)).stdout.strip().splitlines()[-1])
    check(r["encap"] == [2, 4600, 4500], "UPDSA did not move the encap port: %r" % (r,))
    g.ssh("ip netns exec kncl1 ping -c 2 -W 1 10.77.1.1", check=False, timeout=30)
    g.labctl("timed", 30, "sh", "-c", "while [ ! -s %s ]; do sleep 0.3; done" % f)
    ev = json.loads(g.read(f) or '{"events": []}')["events"]
    maps = [e for e in ev if e["type"] == "SaMapping"]
    check(maps and maps[0]["spi"] == 0xC3000012 and maps[0]["old"] == [NAT_IP, 4501]
          and maps[0]["new"] == ["10.0.1.2", 4600], "no or wrong XFRM_MSG_MAPPING: %r" % (ev,))
    return "; MAPPING read: %s" % maps[0]["repr"]
