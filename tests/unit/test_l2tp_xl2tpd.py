"""Interop with a real peer: xl2tpd (the L2TP daemon most Linux L2TP/IPsec set-ups use) in a network namespace
the test creates, with addresses from 192.0.2.0/24 on its loopback.

Our LAC dials xl2tpd's LNS, and xl2tpd's LAC dials our LNS (TunnelTable), both with Challenge/Response tunnel
authentication. No pppd can run here (no /dev/ppp), so xl2tpd clears each call right after it is up: that
exercises its CDN too. Skipped without root, `ip` or xl2tpd (apt-get install xl2tpd).

The same file is the driver: `python test_l2tp_xl2tpd.py lac|lns SECRET SECONDS` runs our side inside the
namespace with a real UDP socket and prints one JSON line per event, then the tunnel status.
"""

import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
XL2TPD = shutil.which("xl2tpd") or ("/usr/sbin/xl2tpd" if os.path.exists("/usr/sbin/xl2tpd") else None)
A_XL2TPD, A_SLUICE = "192.0.2.1", "192.0.2.2"


def drive(role, secret, seconds):
    sys.path.insert(0, os.path.join(HERE, "..", "core"))
    from harness import SeededRng
    from sluice.l2tp.demux import TunnelTable
    from sluice.l2tp.tunnel import LAC, Tunnel, TunnelConfig

    cfg = TunnelConfig(host_name="sluice-" + role, secret=secret or None, hello_interval=1.0)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((A_SLUICE, 1701))
    t0 = time.monotonic()

    def now():
        return time.monotonic() - t0

    def report(ev):
        d = dict((k, getattr(ev, k)) for k in ev.__slots__)
        d["event"] = type(ev).__name__
        d["t"] = round(now(), 3)
        print(json.dumps(d), flush=True)

    if role == "lac":
        t = Tunnel(LAC, 0x4242, SeededRng(3), cfg)
        t.start(now())
        t.open_session(now())
        machine = t
    else:
        machine = TunnelTable(SeededRng(4), cfg)
    closed = False
    seen = []  # LNS: every tunnel that reported anything, kept for the final status after the table reaps it
    while now() < seconds:
        if role == "lac":
            for d in machine.datagrams_to_send():
                s.sendto(d, (A_XL2TPD, 1701))
            while True:
                ev = machine.next_event()
                if ev is None:
                    break
                report(ev)
        else:
            for peer, d in machine.datagrams_to_send():
                s.sendto(d, peer)
            while True:
                item = machine.next_event()
                if item is None:
                    break
                if item[0] not in seen:
                    seen.append(item[0])
                report(item[1])
        deadline = machine.get_timer()
        wait = 0.1 if deadline is None else max(0.0, min(deadline - now(), 0.1))
        r, _, _ = select.select([s], [], [], wait)
        if r:
            data, peer = s.recvfrom(4096)
            if role == "lac":
                machine.datagram_received(data, now())
            else:
                machine.datagram_received(data, peer, now())
        deadline = machine.get_timer()
        if deadline is not None and deadline <= now():
            machine.handle_timer(now())
        if not closed and now() > seconds - 1.0:
            closed = True
            tunnels = [machine] if role == "lac" else machine.tunnels()
            for t in tunnels:
                if t.state == "established":
                    t.close(now(), 6, "sluice test over")
    tunnels = [machine] if role == "lac" else seen
    print(json.dumps({"status": [t.status() for t in tunnels]}), flush=True)


if __name__ == "__main__":
    drive(sys.argv[1], sys.argv[2], float(sys.argv[3]))
    sys.exit(0)

import pytest  # noqa: E402  (only the test side needs pytest)

pytestmark = pytest.mark.netns


def _sh(*args, check=True):
    p = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    if check and p.returncode:
        raise RuntimeError("%s: %s" % (" ".join(args), p.stdout.decode(errors="replace")))
    return p


def _skip_reason():
    if XL2TPD is None:
        return "xl2tpd is not installed (apt-get install xl2tpd)"
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "needs root and iproute2 for a network namespace"
    return None


@pytest.fixture
def ns(tmp_path):
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    name = "sl2tp%d" % os.getpid()
    try:
        _sh("ip", "netns", "add", name)
    except Exception as e:
        pytest.skip("cannot create a network namespace: %s" % e)
    procs = []
    try:
        _sh("ip", "-n", name, "link", "set", "lo", "up")
        _sh("ip", "-n", name, "addr", "add", A_XL2TPD + "/32", "dev", "lo")
        _sh("ip", "-n", name, "addr", "add", A_SLUICE + "/32", "dev", "lo")
        yield name, tmp_path, procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)
        _sh("ip", "netns", "del", name, check=False)


