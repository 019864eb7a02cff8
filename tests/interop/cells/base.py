"""What every cell shares: the testbed (a lab with its booted guests), guest daemon control, iperf3, results.

A cell is a function `cell(bed) -> dict` that sets up one scenario on an already booted testbed, measures
it, and leaves the guests as it found them (its daemons stopped, in a `finally`). It returns
{'setup_s': float|None, 'mbps': float|None, 'detail': str, 'rss_mb': {guest: {process: MB}}|None}, plus
'mbps_rx' where a cell measures both ways, and raises CellFailure (an AssertionError, so pytest reports it as
a failure) with the relevant log tails when the scenario does not work. The same functions serve pytest
(test_*.py) and the matrix (matrix.py).
"""

import json
import time

from .. import lab as lab_mod
from .. import peers


class CellFailure(AssertionError):
    """The scenario did not work; the message carries what was expected and the log tails that show why."""


def check(cond, message):
    if not cond:
        raise CellFailure(message)


class Testbed:
    """A Lab and its booted guests, shared by the cells of one group."""

    def __init__(self, name, flavours):
        self.name = name
        self.flavours = tuple(flavours)
        self.lab = None
        self.guests = []
        self.boot_s = []

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc):
        self.close()

    def open(self):
        self.lab = lab_mod.Lab("slab-" + self.name)
        try:
            self.lab.create()
            self.guests = self.lab.boot(*self.flavours)
            self.boot_s = [g.boot_s for g in self.guests]
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.lab is not None:
            self.lab.close()

    @property
    def g1(self):
        return self.guests[0]

    @property
    def g2(self):
        return self.guests[1]

    @property
    def last(self):
        """The guest of the cells that need one (kernel HAL, NAT in namespaces): the last, which on kernel-peer
        is the Debian 13 one and on strongswan a Debian 12 one. Such cells run after the testbed's measured ones."""
        return self.guests[-1]


# -- guest daemons ------------------------------------------------------------------------------------------

def install(guest, files):
    """Write {path: text} into the guest in one ssh round trip (secrets files 0600, others 0644)."""
    import shlex
    script = []
    for i, (path, text) in enumerate(sorted(files.items())):
        mark = "SLUICE_LAB_EOF_%d" % i
        check(mark not in text, "file text contains the heredoc marker")
        mode = "600" if "secrets" in path else "644"
        q = shlex.quote(path)
        body = text if text.endswith("\n") else text + "\n"  # a heredoc always ends in a newline
        script.append("mkdir -p %s && cat > %s <<'%s' && chmod %s %s\n%s%s" % (
            shlex.quote(path.rsplit("/", 1)[0] or "/"), q, mark, mode, q, body, mark))
    guest.ssh("set -e\n" + "\n".join(script) + "\n", timeout=60)


XL2TPD_CTL = "/run/xl2tpd/l2tp-control"


def start_xl2tpd(guest):
    """xl2tpd in the foreground (-D) under setsid, so its log is ours; waits for its control pipe."""
    guest.sh("rm -f /var/log/xl2tpd.log /var/log/pppd.log; mkdir -p /run/xl2tpd")
    guest.spawn("exec xl2tpd -D -c /etc/xl2tpd/xl2tpd.conf -p /run/xl2tpd.pid -C %s" % XL2TPD_CTL,
                "/var/log/xl2tpd.log")
    r = guest.labctl("timed", 10, "sh", "-c",
                     "i=0; while [ ! -p %s ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; [ -p %s ]"
                     % (XL2TPD_CTL, XL2TPD_CTL), timeout=20)
    check(r.get("ok"), "%s: xl2tpd did not create its control pipe\n%s" % (
        guest.name, guest.read("/var/log/xl2tpd.log")[-2000:]))


def stop_xl2tpd(*guests):
    """Stop xl2tpd and the pppd it started (by their pid files) on each guest, then wait (bounded) until
    no ppp device is left. Signals go to all guests first, so their pppds wind down at the same time."""
    for g in guests:
        g.ssh("for f in /run/xl2tpd.pid /run/ppp*.pid; do [ -f $f ] && kill $(cat $f) 2>/dev/null; done; "
              "rm -f /run/xl2tpd.pid; true", check=False, timeout=30)
    for g in guests:
        g.ssh("i=0; while ls /sys/class/net | grep -q '^ppp' && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done",
              check=False, timeout=30)


def start_strongswan(guest):
    guest.sh("rm -f /var/log/charon.log")
    r = guest.labctl("timed", 30, "ipsec", "start", timeout=40)
    check(r.get("ok"), "%s: ipsec start failed: %s" % (guest.name, r.get("output")))
    # charon is up when it answers `ipsec statusall` with the loaded connection.
    r = guest.labctl("timed", 30, "sh", "-c",
                     "i=0; until ipsec statusall 2>/dev/null | grep -q 'l2tp:'; do "
                     "[ $i -gt 290 ] && exit 1; sleep 0.1; i=$((i+1)); done", timeout=40)
    check(r.get("ok"), "%s: charon did not load the l2tp connection\n%s" % (
        guest.name, guest.read("/var/log/charon.log")[-2000:]))


