"""The rpcd exec plugin (/usr/libexec/rpcd/sluice) under dash with a fake `sluice` CLI on PATH and the jshn
stand-in (stubs/jshn.sh): `list` signatures, `call status|connect|disconnect` mapped to the CLI contract,
names validated, failures turned into JSON errors. Its ACL is checked against the methods `list` reports."""

import json

from shellrun import FILES, STUBS, run_sh

FAKE = {"sluice": 'printf "%s\\n" "$*" >> "$CALLS.cli"\n'
                  'case "$1" in\n'
                  'status) [ -n "$FAIL" ] && exit 1; [ "$2" = --json ] && { echo "[]"; exit 0; }; '
                  'echo \'{"name": "vpn", "role": "client", "tunnels": [], '
                  '"counters": {}, "last_error": ""}\' ;;\n'
                  '*) [ -n "$FAIL" ] && { echo "no daemon named vpn" >&2; exit 1; } ;;\n'
                  'esac\nexit 0\n'}


def call(tmp_path, args, stdin="", **env):
    e = {"JSHN_SH": str(STUBS / "jshn.sh")}
    e.update(env)
    r, _ = run_sh(tmp_path, 'sh "$FILES/sluice.rpcd" ' + args, env=e, stdin=stdin, bin_tools=FAKE)
    assert r.returncode == 0, r.stderr
    cli = tmp_path / "calls.log.cli"
    lines = cli.read_text().splitlines() if cli.exists() else []
    if cli.exists():
        cli.unlink()
    return json.loads(r.stdout), lines


def test_list(tmp_path):
    sig, cli = call(tmp_path, "list")
    assert sig == {"status": {"name": "str"}, "connect": {"name": "str"},
                   "disconnect": {"name": "str", "user": "str"}, "client_setup": {"name": "str", "user": "str"}}
    assert cli == []


def test_status(tmp_path):
    out, cli = call(tmp_path, "call status", '{"name": "vpn"}')
    assert out["role"] == "client" and out["name"] == "vpn"
    assert cli == ["status --name vpn --json"]
    out, cli = call(tmp_path, "call status", "{}")
    assert cli == ["status --json"] and out == {"daemons": []}


def test_status_not_running(tmp_path):
    out, cli = call(tmp_path, "call status", '{"name": "vpn"}', FAIL="1")
    assert out == {"error": "sluice is not running: vpn"}


def test_connect_disconnect(tmp_path):
    for m in ("connect", "disconnect"):
        out, cli = call(tmp_path, "call " + m, '{"name": "vpn"}')
        assert out == {"ok": True} and cli == ["%s --name vpn" % m]
        out, cli = call(tmp_path, "call " + m, '{"name": "vpn"}', FAIL="1")
        assert out == {"ok": False, "error": "no daemon named vpn"}


def test_bad_name_never_reaches_cli(tmp_path):
    for bad in ("vpn; reboot", "../x", "-h", "a b"):
        out, cli = call(tmp_path, "call connect", json.dumps({"name": bad}))
        assert out == {"error": "invalid name"} and cli == []


def test_disconnect_user_and_client_setup(tmp_path):
    out, cli = call(tmp_path, "call disconnect", json.dumps({"name": "main", "user": "-alice"}))
    assert out == {"ok": True} and cli == ["disconnect --name main --user=-alice"]
    out, cli = call(tmp_path, "call connect", json.dumps({"name": "main", "user": "alice"}))
    assert out == {"error": "connect takes no user"} and cli == []
    for bad in ("", "a\nb", "x" * 65):
        out, cli = call(tmp_path, "call disconnect", json.dumps({"name": "main", "user": bad})) if bad else \
            (None, [])
        if bad:
            assert out == {"error": "invalid user"} and cli == []
    out, cli = call(tmp_path, "call client_setup", json.dumps({"user": "bob"}))
    assert cli == ["client-setup --json --config /etc/config/sluice -- bob"]


def test_unknown_method(tmp_path):
    out, cli = call(tmp_path, "call reboot", "{}")
    assert out == {"error": "unknown method"} and cli == []


def test_acl_matches_plugin_methods(tmp_path):
    sig, _ = call(tmp_path, "list")
    acl = json.loads((FILES / "sluice.acl.json").read_text())
    read = acl["sluice-read"]["read"]["ubus"]["sluice"]
    write = acl["sluice-write"]["write"]["ubus"]["sluice"]
    assert read == ["status"] and sorted(write) == ["client_setup", "connect", "disconnect"]
    assert set(read) | set(write) == set(sig)
    assert "write" not in acl["sluice-read"]
