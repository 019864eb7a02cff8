"""Forged log lines end to end (issue 13, item 6): a client whose PPP user name and L2TP Host Name carry
newlines, against the real server engine in one process. Before issue 13 each newline started a line of its
own in the server's log (and in `status`'s recent events, and under procd in syslog).
"""

import io

from sluice.config import loads
from sluice.engine.client import Client
from sluice.engine.log import Log
from sluice.engine.loop import EventLoop, monotonic
from sluice.engine.server import Server
from sluice.hal.net.tun import PairTun
from sluice.hal.net.udp import bind_udp
from tests.unit.test_engine_inprocess import CONF

FORGED = "12:00:00 sluice-srv: info: session up: admin at 10.77.0.2 from 192.0.2.9:1701"


def test_a_peer_cannot_write_lines_into_the_server_log():
    config = loads(CONF % {"auth": "pap", "password": "Secr3t-password-horse"}, name="test.conf")
    config.clients[0].username = "mallory\n" + FORGED
    loop = EventLoop()
    buf = io.StringIO()
    log = Log("test", stream=buf)
    stun, ctun = PairTun("sls0"), PairTun("slc0")
    ssock, csock = bind_udp("127.0.0.1", 0), bind_udp("127.0.0.1", 0)
    csock.connect(ssock.getsockname())
    server = Server(config, config.servers[0], loop, log, tun=stun, sock=ssock, configure_host=False)
    client = Client(config, config.clients[0], loop, Log("cli", stream=io.StringIO()), tun=ctun, sock=csock,
                    configure_host=False)
    server.start()
    client.start(monotonic())
    try:
        for _ in range(300):
            if server.counters["auth_failures"]:
                break
            loop.run_once(max_wait=0.02)
        assert server.counters["auth_failures"] == 1, buf.getvalue()
        out = buf.getvalue().splitlines()
        assert not [x for x in out if x.startswith("12:00:00")], out
        assert any("mallory\\n12:00:00" in x for x in out), out
        recent = [m for _, _, m in log.recent]
        assert all("\n" not in m for m in recent) and any("mallory\\n" in m for m in recent)
    finally:
        client.close()
        server.close()
        loop.close()