def stop_strongswan(guest):
    guest.ssh("ipsec stop >/dev/null 2>&1; ip xfrm state flush; ip xfrm policy flush", check=False, timeout=30)


STRONGSWAN_LOGGING = {
    # charon logs to syslog by default and the guest has no syslog daemon: log to a file the cells collect.
    "/etc/strongswan.d/charon-logging.conf": "\n".join([
        "charon {",
        "    filelog {",
        "        lab {",
        "            path = /var/log/charon.log",
        "            time_format = %b %e %T",
        "            default = 1",
        "            ike = 2",
        "            flush_line = yes",
        "        }",
        "    }",
        "}",
        "",
    ]),
}


def start_libreswan(guest):
    guest.sh("rm -f /var/log/pluto.log")
    r = guest.labctl("timed", 60, "sh", "-c",
                     "ipsec checknss >/dev/null 2>&1 || ipsec initnss; ipsec pluto --config /etc/ipsec.conf "
                     "&& i=0; until ipsec whack --status >/dev/null 2>&1; do [ $i -gt 290 ] && exit 1; "
                     "sleep 0.1; i=$((i+1)); done; ipsec auto --add l2tp", timeout=70)
    check(r.get("ok"), "%s: pluto did not start or load the conn: %s\n%s" % (
        guest.name, r.get("output"), guest.read("/var/log/pluto.log")[-2000:]))


def stop_libreswan(guest):
    guest.ssh("ipsec whack --shutdown >/dev/null 2>&1; ip xfrm state flush; ip xfrm policy flush",
              check=False, timeout=30)


def save_guest_logs(bed, tag, guest, *paths):
    """Copy guest log files into the lab's log directory as TAG-GUEST-NAME (kept for post-mortems)."""
    import os
    for p in paths:
        try:
            text = guest.read(p)
        except lab_mod.LabError:
            continue
        with open(os.path.join(bed.lab.logdir, "%s-%s-%s" % (tag, guest.name, os.path.basename(p))), "w") as f:
            f.write(text)


class IpsecStack:
    """How to configure, start, dial and stop one guest IPsec implementation."""

    def __init__(self, flavour):
        self.flavour = flavour
        self.log = "/var/log/charon.log" if flavour == "strongswan" else "/var/log/pluto.log"
        # User-space daemons whose memory counts against the stack (strongSwan's starter only supervises charon).
        self.daemons = ("charon", "starter") if flavour == "strongswan" else ("pluto",)

    def files(self, guest, server_ip=None):
        """The stack's config on `guest`: server side when server_ip is None, else a client dialing server_ip."""
        if self.flavour == "strongswan":
            return dict(peers.strongswan_l2tp(server_ip), **STRONGSWAN_LOGGING)
        return peers.libreswan_l2tp(guest.ip, server_ip)

    def start(self, guest):
        (start_strongswan if self.flavour == "strongswan" else start_libreswan)(guest)

    def stop(self, guest):
        (stop_strongswan if self.flavour == "strongswan" else stop_libreswan)(guest)

    def up(self, guest):
        cmd = ["ipsec", "up", "l2tp"] if self.flavour == "strongswan" else ["ipsec", "auto", "--up", "l2tp"]
        r = guest.labctl("timed", 45, *cmd, timeout=60)
        ok = r.get("ok") and ("established successfully" in r.get("output", "")
                              or "IPsec SA established" in r.get("output", ""))
        return ok, r

    def has_sa(self, guest, peer_ip):
        """True while the guest still has an XFRM state with peer_ip (what an ISAKMP Delete removes)."""
        return peer_ip in guest.ssh("ip xfrm state", check=False).stdout


def guest_logs(guest, *paths):
    out = []
    for p in paths:
        text = guest.read(p)
        out.append("--- %s:%s\n%s" % (guest.name, p, "\n".join(text.splitlines()[-40:])))
    return "\n".join(out)


# -- measurements -------------------------------------------------------------------------------------------

IPERF_SECONDS = 3
# The first second (TCP slow start, the first packets' cold paths in a TCG guest) is left out of the figure.
IPERF_OMIT = 1


def _iperf_mbps(text, who):
    try:
        data = json.loads(text)
    except ValueError:
        raise CellFailure("%s: iperf3 gave no JSON: %s" % (who, text[-1000:])) from None
    if data.get("error"):
        raise CellFailure("%s: iperf3: %s" % (who, data["error"]))
    end = data.get("end", {})
    bps = end.get("sum_received", {}).get("bits_per_second")
    if bps is None:
        raise CellFailure("%s: iperf3 reported no throughput" % who)
    return bps / 1e6


