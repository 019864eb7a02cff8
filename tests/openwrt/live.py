"""A running Sluice server and client in network namespaces, for contract tests: their `status --json`, the
rpcd plugin driving the real CLI, a user disconnected by the server. Everything here is the real daemon started
by the real CLI (`python -m sluice server|client`), over L2TP/IPsec with a pre-shared key:

    client 'vpn' (alice) 192.0.2.2 --+
                                      +-- 192.0.2.1 server 'main' (pool 10.77.0.0/24)
    client 'bob' (bob)   192.0.2.3 --+    (a bridge in the server's namespace)

`LiveLab.statuses()` returns {"main": ..., "vpn": ..., "all": ...} as `sluice status --json [--name]` prints
them. tests/openwrt/fixtures/status-*.json are these outputs, written by test_live_contracts.py with
SLUICE_UPDATE_FIXTURES=1 and checked against a fresh run there every time (so the LuCI tests, which run without
root, read what a daemon really sends).
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import netns  # noqa: E402

PSK = "Rk7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY"
# With libubox's real jshn.sh (and its `jshn` program on PATH) the rpcd plugin runs with OpenWrt's JSON library
# instead of the stand-in in stubs/jshn.sh; it needs busybox ash (`export -n`), OpenWrt's /bin/sh.
REAL_JSHN_SH = os.environ.get("SLUICE_JSHN_SH")
SH = os.environ.get("SLUICE_OPENWRT_SH", "busybox sh" if REAL_JSHN_SH else "sh").split()
SERVER = """\
config server 'main'
    option listen '192.0.2.1'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list dns '10.77.0.1'
    option ipsec '1'
    option psk '%s'
    option public_host 'vpn.example.net'
    option ifname 'sls0'

config user
    option username 'alice'
    option password 'correct horse battery'

config user
    option username 'bob'
    option password 'staple-Tr0mbone'
""" % PSK
CLIENT = """\
config interface 'vpn'
    option proto 'sluice'
    option server '192.0.2.1'
    option username '%(user)s'
    option password '%(password)s'
    option ipsec '1'
    option psk '%(psk)s'
    option redial '0'
    list routes '10.77.0.0/24'
"""


class LiveLab:
    def __init__(self):
        self.lab = netns.Lab(prefix="sw")
        self.srv = self.lab.ns("srv")
        self.cli = self.lab.ns("cli")
        self.cli2 = self.lab.ns("cl2")
        a, _ = self.lab.link(self.srv, "192.0.2.250/32", self.cli, "192.0.2.2/24")
        b, _ = self.lab.link(self.srv, "192.0.2.251/32", self.cli2, "192.0.2.3/24")
        for cmd in (["ip", "link", "add", "br0", "type", "bridge"], ["ip", "addr", "add", "192.0.2.1/24", "dev", "br0"],
                    ["ip", "link", "set", a, "master", "br0"], ["ip", "link", "set", b, "master", "br0"],
                    ["ip", "link", "set", "br0", "up"]):
            self.lab.run(self.srv, *cmd)
        self.sconf = self.lab.write("sluice", SERVER)
        self.cconf = self.lab.write("network", CLIENT % {"user": "alice", "password": "correct horse battery",
                                                         "psk": PSK})
        self.cconf2 = self.lab.write("network2", CLIENT % {"user": "bob", "password": "staple-Tr0mbone", "psk": PSK})
        self.server = self.lab.start(self.srv, ["server", "--config", self.sconf, "--section", "main",
                                                "--name", "main"], "server.log")
        self.lab.wait_for("server socket", lambda: "error" not in self.lab.status("main"), 15)
        # The daemon configures its TUN itself here (no --netifd: there is no netifd to do it), so traffic flows.
        self.client = self.lab.start(self.cli, ["client", "--config", self.cconf, "--section", "vpn",
                                                "--name", "vpn"], "client.log")
        self.client2 = self.lab.start(self.cli2, ["client", "--config", self.cconf2, "--section", "vpn",
                                                  "--name", "bob"], "client2.log")
        try:
            self.lab.wait_for("session up", lambda: netns.session_up(self.lab, "vpn"), 40)
            self.lab.wait_for("second session up", lambda: netns.session_up(self.lab, "bob"), 40)
            # some traffic both ways, so byte counters are not zero
            self.lab.run(self.cli, "ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.1", check=False)
            self.lab.run(self.cli2, "ping", "-c", "1", "-W", "2", "10.77.0.1", check=False)
        except TimeoutError:
            self.close()
            raise RuntimeError("live lab did not come up\n--- server\n%s--- client\n%s" % (
                self.lab.log(self.server), self.lab.log(self.client)))

    def sluice(self, *args, ns=None, **kw):
        cmd = [sys.executable, "-m", "sluice"] + list(args)
        if ns:
            cmd = ["ip", "netns", "exec", ns] + cmd
        return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.get("timeout", 20),
                              env=self.lab.env(), cwd=netns.ROOT, input=kw.get("input"))

    def statuses(self):
        out = {}
        for key, args in (("main", ["--name", "main"]), ("vpn", ["--name", "vpn"]), ("all", [])):
            p = self.sluice("status", "--json", *args)
            out[key] = json.loads(p.stdout)
        return out

    def rpcd(self, method, args, jshn):
        """The rpcd plugin (openwrt/sluice/files/sluice.rpcd) as rpcd runs it: `call METHOD`, the arguments as
        JSON on stdin, the real CLI as `sluice`. Returns the raw stdout."""
        plugin = os.path.join(netns.ROOT, "openwrt", "sluice", "files", "sluice.rpcd")
        env = self.lab.env()
        env.update({"JSHN_SH": REAL_JSHN_SH or jshn, "SLUICE": "%s -m sluice" % sys.executable,
                    "SLUICE_CONFIG": self.sconf})
        p = subprocess.run(SH + [plugin, "call", method], input=json.dumps(args), capture_output=True, text=True,
                           timeout=30, env=env, cwd=netns.ROOT)
        return p.stdout

    def close(self):
        for p in (self.client, self.client2, self.server):
            self.lab.stop(p)
        self.lab.close()
