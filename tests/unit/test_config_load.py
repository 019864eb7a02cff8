"""load() from files: permissions, encodings, file checks; genpsk() and check_psk()."""

import base64
import os
import random

import pytest

from sluice.config import ConfigError, UciSyntaxError, check_psk, genpsk, load
from sluice.config.model import genpsk as model_genpsk

CONF = """
config server 'main'
    option ipsec '0'
    option tunnel_secret 'l2tp-tunnel-secret'
config user
    option username 'alice'
    option password 'correct horse'
"""


def write(tmp_path, text, mode=0o600, name="sluice.conf"):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    os.chmod(str(p), mode)
    return str(p)


def perm_warnings(config):
    return [w for w in config.warnings if "readable by other users" in w]


def test_private_file_no_warning(tmp_path):
    c = load(write(tmp_path, CONF, 0o600))
    assert perm_warnings(c) == []
    assert c.servers[0].tunnel_secret == "l2tp-tunnel-secret"


def test_world_readable_file_with_secrets_warns(tmp_path):
    path = write(tmp_path, CONF, 0o644)
    c = load(path)
    assert perm_warnings(c) == [
        "%s: holds passwords or keys but is readable by other users (mode 0644); run chmod 600 %s" % (path, path)]
    assert "correct horse" not in str(c.warnings)


def test_readable_file_without_secrets_is_fine(tmp_path):
    c = load(write(tmp_path, "config globals\n option log_level debug\n", 0o644))
    assert perm_warnings(c) == []


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load(str(tmp_path / "nope.conf"))
    assert ei.value.errors == ["%s: cannot read the configuration: No such file or directory" % (
        tmp_path / "nope.conf")]


def test_not_utf8(tmp_path):
    path = write(tmp_path, b"config user\n option username '\xff'\n")
    with pytest.raises(UciSyntaxError) as ei:
        load(path)
    assert (ei.value.line, ei.value.filename) == (2, path)
    assert "not valid UTF-8" in ei.value.message


def test_syntax_error_names_the_path(tmp_path):
    path = write(tmp_path, "config server 'main'\n\tbogus line\n")
    with pytest.raises(UciSyntaxError) as ei:
        load(path)
    assert str(ei.value).startswith("%s:2: invalid command 'bogus'" % path)


def test_cert_files_checked_on_load(tmp_path):
    cert = tmp_path / "server.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    text = ("config server 'main'\n option cert '%s'\n option key '%s'\n"
            "config user\n option username a\n option password b\n" % (cert, tmp_path / "server.key"))
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load(path)
    assert ei.value.errors == ["%s: server 'main': option key '%s': no such file" % (path, tmp_path / "server.key")]
    (tmp_path / "server.key").write_text("-----BEGIN PRIVATE KEY-----\n")
    assert load(path).servers[0].key == str(tmp_path / "server.key")


def test_load_section(tmp_path):
    path = write(tmp_path, CONF + "config server 'other'\n option ipsec 0\n option ifname x1\n"
                 " option pool_start 10.78.0.10\n option pool_end 10.78.0.20\n option port 1702\n")
    assert [s.name for s in load(path).servers] == ["main", "other"]
    assert [s.name for s in load(path, section="other").servers] == ["other"]


# -- pre-shared keys -------------------------------------------------------------------------------------------

class SeededRng:
    def __init__(self, seed):
        self.r = random.Random(seed)

    def __call__(self, n):
        return bytes(self.r.getrandbits(8) for _ in range(n))


def test_genpsk_is_base64url_of_32_random_bytes():
    for seed in range(50):
        raw = SeededRng(seed)(32)
        key = genpsk(SeededRng(seed))
        assert len(key) == 43
        assert set(key) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        assert not key.startswith("-")
        # Independent decoding (stdlib base64), undoing the rotation that keeps '-' off the front.
        for rot in range(43):
            cand = key[-rot:] + key[:-rot] if rot else key
            if base64.urlsafe_b64decode(cand + "=") == raw:
                break
        else:
            raise AssertionError("key does not decode to the random bytes")
        assert check_psk(key) is None
    assert model_genpsk is genpsk
    assert genpsk() != genpsk()  # os.urandom by default


def test_genpsk_keeps_dash_off_the_front():
    # 0xf8 0xf8 0xf8 encodes as "-Pj4" under base64url: the leading - is rotated away.
    key = genpsk(lambda n: bytes([0xF8] * n))
    assert not key.startswith("-") and len(key) == 43


def test_check_psk():
    assert check_psk("Vq3h0zL8-w2sXr_7NcYe5tBk") is None
    assert check_psk("correct horse battery staple") is None
    assert check_psk("") == "it is empty"
    assert check_psk("vpn") == "it is a well-known example key"
    assert check_psk("SECRET") == "it is a well-known example key"
    assert check_psk("Tr0ub4dor&3") == "it is shorter than 16 characters"
    assert check_psk("abababababababababab") == "it uses fewer than 8 different characters"
    assert check_psk("abcdefgh12abcdefgh12") == "it repeats a short pattern"
    for weak in ("secret", "password", "vpn", "0123456789abcdef", "x" * 40):
        reason = check_psk(weak)
        assert reason and weak not in reason
