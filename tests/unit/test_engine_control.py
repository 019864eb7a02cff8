"""The control socket never blocks the daemon's loop (issue 13, item 9).

A local client sends its request one byte every 0.1 s for 3 s. Before issue 13 the daemon read each
connection with a 0.5 s deadline per recv(), so such a client held the whole loop (ping RTT through the tunnel
15 s in the attack, other `status` calls timed out). Now the loop stays responsive, another client is
answered at once, and the trickler is cut off at the whole-request deadline (2 s).
"""

import json
import os
import socket
import threading
import time

from sluice.engine import control
from sluice.engine.log import Log
from sluice.engine.loop import EventLoop


def make_server(tmp_path, loop, handler):
    os.environ["SLUICE_RUNDIR"] = str(tmp_path)
    log = Log("test", stream=open(os.devnull, "w"))
    try:
        return control.ControlServer("t", handler, log, loop=loop)
    except TypeError:  # the server before issue 13 took no loop
        return control.ControlServer("t", handler, log)


def test_a_trickling_client_does_not_block_the_loop_and_others_are_served(tmp_path):
    loop = EventLoop()
    served = []
    srv = make_server(tmp_path, loop, lambda req: served.append(req) or {"ok": True, "cmd": req.get("cmd")})
    loop.add_reader(srv, srv.on_readable)
    path = control.socket_path("t", str(tmp_path))
    trickler = {"cut_after": None}

    def trickle():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        t0 = time.monotonic()
        try:
            for b in b'{"cmd": "status"}                              ':  # no newline: never complete
                if time.monotonic() - t0 > 3.0:
                    break
                s.send(bytes((b,)))
                time.sleep(0.1)
            s.settimeout(1.0)
            s.recv(10)
        except OSError:
            pass
        trickler["cut_after"] = time.monotonic() - t0
        s.close()

    fast = {}

    def quick():
        time.sleep(0.5)
        t0 = time.monotonic()
        try:
            fast["reply"] = control.request("t", {"cmd": "ping"}, timeout=5.0, directory=str(tmp_path))
        except OSError as e:
            fast["error"] = e
        fast["took"] = time.monotonic() - t0

    threads = [threading.Thread(target=trickle, daemon=True), threading.Thread(target=quick, daemon=True)]
    for t in threads:
        t.start()
    worst = 0.0
    end = time.monotonic() + 4.0
    while time.monotonic() < end and any(t.is_alive() for t in threads):
        t0 = time.monotonic()
        loop.run_once(max_wait=0.02)
        worst = max(worst, time.monotonic() - t0 - 0.02)
    for t in threads:
        t.join(5.0)
    srv.close()
    loop.close()
    print("\nlongest loop stall %.3f s; other client answered in %s s; trickler cut after %s s" % (
        worst, fast.get("took"), trickler["cut_after"]))
    assert worst < 0.2, worst
    assert fast.get("reply") == {"ok": True, "cmd": "ping"} and fast["took"] < 0.5, fast
    assert trickler["cut_after"] is not None and trickler["cut_after"] < 2.9, trickler


def test_replies_are_complete_and_a_full_server_drops_its_oldest_connection(tmp_path):
    loop = EventLoop()
    big = {"ok": True, "blob": "x" * 300000}  # bigger than a unix socket's buffer: written in pieces
    srv = make_server(tmp_path, loop, lambda req: big)
    loop.add_reader(srv, srv.on_readable)
    path = control.socket_path("t", str(tmp_path))
    idle = []
    for _ in range(srv.max_clients + 2):  # connect and say nothing
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2.0)
        s.connect(path)
        idle.append(s)
        loop.run_once(max_wait=0.01)  # accept it (the listen backlog is small)
    for _ in range(20):
        loop.run_once(max_wait=0.01)
    assert len(srv.conns) <= srv.max_clients and srv.stats["evicted"] >= 2
    got = {}

    def ask():
        got["reply"] = control.request("t", {"cmd": "status"}, timeout=5.0, directory=str(tmp_path))

    t = threading.Thread(target=ask, daemon=True)
    t.start()
    end = time.monotonic() + 5.0
    while t.is_alive() and time.monotonic() < end:
        loop.run_once(max_wait=0.01)
    t.join(1.0)
    assert got.get("reply") == big
    # The idle ones are gone by their deadline.
    end = time.monotonic() + 3.0
    while srv.conns and time.monotonic() < end:
        loop.run_once(max_wait=0.05)
    assert not srv.conns and srv.stats["timeouts"] >= 1
    for s in idle:
        s.close()
    srv.close()
    loop.close()
    assert json.dumps(big)


def test_a_failing_command_is_answered_and_logged(tmp_path):
    import io

    loop = EventLoop()
    buf = io.StringIO()
    os.environ["SLUICE_RUNDIR"] = str(tmp_path)
    srv = control.ControlServer("t", lambda req: 1 / 0, Log("test", stream=buf), loop=loop)
    loop.add_reader(srv, srv.on_readable)
    got = {}
    t = threading.Thread(target=lambda: got.update(control.request("t", {"cmd": "status"}, timeout=3.0,
                                                                   directory=str(tmp_path))), daemon=True)
    t.start()
    end = time.monotonic() + 3.0
    while t.is_alive() and time.monotonic() < end:
        loop.run_once(max_wait=0.01)
    t.join(1.0)
    srv.close()
    loop.close()
    assert got == {"ok": False, "error": "internal error: ZeroDivisionError"}
    assert "ZeroDivisionError" in buf.getvalue()
