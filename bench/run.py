"""Benchmarks for the whole daemon (run as root), all figures measured side by side in one run:

- TCP throughput over the bare link (same namespaces, no tunnel) as the reference, then through plain L2TP
  and through L2TP/IPsec for each ESP transform, both directions (iperf3, or the Python blaster);
- the same over a NAT router (NAT-T, ESP in UDP 4500) next to that path's own bare figure;
- small-packet rate: 64-byte UDP payloads sent as fast as one sender can for a fixed time; received pps, loss;
- time from starting the client process to PPP up (median of a few runs), plain and IPsec, and the time from
  the first IKE packet to the first ESP packet on the wire (tcpdump timestamps);
- VmRSS of the server idle, with 1 session and with N sessions (bench/loadgen.py: N L2TP+PPP clients in one
  process), and of the client daemon with a session up.

Performance is reported as ratios to the bare link measured in the same run, never asserted.

    .venv/bin/python bench/run.py [--quick] [--json] [--transforms a,b] [--seconds S] [--mbytes N]
                                  [--repeat K] [--sessions N] [--runs N] [--tool iperf3|python] [--logs DIR]
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

import netns  # noqa: E402

TRANSFORMS = ("aes128gcm16", "aes256gcm16", "aes128-sha1", "aes256-sha1", "aes256-sha256", "3des-sha1")
LEGACY = ("3des", "md5")
PSK = "Bn7qT2vK9xW4mR8sL3pZ6cY1hF5jD0gA"  # benchmark only
USER, PASSWORD = "alice", "correct horse battery"
NAT_TRANSFORMS = ("aes128gcm16", "aes128-sha1")

SERVER = """
config server 'main'
    option listen '192.0.2.1'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list auth 'mschapv2'
    option ipsec '%(ipsec)s'
    option ifname 'sls0'
    option max_sessions '200'
%(extra)s
config user
    option username 'alice'
    option password 'correct horse battery'
"""

CLIENT = """
config client 'office'
    option server '192.0.2.1'
    option username 'alice'
    option password 'correct horse battery'
    option ipsec '%(ipsec)s'
    option ifname 'slc0'
    option redial '0'
    list routes '10.77.0.0/24'
%(extra)s
"""


def ipsec_extra(transforms):
    lines = ["    option psk '%s'" % PSK]
    lines += ["    list esp '%s'" % t for t in transforms]
    if any(part in LEGACY for t in transforms for part in t.split("-")):
        lines.append("    option legacy '1'")
    return "\n".join(lines) + "\n"


# -- measuring -------------------------------------------------------------------------------------------------


def rss_kb(pid):
    """VmRSS of the daemon: `ip netns exec` execs python in place, so the Popen pid is the daemon's."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def status(lab, name, timeout=2.0):
    """`sluice status` over the daemon's unix socket directly: polling through the CLI costs a process."""
    from sluice.engine.control import request

    try:
        return request(name, {"cmd": "status"}, timeout, directory=lab.rundir).get("status") or {}
    except (OSError, ValueError, AttributeError):
        return {}


