"""The interop cells and the testbeds they run on; shared by the pytest files and matrix.py.

A cell is (name, testbed, function, kwargs). Cells of one testbed run one after another on the same booted
guests (boot is the slow part under TCG); each cell stops what it started.
"""

from .base import CellFailure, Testbed  # noqa: F401
from . import (afalg, behind_nat, client_profiles, ipv6, kernel_hal, kernel_nat, kernel_rekey, reference, sluice,
               sluice_certs, sluice_guest, sluice_ipsec, sluice_kernel, sluice_kernel_v6)

TESTBEDS = {
    # name: guest image flavours, g1 first
    "strongswan": ("strongswan", "strongswan"),
    "libreswan": ("libreswan", "strongswan"),
    # Sluice's kernel data path in Debian 13 (g2) against the reference stack in Debian 12 (g1: the same image as
    # the reference cells), and its controls: the reference stack in g2 in Sluice's place. The one-guest kernel
    # cells (kernel HAL, NAT in namespaces) run in g2 after them; their 6.1 controls in strongswan's g2.
    "kernel-peer": ("strongswan", "trixie"),
}


class Cell:
    __slots__ = ("name", "testbed", "fn", "kwargs", "group")

    def __init__(self, name, testbed, fn, group, **kwargs):
        self.name = name
        self.testbed = testbed  # key of TESTBEDS
        self.fn = fn
        self.group = group  # 'reference' (lab only), 'sluice' (plain L2TP), 'sluice-ipsec' or 'kernel'
        self.kwargs = kwargs

    def run(self, bed):
        return self.fn(bed, **self.kwargs)

    def __repr__(self):
        return "Cell(%s)" % self.name


