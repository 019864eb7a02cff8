"""Sluice's kernel glue against a real kernel (Debian 13 guest): tests/interop/cells/kernel_hal.py."""

import pytest

from .cells import CELLS
from .conftest import run_cell

pytestmark = pytest.mark.interop

KERNEL = [c for c in CELLS if c.group == "kernel"]


@pytest.mark.parametrize("cell", KERNEL, ids=[c.name for c in KERNEL])
def test_kernel_hal_cell(cell, testbeds, record_property):
    run_cell(cell, testbeds, record_property)
