"""Sluice on the host against the reference peers in a guest, plain L2TP (no IPsec yet):

- `sluice client` (LAC) <-> xl2tpd + pppd LNS, MS-CHAPv2 / CHAP / PAP demanded by the LNS;
- xl2tpd + pppd LAC <-> `sluice server` (LNS), each method offered by Sluice.

Each cell checks the peer's view (addresses, the auth protocol in pppd's LCP ConfAck, ping and TCP both
ways, clean teardown) and tshark's reading of the captured set-up and teardown. See cells/sluice.py.
"""

import pytest

from .cells import CELLS
from .conftest import run_cell

pytestmark = pytest.mark.interop

SLUICE = [c for c in CELLS if c.group == "sluice"]


@pytest.mark.parametrize("cell", SLUICE, ids=[c.name for c in SLUICE])
def test_sluice_cell(cell, testbeds, record_property):
    run_cell(cell, testbeds, record_property)
