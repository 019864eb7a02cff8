"""Sluice with IPsec (ipsec '1', PSK) against strongSwan and libreswan L2TP/IPsec stacks in a guest.

Both directions: Sluice client -> <stack>+xl2tpd+pppd server, <stack>+xl2tpd+pppd client -> Sluice server.
Each cell checks transport-mode ESP in the guest kernel with growing counters, no plaintext L2TP on the wire
(tshark), the peer's SA removed soon after Sluice stops, and everything the plain cells check. The same
checks pass against the reference stacks themselves (ref-l2tp-ipsec-* in test_lab_smoke.py). This file runs
every cell of the group 'sluice-ipsec' (client profiles, NAT, certificates, Sluice in a guest included).
"""

import pytest

from .cells import CELLS
from .conftest import run_cell

pytestmark = pytest.mark.interop

SLUICE_IPSEC = [c for c in CELLS if c.group == "sluice-ipsec"]


@pytest.mark.parametrize("cell", SLUICE_IPSEC, ids=[c.name for c in SLUICE_IPSEC])
def test_sluice_ipsec_cell(cell, testbeds, record_property):
    run_cell(cell, testbeds, record_property)
