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
	option password 'correct horse battery'
"""


# What makes UCI above a configuration the daemon accepts (a key, a password, non-overlapping pools); the
# sections and their enabled flags are unchanged.
RUNNABLE = """
config server 'main'
	option psk 'Zq3xk9Pq7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY'

config server 'office'
	option ipsec '0'
	option port '1702'
	option local_ip '10.79.0.1'
	option pool_start '10.79.0.10'
	option pool_end '10.79.0.20'

config server 'guest'
	option ipsec '0'
	option port '1703'
	option local_ip '10.78.0.1'
	option pool_start '10.78.0.10'
	option pool_end '10.78.0.20'

config user
	option username 'bob'
	option password 'Tr0mbone-staple-horse'
"""


def instance(name):
    return [
        ("procd_open_instance", name),
        ("procd_set_param", "command", "/usr/sbin/sluice", "server", "--config", "/etc/config/sluice",
         "--section", name, "--name", name),
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


def test_each_instance_command_starts_its_own_server(tmp_path):
    """Regression (issue 11): with servers 'main' and 'guest' both enabled, real procd showed both instances
    exiting with status 2 ("several server sections ... choose one with --section"). Here every instance's
    command line, as procd would exec it, goes through the real CLI's argument parser and section choice
    (sluice.cli: build_parser, _load, _pick) against the same UCI text; each must pick its own section."""
    from sluice.cli import _load, _pick, build_parser

    (tmp_path / "sluice.sh").write_text(uci_fixture(UCI))
    r, calls = run_sh(tmp_path, LOAD + "start_service")
    commands = [c[2:] for c in calls if c[:2] == ("procd_set_param", "command")]
    assert len(commands) == 2
    conf = tmp_path / "sluice"
    conf.write_text(UCI + RUNNABLE)
    conf.chmod(0o600)
    picked = []
    for argv in commands:
        assert argv[0] == "/usr/sbin/sluice"
        args = build_parser().parse_args([a if a != "/etc/config/sluice" else str(conf) for a in argv[1:]])
        assert args.func.__name__ == "cmd_server"
        section = _pick(_load(args.config).servers, args.section, "server", args.config)
        picked.append((section.name, args.name))
    assert picked == [("main", "main"), ("guest", "guest")]
