"""Engine pieces issue 11 added or fixed for the OpenWrt package: sticky pool addresses, the netifd network file's
mode, a server disconnecting one user, a netifd client stopping after a refused login, `sluice client-setup`."""

import io
import plistlib
import re

import pytest

from sluice.config import load, loads
from sluice.endpoint.pool import IpPool


def test_pool_gives_a_user_back_the_address_it_had():
    # Regression (issue 11): after a reconnect a user got the next pool address instead of the one it just had.
    pool = IpPool("10.77.0.10", "10.77.0.20")
    a = pool.allocate(owner="alice")
    b = pool.allocate(owner="bob")
    pool.release(a)
    assert pool.allocate(owner="alice") == a
    pool.release(b)
    pool.allocate(owner="carol")  # takes the next fresh address, not bob's
    assert pool.allocate(owner="bob") == b
    # a remembered address someone else holds now is not taken from them
    pool2 = IpPool("10.77.0.10", "10.77.0.11")
    x = pool2.allocate(owner="alice")
    pool2.release(x)
    pool2.allocate(owner="bob")
    pool2.allocate(owner="dave")  # wraps around onto alice's old address
    pool2.release("10.77.0.11")
    assert pool2.allocate(owner="alice") in ("10.77.0.10", "10.77.0.11") and len(pool2.in_use) == 2


def test_pool_memory_is_bounded():
    pool = IpPool("10.77.0.10", "10.77.0.13")
    for i in range(50):
        pool.release(pool.allocate(owner="user%d" % i))
    assert len(pool.last) <= 4


NETWORK = """config interface 'lan'
	option proto 'static'
	option ipaddr '192.168.1.1'

config interface 'wan'
	option proto 'pppoe'
	option username 'isp-user'
	option password 'isp-pass'

config interface 'vpn'
	option proto 'sluice'
	option server '192.0.2.1'
	option username 'alice'
	option password 'correct horse battery'
	option ipsec '0'
"""


def mode_warnings(config):
    return [w for w in config.warnings if "readable by other users" in w]


def test_no_mode_warning_for_netifd_network_file(tmp_path):
    # Regression (issue 11): the daemon warned at every start that /etc/config/network is 0644, as OpenWrt ships it.
    p = tmp_path / "network"
    p.write_text(NETWORK)
    p.chmod(0o644)
    assert mode_warnings(load(str(p), section="vpn")) == []
    # our own file with secrets still gets the warning
    s = tmp_path / "sluice"
    s.write_text("config server 'main'\n\toption ipsec '0'\nconfig user\n\toption username 'a'\n"
                 "\toption password 'correct horse battery'\n")
    s.chmod(0o644)
    assert mode_warnings(load(str(s)))


SERVER = """config server 'main'
	option psk 'Zq3xk9Pq7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY'
	option public_host 'vpn.example.net'

config user
	option username 'alice'
	option password "it's a \\"long\\" pass, ok"

config user
	option username 'off'
	option password 'correct horse battery'
	option enabled '0'
"""

# Add-VpnConnection's parameters as Microsoft documents them (VpnClient module, Add-VpnConnection, the parameter
# set with -TunnelType), written out here independently of sluice.clientsetup.WINDOWS_PARAMETERS.
DOCUMENTED = {"Name", "ServerAddress", "TunnelType", "EncryptionLevel", "AuthenticationMethod", "SplitTunneling",
              "AllUserConnection", "L2tpPsk", "RememberCredential", "UseWinlogonCredential", "EapConfigXmlStream",
              "Force", "PassThru", "ServerList", "DnsSuffix", "IdleDisconnectSeconds",
              "MachineCertificateIssuerFilter", "MachineCertificateEKUFilter", "CimSession", "ThrottleLimit",
              "AsJob", "WhatIf", "Confirm"}


def test_client_setup_windows_uses_only_documented_parameters():
    from sluice.clientsetup import setup

    cfg = loads(SERVER)
    d = setup(cfg, cfg.servers[0], "alice")
    cmd = d["windows"]["powershell"]
    assert cmd.startswith("Add-VpnConnection ")
    used = re.findall(r"(?:^| )-(\w+)", cmd.replace("'Zq3", "'"))
    assert set(used) <= DOCUMENTED
    assert "-TunnelType L2tp" in cmd and "-AuthenticationMethod MSChapv2" in cmd
    assert "-EncryptionLevel Required" in cmd and "-L2tpPsk 'Zq3xk9Pq7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY'" in cmd
    assert "AssumeUDPEncapsulationContextOnSendRule /t REG_DWORD /d 0x2" in d["windows"]["registry_nat"]


def test_client_setup_apple_profile_parses_and_has_the_l2tp_keys():
    from sluice.clientsetup import setup

    cfg = loads(SERVER)
    d = setup(cfg, cfg.servers[0], "alice")
    prof = plistlib.loads(d["apple"]["mobileconfig"].encode())
    assert prof["PayloadType"] == "Configuration" and prof["PayloadVersion"] == 1
    (vpn,) = prof["PayloadContent"]
    assert vpn["PayloadType"] == "com.apple.vpn.managed" and vpn["VPNType"] == "L2TP"
    for key in ("PayloadIdentifier", "PayloadUUID", "PayloadDisplayName", "UserDefinedName"):
        assert vpn[key]
    assert vpn["IPSec"] == {"AuthenticationMethod": "SharedSecret", "LocalIdentifierType": "KeyID",
                            "SharedSecret": b"Zq3xk9Pq7mW2qZ9xT4vB8nC3sL6dF1hJ5gP0aY"}
    assert vpn["PPP"]["AuthName"] == "alice" and vpn["PPP"]["AuthPassword"] == 'it\'s a "long" pass, ok'
    assert vpn["PPP"]["CommRemoteAddress"] == "vpn.example.net"
    assert vpn["IPv4"]["OverridePrimary"] == 1


