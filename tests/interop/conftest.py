"""pytest fixtures for the peer lab: one booted testbed at a time, shared by the cells that run on it.

Booting is the slow part (about 30 s per TCG guest), so cells of one testbed share its guests; asking for
another testbed closes the current one first (never more than two guests on the 2-core host). Every
testbed is closed at the end of the session, also when tests fail or are interrupted.
"""

import pytest

from .cells import TESTBEDS, Testbed
from .lab import can_run_lab


@pytest.fixture(scope="session")
def lab_ok():
    ok, why = can_run_lab()
    if not ok:
        pytest.skip(why)


@pytest.fixture(scope="session")
def testbeds(lab_ok):
    state = {"bed": None, "failed": {}}

    def get(name):
        bed = state["bed"]
        if bed is not None and bed.name == name:
            return bed
        if name in state["failed"]:
            pytest.fail("testbed %s did not boot earlier: %s" % (name, state["failed"][name]))
        if bed is not None:
            bed.close()
            state["bed"] = None
        bed = Testbed(name, TESTBEDS[name])
        try:
            bed.open()
        except Exception as e:
            state["failed"][name] = str(e)
            raise
        state["bed"] = bed
        return bed

    yield get
    if state["bed"] is not None:
        state["bed"].close()


def run_cell(cell, testbeds, record_property):
    bed = testbeds(cell.testbed)
    r = cell.run(bed)
    for k in ("setup_s", "mbps", "rss_mb", "detail"):
        record_property(k, r.get(k))
    print("%s: set-up %s s, %s Mbit/s, %s (logs: %s)" % (cell.name, r.get("setup_s"), r.get("mbps"),
                                                          r.get("detail"), bed.lab.logdir))
    return r
