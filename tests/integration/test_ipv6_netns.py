"""IPv6 in the tunnel end to end in network namespaces (issue 12 part 1), L2TP inside IPsec (PSK).

    client 192.0.2.2 -- 192.0.2.1 Sluice server 2001:db8:1::1 -- 2001:db8:1::2 far host

The server hands each session a /64 of 2001:db8:77::/48 in its Router Advertisements; the client builds its
address from that prefix and the interface id IPv6CP agreed (SLAAC), puts it on its TUN, routes
2001:db8:1::/64 (list routes6) through the tunnel. Then ping and a TCP transfer both ways between the client
and the far host, over IPv6 only. Documentation prefixes only (RFC 3849, RFC 5737).
"""

import ipaddress
import json

import pytest

import netns

ok, why = netns.can_use_netns()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

PSK = "Vq3vX0Jq0sW2kz8lq1bS6yHc4pN7tR5e"

SERVER = """
config server 'main'
    option listen '192.0.2.1'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list auth 'mschapv2'
    option ipsec '1'
    option psk '%(psk)s'
    option ifname 'sls0'
    option ipv6 '1'
    option ip6prefix '2001:db8:77::/48'
    list dns6 '2001:db8:1::53'

config user
    option username 'alice'
    option password 'correct horse battery'
"""

CLIENT = """
config client 'office'
    option server '192.0.2.1'
    option username 'alice'
    option password 'correct horse battery'
    option ipsec '1'
    option psk '%(psk)s'
    option ifname 'slc0'
    option redial '0'
    option ipv6 '1'
    list routes6 '2001:db8:1::/64'
"""


def _v6(lab, name):
    st = netns.session_up(lab, name)
    if not st or not st["tunnels"]:
        return None
    v6 = st["tunnels"][0]["sessions"][0].get("ipv6") or {}
    return v6.get("address")


def test_ipv6_ping_and_tcp_both_ways_with_the_address_from_the_ra():
    with netns.Lab() as lab:
        srv, cli, far = lab.ns("srv"), lab.ns("cli"), lab.ns("far")
        for ns in (srv, cli, far):
            lab.run(ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
            lab.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0")
        lab.link(srv, "192.0.2.1/24", cli, "192.0.2.2/24")
        a, b = lab.link(srv, "198.18.0.1/30", far, "198.18.0.2/30")
        lab.run(srv, "ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", a, "nodad")
        lab.run(far, "ip", "-6", "addr", "add", "2001:db8:1::2/64", "dev", b, "nodad")
        lab.run(far, "ip", "-6", "route", "add", "2001:db8:77::/48", "via", "2001:db8:1::1")
        sconf = lab.write("server.conf", SERVER % {"psk": PSK})
        cconf = lab.write("client.conf", CLIENT % {"psk": PSK})
        server = lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
        lab.wait_for("server", lambda: "error" not in lab.status("srv"), 10)
        client = lab.start(cli, ["client", "--config", cconf, "--name", "cli"], "client.log")
        try:
            addr = lab.wait_for("the client's address from the RA", lambda: _v6(lab, "cli"), 60)
        except TimeoutError:
            pytest.fail("\n--- server\n%s\n--- client\n%s" % (lab.log(server), lab.log(client)))
        # SLAAC from the session's /64 and the IPv6CP interface id, configured on the client's TUN.
        st = lab.status("srv")
        s = st["tunnels"][0]["sessions"][0]
        net = ipaddress.IPv6Network(s["ipv6"]["prefix"])
        assert net.prefixlen == 64 and net.subnet_of(ipaddress.IPv6Network("2001:db8:77::/48"))
        assert ipaddress.IPv6Address(addr) in net
        shown = json.loads(lab.run(cli, "ip", "-6", "-j", "addr", "show", "dev", "slc0").stdout)
        have = {(i["local"], i["prefixlen"]) for d in shown for i in d.get("addr_info", ())}
        assert (addr, 64) in have, have
        assert any(a.startswith("fe80::") for a, _ in have)
        routes = lab.run(cli, "ip", "-6", "route", "show", "dev", "slc0").stdout
        assert "2001:db8:1::/64" in routes
        cst = lab.status("cli")["tunnels"][0]["sessions"][0]["ipv6"]
        assert cst["dns"] == ["2001:db8:1::53"]
        # Ping both ways, then a TCP transfer each way (checked by hash).
        lab.run(cli, "ping", "-6", "-c", "3", "-W", "3", "2001:db8:1::2")
        lab.run(far, "ping", "-6", "-c", "3", "-W", "3", "-s", "1300", addr)
        sent, got = netns.transfer(lab, far, "2001:db8:1::2", cli, 4 * 1024 * 1024, 5301)
        assert sent == got and int(got[1]) == 4 * 1024 * 1024
        sent, got = netns.transfer(lab, cli, addr, far, 4 * 1024 * 1024, 5302)
        assert sent == got and int(got[1]) == 4 * 1024 * 1024
        s = lab.status("srv")["tunnels"][0]["sessions"][0]
        assert s["rx6_packets"] > 1000 and s["tx6_packets"] > 1000 and s["spoofed"] == 0
        # The link-local of the server answers too (the endpoint replies to echo on its link-local).
        ll = lab.status("cli")["tunnels"][0]["sessions"][0]["ipv6"]["router"]
        lab.run(cli, "ping", "-6", "-c", "1", "-W", "3", "%s%%slc0" % ll)
        assert lab.tracebacks() == []
        lab.stop(client)
        lab.stop(server)
