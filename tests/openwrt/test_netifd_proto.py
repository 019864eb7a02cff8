"""The netifd protocol handler (/lib/netifd/proto/sluice.sh) under dash, with netifd's library replaced by the
recording stand-ins in stubs/ (see shellrun.py). Checked against the openconnect model in openwrt.md:
declared options, host dependency on the resolved server, the supervised command line, idempotent teardown."""

from shellrun import run_sh

LOAD = '. "$STUBS/functions.sh"; . "$STUBS/netifd-proto.sh"; INCLUDE_ONLY=1; . "$FILES/sluice.proto"; '
RESOLVE = {"resolveip": 'echo "resolveip $*" >> "$CALLS.resolve"; [ -n "$RESOLVED" ] && printf "%s\\n" $RESOLVED\n',
           "sleep": "exit 0\n"}



def test_init_config(tmp_path):
    r, calls = run_sh(tmp_path, LOAD + 'proto_sluice_init_config; echo "$available $no_device"')
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "1"]
    declared = {c[1]: c[0] for c in calls}
    for name in ("server", "username", "password", "psk", "cert", "key", "ca", "server_name", "ifname"):
        assert declared[name] == "proto_config_add_string", name
    for name in ("ipsec", "legacy", "defaultroute", "peerdns", "route_lan", "killswitch"):
        assert declared[name] == "proto_config_add_boolean", name
    for name in ("ike", "esp", "routes", "route_src"):
        assert declared[name] == "proto_config_add_array", name
    assert declared["mtu"] == "proto_config_add_int"


def test_setup_runs_daemon_with_host_dependency(tmp_path):
    r, calls = run_sh(tmp_path, LOAD + "proto_sluice_setup vpn",
                      env={"OPT_server": "vpn.example.com", "RESOLVED": "203.0.113.7 203.0.113.8"},
                      bin_tools=RESOLVE)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "calls.log.resolve").read_text().split() == ["resolveip", "-4", "-t", "10", "vpn.example.com"]
    assert calls == [
        ("proto_add_host_dependency", "vpn", "203.0.113.7"),
        ("proto_export", "INTERFACE=vpn"),
        ("proto_export", "SLUICE_IFNAME=sluice-vpn"),
        ("proto_run_command", "vpn", "/usr/sbin/sluice", "client", "--config", "/etc/config/network",
         "--section", "vpn", "--hook", "/lib/netifd/sluice-script", "--name", "vpn", "--netifd"),
    ]


def test_setup_device_name_truncated_to_15(tmp_path):
    r, calls = run_sh(tmp_path, LOAD + "proto_sluice_setup office_tunnel_2",
                      env={"OPT_server": "198.51.100.1", "RESOLVED": "198.51.100.1"}, bin_tools=RESOLVE)
    assert r.returncode == 0, r.stderr
    assert ("proto_export", "SLUICE_IFNAME=sluice-office_t") in calls
    assert len("sluice-office_t") == 15


def test_setup_ifname_option_wins(tmp_path):
    r, calls = run_sh(tmp_path, LOAD + "proto_sluice_setup vpn",
                      env={"OPT_server": "198.51.100.1", "OPT_ifname": "sluice-work", "RESOLVED": "198.51.100.1"},
                      bin_tools=RESOLVE)
    assert ("proto_export", "SLUICE_IFNAME=sluice-work") in calls


def test_setup_without_server_blocks_restart(tmp_path):
    r, calls = run_sh(tmp_path, LOAD + "proto_sluice_setup vpn; echo rc=$?", bin_tools=RESOLVE)
    assert "rc=1" in r.stdout
    assert calls == [("proto_notify_error", "vpn", "NO_SERVER"), ("proto_block_restart", "vpn")]


def test_setup_unresolvable_server_fails_without_running(tmp_path):
    r, calls = run_sh(tmp_path, LOAD + "proto_sluice_setup vpn; echo rc=$?",
                      env={"OPT_server": "nowhere.invalid"}, bin_tools=RESOLVE)
    assert "rc=1" in r.stdout
    names = [c[0] for c in calls]
    assert "proto_run_command" not in names and "proto_add_host_dependency" not in names
    assert ("proto_notify_error", "vpn", "RESOLVE_FAILED") in calls
    assert ("proto_setup_failed", "vpn") in calls


