"""Benchmarks for the whole daemon (run as root): set-up time, TCP throughput through the tunnel next to the
same transfer over the bare link (as a ratio measured in the same run), and the RSS of each daemon.

    .venv/bin/python bench/run.py [--mbytes 64] [--json]
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "integration"))

import netns  # noqa: E402


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def timed_transfer(lab, rx_ns, rx_host, tx_ns, nbytes, port):
    tcp = os.path.join(os.path.dirname(HERE), "tests", "integration", "tcpcheck.py")
    rx = subprocess.Popen(["ip", "netns", "exec", rx_ns, sys.executable, tcp, "sink", rx_host, str(port)],
                          stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout.readline().strip() == "listening"
        t0 = time.monotonic()
        tx = lab.run(tx_ns, sys.executable, tcp, "blast", rx_host, str(port), str(nbytes), timeout=300)
        got = rx.communicate(timeout=60)[0].split()
        dt = time.monotonic() - t0
    finally:
        if rx.poll() is None:
            rx.kill()
    if tx.stdout.split() != got:
        raise RuntimeError("transfer incomplete: sent %r, received %r" % (tx.stdout.split(), got))
    return nbytes * 8 / dt / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mbytes", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    ok, why = netns.can_use_netns()
    if not ok:
        print("bench needs network namespaces: %s" % why)
        return 1
    n = args.mbytes * 1024 * 1024
    results = {}
    with netns.Lab("sb") as lab:
        srv, cli, far, sconf, cconf = netns.build_basic(lab)
        server = lab.start(srv, ["server", "--config", sconf, "--name", "bsrv"], "server.log")
        lab.wait_for("server", lambda: "error" not in lab.status("bsrv"), 10)
        srv_idle = rss_kb(server.pid)
        t0 = time.monotonic()
        client = lab.start(cli, ["client", "--config", cconf, "--name", "bcli"], "client.log")
        lab.wait_for("tunnel", lambda: netns.session_up(lab, "bcli"), 30, interval=0.02)
        results["setup_s"] = round(time.monotonic() - t0, 3)
        # The same bytes over the bare link (client -> server's WAN address) and through the tunnel.
        bare = timed_transfer(lab, srv, "192.0.2.1", cli, n, 5101)
        tunnel = timed_transfer(lab, srv, "10.77.0.1", cli, n, 5102)
        back = timed_transfer(lab, cli, "10.77.0.10", srv, n, 5103)
        results.update({
            "bare_link_mbit_s": round(bare, 1),
            "tunnel_up_mbit_s": round(tunnel, 1),
            "tunnel_down_mbit_s": round(back, 1),
            "tunnel_over_bare_ratio": round(tunnel / bare, 4),
            "server_rss_idle_kb": srv_idle,
            "server_rss_1session_kb": rss_kb(server.pid),
            "client_rss_kb": rss_kb(client.pid),
        })
        lab.stop(client)
        lab.stop(server)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for k, v in results.items():
            print("%-26s %s" % (k, v))
    return 0


if __name__ == "__main__":
    sys.exit(main())
