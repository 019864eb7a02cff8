"""A client's NAT mapping changes mid-session (CGNAT timeout, router reboot): the server follows it.

Review finding: the IKE table moved its SA to the new (address, port) silently while the engine kept the old
one, so traffic stopped. Now authenticated ESP from a new port of the same address moves the IKE SA, the ESP
SAs and the L2TP tunnel (RFC 3948 allows following the mapping; only packets that pass the ICV count).
"""

import shutil

import pytest

import netns

ok, why = netns.can_use_netns()
for tool in ("nft", "conntrack"):
    if ok and not shutil.which(tool):
        ok, why = False, "needs %s" % tool
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

PSK = "Hq2Lm8Rt4Wz6Xc1Vb9Nk3Pd7Fs5Gj0Ye"


def test_server_follows_a_client_whose_nat_mapping_changed():
    with netns.Lab() as lab:
        srv, nat, (c0,), sconf, cconf = netns.build_nat(lab, 1)
        for path, text in ((sconf, netns.SERVER_CONF.format(auth="mschapv2")),
                           (cconf, netns.CLIENT_CONF.format(user="alice", password="correct horse battery"))):
            with open(path, "w") as f:
                f.write(netns.with_psk(text, PSK))
        lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
        lab.wait_for("server", lambda: "error" not in lab.status("srv"), 10)
        lab.start(c0, ["client", "--config", cconf, "--name", "c0"], "c0.log")
        lab.wait_for("tunnel", lambda: netns.session_up(lab, "c0"), 40)
        before = lab.status("srv")["transport"]["sas"][0]["peer"]
        # The NAT forgets its mappings and hands out ports from another range from now on.
        wan = [l.split(": ")[1].split("@")[0] for l in lab.run(nat, "ip", "-o", "link").stdout.splitlines()
               if "192.0.2.254" in lab.run(nat, "ip", "-o", "addr", "show", "dev",
                                           l.split(": ")[1].split("@")[0]).stdout][0]
        lab.run(nat, "nft", "flush", "ruleset")
        rules = lab.write("rebind.nft", "table ip r {\n chain p {\n  type nat hook postrouting priority srcnat;\n"
                                        "  oifname \"%s\" meta l4proto udp masquerade to :30000-30999\n }\n}\n" % wan, 0o644)
        lab.run(nat, "nft", "-f", rules)
        lab.run(nat, "conntrack", "-F", check=False)
        # Traffic from the client now arrives from a new port; the server must answer there.
        assert lab.wait_for("ping through the moved mapping",
                            lambda: lab.run(c0, "ping", "-c", "1", "-W", "2", "10.77.0.1", check=False).returncode == 0,
                            20)
        after = lab.status("srv")
        assert after["transport"]["sas"][0]["peer"] != before
        assert after["transport"]["sas"][0]["peer"].split(":")[1].startswith("30")
        assert after["tunnels"][0]["peer"].startswith(after["transport"]["sas"][0]["peer"])
        assert after["sessions"] == 1 and netns.session_up(lab, "c0")
        assert lab.tracebacks() == []
