"""tests/core under real MicroPython 1.27 (the WebAssembly port in node), through tests/micropython/run.mjs.

The first test is the one that matters: every `tests/core/test_*.py` must pass under MicroPython as it does
under CPython. The others hold run.mjs itself to account on a throwaway tree, so that "0 failed" from it means
something: a failing assert, a failed import, a stuck test and a heap overrun must each come out as FAIL.

Needs node and the npm package (`make setup`, i.e. `cd tests/micropython && npm ci`); missing either is a
failure, not a skip. Deselect with `-m "not micropython"`.
"""

import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.micropython

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RUNNER = HERE / "run.mjs"
PACKAGE = HERE / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$")


def _node():
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: install nodejs (apt-get install nodejs npm), then run `make setup`")
    if not PACKAGE.exists():
        pytest.fail("%s is missing: run `make setup` (cd tests/micropython && npm ci)" % PACKAGE.relative_to(ROOT))
    return node


def _run(*args, root=None, timeout=240):
    """Run run.mjs; return (exit status, stdout lines, {'passed','failed','skipped'})."""
    cmd = [_node(), str(RUNNER)] + (["--root", str(root)] if root else []) + list(args)
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.splitlines()
    print(proc.stdout)
    print(proc.stderr)
    m = SUMMARY.match(lines[-1]) if lines else None
    assert m, "run.mjs printed no summary line (exit %d):\n%s\n%s" % (proc.returncode, proc.stdout, proc.stderr)
    counts = {"passed": int(m.group(1)), "failed": int(m.group(2)), "skipped": int(m.group(3) or 0)}
    return proc.returncode, lines, counts


def _failures(lines):
    """The FAIL lines with their indented tracebacks."""
    out, keep = [], False
    for line in lines:
        if line.startswith(("PASS ", "SKIP ")):
            keep = False
        elif line.startswith("FAIL "):
            keep = True
        elif not line.startswith("    "):
            keep = False
        if keep:
            out.append(line)
    return "\n".join(out)


def test_core_tests_pass_under_micropython():
    code, lines, counts = _run("--timeout", "180", "--test-timeout", "20")
    assert counts["failed"] == 0 and code == 0, "under MicroPython 1.27 (exit %d, %s):\n%s" % (
        code, lines[-1], _failures(lines))
    assert counts["passed"] >= 1, "no test ran under MicroPython: tests/core has no test_*.py that ran"


# ---- run.mjs on a throwaway tree: it must see what goes wrong.

def _tree(tmp_path, tests):
    """A minimal repository: a sluice package with one codec module, and tests/core/<name>.py per entry."""
    (tmp_path / "firmware" / "l2tp").mkdir(parents=True)
    (tmp_path / "hal").mkdir()
    (tmp_path / "tests" / "core").mkdir(parents=True)
    (tmp_path / "firmware" / "__init__.py").write_text('"""sluice"""\n')
    (tmp_path / "firmware" / "l2tp" / "__init__.py").write_text("")
    (tmp_path / "firmware" / "l2tp" / "codec.py").write_text("import struct\n\ndef u16(b):\n    return struct.unpack('>H', b)[0]\n")
    (tmp_path / "hal" / "__init__.py").write_text("")
    (tmp_path / "hal" / "crypto.py").write_text("NAME = 'hal'\n")
    # Not Python: must not be copied (and must not break the copy).
    (tmp_path / "firmware" / "README.txt").write_text("not python\n")
    for name, src in tests.items():
        (tmp_path / "tests" / "core" / (name + ".py")).write_text(textwrap.dedent(src))
    return tmp_path


def test_runner_counts_pass_fail_skip_and_import_errors(tmp_path):
    root = _tree(tmp_path, {
        "helper": """
            class SkipTest(Exception):
                pass
        """,
        "test_mixed": """
            import sys
            from sluice.l2tp import codec
            from sluice.hal import crypto
            import helper

            def test_package_layout():
                assert codec.u16(b"\\x01\\x02") == 258
                assert crypto.NAME == "hal"
                assert sys.implementation.name == "micropython"

            def test_wrong():
                assert codec.u16(b"\\x00\\x01") == 2, "deliberately wrong"

            def test_skipped():
                raise helper.SkipTest("not here")

            def not_a_test():
                raise AssertionError("must not run")
        """,
        "test_missing_module": """
            import dataclasses

            def test_never_runs():
                pass
        """,
        "test_skipped_module": """
            MICROPYTHON_SKIP = "needs hypothesis"
            import hypothesis

            def test_one():
                pass

            def test_two():
                pass
        """,
    })
    code, lines, counts = _run(root=root)
    assert code == 1
    assert counts == {"passed": 1, "failed": 2, "skipped": 3}
    assert "PASS test_mixed.test_package_layout" in lines
    assert "FAIL test_mixed.test_wrong: AssertionError: deliberately wrong" in lines
    assert "SKIP test_mixed.test_skipped: not here" in lines
    assert "SKIP test_skipped_module.test_two: needs hypothesis" in lines
    assert any(line.startswith("FAIL test_missing_module (import): ImportError") for line in lines)
    # Tracebacks point at repository paths, not at the virtual filesystem.
    assert '      File "tests/core/test_mixed.py", line 13, in test_wrong' in lines

    code, lines, counts = _run("test_mixed.test_package_layout", root=root)
    assert (code, counts) == (0, {"passed": 1, "failed": 0, "skipped": 0})


