"""Static checks of the package metadata: menu and ACL JSON parse and carry the keys LuCI/rpcd read, every
ubus method a view declares is granted by the ACL and offered by the rpcd plugin, every view the menu names
exists, and the package Makefile installs every file it ships, with the dependencies issue 5 asks for."""

import json
import re
from pathlib import Path

from shellrun import FILES, STUBS, run_sh

OPENWRT = Path(__file__).resolve().parents[2] / "openwrt"
APP = OPENWRT / "luci-app-sluice"
VIEWDIR = APP / "htdocs/luci-static/resources/view"


def declared_methods():
    out = set()
    for js in VIEWDIR.glob("sluice/*.js"):
        for obj, method in re.findall(r"object:\s*'(\w+)',\s*method:\s*'(\w+)'", js.read_text()):
            out.add((obj, method))
    return out


def test_menu():
    menu = json.loads((APP / "root/usr/share/luci/menu.d/luci-app-sluice.json").read_text())
    assert "admin/vpn/sluice" in menu
    for path, node in menu.items():
        assert path.startswith("admin/vpn/sluice") and node["title"] and node["action"]["type"] in ("view", "alias")
        if node["action"]["type"] == "view":
            assert (VIEWDIR / (node["action"]["path"] + ".js")).is_file(), path
        else:
            assert node["action"]["path"] in menu
    assert menu["admin/vpn/sluice"]["depends"]["acl"] == ["luci-app-sluice"]


def test_luci_acl_covers_views(tmp_path):
    acl = json.loads((APP / "root/usr/share/rpcd/acl.d/luci-app-sluice.json").read_text())
    grant = acl["luci-app-sluice"]
    assert grant["description"]
    read = {("sluice", m) for m in grant["read"]["ubus"]["sluice"]}
    write = {("sluice", m) for m in grant["write"]["ubus"]["sluice"]}
    assert read == {("sluice", "status")} and write == {("sluice", "connect"), ("sluice", "disconnect"),
                                                     ("sluice", "client_setup")}
    assert declared_methods() == read | write
    assert grant["read"]["uci"] == ["sluice"] and grant["write"]["uci"] == ["sluice"]
    # every granted method exists in the rpcd plugin
    r, _ = run_sh(tmp_path, 'sh "$FILES/sluice.rpcd" list', env={"JSHN_SH": str(STUBS / "jshn.sh")})
    assert {("sluice", m) for m in json.loads(r.stdout)} == read | write


def test_makefile_installs_every_file():
    mk = (OPENWRT / "sluice/Makefile").read_text()
    for f in FILES.iterdir():
        assert "./files/" + f.name in mk, f.name
    deps = re.search(r"\n\s+DEPENDS:=((?:.*\\\n)*.*)", mk).group(1).replace("\\\n", " ").split()
    assert {"+kmod-tun", "+python3-light", "+python3-cryptography"} <= set(deps)
    # datapath 'auto' (the default) finds the kernel path only with these: ESP (esp4, xfrm_user), GCM, l2tp_ppp
    # (which pulls kmod-l2tp and kmod-ppp)
    assert {"+kmod-ipsec4", "+kmod-crypto-gcm", "+kmod-pppol2tp"} <= set(deps)
    assert "python3-package.mk" in mk and "$(call Py3Package,sluice)" in mk
    assert re.search(r"define Package/sluice/conffiles\n/etc/config/sluice\nendef", mk)
    assert "/lib/netifd/proto/sluice.sh" in mk and "/usr/libexec/rpcd/sluice" in mk
    for sub in ("luci-app-sluice", "luci-proto-sluice"):
        assert "include ../../luci.mk" in (OPENWRT / sub / "Makefile").read_text()


def test_nft_include_never_opens_l2tp():
    text = (FILES / "sluice-input-wan.nft").read_text()
    rules = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
    assert rules[0].startswith("udp dport { 500, 4500 } ")
    assert not any("1701" in r for r in rules)


UCI_DEFAULTS_RUN = '''
uci() { printf 'uci\\t%s\\n' "$*" >> "$CALLS"; if [ "$1 $2" = "-q batch" ]; then cat >> "$CALLS.batch"; fi;
        case "$*" in "-q get sluice.globals.fw_added") [ -n "$FW_ADDED" ] && echo 1 ;; "-q get sluice.globals") echo globals ;; esac; return 0; }
. "$STUBS/functions.sh"
. "$FILES/sluice.uci-defaults"
'''


