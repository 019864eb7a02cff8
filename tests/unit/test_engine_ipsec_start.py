"""IPsec daemon start-up order: the IKE ports are open before the crypto backends are measured, which takes
seconds on a slow router CPU (and under emulation); a client's first Main Mode packet then waits in the
socket instead of meeting a closed port and a 4 s retransmit (found in the peer lab with strongSwan)."""

import io
import os
import socket

import pytest

from sluice.engine.ipsec import IpsecTransport
from sluice.engine.log import Log
from sluice.engine.loop import EventLoop
from sluice.hal.crypto import select
from sluice.ike.table import IkeConfig

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binds UDP 500/4500 (needs root)")


def test_ike_ports_are_bound_before_backends_are_measured(monkeypatch):
    addr = "127.0.0.29"
    seen = {}

    def choose(budget=0.02):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            probe.bind((addr, 500))
            seen["bound"] = False
        except OSError:
            seen["bound"] = True
        finally:
            probe.close()
        return "openssl"

    monkeypatch.setattr(select, "choose", choose)
    loop = EventLoop()
    t = IpsecTransport(loop, Log("test", stream=io.StringIO()), IkeConfig(role="responder", psk=b"k" * 32), addr,
                       lambda *a: None, lambda *a, **k: None, os.urandom, backend="auto")
    try:
        t.attach(loop)
        assert seen == {"bound": True}
    finally:
        for s in (t.s500, t.s4500, t.raw):
            if s is not None:
                s.close()
