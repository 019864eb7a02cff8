"""Two Sluice servers share one real FreeRADIUS: logins, addresses, accounting and a Disconnect-Request, end
to end through the daemons (issue 12 part 3).

Topology (RFC 5737 only): rad 198.51.100.1 / 203.0.113.1 (FreeRADIUS) -- srv1 198.51.100.2, srv2 203.0.113.2;
each server has its own client namespace on 192.0.2.0/24 (srv 192.0.2.1, cli 192.0.2.2).
"""

import shutil
import subprocess
import time

import pytest

import netns
import radius_lab

ok, why = netns.can_use_netns()
if ok and radius_lab.freeradius_binary() is None:
    ok, why = False, "needs FreeRADIUS (Debian package freeradius)"
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

SECRET = "Sh4red-secret-for-daemons"
USERS = """\
raduser Cleartext-Password := "Radius-pass-one"
        Framed-IP-Address = 10.77.0.77,
        Session-Timeout = 3600

raduser2 Cleartext-Password := "Radius-pass-two"
"""
# FreeRADIUS 3.2.1 (Debian 12) adds Message-Authenticator to Access replies only when told (BlastRADIUS).
POST_AUTH = """\
        update reply {
            Message-Authenticator := 0x00
        }
        Post-Auth-Type REJECT {
            update reply {
                Message-Authenticator := 0x00
            }
        }
"""

SERVER = """\
config server 'main'
    option listen '192.0.2.1'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list auth 'mschapv2'
    option ipsec '0'
    option ifname 'sls0'
    option max_sessions_per_user '1'
    list radius_auth '198.51.100.1'
    list radius_acct '198.51.100.1'
    option radius_secret '{secret}'
    option radius_nas_id '{nas}'
    option radius_dae_port '3799'

config user
    option username 'alice'
    option password 'correct horse battery'
"""
CLIENT = """\
config client 'office'
    option server '192.0.2.1'
    option username '{user}'
    option password '{password}'
    option ipsec '0'
    list routes '10.77.0.0/24'
    option ifname 'slc0'
    option redial '1'
    option redial_delay '30s'
"""


@pytest.fixture
def lab():
    with netns.Lab(prefix="rs") as lab:
        yield lab
        for p in lab.procs:
            if hasattr(p, "pid") and p.poll() is None:
                lab.stop(p)
        assert lab.tracebacks() == []


def _site(lab, n, wan_srv, wan_rad, rad):
    srv, cli = lab.ns("srv%d" % n), lab.ns("cli%d" % n)
    lab.link(srv, "192.0.2.1/24", cli, "192.0.2.2/24")
    lab.link(rad, wan_rad + "/24", srv, wan_srv + "/24")
    return srv, cli


