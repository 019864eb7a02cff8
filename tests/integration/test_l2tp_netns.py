"""End to end in network namespaces: a Sluice client and server bring up L2TP + PPP and carry IP.

Topology (all addresses RFC 5737 or made here): client 192.0.2.2 -- server 192.0.2.1 / TUN 10.77.0.1 --
203.0.113.1 -- far host 203.0.113.2. The client routes 10.77.0.0/24 and 203.0.113.0/24 through the tunnel.
"""

import os
import signal
import sys
import time

import pytest

import netns

ok, why = netns.can_use_netns()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def lab():
    with netns.Lab() as lab:
        yield lab
        for p in lab.procs:
            lab.stop(p)
        assert lab.tracebacks() == []


def bring_up(lab, auth="mschapv2", user="alice", password="correct horse battery"):
    srv, cli, far, sconf, cconf = netns.build_basic(lab, auth=auth, user=user, password=password)
    server = lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
    lab.wait_for("server socket", lambda: "error" not in lab.status("srv"), 10)
    client = lab.start(cli, ["client", "--config", cconf, "--name", "cli"], "client.log")
    try:
        st = lab.wait_for("tunnel up", lambda: netns.session_up(lab, "cli"), 30)
    except TimeoutError:
        pytest.fail("tunnel did not come up\n--- server\n%s--- client\n%s" % (lab.log(server), lab.log(client)))
    return srv, cli, far, server, client, st


def test_tunnel_carries_tcp_both_ways_and_forwards(lab):
    srv, cli, far, server, client, st = bring_up(lab)
    sess = st["tunnels"][0]["sessions"][0]
    assert sess["ip"] == "10.77.0.10" and sess["peer_ip"] == "10.77.0.1"
    assert sess["dns"] == ["10.77.0.1"]
    # The server forwards: the far host answers the client's tunnel address.
    lab.run(cli, "ping", "-c", "2", "-W", "3", "203.0.113.2")
    # Several megabytes each way, checked by hash.
    sent, got = netns.transfer(lab, far, "203.0.113.2", cli, 6 * 1024 * 1024, 5001)
    assert sent == got
    sent, got = netns.transfer(lab, cli, "10.77.0.10", far, 4 * 1024 * 1024, port=5002)
    assert sent == got
    sst = lab.status("srv")
    assert sst["sessions"] == 1
    s = sst["tunnels"][0]["sessions"][0]
    assert s["user"] == "alice" and s["ip"] == "10.77.0.10"
    assert s["rx_bytes"] > 6 * 1024 * 1024 and s["tx_bytes"] > 4 * 1024 * 1024


@pytest.mark.parametrize("auth,user,password,ip", [
    ("pap", "alice", "correct horse battery", "10.77.0.10"),
    ("chap", "bob", "staple-Tr0mbone", "10.77.0.20"),
])
def test_other_auth_methods_and_static_address(lab, auth, user, password, ip):
    srv, cli, far, server, client, st = bring_up(lab, auth=auth, user=user, password=password)
    assert st["tunnels"][0]["sessions"][0]["ip"] == ip
    lab.run(cli, "ping", "-c", "1", "-W", "3", "10.77.0.1")


def test_wrong_password_is_refused_and_reported(lab):
    srv, cli, far, sconf, cconf = netns.build_basic(lab, password="not the password")
    server = lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
    lab.wait_for("server socket", lambda: "error" not in lab.status("srv"), 10)
    lab.start(cli, ["client", "--config", cconf, "--name", "cli"], "client.log")
    st = lab.wait_for("client error", lambda: (lambda s: s if s.get("last_error") else None)(lab.status("cli")), 30)
    assert st["state"] != "up"
    assert "not the password" not in lab.log(server) + str(st)
    srv_st = lab.wait_for("server counts the failure",
                          lambda: (lambda s: s if s["counters"]["auth_failures"] else None)(lab.status("srv")), 15)
    assert srv_st["counters"]["auth_failures"] >= 1