CELLS = [
    Cell("boot", "strongswan", reference.cell_boot, "reference"),
    Cell("link", "strongswan", reference.cell_link, "reference"),
    Cell("ref-l2tp-mschapv2", "strongswan", reference.cell_ref_l2tp, "reference", auth="mschapv2"),
    Cell("ref-l2tp-chap", "strongswan", reference.cell_ref_l2tp, "reference", auth="chap", measure=False),
    Cell("ref-l2tp-pap", "strongswan", reference.cell_ref_l2tp, "reference", auth="pap", measure=False),
    Cell("ref-ipsec-strongswan", "strongswan", reference.cell_ref_ipsec_strongswan, "reference"),
    Cell("ref-l2tp-ipsec-strongswan", "strongswan", reference.cell_ref_l2tp_ipsec, "reference"),
    Cell("sluice-lac-mschapv2", "strongswan", sluice.cell_sluice_lac, "sluice", auth="mschapv2"),
    Cell("sluice-lac-chap", "strongswan", sluice.cell_sluice_lac, "sluice", auth="chap", measure=False),
    Cell("sluice-lac-pap", "strongswan", sluice.cell_sluice_lac, "sluice", auth="pap", measure=False),
    Cell("sluice-lns-mschapv2", "strongswan", sluice.cell_sluice_lns, "sluice", auth="mschapv2"),
    Cell("sluice-lns-chap", "strongswan", sluice.cell_sluice_lns, "sluice", auth="chap", measure=False),
    Cell("sluice-lns-pap", "strongswan", sluice.cell_sluice_lns, "sluice", auth="pap", measure=False),
    Cell("sluice-guest-lac-mschapv2", "strongswan", sluice_guest.cell_sluice_guest_lac, "sluice", auth="mschapv2"),
    Cell("sluice-guest-lns-mschapv2", "strongswan", sluice_guest.cell_sluice_guest_lns, "sluice", auth="mschapv2"),
    # Beside ref-l2tp-ipsec-strongswan: the same server, cipher and transfer, Sluice in the same emulated CPU.
    Cell("sluice-guest-lac-ipsec", "strongswan", sluice_guest.cell_sluice_guest_lac, "sluice-ipsec", ipsec=True),
    Cell("sluice-guest-lns-ipsec", "strongswan", sluice_guest.cell_sluice_guest_lns, "sluice-ipsec", ipsec=True),
    # UNTESTED (written without running the lab): pppd +ipv6 through the Sluice server, SLAAC from its RA.
    Cell("sluice-guest-lns-ipv6", "strongswan", ipv6.cell_sluice_guest_lns_ipv6, "sluice"),
    Cell("sluice-afalg", "strongswan", afalg.cell_afalg, "sluice"),
    Cell("sluice-lac-ipsec-strongswan", "strongswan", sluice_ipsec.cell_sluice_lac_ipsec, "sluice-ipsec",
         stack="strongswan"),
    Cell("sluice-lac-ipsec-strongswan-chap", "strongswan", sluice_ipsec.cell_sluice_lac_ipsec, "sluice-ipsec",
         stack="strongswan", auth="chap", measure=False),
    Cell("sluice-lac-ipsec-strongswan-pap", "strongswan", sluice_ipsec.cell_sluice_lac_ipsec, "sluice-ipsec",
         stack="strongswan", auth="pap", measure=False),
    Cell("sluice-lns-ipsec-strongswan", "strongswan", sluice_ipsec.cell_sluice_lns_ipsec, "sluice-ipsec",
         stack="strongswan"),
    # Real clients' proposal lists (shared/docs/clients.md) from strongSwan+xl2tpd+pppd to the Sluice server.
    Cell("client-profile-windows", "strongswan", client_profiles.cell_client_profile, "sluice-ipsec",
         profile="windows"),
    Cell("client-profile-apple", "strongswan", client_profiles.cell_client_profile, "sluice-ipsec",
         profile="apple"),
    Cell("client-profile-android", "strongswan", client_profiles.cell_client_profile, "sluice-ipsec",
         profile="android", legacy=True),
    Cell("client-profile-android-nolegacy", "strongswan", client_profiles.cell_client_profile_refused,
         "sluice-ipsec", profile="android"),
    Cell("client-profile-networkmanager", "strongswan", client_profiles.cell_client_profile, "sluice-ipsec",
         profile="networkmanager"),
    Cell("client-profile-windows-nat", "strongswan", behind_nat.cell_clients_behind_nat, "sluice-ipsec",
         profile="windows", count=1),
    Cell("two-clients-behind-nat", "strongswan", behind_nat.cell_clients_behind_nat, "sluice-ipsec",
         profile="windows", count=2),
    Cell("sluice-lac-ipsec-certs-strongswan", "strongswan", sluice_certs.cell_sluice_lac_certs, "sluice-ipsec"),
    Cell("sluice-lac-ipsec-certs-strongswan-sendcert", "strongswan", sluice_certs.cell_sluice_lac_certs,
         "sluice-ipsec", sendcert="always"),
    # Sluice's kernel glue (hal/net: xfrm, l2tp_kernel, ppp_kernel) in a Debian 13 guest.
    Cell("sluice-guest-lac-kernel", "kernel-peer", sluice_kernel.cell_lac_kernel, "kernel"),
    Cell("sluice-guest-lns-kernel", "kernel-peer", sluice_kernel.cell_lns_kernel, "kernel"),
    # The controls of the two above: the reference stack at both ends of the same two guests, the Debian 13 one
    # (kernel 6.12) in Sluice's place, after Sluice's cells (so with caches Sluice's first dials did not have).
    Cell("ref-l2tp-ipsec-lac-6.12", "kernel-peer", reference.cell_ref_l2tp_ipsec, "kernel"),
    Cell("ref-l2tp-ipsec-lns-6.12", "kernel-peer", reference.cell_ref_l2tp_ipsec, "kernel", swap=True),
    Cell("sluice-guest-lns-ipv6-kernel", "kernel-peer", sluice_kernel_v6.cell_lns_ipv6_kernel, "kernel"),
    Cell("sluice-guest-lac-ipv6-kernel", "kernel-peer", sluice_kernel_v6.cell_lac_ipv6_kernel, "kernel"),
    # Rekeys under transfer (strongSwan with short lifetimes) and plain L2TP (ipsec '0') on the kernel path.
    Cell("sluice-guest-lac-kernel-rekey", "kernel-peer", kernel_rekey.cell_lac_kernel_rekey, "kernel"),
    Cell("sluice-guest-lns-kernel-rekey", "kernel-peer", kernel_rekey.cell_lns_kernel_rekey, "kernel"),
    Cell("sluice-guest-lac-kernel-plain", "kernel-peer", kernel_rekey.cell_lac_kernel_plain, "kernel"),
    Cell("sluice-guest-lns-kernel-plain", "kernel-peer", kernel_rekey.cell_lns_kernel_plain, "kernel"),
    Cell("kernel-hal-probe", "kernel-peer", kernel_hal.cell_probe, "kernel"),
    Cell("kernel-hal-roundtrip", "kernel-peer", kernel_hal.cell_roundtrip, "kernel"),
    Cell("kernel-hal-path", "kernel-peer", kernel_hal.cell_kernel_path, "kernel"),
    Cell("kernel-hal-kill9", "kernel-peer", kernel_hal.cell_kill9, "kernel"),
    Cell("kernel-hal-expire", "kernel-peer", kernel_hal.cell_expire, "kernel"),
    Cell("kernel-hal-datapath", "kernel-peer", kernel_hal.cell_datapath, "kernel"),
    Cell("kernel-hal-two-behind-nat", "kernel-peer", kernel_hal.cell_two_behind_nat, "kernel"),
    Cell("kernel-hal-two-one-address", "kernel-peer", kernel_hal.cell_two_behind_nat, "kernel", nat=False),
    # The Sluice server on the kernel path with two Sluice clients behind one nftables NAT (namespaces).
    Cell("two-clients-behind-nat-kernel", "kernel-peer", kernel_nat.cell_two_clients_kernel, "kernel"),
    # The same on Debian 12's 6.1, before the 6.11 l2tp_core change: one client in the kernel, the other's L2TP/PPP
    # data in user space over its kernel SAs (usersessions).
    Cell("two-clients-behind-nat-kernel-6.1", "strongswan", kernel_nat.cell_two_clients_kernel, "kernel",
         before_611=True),
    # The kernel HAL alone on 6.1, before the 2024 l2tp_core change: passes when only one client gets through.
    Cell("kernel-hal-two-one-address-6.1", "strongswan", kernel_hal.cell_two_behind_nat, "kernel",
         nat=False, before_2024=True),
    Cell("boot-libreswan", "libreswan", reference.cell_boot, "reference"),
    Cell("ref-l2tp-ipsec-libreswan-server", "libreswan", reference.cell_ref_l2tp_ipsec, "reference",
         server="libreswan", client="strongswan"),
    Cell("ref-l2tp-ipsec-libreswan-client", "libreswan", reference.cell_ref_l2tp_ipsec, "reference",
         server="strongswan", client="libreswan"),
    Cell("sluice-lac-ipsec-libreswan", "libreswan", sluice_ipsec.cell_sluice_lac_ipsec, "sluice-ipsec",
         stack="libreswan"),
    Cell("sluice-lns-ipsec-libreswan", "libreswan", sluice_ipsec.cell_sluice_lns_ipsec, "sluice-ipsec",
         stack="libreswan"),
]


# Sluice beside its control, for the matrix's ratio table: (Sluice cell, control cell, guest). The control runs
# the reference stack (strongSwan + xl2tpd + pppd) in Sluice's place on the same testbed, roles and cipher; RSS
# is compared on `guest`, the one Sluice ran in (the reference's daemons together against Sluice's process).
COMPARISONS = [
    ("sluice-guest-lac-kernel", "ref-l2tp-ipsec-lac-6.12", "g2"),
    ("sluice-guest-lns-kernel", "ref-l2tp-ipsec-lns-6.12", "g2"),
    ("sluice-guest-lac-ipsec", "ref-l2tp-ipsec-strongswan", "g2"),
    ("sluice-guest-lns-ipsec", "ref-l2tp-ipsec-strongswan", "g1"),
]


def by_name(name):
    for c in CELLS:
        if c.name == name:
            return c
    raise KeyError("no cell named %r (have: %s)" % (name, ", ".join(c.name for c in CELLS)))


__all__ = ["CELLS", "COMPARISONS", "TESTBEDS", "Cell", "CellFailure", "Testbed", "by_name"]