def wait(what, pred, timeout, interval=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    raise TimeoutError("timed out after %.0f s waiting for %s" % (timeout, what))


def read_until(stream, word, timeout):
    """Read lines from a child's pipe until one contains word; bounded by wall time (select, not readline)."""
    import select

    end = time.monotonic() + timeout
    fd = stream.fileno()
    buf = b""
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if not r:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
        if word.encode() in buf:
            return True
    raise TimeoutError("no %r from a helper within %.0f s (got %r)" % (word, timeout, buf[-300:]))


def client_up(lab, name):
    st = status(lab, name)
    return st if st.get("state") == "up" else None


def iperf3(lab, srv_ns, host, cli_ns, port, seconds, reverse, nbytes=None):
    """Mbit/s received: iperf3 server in srv_ns on host, client in cli_ns (-R: the server sends)."""
    srv = subprocess.Popen(["ip", "netns", "exec", srv_ns, "iperf3", "-s", "-1", "--forceflush", "-B", host,
                            "-p", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        read_until(srv.stdout, "listening", 10)
        args = ["iperf3", "-c", host, "-p", str(port), "-J"]
        args += ["-n", str(nbytes)] if nbytes else ["-t", str(seconds)]
        if reverse:
            args.append("-R")
        p = lab.run(cli_ns, *args, timeout=(seconds if not nbytes else 120) + 30)
        res = json.loads(p.stdout)
        if "sum_received" not in res.get("end", {}):
            raise RuntimeError("iperf3 %s -> %s%s failed: %s" % (cli_ns, host, " -R" if reverse else "",
                                                                 res.get("error", "no result")))
        return res["end"]["sum_received"]["bits_per_second"] / 1e6
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(5)


def pyblast(lab, rx_ns, rx_host, tx_ns, nbytes, port):
    """The older Python byte-counting sink and blaster (tests/integration/tcpcheck.py), for comparison."""
    tcp = os.path.join(ROOT, "tests", "integration", "tcpcheck.py")
    rx = subprocess.Popen(["ip", "netns", "exec", rx_ns, sys.executable, tcp, "sink", rx_host, str(port)],
                          stdout=subprocess.PIPE, text=True)
    try:
        if rx.stdout.readline().strip() != "listening":
            raise RuntimeError("sink did not start")
        t0 = time.monotonic()
        tx = lab.run(tx_ns, sys.executable, tcp, "blast", rx_host, str(port), str(nbytes), timeout=120)
        got = rx.communicate(timeout=60)[0].split()
        dt = time.monotonic() - t0
    finally:
        if rx.poll() is None:
            rx.kill()
    if tx.stdout.split() != got:
        raise RuntimeError("transfer incomplete: sent %r, received %r" % (tx.stdout.split(), got))
    return nbytes * 8 / dt / 1e6


def udp_rate(lab, rx_ns, host, tx_ns, port, seconds, size=64):
    """(sent pps, received pps, loss fraction) of SIZE-byte UDP payloads sent flat out for SECONDS."""
    flood = os.path.join(HERE, "udpflood.py")
    rx = subprocess.Popen(["ip", "netns", "exec", rx_ns, sys.executable, flood, "recv", host, str(port),
                           str(seconds)], stdout=subprocess.PIPE, text=True)
    try:
        if rx.stdout.readline().strip() != "listening":
            raise RuntimeError("udp receiver did not start")
        tx = lab.run(tx_ns, sys.executable, flood, "send", host, str(port), str(seconds), str(size),
                     timeout=seconds + 30)
        got, _span = rx.communicate(timeout=seconds + 10)[0].split()
    finally:
        if rx.poll() is None:
            rx.kill()
    sent, got = int(tx.stdout.split()[0]), int(got)
    return sent / seconds, got / seconds, (1 - got / sent) if sent else 0.0


class Capture:
    """tcpdump on one interface (IKE and ESP only), to time IKE from the wire rather than from our own logs."""

    def __init__(self, lab, ns, ifname):
        self.path = os.path.join(lab.tmp, "cap%d.pcap" % time.monotonic_ns())
        # --immediate-mode: without it packets wait in the capture ring and a prompt SIGINT loses them.
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, "tcpdump", "--immediate-mode", "-i", ifname, "-U",
                                   "-n", "-w", self.path,
                                   "udp port 500 or udp port 4500 or esp"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        lab.procs.append(self.p)  # killed by Lab.close() if anything fails before ike_to_esp()
        read_until(self.p.stderr, "listening", 10)

    def ike_times(self):
        """(first IKE packet, last IKE packet before ESP, first ESP packet) wall-clock times, per tcpdump's
        own dissection (isakmp, NONESP-encap isakmp; ESP raw or UDP-encap), or None."""
        self.p.send_signal(signal.SIGINT)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
        rd = subprocess.run(["tcpdump", "-r", self.path, "-n", "-tt"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, timeout=30)
        out = rd.stdout
        t_ike = t_last = t_esp = None
        for line in out.splitlines():
            ts = float(line.split()[0])
            if "ESP(" in line:
                t_esp = ts
                break
            if "isakmp" in line:
                t_last = ts
                if t_ike is None:
                    t_ike = ts
        if t_ike is None or t_esp is None:
            sys.stderr.write("capture: no IKE/ESP pair in %d lines: %r\n" % (
                len(out.splitlines()), out[:500] + rd.stderr))
            return None
        return t_ike, t_last, t_esp


# -- one scenario ---------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.a = args
        self.r = {}
        self.port = 5300

    def keep_logs(self, lab, tag):
        """Copy the daemons' logs and IKE captures out of the lab directory (removed on close) with --logs DIR."""
        if not self.a.logs:
            return
        os.makedirs(self.a.logs, exist_ok=True)
        for f in os.listdir(lab.tmp):
            if f.endswith((".log", ".pcap")):
                shutil.copy(os.path.join(lab.tmp, f), os.path.join(self.a.logs, "%s-%s" % (tag, f)))

    def next_port(self):
        self.port += 1
        return self.port

    def tput(self, lab, srv, host, cli, reverse):
        n = self.a.mbytes * 1024 * 1024 if self.a.mbytes else None
        return iperf3(lab, srv, host, cli, self.next_port(), self.a.seconds, reverse, n)

    def both(self, lab, srv_ns, srv_host, cli_ns, cli_host):
        """(up, down) Mbit/s: up = client -> server, down = server -> client."""
        ups, downs = [], []
        for _ in range(self.a.repeat):
            if self.a.tool == "python":
                n = self.a.mbytes * 1024 * 1024
                ups.append(pyblast(lab, srv_ns, srv_host, cli_ns, n, self.next_port()))
                downs.append(pyblast(lab, cli_ns, cli_host, srv_ns, n, self.next_port()))
            else:
                ups.append(self.tput(lab, srv_ns, srv_host, cli_ns, False))
                downs.append(self.tput(lab, srv_ns, srv_host, cli_ns, True))
        self.samples = (ups, downs)
        return statistics.median(ups), statistics.median(downs)

    def pps(self, lab, rx_ns, host, tx_ns):
        """Median over --repeat runs of (sent pps, received pps, loss); the samples stay in self.pps_samples."""
        runs = [udp_rate(lab, rx_ns, host, tx_ns, self.next_port(), self.a.pps_seconds)
                for _ in range(self.a.repeat)]
        self.pps_samples = runs
        runs.sort(key=lambda x: x[1])
        return runs[len(runs) // 2]

    def bare_again(self, lab, key, srv_ns, srv_host, cli_ns, cli_host, pps):
        """Measure the bare reference a second time at the end of the scenario and keep the median of all
        samples: on a shared machine one reference taken during someone else's burst would skew every ratio."""
        row = self.r[key]
        ups, downs = row.pop("_samples")
        self.both(lab, srv_ns, srv_host, cli_ns, cli_host)
        ups, downs = ups + self.samples[0], downs + self.samples[1]
        row["up_mbit_s"], row["down_mbit_s"] = statistics.median(ups), statistics.median(downs)
        row["up_samples"], row["down_samples"] = ups, downs
        if pps:
            self.pps(lab, srv_ns, srv_host, cli_ns)
            runs = sorted(row.pop("_pps_samples") + self.pps_samples, key=lambda x: x[1])
            row["pps_sent"], row["pps_received"], row["pps_loss"] = runs[len(runs) // 2]

    def start_server(self, lab, ns, ipsec, transforms, name):
        extra = ipsec_extra(transforms) if ipsec else ""
        conf = lab.write(name + ".conf", SERVER % {"ipsec": "1" if ipsec else "0", "extra": extra})
        p = lab.start(ns, ["server", "--config", conf, "--name", name], name + ".log")
        try:
            wait("server %s" % name, lambda: status(lab, name).get("role") == "server" or p.poll() is not None,
                 15, 0.05)
        except TimeoutError:
            pass
        if p.poll() is not None or status(lab, name).get("role") != "server":
            raise RuntimeError("server %s did not start:\n%s" % (name, lab.log(p)[-2000:]))
        return p

    def start_client(self, lab, ns, transform, name, cap_if=None):
        """(process, seconds from start to PPP up, seconds from first IKE packet to first ESP packet)."""
        ipsec = transform is not None
        extra = ipsec_extra([transform]) if ipsec else ""
        conf = lab.write(name + ".conf", CLIENT % {"ipsec": "1" if ipsec else "0", "extra": extra})
        cap = Capture(lab, cap_if[0], cap_if[1]) if (ipsec and cap_if) else None
        t0, wall0 = time.monotonic(), time.time()
        p = lab.start(ns, ["client", "--config", conf, "--name", name], name + ".log")
        try:
            wait("client %s up" % name, lambda: client_up(lab, name) or p.poll() is not None, 60)
        except TimeoutError:
            raise RuntimeError("client %s did not come up:\n%s" % (name, lab.log(p)[-2000:]))
        if p.poll() is not None:
            raise RuntimeError("client %s exited:\n%s" % (name, lab.log(p)[-2000:]))
        # Since the endpoint layer a client reports `up` when its host steps (address, routes) are queued;
        # they run as child processes after that. Setup ends when the route through the tunnel exists.
        try:
            wait("route to 10.77.0.1 through slc0 in %s" % ns, lambda: "slc0" in subprocess.run(
                ["ip", "netns", "exec", ns, "ip", "-4", "route", "get", "10.77.0.1"], capture_output=True,
                text=True).stdout, 10)
        except TimeoutError:
            raise RuntimeError("client %s is up but has no route through its tunnel:\n%s" % (
                name, lab.log(p)[-2000:]))
        setup = time.monotonic() - t0
        ike = cap.ike_times() if cap else None
        if ike is not None:
            self.last_start_to_ike = ike[0] - wall0
            self.last_exchange = ike[1] - ike[0]
            ike = ike[2] - ike[0]
        return p, setup, ike

    def stop_client(self, lab, p, server_name):
        lab.stop(p)
        try:
            wait("server back to 0 sessions", lambda: status(lab, server_name).get("sessions") == 0, 10, 0.05)
        except TimeoutError:
            pass

    def setup_times(self, lab, cli_ns, transform, server_name, cap_if):
        """Median start-to-PPP-up (and IKE-to-ESP) over several runs; leaves the last client up."""
        setups, ikes, starts, exchanges = [], [], [], []
        p = None
        for i in range(self.a.runs):
            if p is not None:
                self.stop_client(lab, p, server_name)
            p, s, ike = self.start_client(lab, cli_ns, transform, "cli%d" % i, cap_if)
            setups.append(s)
            if ike is not None:
                ikes.append(ike)
                starts.append(self.last_start_to_ike)
                exchanges.append(self.last_exchange)
        self.last_start_to_ike = statistics.median(starts) if starts else None
        self.last_exchange = statistics.median(exchanges) if exchanges else None
        return p, statistics.median(setups), (statistics.median(ikes) if ikes else None)

    # -- the direct topology: client 192.0.2.2 -- 192.0.2.1 server -----------------------------------------

    def direct(self):
        with netns.Lab("sbd") as lab:
            try:
                self._direct(lab)
            finally:
                self.keep_logs(lab, "direct")

    def _direct(self, lab):
        a, r = self.a, self.r
        srv, cli = lab.ns("srv"), lab.ns("cli")
        _, srv_if = lab.link(cli, "192.0.2.2/24", srv, "192.0.2.1/24")
        up, down = self.both(lab, srv, "192.0.2.1", cli, "192.0.2.2")
        r["bare"] = {"up_mbit_s": up, "down_mbit_s": down, "_samples": self.samples}
        if a.tool == "iperf3" and not a.quick:
            r["bare"]["python_blaster_up_mbit_s"] = pyblast(lab, srv, "192.0.2.1", cli, 256 << 20,
                                                            self.next_port())
        s, g, loss = self.pps(lab, srv, "192.0.2.1", cli)
        r["bare"].update(pps_sent=s, pps_received=g, pps_loss=loss, _pps_samples=list(self.pps_samples))

        # Plain L2TP.
        server = self.start_server(lab, srv, False, (), "splain")
        r["server_rss_idle_kb"] = rss_kb(server.pid)
        client, setup, _ = self.setup_times(lab, cli, None, "splain", None)
        row = r.setdefault("plain", {})
        row["setup_s"] = setup
        row["server_rss_1_session_kb"] = rss_kb(server.pid)
        row["client_rss_kb"] = rss_kb(client.pid)
        row["up_mbit_s"], row["down_mbit_s"] = self.both(lab, srv, "10.77.0.1", cli,
                                                         self.client_ip_of(lab, "splain"))
        if a.tool == "iperf3" and not a.quick:
            row["python_blaster_up_mbit_s"] = pyblast(lab, srv, "10.77.0.1", cli, 64 << 20, self.next_port())
        row["pps_sent"], row["pps_received"], row["pps_loss"] = self.pps(lab, srv, "10.77.0.1", cli)
        self.stop_client(lab, client, "splain")
        self.sessions_rss(lab, server, cli)
        lab.stop(server)

        # L2TP/IPsec, raw ESP: one server that accepts every transform, one client per transform.
        server = self.start_server(lab, srv, True, a.transforms, "sipsec")
        r["ipsec_server_rss_idle_kb"] = rss_kb(server.pid)
        for i, t in enumerate(a.transforms):
            row = r.setdefault("esp " + t, {})
            if i == 0:
                client, row["setup_s"], row["ike_to_esp_s"] = self.setup_times(lab, cli, t, "sipsec",
                                                                               (srv, srv_if))
                row["start_to_first_ike_s"] = self.last_start_to_ike
                row["ike_exchange_s"] = self.last_exchange
                row["server_rss_1_session_kb"] = rss_kb(server.pid)
                row["client_rss_kb"] = rss_kb(client.pid)
            else:
                client, row["setup_s"], row["ike_to_esp_s"] = self.start_client(lab, cli, t, "c" + t,
                                                                                (srv, srv_if))
            sas = status(lab, "sipsec").get("transport", {}).get("sas", [])
            row["sa"] = ",".join(sorted({str(sa.get("transform")) for sa in sas}))
            row["encap"] = any(sa.get("encap") for sa in sas)
            row["up_mbit_s"], row["down_mbit_s"] = self.both(lab, srv, "10.77.0.1", cli,
                                                             self.client_ip_of(lab, "sipsec"))
            if i < a.pps_transforms:
                row["pps_sent"], row["pps_received"], row["pps_loss"] = self.pps(lab, srv, "10.77.0.1", cli)
            self.stop_client(lab, client, "sipsec")
        lab.stop(server)
        self.bare_again(lab, "bare", srv, "192.0.2.1", cli, "192.0.2.2", True)
        r["tracebacks"] = [path for path, _ in lab.tracebacks()]

    def sessions_rss(self, lab, server, cli_ns):
        """Server RSS with N sessions from the load generator, against its RSS just before (0 sessions)."""
        n = self.a.sessions
        before = rss_kb(server.pid)
        gen = subprocess.Popen(["ip", "netns", "exec", cli_ns, sys.executable, os.path.join(HERE, "loadgen.py"),
                                "192.0.2.1", str(n), USER, PASSWORD, "--bind", "192.0.2.2", "--timeout", "60"],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=lab.env())
        try:
            line = gen.stdout.readline().split()
            up, took = int(line[1]), float(line[2])
            sessions = status(lab, "splain").get("sessions")
            during = rss_kb(server.pid)
            gen.stdin.write("stop\n")
            gen.stdin.flush()
            gen.communicate(timeout=20)
        finally:
            if gen.poll() is None:
                gen.kill()
                gen.wait(5)
        self.r["server_sessions"] = {
            "n": n, "up": up, "server_counted": sessions, "seconds_to_all_up": took,
            "rss_before_kb": before, "rss_with_n_kb": during,
            "kb_per_session": (during - before) / up if up else None,
        }

    # -- through a NAT router: client 198.51.100.2 -- NAT 192.0.2.254 -- 192.0.2.1 server --------------------

    def nat(self):
        with netns.Lab("sbn") as lab:
            try:
                self._nat(lab)
            finally:
                self.keep_logs(lab, "nat")

    def _nat(self, lab):
        a, r = self.a, self.r
        srv, nat, cli = lab.ns("srv"), lab.ns("nat"), lab.ns("cli")
        wan_nat, srv_if = lab.link(nat, "192.0.2.254/24", srv, "192.0.2.1/24")
        lab.link(nat, "198.51.100.1/24", cli, "198.51.100.2/24")
        lab.run(cli, "ip", "route", "add", "default", "via", "198.51.100.1")
        lab.run(srv, "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.254")
        lab.forward(nat)
        # Bare reference first, through the router without NAT (same forwarding path, no conntrack NAT).
        up, down = self.both(lab, srv, "192.0.2.1", cli, "198.51.100.2")
        r["bare via router"] = {"up_mbit_s": up, "down_mbit_s": down, "_samples": self.samples}
        netns.masquerade(lab, nat, wan_nat)
        transforms = [t for t in NAT_TRANSFORMS if t in a.transforms][: 1 if a.quick else 2]
        transforms = transforms or a.transforms[:1]
        server = self.start_server(lab, srv, True, transforms, "snat")
        for t in transforms:
            row = r.setdefault("nat-t " + t, {})
            client, row["setup_s"], row["ike_to_esp_s"] = self.start_client(lab, cli, t, "n" + t,
                                                                            (srv, srv_if))
            sas = status(lab, "snat").get("transport", {}).get("sas", [])
            row["sa"] = ",".join(sorted({str(sa.get("transform")) for sa in sas}))
            row["encap"] = any(sa.get("encap") for sa in sas)
            ip = self.client_ip_of(lab, "snat")
            # Down through NAT: iperf3 -R reuses the client's connection, so it crosses the NAT.
            row["up_mbit_s"], row["down_mbit_s"] = self.both(lab, srv, "10.77.0.1", cli, ip)
            row["ref"] = "bare via router"
            self.stop_client(lab, client, "snat")
        lab.stop(server)
        self.bare_again(lab, "bare via router", srv, "192.0.2.1", cli, "198.51.100.2", False)
        r["tracebacks"] = r.get("tracebacks", []) + [path for path, _ in lab.tracebacks()]

    def client_ip_of(self, lab, server_name):
        """The tunnel address the server gave the (one) client: the far end for the Python tool's downstream."""
        for t in status(lab, server_name).get("tunnels", []):
            for s in t.get("sessions", []):
                if s.get("ip"):
                    return s["ip"]
        return "10.77.0.10"


# -- report ---------------------------------------------------------------------------------------------------


def table(r):
    out = []
    bare = r["bare"]
    out.append("%-22s %9s %9s %7s %7s %9s %9s %6s %8s %8s" % (
        "path", "up Mb/s", "down Mb/s", "up/bare", "dn/bare", "pps rx", "pps/bare", "loss", "setup s", "IKE>ESP"))
    for name, row in r.items():
        if not isinstance(row, dict) or "up_mbit_s" not in row:
            continue
        ref = r.get(row.get("ref", "bare"), bare) if name != "bare via router" else row
        ref = bare if name == "bare" else ref
        pps = row.get("pps_received")

        def f(v, fmt):
            return fmt % v if v is not None else "-"

        out.append("%-22s %9.1f %9.1f %7.3f %7.3f %9s %9s %6s %8s %8s" % (
            name, row["up_mbit_s"], row["down_mbit_s"], row["up_mbit_s"] / ref["up_mbit_s"],
            row["down_mbit_s"] / ref["down_mbit_s"], f(pps, "%.0f"),
            f(pps / bare["pps_received"] if pps is not None else None, "%.4f"), f(row.get("pps_loss"), "%.3f"),
            f(row.get("setup_s"), "%.3f"), f(row.get("ike_to_esp_s"), "%.3f")))
    plain = r.get("plain")
    if plain:
        out.append("")
        out.append("each transform / plain L2TP (up, down):")
        for name, row in r.items():
            if isinstance(row, dict) and name.startswith(("esp ", "nat-t ")):
                out.append("  %-20s %.3f  %.3f" % (name, row["up_mbit_s"] / plain["up_mbit_s"],
                                                  row["down_mbit_s"] / plain["down_mbit_s"]))
    out.append("")
    out.append("RSS (VmRSS, kB):")
    out.append("  plain server idle %s, with 1 session %s; plain client with a session %s" % (
        r.get("server_rss_idle_kb"), plain and plain.get("server_rss_1_session_kb"),
        plain and plain.get("client_rss_kb")))
    first = next((row for n, row in r.items() if n.startswith("esp ") and "client_rss_kb" in row), None)
    if first and first.get("start_to_first_ike_s") is not None and first.get("ike_to_esp_s") is not None:
        out.append("")
        out.append("IPsec client start to PPP up (median, %s): process start -> first IKE packet %.3f s; IKE Main +"
                   " Quick Mode on the wire %.3f s; first IKE -> first ESP packet %.3f s; then L2TP + PPP %.3f s;"
                   " total %.3f s (plain L2TP: %.3f s)" % (
                       first["sa"], first["start_to_first_ike_s"], first.get("ike_exchange_s") or 0,
                       first["ike_to_esp_s"],
                       first["setup_s"] - first["start_to_first_ike_s"] - first["ike_to_esp_s"], first["setup_s"],
                       plain["setup_s"] if plain else float("nan")))
    if first:
        out.append("  IPsec server idle %s, with 1 session %s; IPsec client with a session %s" % (
            r.get("ipsec_server_rss_idle_kb"), first["server_rss_1_session_kb"], first["client_rss_kb"]))
    s = r.get("server_sessions")
    if s:
        out.append("  plain server: %d sessions up (server counts %s) in %.2f s; RSS %d -> %d kB = %.1f kB/session" % (
            s["up"], s["server_counted"], s["seconds_to_all_up"], s["rss_before_kb"], s["rss_with_n_kb"],
            s["kb_per_session"] or 0))
    if "python_blaster_up_mbit_s" in bare:
        out.append("")
        out.append("tool check, up: bare iperf3 %.1f vs Python blaster %.1f Mb/s; plain L2TP iperf3 %.1f vs %.1f" % (
            bare["up_mbit_s"], bare["python_blaster_up_mbit_s"], plain["up_mbit_s"],
            plain.get("python_blaster_up_mbit_s", 0)))
    for n, row in r.items():
        if isinstance(row, dict) and "sa" in row:
            out.append("  %s: negotiated %s, UDP-encapsulated %s" % (n, row["sa"], row["encap"]))
    if r.get("tracebacks"):
        out.append("TRACEBACKS in daemon logs: %s" % r["tracebacks"])
    return "\n".join(out)


def _rounded(v):
    if isinstance(v, float):
        return round(v, 4)
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_rounded(x) for x in v]
    return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one transform, short runs (under a minute)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("--transforms", help="comma-separated ESP transforms (default: %s)" % ",".join(TRANSFORMS))
    ap.add_argument("--seconds", type=float, help="seconds per iperf3 throughput run (default 2, quick 1)")
    ap.add_argument("--mbytes", type=int, default=0, help="transfer N MiB per run instead of a fixed time")
    ap.add_argument("--sessions", type=int, help="sessions from the load generator (default 50, quick 10)")
    ap.add_argument("--runs", type=int, help="client starts for the setup-time median (default 3, quick 1)")
    ap.add_argument("--tool", choices=("iperf3", "python"), help="throughput tool (default iperf3 if installed)")
    ap.add_argument("--repeat", type=int, help="throughput runs per figure, median shown (default 3, quick 1)")
    ap.add_argument("--logs", metavar="DIR", help="copy the daemons' logs into DIR")
    args = ap.parse_args()
    args.transforms = tuple(args.transforms.split(",")) if args.transforms else (
        TRANSFORMS[:1] if args.quick else TRANSFORMS)
    args.seconds = args.seconds or (1 if args.quick else 2)
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.sessions = args.sessions or (10 if args.quick else 50)
    args.runs = args.runs or (1 if args.quick else 3)
    args.tool = args.tool or ("iperf3" if shutil.which("iperf3") else "python")
    if args.tool == "python" and not args.mbytes:
        args.mbytes = 16 if args.quick else 64
    args.pps_seconds = 1.0 if args.quick else 2.0
    args.pps_transforms = 1 if args.quick else 2
    ok, why = netns.can_use_netns()
    if not ok:
        print("bench needs network namespaces: %s" % why)
        return 1
    for tool in ("tcpdump", "nft"):
        if not shutil.which(tool):
            print("bench needs %s" % tool)
            return 1
    # A SIGTERM (e.g. from `timeout`) unwinds through the Lab context managers, so namespaces are removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    b = Bench(args)
    t0 = time.monotonic()
    load_before = open("/proc/loadavg").read().split()[:3]
    b.direct()
    b.nat()
    r = b.r
    r["meta"] = {"tool": args.tool, "seconds": args.seconds, "mbytes": args.mbytes, "runs": args.runs,
                 "pps_seconds": args.pps_seconds, "payload": 64, "wall_s": round(time.monotonic() - t0, 1),
                 "repeat": args.repeat,
                 "loadavg_before": load_before, "loadavg_after": open("/proc/loadavg").read().split()[:3],
                 "cpus": os.cpu_count(),
                 "argv": sys.argv[1:]}
    if args.json:
        print(json.dumps(_rounded(r), indent=2, default=str))
    else:
        print(table(r))
        m = r["meta"]
        print("\n(%s, %g s x %d per throughput figure; %s; load average before %s, after %s; %d CPUs; wall %.0f s)" % (
            args.tool, args.seconds, args.repeat, " ".join(sys.argv[1:]) or "defaults", " ".join(m["loadavg_before"]),
            " ".join(m["loadavg_after"]), m["cpus"], m["wall_s"]))
    return 1 if r.get("tracebacks") else 0


if __name__ == "__main__":
    sys.exit(main())