def start_xl2tpd(ns, tmp, procs, secret, section):
    (tmp / "secrets").write_text("* * %s\n" % secret)
    os.chmod(str(tmp / "secrets"), 0o600)
    (tmp / "options").write_text("noauth\n")
    (tmp / "xl2tpd.conf").write_text(
        "[global]\nlisten-addr = %s\nport = 1701\nauth file = %s\naccess control = no\n\n%s"
        % (A_XL2TPD, tmp / "secrets", section.replace("OPTIONS", str(tmp / "options"))))
    log = open(str(tmp / "xl2tpd.log"), "wb")
    p = subprocess.Popen(["ip", "netns", "exec", ns, XL2TPD, "-D", "-c", str(tmp / "xl2tpd.conf"), "-p",
                          str(tmp / "pid"), "-C", str(tmp / "control")], stdout=log, stderr=subprocess.STDOUT)
    procs.append(p)
    for _ in range(50):
        if b"Listening on" in (tmp / "xl2tpd.log").read_bytes():
            return p
        time.sleep(0.05)
    raise RuntimeError("xl2tpd did not start: %s" % (tmp / "xl2tpd.log").read_text())


def run_driver(ns, role, secret, seconds, procs, before=None):
    p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, os.path.abspath(__file__), role, secret,
                          str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    procs.append(p)
    if before is not None:
        before()
    out, err = p.communicate(timeout=seconds + 15)
    assert p.returncode == 0, err.decode(errors="replace")
    lines = [json.loads(l) for l in out.decode().splitlines() if l.strip()]
    return [l for l in lines if "event" in l], lines[-1]["status"]


LNS_SECTION = """[lns default]
ip range = 10.99.0.10-10.99.0.20
local ip = 10.99.0.1
require authentication = no
challenge = yes
name = xl2tpd-lns
length bit = yes
pppoptfile = OPTIONS
"""

LAC_SECTION = """[lac sluice]
lns = %s
require authentication = no
challenge = yes
name = xl2tpd-lac
length bit = yes
pppoptfile = OPTIONS
""" % A_SLUICE


def kinds(events):
    return [e["event"] for e in events]


def test_our_lac_against_xl2tpd_lns(ns):
    name, tmp, procs = ns
    start_xl2tpd(name, tmp, procs, "interop secret", LNS_SECTION)
    events, status = run_driver(name, "lac", "interop secret", 3.5, procs)
    k = kinds(events)
    assert k[:2] == ["TunnelUp", "SessionUp"], events
    assert events[0]["peer_host_name"]  # xl2tpd names itself after the machine
    st = status[0]
    assert st["peer_vendor"] == "xelerance.com"
    # xl2tpd clears the call when its pppd fails (CDN); our HELLOs every second are acked; our StopCCN is acked.
    assert "SessionDown" in k and k[-1] == "TunnelDown" and events[-1]["result_code"] == 6
    assert st["state"] == "closed" and st["counters"]["retransmits"] == 0 and st["counters"]["malformed"] == 0
    assert st["counters"]["sent"] >= 6  # SCCRQ SCCCN ICRQ ICCN, HELLOs, StopCCN
    time.sleep(0.3)
    log = (tmp / "xl2tpd.log").read_text()
    assert "Connection established to %s" % A_SLUICE in log
    assert "sluice test over" in log  # xl2tpd read our StopCCN's message


def test_our_lac_against_xl2tpd_with_another_secret(ns):
    name, tmp, procs = ns
    start_xl2tpd(name, tmp, procs, "their secret", LNS_SECTION)
    events, status = run_driver(name, "lac", "our secret", 2.5, procs)
    assert kinds(events) == ["SessionDown", "TunnelDown"], events
    assert events[-1]["result_code"] == 4 and "secret" in events[-1]["message"]
    assert "TunnelUp" not in kinds(events)


def test_xl2tpd_lac_against_our_lns(ns):
    name, tmp, procs = ns

    def dial():
        time.sleep(0.5)  # let the driver bind first
        start_xl2tpd(name, tmp, procs, "interop secret", LAC_SECTION)
        with open(str(tmp / "control"), "w") as f:
            f.write("c sluice\n")

    events, status = run_driver(name, "lns", "interop secret", 4.0, procs, before=dial)
    k = kinds(events)
    assert k[:2] == ["TunnelUp", "SessionUp"], events
    assert events[0]["peer_host_name"]  # xl2tpd sends the machine's host name
    assert status and status[0]["counters"]["malformed"] == 0 and status[0]["peer_vendor"] == "xelerance.com"
    assert status[0]["counters"]["auth_failures"] == 0
    time.sleep(0.3)
    log = (tmp / "xl2tpd.log").read_text()
    assert "Connection established to %s" % A_SLUICE in log and "sluice test over" in log
