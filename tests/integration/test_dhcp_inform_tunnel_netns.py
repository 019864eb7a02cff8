"""A real DHCP client (dhcpcd in INFORM mode) on the Sluice client's tunnel device asks the Sluice server for
routes and DNS through L2TP/PPP, as Windows and macOS do (issue 12 part 2)."""

import os
import shutil
import subprocess

import pytest

import netns

ok, why = netns.can_use_netns()
if ok and shutil.which("dhcpcd") is None:
    ok, why = False, "needs dhcpcd (Debian package dhcpcd-base)"
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]


def test_dhcpcd_inform_through_the_tunnel(tmp_path):
    with netns.Lab(prefix="di") as lab:
        srv, cli, far, sconf, cconf = netns.build_basic(lab)
        with open(sconf) as f:
            text = f.read()
        text = text.replace("    option ifname 'sls0'\n", "    option ifname 'sls0'\n    list client_routes "
                            "'198.51.100.0/24'\n    list client_routes '203.0.113.128/25'\n"
                            "    option domain 'corp.example.org'\n", 1)
        with open(sconf, "w") as f:
            f.write(text)
        server = lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
        lab.wait_for("server socket", lambda: "error" not in lab.status("srv"), 10)
        lab.start(cli, ["client", "--config", cconf, "--name", "cli"], "client.log")
        st = lab.wait_for("tunnel up", lambda: netns.session_up(lab, "cli"), 30)
        ip = st["tunnels"][0]["sessions"][0]["ip"]
        hook = lab.write("hook.sh", "#!/bin/sh\nenv | sort > %s/env.$reason\n" % lab.tmp, 0o700)
        conf = lab.write("dhcpcd.conf", "")
        p = lab.run(cli, "dhcpcd", "-f", conf, "-c", hook, "-B", "-1", "-4", "-p", "-d", "-t", "10",
                    "--inform", ip + "/32", "slc0", check=False, timeout=30)
        path = os.path.join(lab.tmp, "env.INFORM")
        assert os.path.exists(path), p.stdout + p.stderr + lab.log(server)[-1500:]
        env = dict(line.rstrip("\n").partition("=")[::2] for line in open(path))
        assert env["new_dhcp_message_type"] == "5" and env["new_dhcp_server_identifier"] == "10.77.0.1"
        assert env["new_classless_static_routes"] == "198.51.100.0/24 10.77.0.1 203.0.113.128/25 10.77.0.1"
        assert env["new_ms_classless_static_routes"] == env["new_classless_static_routes"]
        assert env["new_domain_name_servers"] == "10.77.0.1" and env["new_domain_name"] == "corp.example.org"
        assert lab.status("srv")["counters"]["dhcp_informs"] >= 1