def test_two_servers_share_freeradius_and_a_disconnect_request_kicks_the_user(lab):
    rad = lab.ns("rad")
    srv1, cli1 = _site(lab, 1, "198.51.100.2", "198.51.100.1", rad)
    srv2, cli2 = _site(lab, 2, "203.0.113.2", "203.0.113.1", rad)
    lab.run(srv2, "ip", "route", "add", "198.51.100.0/24", "via", "203.0.113.1")
    lab.forward(rad)
    fr = radius_lab.FreeRadius(lab, rad, "198.51.100.1", {"srv1": ("198.51.100.2", SECRET),
                                                          "srv2": ("203.0.113.2", SECRET)}, USERS, POST_AUTH)
    fr.start()
    try:
        procs = []
        for n, srv in ((1, srv1), (2, srv2)):
            conf = lab.write("server%d.conf" % n, SERVER.format(secret=SECRET, nas="srv%d" % n))
            procs.append(lab.start(srv, ["server", "--config", conf, "--name", "srv%d" % n], "server%d.log" % n))
            lab.wait_for("server %d" % n, lambda n=n: "error" not in lab.status("srv%d" % n), 10)
        c1 = lab.write("client1.conf", CLIENT.format(user="raduser", password="Radius-pass-one"))
        c2 = lab.write("client2.conf", CLIENT.format(user="raduser2", password="Radius-pass-two"))
        procs.append(lab.start(cli1, ["client", "--config", c1, "--name", "cli1"], "client1.log"))
        procs.append(lab.start(cli2, ["client", "--config", c2, "--name", "cli2"], "client2.log"))
        try:
            st1 = lab.wait_for("client 1 up", lambda: netns.session_up(lab, "cli1"), 30)
        except TimeoutError:
            pytest.fail("\n".join(lab.log(p)[-3000:] for p in procs) + fr.log()[-3000:])
        st2 = lab.wait_for("client 2 up", lambda: netns.session_up(lab, "cli2"), 30)
        # MS-CHAPv2 verified by FreeRADIUS (the client checked its authenticator response); Framed-IP-Address
        # from RADIUS for raduser, the pool for raduser2.
        assert st1["tunnels"][0]["sessions"][0]["ip"] == "10.77.0.77"
        assert st2["tunnels"][0]["sessions"][0]["ip"] == "10.77.0.10"
        lab.run(cli1, "ping", "-c", "2", "-W", "3", "10.77.0.1")
        s1 = lab.status("srv1")
        assert s1["tunnels"][0]["sessions"][0]["user"] == "raduser"
        assert s1["radius"]["accounting"]["started"] == 1

        starts = lab.wait_for("accounting starts", lambda: [r for r in fr.detail_records()
                                                            if r.get("Acct-Status-Type") == "Start"] or None, 10)
        by_nas = dict((r.get("NAS-Identifier"), r) for r in starts)
        assert by_nas["srv1"]["User-Name"] == "raduser" and by_nas["srv1"]["Framed-IP-Address"] == "10.77.0.77"
        assert by_nas["srv2"]["User-Name"] == "raduser2"

        # radclient asks srv1 to disconnect raduser (RFC 5176): ACK, the session goes at once, Stop is sent.
        if shutil.which("radclient"):
            p = subprocess.run(["ip", "netns", "exec", rad, "radclient", "-x", "-t", "2", "-r", "1",
                                "198.51.100.2:3799", "disconnect", SECRET],
                               input='User-Name = "raduser"\nMessage-Authenticator = 0x00\n', text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
            assert "Received Disconnect-ACK" in p.stdout, p.stdout
            lab.wait_for("session gone", lambda: lab.status("srv1").get("sessions") == 0 or None, 10)
            stops = lab.wait_for("accounting stop", lambda: [r for r in fr.detail_records()
                                                             if r.get("Acct-Status-Type") == "Stop"] or None, 10)
            assert stops[0]["User-Name"] == "raduser" and stops[0]["Acct-Terminate-Cause"] == "Admin-Reset"
    finally:
        fr.stop()


def test_radius_down_is_a_clear_refusal_not_a_hung_login(lab):
    rad = lab.ns("rad")
    srv1, cli1 = _site(lab, 1, "198.51.100.2", "198.51.100.1", rad)
    conf = lab.write("server.conf", SERVER.format(secret=SECRET, nas="srv1"))
    lab.start(srv1, ["server", "--config", conf, "--name", "srv1"], "server.log")
    lab.wait_for("server", lambda: "error" not in lab.status("srv1"), 10)
    c1 = lab.write("client.conf", CLIENT.format(user="raduser", password="Radius-pass-one"))
    t0 = time.monotonic()
    lab.start(cli1, ["client", "--config", c1, "--name", "cli1"], "client.log")
    st = lab.wait_for("server names the outage", lambda: (lambda s: s if "unreachable" in str(
        s.get("recent")) else None)(lab.status("srv1")), 40)
    assert time.monotonic() - t0 < 40
    cst = lab.wait_for("client refused", lambda: (lambda s: s if s.get("last_error") else None)(lab.status("cli1")),
                       30)
    assert cst["state"] != "up"