def test_kill_switch_is_armed_before_the_first_dial(tmp_path):
    """Regression (issue 13 item 10): the kill switch was loaded by the hook on the first successful connect, so a
    router booting while the server was unreachable forwarded its LAN in the clear. The handler arms it first,
    even when the server cannot be resolved yet."""
    tools = dict(RESOLVE, lanroute='echo "lanroute $*" >> "$CALLS.lanroute"\n')
    r, calls = run_sh(tmp_path, LOAD + "SLUICE_LANROUTE=lanroute; proto_sluice_setup vpn; echo rc=$?",
                      env={"OPT_server": "vpn.example.com", "OPT_killswitch": "1", "RESOLVED": ""}, bin_tools=tools)
    assert "rc=1" in r.stdout  # not resolvable: setup fails ...
    armed = (tmp_path / "calls.log.lanroute").read_text().split()
    assert armed == ["lanroute", "/etc/config/network", "vpn", "sluice-vpn", "arm"]  # ... but armed first
    r, calls = run_sh(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path,
                      LOAD + "SLUICE_LANROUTE=lanroute; proto_sluice_setup vpn",
                      env={"OPT_server": "vpn.example.com", "RESOLVED": "203.0.113.7"}, bin_tools=tools)
    assert not (tmp_path / "x" / "calls.log.lanroute").exists()  # no kill switch configured: nothing armed


def test_teardown_kills_command_idempotently(tmp_path):
    r, calls = run_sh(tmp_path, LOAD + "proto_sluice_teardown vpn; proto_sluice_teardown vpn")
    assert r.returncode == 0
    assert calls == [("proto_kill_command", "vpn", "15")] * 2


def test_auth_failure_is_reported_the_way_netifd_expects(tmp_path):
    """Regression (issue 11): a wrong password left the interface "pending" while the daemon redialled. netifd's
    rule (proto-ext.c): when the command ends, teardown runs with ERROR=<its exit status>; proto_notify_error
    puts an error in `ifstatus`, proto_block_restart clears autostart so netifd does not start it again. The
    daemon under --netifd exits with EXIT_AUTH_FAILED after a refused login (tests/unit: client stops)."""
    from sluice.endpoint.client import EXIT_AUTH_FAILED

    r, calls = run_sh(tmp_path, LOAD + "proto_sluice_teardown vpn", env={"ERROR": str(EXIT_AUTH_FAILED)})
    assert r.returncode == 0, r.stderr
    assert calls == [("proto_notify_error", "vpn", "AUTH_FAILED"), ("proto_block_restart", "vpn"),
                     ("proto_kill_command", "vpn", "15")]
    # any other end (a crash, a config error, killed by netifd) is left to netifd's restart
    for err in ("", "1", "2", "143"):
        r, calls = run_sh(tmp_path, LOAD + "proto_sluice_teardown vpn", env={"ERROR": err})
        assert calls == [("proto_kill_command", "vpn", "15")], err


def test_handler_has_no_bashisms():
    # dash -n parses with the POSIX grammar; checkbashisms is not assumed installed.
    import subprocess
    from shellrun import FILES, SH
    for name in ("sluice.proto", "sluice-script", "sluice.init", "sluice.uci-defaults", "sluice.rpcd"):
        r = subprocess.run([SH, "-n", str(FILES / name)], capture_output=True, text=True)
        assert r.returncode == 0, (name, r.stderr)


def test_shellcheck():
    """shellcheck (an independent linter) at warning level, minus what OpenWrt's idioms trip: sourcing files
    it cannot see (SC1090/SC1091), variables netifd/rc.common read after sourcing (SC2034) or set in the
    environment (SC2154), and `local`, which busybox ash and dash have (SC3043)."""
    import shutil
    import subprocess

    import pytest
    from shellrun import FILES
    sc = shutil.which("shellcheck")
    if sc is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    names = ("sluice.proto", "sluice-script", "sluice.init", "sluice.uci-defaults", "sluice.rpcd")
    r = subprocess.run([sc, "-s", "sh", "-S", "warning", "-e", "SC1090,SC1091,SC2034,SC2154,SC3043"]
                       + [str(FILES / n) for n in names], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout
