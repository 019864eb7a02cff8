"""LAN host -> router running the Sluice client -> WAN -> Sluice server -> far host, in network namespaces.

The router's LAN reaches the far host only through the tunnel, by the policy routing that
sluice.hal.platform.lanroute renders from the interface's UCI options (list route_src, option killswitch), run
from the client's --hook as /lib/netifd/sluice-script does on a router. The far host has no route back to the LAN
(only to the server's pool), so an answer proves the path went through the tunnel (masqueraded into it, as fw4's
`vpn` zone with masq does). The tunnel is L2TP/IPsec with a pre-shared key. The kill switch is checked after the client stops: the
LAN can no longer reach the WAN in the clear, and a capture on the router's WAN shows none of its packets. What is not OpenWrt here: netifd, fw4 and procd (the daemon configures its own TUN address
instead of reporting it to netifd, and masquerade is one nftables rule).

    lan 198.51.100.2 -- 198.51.100.1 router 192.0.2.2 -- 192.0.2.1 server (pool 10.77.0.0/24)
                                                           203.0.113.1 -- far 203.0.113.2
"""

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "integration"))
import netns  # noqa: E402

ok, why = netns.can_use_netns()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why),
              pytest.mark.skipif(shutil.which("nft") is None, reason="nft missing"),
              pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump missing")]

NETWORK = """\
config interface 'vpn'
    option proto 'sluice'
    option server '192.0.2.1'
    option username 'alice'
    option password 'correct horse battery'
    option ipsec '1'
    option psk 'Rk7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY'
    option redial '0'
    list route_src '198.51.100.0/24'
    option killswitch '1'
"""

HOOK = """#!/bin/sh
echo "$reason $TUNDEV" >> {log}
case "$reason" in
connect) exec {py} -m sluice.hal.platform.lanroute {conf} vpn "$TUNDEV" up ;;
disconnect) exec {py} -m sluice.hal.platform.lanroute {conf} vpn "$TUNDEV" down ;;
esac
"""


def ping(lab, ns, dst):
    return lab.run(ns, "ping", "-c", "1", "-W", "2", dst, check=False).returncode == 0


def test_lan_through_tunnel_and_kill_switch():
    with netns.Lab(prefix="so") as lab:
        srv = lab.ns("srv")
        rtr = lab.ns("rtr")
        far = lab.ns("far")
        lan = lab.ns("lan")
        _, rtr_wan = lab.link(srv, "192.0.2.1/24", rtr, "192.0.2.2/24")
        lab.link(srv, "203.0.113.1/24", far, "203.0.113.2/24")
        lab.link(rtr, "198.51.100.1/24", lan, "198.51.100.2/24")
        lab.run(far, "ip", "route", "add", "10.77.0.0/24", "via", "203.0.113.1")
        lab.run(srv, "ip", "route", "add", "198.51.100.0/24", "via", "192.0.2.2")  # WAN side knows the LAN
        lab.run(lan, "ip", "route", "add", "default", "via", "198.51.100.1")
        lab.run(rtr, "ip", "route", "add", "default", "via", "192.0.2.1")  # the router's WAN default route
        lab.forward(srv)
        lab.forward(rtr)
        netns.masquerade(lab, rtr, "sluice-vpn")
        # In the clear the LAN reaches the WAN (the server's WAN address) but not the far host (no route back).
        assert ping(lab, lan, "192.0.2.1")
        assert not ping(lab, lan, "203.0.113.2")

        sconf = lab.write("server.conf", netns.with_psk(netns.SERVER_CONF.format(auth="mschapv2"),
                                                        "Rk7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY"))
        conf = lab.write("network", NETWORK)
        hooklog = os.path.join(lab.tmp, "hook.log")
        hook = lab.write("hook.sh", HOOK.format(log=hooklog, py=sys.executable, conf=conf), 0o755)
        server = lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
        lab.wait_for("server socket", lambda: "error" not in lab.status("srv"), 10)
        client = lab.start(rtr, ["client", "--config", conf, "--section", "vpn", "--name", "vpn", "--hook", hook],
                           "client.log")
        try:
            lab.wait_for("tunnel up", lambda: netns.session_up(lab, "vpn"), 30)
            lab.wait_for("hook ran", lambda: os.path.exists(hooklog) and "connect" in open(hooklog).read(), 10)
            lab.wait_for("policy rule", lambda: "lookup 1701" in lab.run(rtr, "ip", "rule").stdout, 10)
            # The LAN now reaches the far host: only possible through the tunnel.
            assert lab.wait_for("LAN -> far through the tunnel", lambda: ping(lab, lan, "203.0.113.2"), 15)
            # and the router's own traffic still uses the WAN default route (main table)
            assert "sluice-vpn" not in lab.run(rtr, "ip", "route", "get", "203.0.113.2").stdout
        except (TimeoutError, AssertionError):
            pytest.fail("--- server\n%s--- client\n%s--- hook\n%s" % (
                lab.log(server), lab.log(client), open(hooklog).read() if os.path.exists(hooklog) else ""))
        assert open(hooklog).read().split()[:2] == ["connect", "sluice-vpn"]

        lab.stop(client)
        lab.wait_for("rules removed", lambda: "lookup 1701" not in lab.run(rtr, "ip", "rule").stdout, 10)
        # Tunnel down, kill switch on: the LAN is not let out to the WAN in the clear, as a capture on the
        # router's WAN shows while the LAN host keeps trying.
        pcap = os.path.join(lab.tmp, "wan.pcap")
        cap = subprocess.Popen(["ip", "netns", "exec", rtr, "tcpdump", "-i", rtr_wan, "-U", "--immediate-mode",
                                "-n", "-w", pcap], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.procs.append(cap)
        time.sleep(0.5)
        assert not ping(lab, lan, "192.0.2.1")
        assert not ping(lab, lan, "203.0.113.2")
        lab.run(lan, sys.executable, "-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                "[s.sendto(b'lan secret', ('203.0.113.2', 9)) for _ in range(5)]")
        time.sleep(0.5)
        cap.send_signal(signal.SIGINT)
        cap.wait(5)
        leaked = subprocess.run(["tcpdump", "-r", pcap, "-n", "src net 198.51.100.0/24 or icmp or udp port 9"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
        assert leaked.strip() == ""
        assert "sluice_ks_vpn" in lab.run(rtr, "nft", "list", "tables").stdout
        lab.run(rtr, "nft", "delete", "table", "inet", "sluice_ks_vpn")
        assert ping(lab, lan, "192.0.2.1")
        lab.stop(server)
        assert lab.tracebacks() == []
