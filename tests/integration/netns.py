"""Test hosts made of network namespaces and veth pairs, created by the test and always removed.

Only documentation addresses (RFC 5737) and addresses of hosts made here are used; nothing leaves the
namespaces this module creates.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sh(*args, check=True, timeout=30, **kw):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(args), p.returncode, (p.stderr or p.stdout).strip()))
    return p


def can_use_netns():
    """(ok, reason): namespaces need root, iproute2 and /dev/net/tun."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    if not shutil.which("ip"):
        return False, "needs iproute2 (`ip`)"
    if not os.path.exists("/dev/net/tun"):
        return False, "needs /dev/net/tun"
    try:
        name = "slprobe%d" % os.getpid()
        sh("ip", "netns", "add", name)
        sh("ip", "netns", "del", name)
    except (RuntimeError, OSError) as e:
        return False, "cannot create a network namespace: %s" % e
    return True, ""


class Lab:
    """A set of namespaces joined by veth links; `close()` (or the context manager) removes them all."""

    def __init__(self, prefix="sl"):
        self.tag = "%s%d" % (prefix, os.getpid() % 100000)
        self.namespaces = []
        self.procs = []
        self.tmp = tempfile.mkdtemp(prefix="sluice-lab-")
        self.rundir = os.path.join(self.tmp, "run")
        os.makedirs(self.rundir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def ns(self, short):
        name = "%s-%s" % (self.tag, short)
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def link(self, ns_a, addr_a, ns_b, addr_b):
        """A veth pair between two namespaces with the given CIDR addresses; returns the device names."""
        i = len(self.namespaces) + len(self.procs) + int(time.time() * 1000) % 1000
        a, b = "v%s%da" % (self.tag[-5:], i), "v%s%db" % (self.tag[-5:], i)
        a, b = a[:15], b[:15]
        sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b)
        sh("ip", "-n", ns_a, "addr", "add", addr_a, "dev", a)
        sh("ip", "-n", ns_b, "addr", "add", addr_b, "dev", b)
        sh("ip", "-n", ns_a, "link", "set", a, "up")
        sh("ip", "-n", ns_b, "link", "set", b, "up")
        return a, b

    def run(self, ns, *args, check=True, timeout=30):
        return sh("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)

    def forward(self, ns):
        self.run(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def write(self, name, text, mode=0o600):
        path = os.path.join(self.tmp, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def env(self):
        env = dict(os.environ)
        env["SLUICE_RUNDIR"] = self.rundir
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def start(self, ns, args, log_name):
        """Start `python -m sluice ARGS` in a namespace, logging to a file in the lab directory."""
        log = open(os.path.join(self.tmp, log_name), "w")
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "sluice"] + list(args),
                             stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=ROOT)
        p.log_path = log.name
        self.procs.append(p)
        return p

    def sluice(self, *args, check=True, timeout=15):
        return sh(sys.executable, "-m", "sluice", *args, check=check, timeout=timeout, env=self.env(), cwd=ROOT)

    def status(self, name):
        import json

        p = self.sluice("status", "--name", name, "--json", check=False)
        try:
            return json.loads(p.stdout)
        except ValueError:
            return {"error": p.stdout + p.stderr}

    def wait_for(self, what, predicate, timeout=20.0, interval=0.2):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(interval)
        raise TimeoutError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))

    def tracebacks(self):
        """Logs of daemons started here that contain a Python traceback (a bug, even if the daemon lived)."""
        return [(p.log_path, self.log(p)) for p in self.procs
                if getattr(p, "log_path", None) and "Traceback" in self.log(p)]

    def log(self, p):
        try:
            with open(p.log_path) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, p, timeout=5.0):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(2)
        return p.returncode

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    pass
        for ns in reversed(self.namespaces):
            sh("ip", "netns", "del", ns, check=False)
        self.namespaces = []
        shutil.rmtree(self.tmp, ignore_errors=True)


SERVER_CONF = """\
config server 'main'
    option listen '192.0.2.1'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list dns '10.77.0.1'
    list auth '{auth}'
    option ipsec '0'
    option ifname 'sls0'

config user
    option username 'alice'
    option password 'correct horse battery'

config user
    option username 'bob'
    option password 'staple-Tr0mbone'
    option ip '10.77.0.20'
"""

