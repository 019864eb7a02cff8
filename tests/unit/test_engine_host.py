"""Host steps and hooks run as children the event loop watches: the loop keeps serving while they run, a
stuck hook is killed at its timeout and the log says so, steps run in the order the endpoint gave them."""

import io
import os
import stat

from sluice.engine import host as H
from sluice.engine.log import Log
from sluice.engine.loop import EventLoop, monotonic


def _script(tmp_path, name, body):
    p = tmp_path / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


def _runner(hook, timeout=None):
    loop = EventLoop()
    buf = io.StringIO()
    r = H.HostRunner(loop, Log("t", stream=buf), configure=False, hook=hook)
    return loop, r, buf


def test_a_slow_hook_does_not_block_the_loop_and_a_stuck_one_is_killed(tmp_path, monkeypatch):
    monkeypatch.setattr(H, "HOOK_TIMEOUT", 1.0)
    hook = _script(tmp_path, "hook", "echo started $reason\nsleep 30\n")
    loop, r, buf = _runner(hook)
    ticks = []
    t0 = monotonic()

    def tick(now):
        ticks.append(now)
        if now - t0 < 3:
            loop.call_at(now + 0.05, tick)

    loop.call_at(t0, tick)
    r.run_hook({"reason": "connect"})
    loop.run(until=lambda: monotonic() - t0 > 2.0 and r.idle())
    # The loop ran its timer every 50 ms while the hook slept: nothing waited for the child.
    assert len(ticks) > 20 and max(b - a for a, b in zip(ticks, ticks[1:])) < 0.5
    assert "did not finish within 1 s: killed" in buf.getvalue()
    assert r.counters["timeouts"] == 1
    loop.close()


def test_steps_run_in_order_and_failures_are_reported_with_output(tmp_path):
    out = tmp_path / "order"
    hook = _script(tmp_path, "hook", 'echo "$reason" >> %s\n[ "$reason" = bad ] && { echo oops; exit 3; }\nexit 0\n'
                   % out)
    loop, r, buf = _runner(hook)
    for reason in ("connect", "bad", "disconnect"):
        r.run_hook({"reason": reason})
    t0 = monotonic()
    loop.run(until=lambda: r.idle() or monotonic() - t0 > 10)
    assert out.read_text().split() == ["connect", "bad", "disconnect"]
    assert "exited 3: oops" in buf.getvalue()
    loop.close()


def test_ip_argv_for_each_host_step():
    assert H.ip_argv("addr_add", ("slc0", "10.77.0.10", "10.77.0.1")) == \
        ["addr", "add", "10.77.0.10", "peer", "10.77.0.1", "dev", "slc0"]
    assert H.ip_argv("route_add", ("10.0.0.0/8", "slc0", "10.77.0.10")) == \
        ["route", "replace", "10.0.0.0/8", "dev", "slc0", "src", "10.77.0.10"]
    assert H.ip_argv("route_del", ("10.0.0.0/8", None)) == ["route", "del", "10.0.0.0/8"]
    assert H.ip_argv("link_up", ("slc0", 1400)) == ["link", "set", "dev", "slc0", "mtu", "1400", "up"]


def test_run_now_finishes_queued_steps_at_exit(tmp_path):
    out = tmp_path / "done"
    hook = _script(tmp_path, "hook", "echo $reason > %s\n" % out)
    loop, r, buf = _runner(hook)
    r.run_hook({"reason": "disconnect"})
    r.run_now(monotonic() + 5)
    assert out.read_text().strip() == "disconnect" and r.idle()
    loop.close()


def test_ipv6_host_steps_and_the_accept_ra_warning(tmp_path):
    from sluice.engine import host as H

    assert H.ip_argv("addr_add6", ("slc0", "2001:db8:77:1::5/64")) == \
        ["-6", "addr", "replace", "2001:db8:77:1::5/64", "dev", "slc0", "nodad"]
    assert H.ip_argv("addr_del6", ("slc0", "2001:db8:77:1::5/64")) == \
        ["-6", "addr", "del", "2001:db8:77:1::5/64", "dev", "slc0"]
    assert H.ip_argv("route_add", ("2001:db8:77:1::/64", "sls0", None)) == \
        ["route", "replace", "2001:db8:77:1::/64", "dev", "sls0"]
    for name, ra, auto in (("all", "1", "1"), ("eth0", "1", "1"), ("eth1", "2", "1"), ("eth2", "1", "0"),
                           ("sls0", "1", "1")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "accept_ra").write_text(ra + "\n")
        (tmp_path / name / "autoconf").write_text(auto + "\n")
    assert H._accept_ra_1(str(tmp_path)) == ["eth0", "sls0"]
