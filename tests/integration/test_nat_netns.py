"""Several clients behind one NAT router reach the same server at the same time.

Kernel-policy stacks key L2TP by address and port 1701 and cannot do this; Sluice keys each tunnel by the
outer address and port it came from, so the NAT's distinct mappings are distinct tunnels.
"""

import shutil

import pytest

import netns

ok, why = netns.can_use_netns()
if ok and not shutil.which("nft"):
    ok, why = False, "needs nftables (`nft`) for the NAT router"
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]


def test_two_clients_behind_one_nat_plain_l2tp():
    with netns.Lab() as lab:
        srv, nat, (c0, c1), sconf, cconf = netns.build_nat(lab, 2)
        server = lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
        lab.wait_for("server", lambda: "error" not in lab.status("srv"), 10)
        lab.start(c0, ["client", "--config", cconf, "--name", "c0"], "c0.log")
        lab.start(c1, ["client", "--config", cconf, "--name", "c1"], "c1.log")
        a = lab.wait_for("client 0 up", lambda: netns.session_up(lab, "c0"), 30)
        b = lab.wait_for("client 1 up", lambda: netns.session_up(lab, "c1"), 30)
        ips = {a["tunnels"][0]["sessions"][0]["ip"], b["tunnels"][0]["sessions"][0]["ip"]}
        assert len(ips) == 2
        st = lab.status("srv")
        peers = sorted(t["peer"] for t in st["tunnels"])
        assert st["sessions"] == 2
        # Both tunnels come from the NAT's one address, on two different ports.
        assert [p.split(":")[0] for p in peers] == ["192.0.2.254", "192.0.2.254"]
        assert peers[0] != peers[1]
        for c in (c0, c1):
            lab.run(c, "ping", "-c", "2", "-W", "3", "10.77.0.1")
        assert server.poll() is None
        for p in lab.procs:
            lab.stop(p)
        assert lab.tracebacks() == []
