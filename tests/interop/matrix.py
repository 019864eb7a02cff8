"""Run the interop cells and print a table: cell, result, set-up time, throughput, memory.

    python -m tests.interop.matrix [--cells GLOB[,GLOB...]] [--group reference|sluice] [--json FILE] [--list]

Builds the guest images when the cache lacks them (about 60-80 s each), boots one testbed at a time (two
guests: the host has 2 cores), runs its cells one after another and tears it down. A cell that fails shows
FAIL with the first line of its reason; the full reason (with log tails) is printed as it happens, and the
logs stay in $SLUICE_LAB_LOGS (default /tmp/sluice-interop-logs). Exit status 0 when every cell passed.
Figures are from TCG guests (emulated CPU): compare them only with figures from the same lab.
"""

import argparse
import fnmatch
import json
import sys
import time

from . import image, lab
from .cells import CELLS, COMPARISONS, TESTBEDS, Testbed


def select(patterns, group):
    cells = CELLS
    if group:
        cells = [c for c in cells if c.group == group]
    if patterns:
        globs = [p.strip() for p in patterns.split(",") if p.strip()]
        cells = [c for c in cells if any(fnmatch.fnmatch(c.name, g) for g in globs)]
    return cells


def _fmt(v, spec):
    return "-" if v is None else spec % v


def _fmt_rss(rss):
    """Per guest, the summed RSS of the processes a cell measured (the detail names them): 'g2 18.5 g1 18.9'."""
    return " ".join("%s %.1f" % (g, sum(p.values())) for g, p in rss.items()) if rss else "-"


def table(rows):
    head = ("cell", "result", "set-up s", "Mbit/s", "RSS MB", "detail")
    n = len(head) - 1  # the detail column is not padded
    lines = [[r["cell"], r["result"], _fmt(r.get("setup_s"), "%.2f"), _fmt(r.get("mbps"), "%.1f"),
              _fmt_rss(r.get("rss_mb")), r.get("detail", "")] for r in rows]
    widths = [max(len(head[i]), *(len(l[i]) for l in lines)) if lines else len(head[i]) for i in range(n)]
    out = ["  ".join(h.ljust(widths[i]) if i < n else h for i, h in enumerate(head)),
           "  ".join("-" * widths[i] if i < n else "------" for i in range(n + 1))]
    for l in lines:
        out.append("  ".join(v.ljust(widths[i]) if i < n else v for i, v in enumerate(l)))
    return "\n".join(out)


def _ratio(a, b):
    return None if a is None or not b else round(a / b, 2)


def ratio_rows(rows, pairs=COMPARISONS):
    """Sluice / control for each pair that passed in this run: set-up, the LAC's send and receive, RSS on the
    guest Sluice ran in. Throughput wants >= 1, set-up and RSS <= 1."""
    by = {r["cell"]: r for r in rows if r["result"] == "PASS"}
    out = []
    for ours, control, guest in pairs:
        a, b = by.get(ours), by.get(control)
        if a is None or b is None:
            continue
        rss = [sum((r.get("rss_mb") or {}).get(guest, {}).values()) or None for r in (a, b)]
        out.append({"cell": ours, "control": control, "setup": _ratio(a.get("setup_s"), b.get("setup_s")),
                    "tx": _ratio(a.get("mbps"), b.get("mbps")), "rx": _ratio(a.get("mbps_rx"), b.get("mbps_rx")),
                    "rss": _ratio(rss[0], rss[1])})
    return out


def ratio_table(ratios):
    head = ["Sluice cell", "control (reference stack in its place)", "set-up", "LAC tx", "LAC rx", "RSS"]
    lines = [[r["cell"], r["control"]] + [_fmt(r[k], "%.2f") for k in ("setup", "tx", "rx", "rss")] for r in ratios]
    widths = [max(len(head[i]), *(len(l[i]) for l in lines)) for i in range(len(head))]
    out = ["Sluice / control, this run (throughput wants >= 1, set-up and RSS <= 1):",
           "  ".join(h.ljust(widths[i]) for i, h in enumerate(head)).rstrip()]
    out += ["  ".join(v.ljust(widths[i]) for i, v in enumerate(l)).rstrip() for l in lines]
    return "\n".join(out)


