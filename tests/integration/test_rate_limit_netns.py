"""A per-user rate limit holds in a TCP transfer both ways (issue 12 part 4), plain L2TP through the daemons.

Topology as in test_l2tp_netns (RFC 5737 only). The user has `option rate_kbit`; the data path polices each
direction with a token bucket. Goodput is measured around a hash-checked TCP transfer; TCP/IP headers are
about 3.5 % of each full-size packet, which the limit counts and goodput does not.
"""

import time

import pytest

import netns

ok, why = netns.can_use_netns()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

RATE_KBIT = 16000


@pytest.fixture
def lab():
    with netns.Lab(prefix="rl") as lab:
        yield lab
        for p in lab.procs:
            lab.stop(p)
        assert lab.tracebacks() == []


def _goodput(lab, rx_ns, rx_host, tx_ns, nbytes, port):
    t0 = time.monotonic()
    sent, got = netns.transfer(lab, rx_ns, rx_host, tx_ns, nbytes, port)
    dt = time.monotonic() - t0
    assert sent == got
    return nbytes * 8 / dt / 1000.0  # kbit/s


def test_rate_limit_holds_within_ten_percent_both_ways(lab):
    srv, cli, far, sconf, cconf = netns.build_basic(lab)
    with open(sconf) as f:
        text = f.read()
    text = text.replace("    option username 'alice'\n", "    option username 'alice'\n    option rate_kbit '%d'\n"
                        % RATE_KBIT, 1)
    with open(sconf, "w") as f:
        f.write(text)
    server = lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
    lab.wait_for("server socket", lambda: "error" not in lab.status("srv"), 10)
    client = lab.start(cli, ["client", "--config", cconf, "--name", "cli"], "client.log")
    lab.wait_for("tunnel up", lambda: netns.session_up(lab, "cli"), 30)
    size = RATE_KBIT * 1000 // 8 * 4  # four seconds at the limit
    up = _goodput(lab, far, "203.0.113.2", cli, size, 5011)
    down = _goodput(lab, cli, "10.77.0.10", far, size, 5012)
    print("limit %d kbit/s: up %.0f, down %.0f kbit/s" % (RATE_KBIT, up, down))
    # The limit holds: never more than 10 % above it. How close TCP gets below it depends on how busy this
    # machine is (figures on a quiet machine: within 5 %, see the closing note); far below means it throttles
    # wrongly.
    for got in (up, down):
        assert 0.7 * RATE_KBIT <= got <= 1.1 * RATE_KBIT, (up, down, lab.log(server)[-2000:], lab.log(client)[-500:])
    st = lab.status("srv")
    assert st["transport"]["policed"] > 0  # the limit did the work, not the machine's speed
