"""A Sluice server and client in one process on the in-memory twins: virtual clock, simulated network
(optionally with a NAT), TUN twins, recorded host configuration. No kernel, no sockets, no root."""

import io

from sluice.config import loads
from sluice.engine.host import MemoryHost
from sluice.engine.log import Log
from sluice.engine.runner import build_client, build_server
from sluice.engine.twins import MemoryNet, MemoryTun, VirtualLoop

SERVER_IP = "192.0.2.1"
CLIENT_IP = "198.51.100.2"
NAT_IP = "192.0.2.254"
PSK = "9f2e7c4b1a0d8e6f5c3b2a1908f7e6d5"

CONF = """
config globals
    option crypto '%(crypto)s'

config server 'main'
    option listen '192.0.2.1'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list dns '10.77.0.53'
    list auth '%(auth)s'
    option ipsec '%(ipsec)s'
    option psk '%(psk)s'
    option ifname 'sls0'
%(server_extra)s

config user
    option username 'alice'
    option password 'Secr3t-password-horse'
%(user_extra)s

config client 'office'
    option server 'vpn.example.net'
    option username 'alice'
    option password '%(password)s'
    option ipsec '%(ipsec)s'
    option psk '%(psk)s'
    option ifname 'slc0'
    option redial '%(redial)s'
    list routes '10.77.0.0/24'
%(client_extra)s
"""


class TwinPair:
    def __init__(self, ipsec=True, nat=False, auth="mschapv2", password="Secr3t-password-horse", crypto="pure",
                 redial=0, server_extra="", client_extra="", user_extra="", hook="/bin/hook"):
        text = CONF % {"auth": auth, "password": password, "ipsec": "1" if ipsec else "0", "psk": PSK,
                       "crypto": crypto, "redial": redial, "server_extra": server_extra,
                       "client_extra": client_extra, "user_extra": user_extra}
        self.config_text = text
        self.config = loads(text, name="twin.conf")
        self.loop = VirtualLoop()
        self.logbuf = io.StringIO()
        self.log = Log("twin", stream=self.logbuf)
        self.net = MemoryNet()
        self.nat = self.net.nat(CLIENT_IP, NAT_IP) if nat else None
        self.stun, self.ctun = MemoryTun("sls0"), MemoryTun("slc0")
        self.shost, self.chost = MemoryHost(), MemoryHost(hook=hook)
        self.rng = _Rng(1)
        backend = None
        if crypto != "auto":
            from sluice.hal import crypto as C

            backend = C.load(crypto)
        self.server = build_server(self.config, self.config.servers[0], self.loop, self.log, tun=self.stun,
                                   sockets=self.net.host(SERVER_IP), host=self.shost, rng=self.rng,
                                   backend=backend, datapath="user")
        self.client = build_client(self.config, self.config.clients[0], self.loop, self.log, tun=self.ctun,
                                   sockets=self.net.host(CLIENT_IP, {"vpn.example.net": SERVER_IP}),
                                   host=self.chost, rng=self.rng, backend=backend, datapath="user")
        self.server.start(self.loop.time())
        self.client.start(self.loop.time())

    @property
    def sep(self):
        return self.server.endpoint

    @property
    def cep(self):
        return self.client.endpoint

    def run(self, until, max_time=120.0):
        return self.loop.run(until, max_time=max_time)

    def up(self, max_time=120.0):
        return self.run(lambda: self.cep.state == "up" and any(
            s.up_since is not None for s in self.sep.sessions.values()), max_time)

    def close(self):
        self.client.close()
        self.server.close()


class _Rng:
    """Deterministic randomness for repeatable runs (never for real keys)."""

    def __init__(self, seed):
        import random

        self.r = random.Random(seed)

    def __call__(self, n):
        return bytes(self.r.getrandbits(8) for _ in range(n))