def prebuild(flavours, say):
    """Build the missing images before any guest boots, one Debian suite at a time per thread (the bookworm
    flavours share a .deb cache; trixie has its own): on a fresh machine (CI) the trixie image builds while
    the bookworm ones do. Errors are left for the testbed that needs the image to report."""
    import threading

    by_suite = {}
    for fl in flavours:
        by_suite.setdefault(image.suite(fl), []).append(fl)

    def build_all(fls):
        for fl in fls:
            t0 = time.monotonic()
            try:
                img = image.build(fl)
            except Exception as e:  # reported again, per testbed, when run() asks for the image
                say("image %s: not built ahead: %s" % (fl, str(e).splitlines()[0] if str(e) else e))
                return
            took = time.monotonic() - t0
            if took >= 1:   # a cached image is named once, by its testbed
                say("image %s: built %s (%.0f s)" % (fl, img.path, took))

    image.ssh_key()  # made once here: every image's hash covers its public half
    threads = [threading.Thread(target=build_all, args=(fls,), daemon=True) for fls in by_suite.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2 * image.BUILD_TIMEOUT)


def run(cells, out=sys.stdout):
    rows = []

    def say(msg):
        out.write(msg + "\n")
        out.flush()

    order = []
    for c in cells:
        if c.testbed not in order:
            order.append(c.testbed)
    flavours = []
    for bed_name in order:
        for fl in TESTBEDS[bed_name]:
            if fl not in flavours:
                flavours.append(fl)
    prebuild(flavours, say)
    for bed_name in order:
        bed_cells = [c for c in cells if c.testbed == bed_name]
        for fl in sorted(set(TESTBEDS[bed_name])):
            t0 = time.monotonic()
            img = image.build(fl)
            say("image %s: %s (%.0f s)" % (fl, img.path, time.monotonic() - t0))
        say("testbed %s: booting %s" % (bed_name, " + ".join(TESTBEDS[bed_name])))
        bed = Testbed(bed_name, TESTBEDS[bed_name])
        try:
            bed.open()
        except Exception as e:  # the lab failed: every cell of this testbed is an error, not a verdict
            say("testbed %s: boot failed: %s" % (bed_name, e))
            for c in bed_cells:
                rows.append({"cell": c.name, "result": "ERROR", "detail": "testbed did not boot: %s" % str(e).splitlines()[0]})
            continue
        try:
            say("testbed %s: up in %s s (logs: %s)" % (bed_name, ", ".join("%.1f" % s for s in bed.boot_s), bed.lab.logdir))
            for c in bed_cells:
                t0 = time.monotonic()
                try:
                    r = c.run(bed)
                    row = {"cell": c.name, "result": "PASS"}
                    row.update(r)
                except AssertionError as e:
                    row = {"cell": c.name, "result": "FAIL", "detail": (str(e).splitlines() or ["?"])[0][:160],
                           "reason": str(e)}
                except Exception as e:  # lab trouble (ssh, timeouts): reported, and the next cell still runs
                    row = {"cell": c.name, "result": "ERROR",
                           "detail": ("%s: %s" % (type(e).__name__, (str(e).splitlines() or ["?"])[0]))[:160],
                           "reason": str(e)}
                row["wall_s"] = time.monotonic() - t0
                rows.append(row)
                say("%-28s %-5s %6.1f s  %s" % (c.name, row["result"], row["wall_s"], row.get("detail", "")))
                if row.get("reason"):
                    say("    " + row["reason"].replace("\n", "\n    ")[:6000])
        finally:
            bed.close()
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m tests.interop.matrix", description=__doc__.splitlines()[0])
    p.add_argument("--cells", help="comma-separated glob patterns of cell names (default: all)")
    p.add_argument("--group", choices=("reference", "sluice", "sluice-ipsec", "kernel"), help="only lab-only reference cells, or only Sluice cells")
    p.add_argument("--json", help="also write the rows as JSON to this file")
    p.add_argument("--list", action="store_true", help="list the cells and exit")
    args = p.parse_args(argv)
    cells = select(args.cells, args.group)
    if args.list:
        for c in cells:
            print("%-28s %-10s %-9s %s" % (c.name, c.testbed, c.group, c.kwargs or ""))
        return 0
    if not cells:
        print("no cell matches", file=sys.stderr)
        return 2
    ok, why = lab.can_run_lab()
    if not ok:
        print("error: %s" % why, file=sys.stderr)
        return 2
    t0 = time.monotonic()
    rows = run(cells)
    total = time.monotonic() - t0
    print()
    print(table(rows))
    ratios = ratio_rows(rows)
    if ratios:
        print("\n" + ratio_table(ratios))
    passed = sum(1 for r in rows if r["result"] == "PASS")
    print("\n%d/%d cells passed in %.0f s (TCG guests: compare figures only with this lab's)" % (passed, len(rows), total))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "ratios": ratios, "total_s": total}, f, indent=2, sort_keys=True)
    return 0 if passed == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
