"""The hook and the proto handler with netifd's own shell library (scripts/netifd-proto.sh and utils.sh from an
openwrt/netifd checkout) and libubox's real jshn, under busybox ash (OpenWrt's /bin/sh), when they are at hand:
$SLUICE_NETIFD_SRC (a netifd checkout), $SLUICE_JSHN_SH (libubox's sh/jshn.sh, with its `jshn` program on
PATH). What netifd receives is the JSON of each `ubus call network.interface notify_proto` (a recording `ubus`).
Skipped otherwise; test_hook_script.py and test_netifd_proto.py check the same calls with stand-ins.

netifd's side of these messages (proto-ext.c, interface-ip.c): action 0 carries the update (a route with
netmask 0 is a default route, dropped only when the interface has defaultroute '0'); action 3 adds the strings
of `error` to the interface's errors; action 4 clears autostart (no restart); action 2 kills the command.
"""

import json
import os
import shutil
import subprocess

import pytest

from shellrun import FILES

NETIFD = os.environ.get("SLUICE_NETIFD_SRC")
JSHN_SH = os.environ.get("SLUICE_JSHN_SH")
BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(not (NETIFD and JSHN_SH and BUSYBOX and shutil.which("jshn")),
                                reason="needs SLUICE_NETIFD_SRC, SLUICE_JSHN_SH, jshn on PATH and busybox")


@pytest.fixture
def netifd_lib(tmp_path):
    lib = tmp_path / "netifd"
    lib.mkdir()
    text = open(os.path.join(NETIFD, "scripts", "netifd-proto.sh")).read()
    # it sources /usr/share/libubox/jshn.sh by absolute path: point it at the given one
    text = text.replace("/usr/share/libubox/jshn.sh", JSHN_SH).replace("/usr/local/share/libubox/jshn.sh", JSHN_SH)
    (lib / "netifd-proto.sh").write_text(text)
    shutil.copy(os.path.join(NETIFD, "scripts", "utils.sh"), lib / "utils.sh")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ubus").write_text('#!/bin/sh\nprintf "%s\\n" "$4" >> "$UBUS_LOG"\n')
    (bindir / "ubus").chmod(0o755)
    (bindir / "logger").write_text("#!/bin/sh\nexit 0\n")
    (bindir / "logger").chmod(0o755)
    return lib, bindir


def run(netifd_lib, tmp_path, script, env):
    lib, bindir = netifd_lib
    log = tmp_path / "ubus.log"
    log.write_text("")
    e = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]), NETIFD_MAIN_DIR=str(lib),
             NETIFD_PROTO_SH=str(lib / "netifd-proto.sh"), UBUS_LOG=str(log), SLUICE_LANROUTE="true")
    e.update(env)
    r = subprocess.run([BUSYBOX, "sh", "-c", script], env=e, capture_output=True, text=True, timeout=30)
    return r, [json.loads(line) for line in log.read_text().splitlines()]


def test_hook_default_route_reaches_netifd(netifd_lib, tmp_path):
    r, msgs = run(netifd_lib, tmp_path, '. "%s"' % (FILES / "sluice-script"), {
        "reason": "connect", "INTERFACE": "vpn", "TUNDEV": "sluice-vpn", "INTERNAL_IP4_ADDRESS": "10.77.0.23",
        "INTERNAL_IP4_PEER": "10.77.0.1", "INTERNAL_IP4_DNS": "10.77.0.1", "ROUTES": "198.51.100.0/24",
        "DEFAULTROUTE": "1"})
    assert r.returncode == 0, r.stderr
    (m,) = msgs
    assert m["action"] == 0 and m["interface"] == "vpn" and m["ifname"] == "sluice-vpn" and m["link-up"] is True
    assert m["ipaddr"] == [{"ipaddr": "10.77.0.23", "mask": "32", "ptp": "10.77.0.1"}]
    assert {"target": "0.0.0.0", "netmask": "0"}.items() <= m["routes"][0].items()
    assert {"target": "198.51.100.0", "netmask": "24"}.items() <= m["routes"][1].items()
    assert m["dns"] == ["10.77.0.1"]


def test_teardown_after_refused_login_reaches_netifd(netifd_lib, tmp_path):
    lib, _ = netifd_lib
    script = 'INCLUDE_ONLY=1; . "%s/netifd-proto.sh"; . "%s"; proto_sluice_teardown vpn' % (lib, FILES / "sluice.proto")
    r, msgs = run(netifd_lib, tmp_path, script, {"ERROR": "3"})
    assert r.returncode == 0, r.stderr
    assert [m["action"] for m in msgs] == [3, 4, 2]
    assert msgs[0]["error"] == ["AUTH_FAILED"] and msgs[2]["signal"] == 15
    assert all(m["interface"] == "vpn" for m in msgs)
