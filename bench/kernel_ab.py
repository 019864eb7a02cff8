"""Sluice's kernel path against the reference stack on the same guest, interleaved (A/B), with medians.

One matrix run compares a Sluice cell with its control minutes apart, one 3-second iperf3 sample each way:
under TCG two such cells have differed by 40 % with the same data path. This benchmark boots the lab's
`kernel-peer` testbed once. In the Debian 13 guest (g2) it alternates two LACs against the reference LNS
(strongSwan + xl2tpd + pppd) in g1:
- the reference stack itself: strongSwan + xl2tpd + pppd;
- Sluice on the kernel path.
Each turn takes SAMPLES iperf3 runs each way. It prints every sample and the ratio of the medians per
direction. Drift on the host then falls on both sides alike. Not part of `make interop` (about 4 minutes per
round); run as root where the lab runs:

    .venv/bin/python bench/kernel_ab.py [--rounds 2] [--samples 3]
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.interop import peers  # noqa: E402
from tests.interop.cells import TESTBEDS, Testbed  # noqa: E402
from tests.interop.cells.base import (IpsecStack, install, iperf_guest_to_guest, start_xl2tpd,  # noqa: E402
                                      stop_xl2tpd, warm_xfrm)
from tests.interop.cells.reference import dial_xl2tpd  # noqa: E402
from tests.interop.cells.sluice_guest import SLUICE_LOG, UP_TIMEOUT, _sluice_cmd, _stop, install_sluice  # noqa: E402
from tests.interop.cells.sluice_kernel import _conf, warm_crypto_modules  # noqa: E402


def _up(which, lns, lac, stack):
    """Bring the LAC `which` up in g2; returns Sluice's pid (None for the reference)."""
    if which == "reference":
        stack.start(lac)
        start_xl2tpd(lac)
        ok, r = stack.up(lac)
        if not ok:
            raise RuntimeError("reference LAC: ipsec up failed: %s" % r.get("output", "")[-500:])
        up = dial_xl2tpd(lac)
        if not up.get("ok"):
            raise RuntimeError("reference LAC: ppp0 did not come up: %s" % up.get("error"))
        return None
    cmd = _sluice_cmd("client", "/etc/sluice-lab.conf", "lac")
    up = lac.labctl("spawn-wait", "slc0", UP_TIMEOUT, SLUICE_LOG, *cmd, timeout=UP_TIMEOUT + 20)
    if not up.get("ok"):
        raise RuntimeError("Sluice LAC did not come up: %s" % up.get("error"))
    return up.get("pid")


def _down(which, lns, lac, stack, pid):
    if which == "reference":
        stop_xl2tpd(lac)
        stack.stop(lac)
        stop_xl2tpd(lns)        # the LNS's pppd for that session goes; a fresh xl2tpd for the next turn
        start_xl2tpd(lns)
    else:
        _stop(lac, pid)


def main(argv=None):
    p = argparse.ArgumentParser(prog="bench/kernel_ab.py", description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--samples", type=int, default=3)
    args = p.parse_args(argv)
    got = {(w, d): [] for w in ("reference", "sluice") for d in ("tx", "rx")}
    bed = Testbed("kernel-peer", TESTBEDS["kernel-peer"])
    bed.open()
    try:
        lns, lac = bed.g1, bed.g2
        stack = IpsecStack("strongswan")
        install_sluice(lac)
        lac.write("/etc/sluice-lab.conf", _conf(peers.sluice_client(lns.ip, ipsec=True)), 0o600)
        install(lns, dict(stack.files(lns, None), **peers.xl2tpd_lns("mschapv2")))
        install(lac, dict(stack.files(lac, lns.ip), **peers.xl2tpd_lac(lns.ip, "mschapv2")))
        stack.start(lns)
        start_xl2tpd(lns)
        for g in (lns, lac):
            warm_xfrm(g)
        warm_crypto_modules(lac)
        for rnd in range(args.rounds):
            for which in (("reference", "sluice") if rnd % 2 == 0 else ("sluice", "reference")):
                pid = _up(which, lns, lac, stack)
                try:
                    lac.sh("ping -c 2 -i 0.3 -W 3 %s" % peers.POOL_LOCAL, timeout=20)
                    for _ in range(args.samples):
                        got[(which, "tx")].append(iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL))
                        got[(which, "rx")].append(iperf_guest_to_guest(lns, lac, peers.POOL_LOCAL, reverse=True))
                finally:
                    _down(which, lns, lac, stack, pid)
                tx, rx = (" ".join("%.1f" % v for v in got[(which, d)][-args.samples:]) for d in ("tx", "rx"))
                print("round %d %-9s tx %s | rx %s" % (rnd, which, tx, rx), flush=True)
                time.sleep(2)
    finally:
        bed.close()
    for d, name in (("tx", "LAC send"), ("rx", "LAC receive")):
        s, r = statistics.median(got[("sluice", d)]), statistics.median(got[("reference", d)])
        print("%-12s median Sluice %.1f / reference %.1f Mbit/s = %.2f (%d samples each)" % (
            name, s, r, s / r, len(got[("sluice", d)])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
