"""Runs the package's shell scripts under dash (a POSIX /bin/sh close to busybox ash) against the stand-ins in
stubs/, and reads back the calls they recorded. What is a stand-in: functions.sh, netifd-proto.sh, procd.sh
and jshn.sh replace OpenWrt's libraries; everything else (the scripts under openwrt/sluice/files) is real."""

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
STUBS = HERE / "stubs"
FILES = HERE.parent.parent / "openwrt" / "sluice" / "files"
SH = shutil.which("dash") or "/bin/sh"


def uci_fixture(text):
    """Shell assignments that OpenWrt's config_load would leave for UCI `text` (CONFIG_<sec>_<opt>)."""
    from sluice.config.uci import parse

    lines = ['CONFIG_SECTIONS=""']
    n = 0
    for sec in parse(text):
        name = sec.name
        if name is None:
            name = "cfg%02x" % n
            n += 1
        lines.append('CONFIG_SECTIONS="$CONFIG_SECTIONS %s"' % name)
        lines.append("CONFIG_%s_TYPE='%s'" % (name, sec.type))
        for opt, val in sec.options.items():
            if isinstance(val, list):
                val = " ".join(val)
            lines.append("CONFIG_%s_%s='%s'" % (name, opt, val.replace("'", "'\\''")))
    return "\n".join(lines) + "\n"


def run_sh(tmp_path, script, env=None, stdin=None, bin_tools=None):
    """Runs `script` (shell text) with the stubs; returns (CompletedProcess, [recorded call tuples])."""
    calls = tmp_path / "calls.log"
    calls.write_text("")
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    for name, body in (bin_tools or {}).items():
        p = bindir / name
        p.write_text("#!/bin/sh\n" + body)
        p.chmod(0o755)
    e = {
        "PATH": "%s:/usr/bin:/bin" % bindir,
        "CALLS": str(calls),
        "STUBS": str(STUBS),
        "FILES": str(FILES),
        "UCI_FIXTURES": str(tmp_path),
        "LC_ALL": "C",
    }
    e.update(env or {})
    r = subprocess.run([SH, "-c", script], env=e, input=stdin, capture_output=True, text=True, timeout=20)
    recorded = [tuple(line.split("\t")) for line in calls.read_text().splitlines()]
    return r, recorded
