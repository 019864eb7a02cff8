"""A real DHCP client (dhcpcd in INFORM mode) gets its routes and DNS from sluice.dhcp.answer_inform.

Topology (RFC 5737 only): namespace "cli" 192.0.2.10/24 -- veth -- namespace "srv" 192.0.2.1/24. In "srv" a
tiny responder stands in for the server's data path: it reads every IPv4 packet arriving on the veth (an
AF_PACKET socket, as the PPP link would hand the engine IPv4 packets), gives it to answer_inform and sends
what comes back as it is (a raw IP socket). dhcpcd runs with an empty configuration and our own hook
script (so nothing outside the namespace, such as /etc/resolv.conf, is touched), `--persistent` so its
routes stay for us to read, and `--oneshot` so it exits after the answer.
"""

import os
import select
import shutil
import socket
import subprocess
import time

import pytest

import netns
import radius_lab
from sluice.dhcp.inform import answer_inform

ok, why = netns.can_use_netns()
if ok and shutil.which("dhcpcd") is None:
    ok, why = False, "needs dhcpcd (Debian package dhcpcd-base)"
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

ROUTES = ["198.51.100.0/24", "203.0.113.128/25"]


def test_dhcpcd_inform_gets_routes_and_dns():
    with netns.Lab(prefix="dh") as lab:
        cli = lab.ns("cli")
        srv = lab.ns("srv")
        a, b = lab.link(cli, "192.0.2.10/24", srv, "192.0.2.1/24")

        def sockets():
            r = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
            r.bind((b, 0x0800))
            w = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            return r, w
        r, w = radius_lab.in_netns(srv, sockets)
        hook = lab.write("hook.sh", "#!/bin/sh\nenv | sort > %s/env.$reason\n" % lab.tmp, 0o700)
        conf = lab.write("dhcpcd.conf", "")
        p = subprocess.Popen(["ip", "netns", "exec", cli, "dhcpcd", "-f", conf, "-c", hook, "-B", "-1", "-4", "-p",
                              "-d", "-t", "10", "--inform", "192.0.2.10/24", a],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lab.procs.append(p)
        answered = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and p.poll() is None:
            ready, _, _ = select.select([r], [], [], 0.2)
            if not ready:
                continue
            pkt, _ = r.recvfrom(4096)
            reply = answer_inform(pkt, "192.0.2.1", ROUTES, ["192.0.2.53", "192.0.2.54"], "corp.example.org")
            if reply is not None:
                answered += 1
                w.sendto(reply, (socket.inet_ntoa(reply[16:20]), 0))
        out = p.communicate(timeout=5)[0] if p.poll() is not None else ""
        r.close()
        w.close()
        assert answered >= 1, out
        assert p.returncode == 0, out
        env = {}
        path = os.path.join(lab.tmp, "env.INFORM")
        assert os.path.exists(path), out
        with open(path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                env[k] = v
        # The client's view: its parse of our options 121, 249, 6, 15, 54, 1.
        assert env["new_dhcp_message_type"] == "5" and env["new_dhcp_server_identifier"] == "192.0.2.1"
        assert env["new_classless_static_routes"] == "198.51.100.0/24 192.0.2.1 203.0.113.128/25 192.0.2.1"
        assert env["new_ms_classless_static_routes"] == env["new_classless_static_routes"]
        assert env["new_domain_name_servers"] == "192.0.2.53 192.0.2.54"
        assert env["new_domain_name"] == "corp.example.org"
        assert env["new_subnet_mask"] == "255.255.255.255"
        # And the routes it installed from them (no default route: option 3 is never sent).
        routes = lab.run(cli, "ip", "-4", "route", "show").stdout
        assert "198.51.100.0/24 via 192.0.2.1" in routes, routes
        assert "203.0.113.128/25 via 192.0.2.1" in routes, routes
        assert "default" not in routes, routes