def _iperf_server(guest):
    """A one-shot iperf3 server in the guest, waited for until it listens (at most 10 s: a TCG guest on a busy
    host took more than the client's three tries to start one, and the client got 'Connection refused')."""
    guest.spawn("exec iperf3 -s -1 -p 5201", "/var/log/iperf3-server.log")
    guest.ssh("i=0; until ss -Hltn 'sport = :5201' | grep -q 5201; do [ $i -ge 100 ] && break; sleep 0.1; "
              "i=$((i+1)); done", check=False, timeout=30)


def iperf_guest_to_guest(server, client, target_ip, reverse=False):
    """TCP throughput in Mbit/s, iperf3 server on `server` (guest), client on `client` (guest) to target_ip."""
    _iperf_server(server)
    args = "iperf3 -c %s -p 5201 -t %d -O %d -J --connect-timeout 5000%s" % (
        target_ip, IPERF_SECONDS, IPERF_OMIT, " -R" if reverse else "")
    p = client.ssh("i=0; until %s > /tmp/iperf.json 2>&1; do i=$((i+1)); [ $i -ge 3 ] && break; sleep 0.5; done; "
                   "cat /tmp/iperf.json" % args, timeout=IPERF_SECONDS + 40, check=False)
    return _iperf_mbps(p.stdout, "%s -> %s" % (client.name, target_ip))


def iperf_host_client(lab, server_guest, target_ip, reverse=False):
    """Throughput with the iperf3 server in the guest and the client on the host (in the lab namespace)."""
    _iperf_server(server_guest)
    p = lab.ns_run("iperf3", "-c", target_ip, "-p", "5201", "-t", str(IPERF_SECONDS), "-O", str(IPERF_OMIT), "-J",
                   "--connect-timeout", "5000", *(["-R"] if reverse else []),
                   timeout=IPERF_SECONDS + 30, check=False)
    return _iperf_mbps(p.stdout, "host -> %s" % target_ip)


def iperf_guest_client(lab, client_guest, target_ip, reverse=False):
    """Throughput with the iperf3 server on the host (lab namespace) and the client in the guest."""
    srv = lab.popen(["iperf3", "-s", "-1", "-p", "5201"], "iperf3-server.log")
    try:
        time.sleep(0.3)
        p = client_guest.ssh("iperf3 -c %s -p 5201 -t %d -O %d -J --connect-timeout 5000%s" % (
            target_ip, IPERF_SECONDS, IPERF_OMIT, " -R" if reverse else ""), timeout=IPERF_SECONDS + 30, check=False)
        return _iperf_mbps(p.stdout, "%s -> host %s" % (client_guest.name, target_ip))
    finally:
        lab.stop(srv, 2)


def rss_mb(guest, *specs, optional=()):
    """{label: MB} of VmRSS in the guest (labctl rss: a process name sums every process of that name, LABEL=PID
    is one process), for figures taken with the session up. User space only: the kernel's XFRM and l2tp_ppp
    state, which the reference stack relies on and Sluice does not, is in nobody's RSS."""
    got = guest.labctl("rss", *specs).get("rss_kb", {})
    missing = [s.partition("=")[0] for s in specs if s.partition("=")[0] not in got and s not in optional]
    check(not missing, "%s: no process for %s (RSS)" % (guest.name, ", ".join(missing)))
    return {k: got[k] / 1024.0 for k in got}


def fmt_rss(rss):
    """'RSS g2 charon 10.7 + xl2tpd 0.9 = 11.6 MB; g1 ...' for a cell's detail line."""
    parts = []
    for g, procs in rss.items():
        each = " + ".join("%s %.1f" % kv for kv in procs.items())
        parts.append("%s %s%s MB" % (g, each, " = %.1f" % sum(procs.values()) if len(procs) > 1 else ""))
    return "RSS " + "; ".join(parts)


def result(setup_s=None, mbps=None, detail="", rss_mb=None, mbps_rx=None):
    """A cell's figures. mbps is the LAC's send (or the cell's one transfer), mbps_rx the LAC's receive."""
    row = {"setup_s": setup_s, "mbps": mbps, "detail": detail, "rss_mb": rss_mb}
    if mbps_rx is not None:
        row["mbps_rx"] = mbps_rx
    return row


def warm_xfrm(g):
    """Add and delete one ESP state of the cells' transform (aes256-sha1) in `g`'s kernel: the first XFRM state
    after boot loads the crypto modules (seconds under TCG: a responder's first CHILD SA took 4 s to install,
    and L2TP sent meanwhile is dropped and retransmitted). The reference cell's dial starts seconds after its
    `ipsec up`; OpenWrt loads its kmod-crypto-* at boot: every set-up figure is taken with the modules in."""
    sa = ("src 198.51.100.1 dst 198.51.100.2 proto esp spi 0x5c5c5c5c")
    g.sh("ip xfrm state add %s mode transport enc 'cbc(aes)' 0x%s auth-trunc 'hmac(sha1)' 0x%s 96 && "
         "ip xfrm state delete %s" % (sa, "11" * 32, "22" * 20, sa), timeout=60)