def test_garbage_never_disturbs_an_established_session(lab):
    srv, cli, far, server, client, st = bring_up(lab)
    sst = lab.status("srv")
    tid = sst["tunnels"][0]["sessions"][0]["tunnel_id"]
    sid = sst["tunnels"][0]["sessions"][0]["session_id"]
    script = r"""
import os, random, socket, struct
r = random.Random(5)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst = ("192.0.2.1", 1701)
tid, sid = %d, %d
pkts = []
for i in range(400):
    pkts.append(bytes(r.getrandbits(8) for _ in range(r.randrange(0, 120))))
for flags in (0xC802, 0x0002, 0x4002, 0x0802, 0x0202, 0xC800):
    for n in range(0, 16):
        pkts.append(struct.pack("!HHHHH", flags, tid, sid, 0xff03, 0xc021)[:n])
# Spoofed data for the live session from the wrong source port, and a bogus LCP frame.
pkts.append(struct.pack("!HHH", 2, tid, sid) + b"\xff\x03\x00\x21" + b"\x45" + bytes(40))
pkts.append(struct.pack("!HHH", 2, tid, sid) + b"\xff\x03\xc0\x21\x01\x01\x00\x40" + bytes(60))
for p in pkts:
    s.sendto(p, dst)
print(len(pkts))
""" % (tid, sid)
    lab.run(cli, sys.executable, "-c", script)
    time.sleep(0.5)
    assert server.poll() is None and client.poll() is None
    after = lab.status("srv")
    assert after["sessions"] == 1
    c = after["counters"]
    assert c["malformed"] + c["wrong_peer"] + c["unknown_session"] > 0
    lab.run(cli, "ping", "-c", "2", "-W", "3", "203.0.113.2")
    assert netns.session_up(lab, "cli")


def test_sigterm_tells_the_peer(lab):
    srv, cli, far, server, client, st = bring_up(lab)
    assert lab.stop(client) == 0
    # The client's CDN/StopCCN reaches the server, which frees the session at once (no timeout wait).
    lab.wait_for("server drops the session", lambda: lab.status("srv").get("sessions") == 0, 5)
    assert "Traceback" not in lab.log(client) + lab.log(server)
    assert lab.stop(server) == 0


def test_client_redials_after_server_restart(lab):
    srv, cli, far, server, client, st = bring_up(lab)
    lab.stop(server)
    lab.wait_for("client notices", lambda: (lambda s: s if s.get("state") != "up" else None)(lab.status("cli")), 15)
    sconf = os.path.join(lab.tmp, "server.conf")
    lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server2.log")
    lab.wait_for("redial", lambda: netns.session_up(lab, "cli"), 40)
    lab.run(cli, "ping", "-c", "1", "-W", "3", "10.77.0.1")


def test_disconnect_and_connect_commands(lab):
    srv, cli, far, server, client, st = bring_up(lab)
    lab.sluice("disconnect", "--name", "cli")
    lab.wait_for("down", lambda: lab.status("cli").get("state") == "idle", 10)
    lab.wait_for("server frees it", lambda: lab.status("srv").get("sessions") == 0, 5)
    lab.sluice("connect", "--name", "cli")
    lab.wait_for("up again", lambda: netns.session_up(lab, "cli"), 30)


def test_sighup_adds_a_user_without_dropping_sessions(lab):
    srv, cli, far, server, client, st = bring_up(lab)
    sconf = os.path.join(lab.tmp, "server.conf")
    with open(sconf, "a") as f:
        f.write("\nconfig user\n    option username 'carol'\n    option password 'a new user password'\n")
    server.send_signal(signal.SIGHUP)
    # carol dials from a second namespace; alice's session stays up throughout.
    c2 = lab.ns("c2")
    lab.link(srv, "198.51.100.1/24", c2, "198.51.100.2/24")
    lab.run(c2, "ip", "route", "add", "default", "via", "198.51.100.1")
    conf2 = lab.write("carol.conf", netns.CLIENT_CONF.format(user="carol", password="a new user password"))
    lab.start(c2, ["client", "--config", conf2, "--name", "carol"], "carol.log")
    lab.wait_for("carol up", lambda: netns.session_up(lab, "carol"), 30)
    assert lab.status("srv")["sessions"] == 2
    assert netns.session_up(lab, "cli")
    assert "configuration reloaded" in lab.log(server)


def test_client_started_before_the_wan_is_up_connects_once_it_is(lab):
    # User report #9 (clients.md): an OpenWrt client started at boot before the WAN never came up.
    srv, cli = lab.ns("srv"), lab.ns("cli")
    sconf = lab.write("server.conf", netns.SERVER_CONF.format(auth="mschapv2"))
    cconf = lab.write("client.conf", netns.CLIENT_CONF.format(user="alice", password="correct horse battery"))
    client = lab.start(cli, ["client", "--config", cconf, "--name", "cli"], "client.log")
    st = lab.wait_for("the client reports the unreachable server",
                      lambda: (lambda s: s if s.get("last_error") else None)(lab.status("cli")), 15)
    assert client.poll() is None and "cannot reach" in st["last_error"]
    lab.link(srv, "192.0.2.1/24", cli, "192.0.2.2/24")  # the WAN comes up
    lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
    lab.wait_for("the redial succeeds", lambda: netns.session_up(lab, "cli"), 30)