def test_runner_stops_a_stuck_test_and_runs_the_rest(tmp_path):
    root = _tree(tmp_path, {
        "test_stuck": """
            def test_forever():
                while True:
                    pass

            def test_after():
                pass
        """,
    })
    code, lines, counts = _run("--test-timeout", "1", root=root, timeout=60)
    assert code == 1
    assert counts == {"passed": 1, "failed": 1, "skipped": 0}
    assert lines[0].startswith("FAIL test_stuck.test_forever: test timeout")
    assert "PASS test_stuck.test_after" in lines


def test_runner_heap_limit_fails_what_stays_live_not_garbage(tmp_path):
    root = _tree(tmp_path, {
        "test_heap": """
            KEEP = []

            def test_churn():
                # 4 MB allocated in 100 kB pieces, none kept: a router's collector reclaims it.
                for _ in range(40):
                    block = bytearray(100000)
                assert len(block) == 100000

            def test_retain():
                KEEP.append(bytearray(3 * 1024 * 1024))

            def test_after_retain():
                assert len(KEEP) == 1
        """,
    })
    code, lines, counts = _run("--heap", "2M", root=root)
    assert code == 1
    assert counts == {"passed": 2, "failed": 1, "skipped": 0}
    assert "PASS test_heap.test_churn" in lines
    assert any(line.startswith("FAIL test_heap.test_retain: over --heap 2097152") for line in lines)
    assert "PASS test_heap.test_after_retain" in lines  # the one that crossed the limit is blamed, once
    heap = [line for line in lines if line.startswith("heap (--heap 2097152)")]
    assert heap and "(test_heap.test_retain)" in heap[0], lines
    # Without the limit the same tests pass: the failure above is the limit, not the test.
    code, lines, counts = _run(root=root)
    assert (code, counts["passed"]) == (0, 3)


def _lint_examples():
    """EXAMPLES from tests/unit/test_mpy_subset.py (tests/ is not a package: load it by path)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_mpy_subset", ROOT / "tests" / "unit" / "test_mpy_subset.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.EXAMPLES


def test_lint_examples_fail_under_micropython(tmp_path):
    """Each lint rule is grounded: its offending example fails (raises, or its assert sees the wrong result)
    under MicroPython 1.27 and its portable spelling passes there."""
    body = [
        "def _fails(src):",
        "    try:",
        "        exec(src, {'__name__': 'example'})",
        "    except Exception as e:",
        "        return",
        "    raise AssertionError('ran without error under MicroPython')",
        "",
    ]
    expect = {}
    for i, (rule, bad, good, mp_fails) in enumerate(_lint_examples()):
        rule_id = rule.replace("-", "_")
        if mp_fails:
            name = "test_bad_%d_%s" % (i, rule_id)
            body += ["def %s():" % name, "    _fails(%r)" % bad, ""]
            expect[name] = "PASS"
        if good is not None and "sluice" not in good:
            name = "test_good_%d_%s" % (i, rule_id)
            body += ["def %s():" % name, "    exec(%r, {'__name__': 'example'})" % good, ""]
            expect[name] = "PASS"
    root = _tree(tmp_path, {"test_lint_examples": "\n".join(body) + "\n"})
    code, lines, counts = _run(root=root)
    results = {}
    for line in lines:
        for kind in ("PASS", "FAIL"):
            if line.startswith(kind + " test_lint_examples."):
                results[line.split()[1].split(".")[1].rstrip(":")] = kind
    wrong = sorted(n for n in expect if results.get(n) != "PASS")
    assert not wrong, "not as the lint claims under MicroPython:\n%s\n%s" % ("\n".join(wrong), _failures(lines))
    assert code == 0 and counts["passed"] == len(expect) >= 60