CLIENT_CONF = """\
config client 'office'
    option server '192.0.2.1'
    option username '{user}'
    option password '{password}'
    option ipsec '0'
    list routes '10.77.0.0/24'
    list routes '203.0.113.0/24'
    option ifname 'slc0'
    option redial '1'
    option redial_delay '2s'
"""


def with_psk(conf, psk):
    """The same configuration with L2TP inside IPsec, authenticated by a pre-shared key."""
    return conf.replace("    option ipsec '0'\n", "    option ipsec '1'\n    option psk '%s'\n" % psk)


def build_basic(lab, auth="mschapv2", user="alice", password="correct horse battery", psk=None):
    """client --(192.0.2.0/24)-- server --(203.0.113.0/24)-- far host. Returns (srv_ns, cli_ns, far_ns, paths).

    With psk, both ends run L2TP/IPsec with that key; otherwise plain L2TP.
    """
    srv = lab.ns("srv")
    cli = lab.ns("cli")
    far = lab.ns("far")
    lab.link(srv, "192.0.2.1/24", cli, "192.0.2.2/24")
    lab.link(srv, "203.0.113.1/24", far, "203.0.113.2/24")
    lab.run(far, "ip", "route", "add", "10.77.0.0/24", "via", "203.0.113.1")
    lab.forward(srv)
    sconf_text = SERVER_CONF.format(auth=auth)
    cconf_text = CLIENT_CONF.format(user=user, password=password)
    if psk:
        sconf_text, cconf_text = with_psk(sconf_text, psk), with_psk(cconf_text, psk)
    sconf = lab.write("server.conf", sconf_text)
    cconf = lab.write("client.conf", cconf_text)
    return srv, cli, far, sconf, cconf


def transfer(lab, rx_ns, rx_host, tx_ns, nbytes, port, seed=7):
    """A bounded TCP transfer checked by hash: (what was sent, what arrived) as [sha256, size] lists."""
    tcp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcpcheck.py")
    rx = subprocess.Popen(["ip", "netns", "exec", rx_ns, sys.executable, tcp, "serve", rx_host, str(port)],
                          stdout=subprocess.PIPE, text=True)
    try:
        if rx.stdout.readline().strip() != "listening":
            raise RuntimeError("the receiver in %s did not start" % rx_ns)
        tx = lab.run(tx_ns, sys.executable, tcp, "send", rx_host, str(port), str(nbytes), str(seed), timeout=120)
        return tx.stdout.split(), rx.communicate(timeout=30)[0].split()
    finally:
        if rx.poll() is None:
            rx.kill()


def session_up(lab, name):
    st = lab.status(name)
    if st.get("role") != "client" or st.get("state") != "up":
        return None
    return st


def masquerade(lab, ns, oifname):
    """nftables source NAT of everything leaving ns through oifname (a NAT router, or OpenWrt's masq zone)."""
    rules = ("table ip sluicenat {\n chain post {\n  type nat hook postrouting priority srcnat;\n"
             "  oifname \"%s\" masquerade\n }\n}\n" % oifname)
    path = lab.write("nat-%s.nft" % ns, rules, 0o644)
    lab.run(ns, "nft", "-f", path)


def build_nat(lab, nclients=2):
    """Clients behind one NAT router (nftables masquerade) -> server. Returns (srv, nat, [clients], sconf, cconf).

    server 192.0.2.1 -- 192.0.2.254 NAT router 198.51.100.{1,129,...} -- client i at 198.51.100.(128*i + 2)
    """
    srv = lab.ns("srv")
    nat = lab.ns("nat")
    wan_nat, _ = lab.link(nat, "192.0.2.254/24", srv, "192.0.2.1/24")
    clients = []
    for i in range(nclients):
        base = 128 * i
        c = lab.ns("c%d" % i)
        lab.link(nat, "198.51.100.%d/25" % (base + 1), c, "198.51.100.%d/25" % (base + 2))
        lab.run(c, "ip", "route", "add", "default", "via", "198.51.100.%d" % (base + 1))
        clients.append(c)
    lab.forward(nat)
    masquerade(lab, nat, wan_nat)
    sconf = lab.write("server.conf", SERVER_CONF.format(auth="mschapv2"))
    cconf = lab.write("client.conf", CLIENT_CONF.format(user="alice", password="correct horse battery"))
    return srv, nat, clients, sconf, cconf
