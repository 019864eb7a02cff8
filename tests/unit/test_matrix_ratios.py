"""The interop matrix's Sluice / control ratio table, from rows shaped as the cells return them."""

from tests.interop import matrix
from tests.interop.cells import CELLS, COMPARISONS


def _row(cell, setup, tx, rx, rss, result="PASS"):
    return {"cell": cell, "result": result, "setup_s": setup, "mbps": tx, "mbps_rx": rx, "rss_mb": rss}


def test_every_comparison_names_two_cells_of_one_image_set():
    names = {c.name: c for c in CELLS}
    from tests.interop.cells import TESTBEDS
    for ours, control, guest in COMPARISONS:
        assert ours in names and control in names, (ours, control)
        # The same guests in the same roles: the same testbed images.
        assert TESTBEDS[names[ours].testbed] == TESTBEDS[names[control].testbed]
        assert guest in ("g1", "g2")


def test_ratios_compare_the_guest_sluice_ran_in():
    rows = [_row("sluice-guest-lac-kernel", 2.0, 30.0, 40.0, {"g2": {"sluice": 13.0}}),
            _row("ref-l2tp-ipsec-lac-6.12", 2.5, 20.0, 50.0,
                 {"g2": {"charon": 12.0, "pppd": 8.0, "starter": 2.0, "xl2tpd": 4.0}, "g1": {"charon": 1.0}})]
    (r,) = matrix.ratio_rows(rows)
    assert r == {"cell": "sluice-guest-lac-kernel", "control": "ref-l2tp-ipsec-lac-6.12", "setup": 0.8,
                 "tx": 1.5, "rx": 0.8, "rss": 0.5}
    text = matrix.ratio_table([r])
    assert "0.80" in text and "1.50" in text and "0.50" in text


def test_a_failed_or_missing_control_gives_no_ratio():
    rows = [_row("sluice-guest-lns-kernel", 2.0, 30.0, 40.0, {"g2": {"sluice": 13.0}}),
            _row("ref-l2tp-ipsec-lns-6.12", 2.0, 30.0, 40.0, {"g2": {"charon": 1.0}}, result="FAIL")]
    assert matrix.ratio_rows(rows) == []
    rows[1]["result"] = "PASS"
    del rows[1]["mbps_rx"]
    (r,) = matrix.ratio_rows(rows)
    assert r["rx"] is None and "-" in matrix.ratio_table([r])
