"""The kernel path's source check (sluice.engine.host.nft_argvs "source_guard") in a real kernel's nftables.

This host has no PPP, so the server's session unit is a veth end renamed as the kernel plane names units
(`sls0-9`) in namespace "srv", with the session's /32 and /64 routed to it as the plane routes them; namespace
"cli" is the client (RFC 5737 / 2001:db8::/32 and link-local addresses only). With the guard the nft commands
install: a ping from the session's own addresses (IPv4 /32, an address of its /64, link-local) is answered;
one from an address the client added itself (10.99.0.5, 2001:db8:99::5) is dropped before routing and counted;
removing the table (what the daemon runs at stop) lets it through again.
"""

import pytest

import netns
from sluice.engine.host import nft_argvs

ok, why = netns.can_use_netns()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]


def _ping(lab, ns, *args):
    return lab.run(ns, "ping", "-c", "1", "-W", "1", *args, check=False).returncode == 0


def test_a_session_can_only_send_from_its_own_addresses():
    with netns.Lab(prefix="sg") as lab:
        cli = lab.ns("cli")
        srv = lab.ns("srv")
        a, b = lab.link(cli, "10.77.0.10/32", srv, "10.77.0.1/32")
        lab.run(srv, "ip", "link", "set", b, "down")
        lab.run(srv, "ip", "link", "set", b, "name", "sls0-9")
        lab.run(srv, "ip", "link", "set", "sls0-9", "up")
        lab.run(srv, "ip", "route", "add", "10.77.0.10/32", "dev", "sls0-9")
        lab.run(srv, "ip", "-6", "addr", "add", "fe80::1/64", "dev", "sls0-9", "nodad")
        lab.run(srv, "ip", "-6", "route", "add", "2001:db8:77:1::/64", "dev", "sls0-9")
        lab.run(srv, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")
        lab.run(srv, "ip", "-6", "addr", "add", "2001:db8:1::1/128", "dev", "lo")
        lab.run(cli, "ip", "route", "add", "default", "dev", a)
        lab.run(cli, "ip", "-6", "addr", "add", "fe80::10/64", "dev", a, "nodad")
        lab.run(cli, "ip", "-6", "addr", "add", "2001:db8:77:1::10/64", "dev", a, "nodad")
        lab.run(cli, "ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", a)
        lab.run(cli, "ip", "addr", "add", "10.99.0.5/32", "dev", "lo")
        lab.run(cli, "ip", "-6", "addr", "add", "2001:db8:99::5/128", "dev", "lo")
        for argv in nft_argvs("source_guard", ("sluice_sls0", "sls0-*")):
            lab.run(srv, "nft", *argv, check=argv[0] != "delete")

        assert _ping(lab, cli, "-I", "10.77.0.10", "198.51.100.1")
        assert _ping(lab, cli, "-6", "-I", "2001:db8:77:1::10", "2001:db8:1::1")
        assert _ping(lab, cli, "-6", "-I", a, "fe80::1")                      # link-local
        assert not _ping(lab, cli, "-I", "10.99.0.5", "198.51.100.1")
        assert not _ping(lab, cli, "-6", "-I", "2001:db8:99::5", "2001:db8:1::1")
        rules = lab.run(srv, "nft", "list", "table", "inet", "sluice_sls0").stdout
        assert "counter packets 2 " in rules, rules

        for argv in nft_argvs("source_guard_off", ("sluice_sls0",)):
            lab.run(srv, "nft", *argv)
        assert "sluice" not in lab.run(srv, "nft", "list", "tables").stdout
        lab.run(srv, "ip", "route", "add", "10.99.0.5/32", "dev", "sls0-9")   # without the guard it is
        assert _ping(lab, cli, "-I", "10.99.0.5", "198.51.100.1")                # only routing that decides
