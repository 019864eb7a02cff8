"""`make demo`: a Sluice server and client in network namespaces bring up L2TP/IPsec and ping through it.

IKEv1 Main Mode with a pre-shared key from `sluice genpsk`, Quick Mode in transport mode, ESP in user space,
L2TP, PPP with MS-CHAPv2 and IPCP; then a ping to the server and to a host behind it.

Run as root: python3 tests/integration/demo.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import netns  # noqa: E402


def main():
    ok, why = netns.can_use_netns()
    if not ok:
        print("demo skipped: %s" % why)
        return 1
    with netns.Lab("sd") as lab:
        psk = lab.sluice("genpsk").stdout.strip()
        srv, cli, far, sconf, cconf = netns.build_basic(lab, psk=psk)
        print("== namespaces: client %s (192.0.2.2) -> server %s (192.0.2.1) -> far host %s (203.0.113.2)"
              % (cli, srv, far))
        server = lab.start(srv, ["server", "--config", sconf, "--name", "demo-server"], "server.log")
        lab.wait_for("the server's control socket", lambda: "error" not in lab.status("demo-server"), 10)
        client = lab.start(cli, ["client", "--config", cconf, "--name", "demo-client"], "client.log")
        try:
            st = lab.wait_for("the tunnel", lambda: netns.session_up(lab, "demo-client"), 30)
        except TimeoutError as e:
            print("FAILED: %s" % e)
            print("--- server log\n" + lab.log(server) + "--- client log\n" + lab.log(client))
            return 1
        sess = st["tunnels"][0]["sessions"][0]
        sa = st["transport"]["sas"][0]
        print("== tunnel up: client address %s, server %s; ESP %s, SPIs in %s out %s" % (
            sess["ip"], sess["peer_ip"], sa["transform"], sa["spi_in"], sa["spi_out"]))
        for target in ("10.77.0.1", "203.0.113.2"):
            p = lab.run(cli, "ping", "-c", "3", "-i", "0.2", "-W", "2", target, check=False)
            print("== ping %s through the tunnel:\n%s" % (target, p.stdout.strip()))
            if p.returncode != 0:
                print("FAILED: ping %s" % target)
                return 1
        print("== sluice status")
        print(lab.sluice("status").stdout.rstrip())
        lab.stop(client)
        lab.stop(server)
        print("== client log\n" + lab.log(client).rstrip())
        print("== server log\n" + lab.log(server).rstrip())
        print("demo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
