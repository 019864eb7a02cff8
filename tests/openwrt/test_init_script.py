"""The procd init script (/etc/init.d/sluice) under dash with procd's and functions.sh's stand-ins (stubs/):
one supervised instance per enabled `config server`, respawn, output to syslog, reload trigger. The UCI state
the stand-in config_load provides is produced from UCI text by sluice's own UCI parser."""

from shellrun import run_sh, uci_fixture

LOAD = '. "$STUBS/functions.sh"; . "$STUBS/procd.sh"; . "$FILES/sluice.init"; '

UCI = """
config globals 'globals'
	option log_level 'info'

config server 'main'
	option psk 'x'

config server 'office'
	option enabled '0'

config server 'guest'
	option enabled '1'

config user
	option username 'alice'
"""


def instance(name):
    return [
        ("procd_open_instance", name),
        ("procd_set_param", "command", "/usr/sbin/sluice", "server", "--config", "/etc/config/sluice", "--name", name),
        ("procd_set_param", "respawn", "3600", "5", "5"),
        ("procd_set_param", "stdout", "1"),
        ("procd_set_param", "stderr", "1"),
        ("procd_set_param", "file", "/etc/config/sluice"),
        ("procd_close_instance",),
    ]


def test_one_instance_per_enabled_server(tmp_path):
    (tmp_path / "sluice.sh").write_text(uci_fixture(UCI))
    r, calls = run_sh(tmp_path, LOAD + "start_service")
    assert r.returncode == 0, r.stderr
    assert calls == [("config_load", "sluice")] + instance("main") + instance("guest")


def test_shipped_default_config_starts_nothing(tmp_path):
    from shellrun import FILES
    (tmp_path / "sluice.sh").write_text(uci_fixture((FILES / "sluice.config").read_text()))
    r, calls = run_sh(tmp_path, LOAD + "start_service")
    assert r.returncode == 0, r.stderr
    assert calls == [("config_load", "sluice")]


def test_reload_trigger_and_rc_common_header(tmp_path):
    from shellrun import FILES
    r, calls = run_sh(tmp_path, LOAD + 'service_triggers; echo "$USE_PROCD $START"')
    assert calls == [("procd_add_reload_trigger", "sluice")]
    assert r.stdout.split() == ["1", "90"]
    assert (FILES / "sluice.init").read_text().startswith("#!/bin/sh /etc/rc.common\n")
