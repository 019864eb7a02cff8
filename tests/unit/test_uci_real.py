"""The UCI parser against the real `uci` program (openwrt/uci built from its public sources), when one is at hand:
`uci` on PATH or the path in $SLUICE_REAL_UCI. For every input, uci's `export` and ours must agree: both refuse
the text, or both read the same sections and write the same text. Skipped without a real uci; the cases that
bit us are pinned without it in test_uci_parser.py.

To build one (no install needed): clone openwrt/uci and openwrt/libubox side by side, then in uci/
`echo > uci_config.h; gcc -std=gnu99 -DUCI_PREFIX='"/usr"' -I. -I<dir holding libubox/> -o uci cli.c libuci.c
file.c util.c delta.c parse.c ../libubox/blob.c ../libubox/blobmsg.c`.
"""

import os
import shutil
import subprocess
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sluice.config.errors import UciSyntaxError
from sluice.config.uci import export, parse

UCI = os.environ.get("SLUICE_REAL_UCI") or shutil.which("uci")
pytestmark = pytest.mark.skipif(not UCI, reason="no real uci (set SLUICE_REAL_UCI or put uci on PATH)")


def real_export(text):
    """uci's export of `text` as /etc/config/x, or None when uci refuses it."""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "x"), "wb") as f:
            f.write(text.encode())
        r = subprocess.run([UCI, "-c", d, "export", "x"], capture_output=True, timeout=10)
    return r.stdout.decode() if r.returncode == 0 else None


def ours(text):
    try:
        return "package x\n" + export(parse(text))
    except UciSyntaxError:
        return None


CASES = [
    "config t 'n'\n\toption a b; option c d\n\toption e 'f'; option g h\n",
    "config t 'n'; option a 'b'; list c d ; option e f;option g h\n",
    "config t\n\toption a\fb\n", "config t\n\toption\fa b\n", "config t\n\toption a b\v\n", "config\vt\n",
    "\fconfig t\n", "config t\n;option a b\n", "config t\noption a 'b';;option c d\n",
    "config t\noption a b\\\n\tc\n", "config t\noption a \\\n'v'\n", "config 'a;b'\n", "config a'\\''b\n",
    "config t\noption a 'x'#c\n", "config t ; option a b\n", "config t\noption a b ; option c d\n",
    "config t\noption a \"x\\;\";option b c\n", "config t\noption a x\\y;option b c\n", "config",
    "config t\noption a 'one\ntwo';option b c\n", "config t\r\noption a b\r\n",
]


@pytest.mark.parametrize("text", CASES)
def test_cases_agree_with_uci(text):
    assert ours(text) == real_export(text)


PIECES = st.sampled_from(["config", "option", "list", "package", "c", "o", " ", "\t", "\n", "\r\n", "\f", "\v",
                          "'", '"', "\\", "#", ";", "a", "b_1", "-", "t", "x y", "é"])


@settings(max_examples=int(os.environ.get("SLUICE_UCI_EXAMPLES", "300")), deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PIECES, max_size=30).map("".join))
def test_random_text_agrees_with_uci(text):
    assert ours(text) == real_export(text)
