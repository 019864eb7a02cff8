"""Forged log lines end to end (issue 13, item 6): a client whose PPP user name carries a newline, against the
real server endpoint and engine in one process (the in-memory twins). Before issue 13 each newline started a
line of its own in the server's log (and in `status`'s recent events, and under procd in syslog).
"""

import io

from sluice.engine.log import Log
from twinpair import TwinPair

FORGED = "12:00:00 sluice-srv: info: session up: admin at 10.77.0.2 from 192.0.2.9:1701"


def test_a_peer_cannot_write_lines_into_the_server_log():
    p = TwinPair(ipsec=False, auth="pap")
    try:
        # The server logs to its own buffer; the client's user name is hostile.
        buf = io.StringIO()
        log = Log("srv", stream=buf)
        p.server.log = log
        p.config.clients[0].username = "mallory\n" + FORGED
        p.cep.cli = p.config.clients[0]
        p.client.command("disconnect", p.loop.time())
        p.client.command("connect", p.loop.time())
        assert p.run(lambda: p.sep.counters["auth_failures"] >= 1, 30), buf.getvalue()
        out = buf.getvalue().splitlines()
        assert not [x for x in out if x.startswith("12:00:00")], out
        assert any("mallory\\n12:00:00" in x for x in out), out
        recent = [m for _, _, m in log.recent]
        assert all("\n" not in m for m in recent) and any("mallory\\n" in m for m in recent)
    finally:
        p.close()
