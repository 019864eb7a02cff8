"""The command line as a user meets it: exit codes, error wording, no secrets in output."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sluice(*args, env_extra=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "sluice"] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, timeout=60)


def write(tmp_path, text, mode=0o600):
    p = tmp_path / "sluice.conf"
    p.write_text(text)
    os.chmod(p, mode)
    return str(p)


GOOD = """
config server 'main'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    option ipsec '0'
config user
    option username 'alice'
    option password 'hunter2-but-longer'
"""


def test_check_accepts_a_good_file(tmp_path):
    p = sluice("check", "--config", write(tmp_path, GOOD))
    assert p.returncode == 0, p.stderr
    assert "1 server(s), 0 client(s), 1 user(s): OK" in p.stdout


def test_bad_value_names_section_option_value_and_what_is_allowed(tmp_path):
    bad = GOOD.replace("option pool_end '10.77.0.250'", "option pool_end '10.77.0.5'")
    for cmd in ("check", "server"):
        p = sluice(cmd, "--config", write(tmp_path, bad))
        assert p.returncode == 2
        assert "server 'main'" in p.stderr and "pool_end '10.77.0.5'" in p.stderr
        assert "pool_start" in p.stderr


def test_syntax_error_gives_the_line(tmp_path):
    p = sluice("check", "--config", write(tmp_path, "config server 'main'\n    option 'unterminated\n"))
    assert p.returncode == 2
    assert ":2" in p.stderr or "line 2" in p.stderr


def test_secrets_never_printed(tmp_path):
    bad = GOOD.replace("option ipsec '0'", "option ipsec '1'\n    option psk 'Zq9xK'")
    p = sluice("check", "--config", write(tmp_path, bad))
    assert p.returncode == 2
    assert "Zq9xK" not in p.stdout + p.stderr
    assert "psk" in p.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    p = sluice("check", "--config", str(tmp_path / "nope.conf"))
    assert p.returncode == 2
    assert "nope.conf" in p.stderr and "Traceback" not in p.stderr


def test_genpsk_prints_a_key_check_accepts(tmp_path):
    p = sluice("genpsk")
    key = p.stdout.strip()
    assert p.returncode == 0 and len(key) >= 32
    conf = GOOD.replace("option ipsec '0'", "option ipsec '1'\n    option psk '%s'" % key)
    assert sluice("check", "--config", write(tmp_path, conf)).returncode == 0


def test_status_without_daemons(tmp_path):
    env = {"SLUICE_RUNDIR": str(tmp_path)}
    p = sluice("status", env_extra=env)
    assert p.returncode == 0 and "no sluice daemon is running" in p.stdout
    p = sluice("status", "--json", env_extra=env)
    assert json.loads(p.stdout) == []
    p = sluice("status", "--name", "ghost", env_extra=env)
    assert p.returncode == 1 and "not running" in p.stdout


def test_several_clients_need_a_section(tmp_path):
    conf = """
config client 'a'
    option server '192.0.2.1'
    option username 'u'
    option password 'p'
    option ipsec '0'
config client 'b'
    option server '192.0.2.2'
    option username 'u'
    option password 'p'
    option ipsec '0'
"""
    p = sluice("client", "--config", write(tmp_path, conf))
    assert p.returncode == 2 and "--section" in p.stderr
    p = sluice("client", "--config", write(tmp_path, conf), "--section", "c")
    assert p.returncode == 2 and "no client section named 'c'" in p.stderr