def test_uci_defaults_adds_zone_once(tmp_path):
    from shellrun import uci_fixture
    (tmp_path / "network.sh").write_text(uci_fixture(
        "config interface 'lan'\n\toption proto 'static'\nconfig interface 'vpn'\n\toption proto 'sluice'\n"
        "config interface 'office'\n\toption proto 'sluice'\n"))
    (tmp_path / "firewall.sh").write_text(uci_fixture("config zone\n\toption name 'lan'\nconfig zone\n\toption name 'wan'\n"))
    # functions.sh is sourced by the script with an absolute path: serve the stand-in in its place
    script = UCI_DEFAULTS_RUN.replace('. "$FILES/sluice.uci-defaults"',
                                      'sed "s#^. /lib/functions.sh#. \\"\\$STUBS/functions.sh\\"#" '
                                      '"$FILES/sluice.uci-defaults" > "$UCI_FIXTURES/ud.sh"; . "$UCI_FIXTURES/ud.sh"')
    r, calls = run_sh(tmp_path, script)
    assert r.returncode == 0, r.stderr
    batch = (tmp_path / "calls.log.batch").read_text()
    for line in ("set firewall.@zone[-1].name='vpn'", "set firewall.@zone[-1].masq='1'",
                 "set firewall.@zone[-1].mtu_fix='1'", "set firewall.@forwarding[-1].src='lan'",
                 "set firewall.@forwarding[-1].dest='vpn'"):
        assert line in batch
    ucis = [c[1] for c in calls if c[0] == "uci"]
    assert "-q add_list firewall.@zone[-1].network=vpn" in ucis
    assert "-q add_list firewall.@zone[-1].network=office" in ucis
    assert ucis[-2:] == ["-q set sluice.globals.fw_added=1", "-q commit sluice"]
    # second run (marker set): nothing touched
    r, calls = run_sh(tmp_path, script, env={"FW_ADDED": "1"})
    assert r.returncode == 0 and [c[1] for c in calls if c[0] == "uci"] == ["-q get sluice.globals.fw_added"]
    # a user-made zone named vpn is left alone, the marker is still set
    (tmp_path / "firewall.sh").write_text(uci_fixture("config zone\n\toption name 'vpn'\n"))
    r, calls = run_sh(tmp_path, script)
    ucis = [c[1] for c in calls if c[0] == "uci"]
    assert not any("firewall" in u for u in ucis[1:]) and "-q set sluice.globals.fw_added=1" in ucis


def test_nft_include_parses_inside_fw4_chain(tmp_path):
    """fw4 pastes chain-pre/input_wan/*.nft into `chain input_wan` of `table inet fw4`; nft -c checks the result."""
    import shutil
    import subprocess

    import pytest
    nft = shutil.which("nft")
    if nft is None:
        pytest.skip("nft not installed")
    body = (FILES / "sluice-input-wan.nft").read_text()
    f = tmp_path / "fw4.nft"
    f.write_text("table inet fw4 {\n\tchain input_wan {\n%s\n\t}\n}\n" % body)
    r = subprocess.run([nft, "-c", "-f", str(f)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr


def test_the_launcher_runs_the_daemon_commands_without_re_or_enum(tmp_path):
    # /usr/sbin/sluice is our launcher (the wheel's generated script imports `re`, and with it `enum`, for the
    # daemon's whole life). It runs the CLI; a daemon command (here one whose config is missing) imports neither.
    # The package laid out as installed (firmware/ -> sluice, hal/ -> sluice/hal), no site: nothing else imports.
    import shutil
    import subprocess
    import sys

    root = OPENWRT.parent
    shutil.copytree(root / "firmware", tmp_path / "sluice")
    shutil.copytree(root / "hal", tmp_path / "sluice" / "hal")
    launcher = FILES / "sluice.launcher"
    mk = (OPENWRT / "sluice/Makefile").read_text()
    assert "$(INSTALL_BIN) ./files/sluice.launcher $(1)/usr/sbin/sluice" in mk
    assert launcher.read_text().startswith("#!/usr/bin/python3\n")
    code = ("import sys; sys.argv = [%r, 'server', '--config', %r]\n"
            "try:\n    exec(compile(open(sys.argv[0]).read(), sys.argv[0], 'exec'), {'__name__': '__main__'})\n"
            "except SystemExit as e:\n    print('exit', e.code, 're' in sys.modules, 'enum' in sys.modules)\n"
            ) % (str(launcher), str(tmp_path / "missing.conf"))
    r = subprocess.run([sys.executable, "-S", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=60, env={"PYTHONPATH": str(tmp_path)})
    assert "missing.conf" in r.stderr and r.stdout.strip() == "exit 2 False False", (r.stdout, r.stderr)