def test_client_setup_android_and_linux():
    import shlex

    from sluice.clientsetup import setup

    cfg = loads(SERVER)
    d = setup(cfg, cfg.servers[0], "alice")
    fields = dict(d["android"]["fields"])
    assert fields["Type"] == "L2TP/IPSec PSK" and fields["Server address"] == "vpn.example.net"
    assert fields["IPSec pre-shared key"] == cfg.servers[0].psk
    argv = shlex.split(d["linux"]["nmcli"])
    assert argv[:5] == ["nmcli", "connection", "add", "type", "vpn"]
    data = argv[argv.index("vpn.data") + 1]
    assert "gateway = vpn.example.net" in data and "ipsec-enabled = yes" in data and "user = alice" in data
    assert argv[argv.index("vpn-type") + 1] == "l2tp"
    assert argv[argv.index("vpn.secrets") + 1] == 'password = it\'s a "long" pass\\, ok'


def test_client_setup_errors_name_the_problem_without_secrets(capsys, tmp_path):
    from sluice.cli import main

    conf = tmp_path / "sluice"
    conf.write_text(SERVER)
    conf.chmod(0o600)
    assert main(["client-setup", "mallory", "-c", str(conf)]) == 2
    err = capsys.readouterr().err
    assert "no user 'mallory'" in err and "Zq3x" not in err
    assert main(["client-setup", "off", "-c", str(conf)]) == 2
    assert "disabled" in capsys.readouterr().err
    conf.write_text(SERVER.replace("\toption public_host 'vpn.example.net'\n", ""))
    assert main(["client-setup", "alice", "-c", str(conf)]) == 2
    assert "public_host" in capsys.readouterr().err
    assert main(["client-setup", "alice", "-c", str(conf), "--host", "203.0.113.5", "--os", "apple"]) == 0
    assert plistlib.loads(capsys.readouterr().out.encode())["PayloadContent"][0]["PPP"]["CommRemoteAddress"] \
        == "203.0.113.5"


def test_daemon_routes_disconnect_user_to_servers_only():
    from sluice.engine.daemon import Daemon

    calls = []

    class Endpoint:
        transport = None

        def command(self, name, now, user=None, **kw):
            assert name == "disconnect"
            calls.append(user)
            return 1 if user == "alice" else 0

        def status(self):
            return {"role": "server"}

    class Log:
        recent = []

        def warning(self, *a):
            pass

    class Loop:
        errors = 0

    d = Daemon.__new__(Daemon)
    d.name, d.role, d.endpoint, d.log, d.loop = "main", "server", Endpoint(), Log(), Loop()
    assert d.handle({"cmd": "disconnect", "user": "alice"}) == {"ok": True, "disconnected": 1}
    assert d.handle({"cmd": "disconnect", "user": "bob"})["ok"] is False
    assert d.handle({"cmd": "disconnect"})["ok"] is False
    d.role = "client"
    assert d.handle({"cmd": "disconnect", "user": "alice"})["ok"] is False
    assert calls == ["alice", "bob"]
    assert isinstance(d.handle({"cmd": "status"})["status"]["time"], int)


def test_netifd_client_stops_after_refused_login():
    # In-process on the twins: the server refuses the password; with stop_on_auth_failure the client asks to
    # exit with EXIT_AUTH_FAILED and does not redial (without it, it keeps its redial policy).
    from sluice.endpoint.client import EXIT_AUTH_FAILED
    from twinpair import TwinPair

    p = TwinPair(ipsec=False, password="wrong-password-entirely", redial=1)
    try:
        p.cep.stop_on_auth_failure = True
        assert p.run(lambda: p.client.exit_code is not None, 60)
        assert p.client.exit_code == EXIT_AUTH_FAILED and p.cep.wanted is False
        assert p.run(lambda: p.cep.state == "idle", 30)
    finally:
        p.close()


def test_check_names_each_servers_device_and_section(tmp_path, capsys):
    # issue 11: `sluice check` accepted a file with two enabled servers that the old init script could not start;
    # it now says how each is started and which TUN device the firewall zone needs.
    from sluice.cli import main

    conf = tmp_path / "sluice"
    conf.write_text("config server 'main'\n\toption listen '192.0.2.8'\n\toption ipsec '0'\n"
                    "config server 'guest'\n\toption listen '192.0.2.9'\n\toption ipsec '0'\n"
                    "\toption local_ip '10.78.0.1'\n\toption pool_start '10.78.0.10'\n\toption pool_end '10.78.0.20'\n"
                    "config user\n\toption username 'bob'\n\toption password 'Tr0mbone-staple-horse'\n")
    conf.chmod(0o600)
    assert main(["check", "--config", str(conf)]) == 0
    out = capsys.readouterr().out
    assert "server 'main': enabled, TUN sls0, plain L2TP, start with --section main" in out
    assert "server 'guest': enabled, TUN sls1, plain L2TP, start with --section guest" in out
