"""The lab proves itself: guests boot with the kernel features the peers need, the reference peers interoperate
with each other (xl2tpd+pppd LAC <-> LNS for each auth method, strongSwan <-> strongSwan and strongSwan <->
libreswan IKEv1 transport, full L2TP/IPsec), and the harness leaves nothing behind when a test fails.

Run with `pytest -m interop tests/interop` (root; host packages from image.HOST_TOOLS). The libreswan
testbed runs first so that the strongSwan testbed stays booted for test_sluice_interop.py.
"""

import os
import subprocess

import pytest

from . import image, lab as lab_mod
from .cells import CELLS
from .conftest import run_cell

pytestmark = pytest.mark.interop

REFERENCE = sorted((c for c in CELLS if c.group == "reference"), key=lambda c: c.testbed != "libreswan")


def test_lab_tears_down_on_failure(lab_ok):
    """A failure inside the lab still kills QEMU (by pid) and deletes the namespace with its bridge and TAP."""
    image.build("strongswan")
    with pytest.raises(RuntimeError, match="boom"):
        with lab_mod.Lab("slab-teardown") as lab:
            g = lab.add_guest("strongswan")
            qemu, ns = g.qemu, lab.ns
            assert qemu.poll() is None
            raise RuntimeError("boom")
    assert qemu.poll() is not None
    assert ns not in subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True).stdout
    assert not os.path.exists("/proc/%d" % qemu.pid) or qemu.returncode is not None


def test_lab_refuses_a_third_guest(lab_ok):
    image.build("strongswan")
    with lab_mod.Lab("slab-limit") as lab:
        lab.add_guest("strongswan")
        lab.add_guest("strongswan")
        with pytest.raises(lab_mod.LabError, match="at most 2 guests"):
            lab.add_guest("strongswan")


@pytest.mark.parametrize("cell", REFERENCE, ids=[c.name for c in REFERENCE])
def test_reference_cell(cell, testbeds, record_property):
    run_cell(cell, testbeds, record_property)
