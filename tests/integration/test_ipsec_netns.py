"""L2TP/IPsec end to end in network namespaces, through a NAT router.

    lanhost 203.0.113.2 -- 203.0.113.1 client router (Sluice client, masquerades its LAN into the tunnel)
        198.51.100.2 -- 198.51.100.1 NAT router (nftables masquerade) 192.0.2.254 -- 192.0.2.1 Sluice server
        203.0.113.129 -- far host 203.0.113.130
    second client 198.51.100.130 behind the same NAT.

IKE Main Mode (PSK) + Quick Mode in transport mode, NAT-T (UDP 4500), user-space ESP, L2TP, PPP. A capture on
the server's WAN link must show no clear-text L2TP.
"""

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

import netns

ok, why = netns.can_use_netns()
for tool in ("nft", "tcpdump"):
    if ok and not shutil.which(tool):
        ok, why = False, "needs %s" % tool
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

HERE = os.path.dirname(os.path.abspath(__file__))
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
    option dpd_delay '2s'
    option dpd_timeout '6s'

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
    list routes '203.0.113.128/25'
    option ifname 'slc0'
    option redial '0'
    option dpd_delay '2s'
    option dpd_timeout '6s'
"""


def build(lab):
    srv, nat, r1, r2, lan, far = (lab.ns(n) for n in ("srv", "nat", "r1", "r2", "lan", "far"))
    wan_nat, wan_srv = lab.link(nat, "192.0.2.254/24", srv, "192.0.2.1/24")
    lab.link(nat, "198.51.100.1/25", r1, "198.51.100.2/25")
    lab.link(nat, "198.51.100.129/25", r2, "198.51.100.130/25")
    lab.link(r1, "203.0.113.1/25", lan, "203.0.113.2/25")
    lab.link(srv, "203.0.113.129/25", far, "203.0.113.130/25")
    lab.run(r1, "ip", "route", "add", "default", "via", "198.51.100.1")
    lab.run(r2, "ip", "route", "add", "default", "via", "198.51.100.129")
    lab.run(lan, "ip", "route", "add", "default", "via", "203.0.113.1")
    lab.run(far, "ip", "route", "add", "10.77.0.0/24", "via", "203.0.113.129")
    for ns in (nat, r1, srv):
        lab.forward(ns)
    netns.masquerade(lab, nat, wan_nat)
    # The client router hides its LAN behind its tunnel address, as OpenWrt's vpn zone (masq 1) does.
    netns.masquerade(lab, r1, "slc0")
    sconf = lab.write("server.conf", SERVER % {"psk": PSK})
    cconf = lab.write("client.conf", CLIENT % {"psk": PSK})
    return dict(srv=srv, nat=nat, r1=r1, r2=r2, lan=lan, far=far, wan_srv=wan_srv, sconf=sconf, cconf=cconf)


def test_lan_through_nat_over_ipsec_two_clients_no_cleartext_and_dpd():
    with netns.Lab() as lab:
        t = build(lab)
        pcap = os.path.join(lab.tmp, "wan.pcap")
        cap = subprocess.Popen(["ip", "netns", "exec", t["srv"], "tcpdump", "-i", t["wan_srv"], "-U",
                                "--immediate-mode", "-n", "-w", pcap],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.procs.append(cap)
        time.sleep(0.5)
        server = lab.start(t["srv"], ["server", "--config", t["sconf"], "--name", "srv"], "server.log")
        lab.wait_for("server", lambda: "error" not in lab.status("srv"), 10)
        c1 = lab.start(t["r1"], ["client", "--config", t["cconf"], "--name", "c1"], "c1.log")
        c2 = lab.start(t["r2"], ["client", "--config", t["cconf"], "--name", "c2"], "c2.log")
        try:
            lab.wait_for("client 1", lambda: netns.session_up(lab, "c1"), 60)
            lab.wait_for("client 2", lambda: netns.session_up(lab, "c2"), 60)
        except TimeoutError:
            pytest.fail("\n--- server\n%s\n--- c1\n%s\n--- c2\n%s" % (lab.log(server), lab.log(c1), lab.log(c2)))
        st = lab.status("srv")
        assert st["sessions"] == 2
        sas = st["transport"]["sas"]
        assert len(sas) >= 2 and all(sa["encap"] for sa in sas)
        assert len({sa["peer"] for sa in sas}) == 2  # two NAT mappings of one address
        # The LAN host behind client 1 reaches the far host behind the server, only through the tunnel.
        lab.run(t["lan"], "ping", "-c", "2", "-W", "3", "203.0.113.130")
        # Rekey in the middle of a transfer: new SAs take over, the session and the bytes survive.
        spi_before = {sa["spi_in"] for sa in lab.status("c1")["transport"]["sas"]}
        rekey = threading.Timer(0.3, lambda: lab.sluice("rekey", "--name", "c1"))
        rekey.start()
        sent, got = netns.transfer(lab, t["far"], "203.0.113.130", t["lan"], 32 * 1024 * 1024, 5201)
        rekey.join()
        assert sent == got
        lab.run(t["lan"], "ping", "-c", "2", "-W", "3", "203.0.113.130")
        after = lab.wait_for("the new ESP SA", lambda: (lambda sas: sas if {s["spi_in"] for s in sas} - spi_before
                                                        else None)(lab.status("c1")["transport"]["sas"]), 10)
        new = [sa for sa in after if sa["spi_in"] not in spi_before]
        assert new and new[0]["packets_in"] > 0
        assert netns.session_up(lab, "c1")
        lab.run(t["r2"], "ping", "-c", "2", "-W", "3", "10.77.0.1")
        # No clear-text L2TP on the WAN: only IKE and ESP-in-UDP.
        cap.send_signal(signal.SIGINT)
        cap.wait(5)
        clear = subprocess.run(["tcpdump", "-r", pcap, "-n", "udp port 1701"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True).stdout
        esp = subprocess.run(["tcpdump", "-r", pcap, "-n", "udp port 4500"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True).stdout
        assert clear.strip() == ""
        assert len(esp.splitlines()) > 1000
        # DPD: the server vanishes without a word; both clients notice within dpd_delay + dpd_timeout.
        server.send_signal(signal.SIGKILL)
        server.wait(5)
        for name in ("c1", "c2"):
            st = lab.wait_for("%s notices the dead server" % name,
                              lambda n=name: (lambda s: s if s.get("state") != "up" else None)(lab.status(n)), 20)
            assert "DPD" in (st.get("last_error") or "") or "answer" in (st.get("last_error") or "")
        for p in (c1, c2):
            lab.stop(p)
        assert lab.tracebacks() == []
