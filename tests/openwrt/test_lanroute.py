"""sluice.hal.platform.lanroute: policy routing commands and the kill-switch ruleset rendered from a client's
UCI options. The independent checks: nftables itself parses the ruleset (`nft -c -f`, check mode, nothing is
loaded), and iproute2 runs the rendered commands inside a network namespace this test creates, where the
resulting `ip rule`/`ip route` state is read back from the kernel."""

import shutil
import subprocess
import uuid

import pytest

from sluice.hal.platform.lanroute import (LanRouteError, ip_commands, main, plan, render_nft, tun_ifname)

NFT = shutil.which("nft")


def nft_check(text, tmp_path):
    f = tmp_path / "ks.nft"
    f.write_text(text)
    return subprocess.run([NFT, "-c", "-f", str(f)], capture_output=True, text=True, timeout=20)


def test_tun_ifname():
    assert tun_ifname("vpn") == "sluice-vpn"
    assert tun_ifname("office_tunnel_2") == "sluice-office_t"


def test_plan_sources():
    p = plan("vpn", {"route_lan": "1", "route_src": ["192.168.2.0/24", "192.168.1.7", "192.168.1.0/24"]},
             ["192.168.1.1/24"])
    assert [str(n) for n in p.sources] == ["192.168.1.0/24", "192.168.2.0/24", "192.168.1.7/32"]
    assert p.table == 1701 and not p.killswitch


@pytest.mark.parametrize("opts, lan, needle", [
    ({"route_lan": "1"}, [], "route_lan"),
    ({"route_src": ["192.168.1.0/33"]}, [], "route_src"),
    ({"route_src": ["lan"]}, [], "route_src"),
    ({"killswitch": "1"}, [], "killswitch"),
    ({"killswitch": "maybe", "route_src": ["10.0.0.0/8"]}, [], "killswitch"),
    ({"route_src": ["10.0.0.0/8"], "route_table": "254"}, [], "route_table"),
    ({"route_src": ["10.0.0.0/8"], "route_table": "x"}, [], "route_table"),
])
def test_plan_errors_name_the_option(opts, lan, needle):
    with pytest.raises(LanRouteError) as e:
        plan("vpn", opts, lan)
    assert needle in str(e.value)


def test_ip_commands_up_down():
    p = plan("vpn", {"route_src": ["192.168.1.0/24"], "route_table": "100"})
    up = [" ".join(c) for c in ip_commands(p, "sluice-vpn", "up")]
    assert up == [
        "ip -4 rule del from 192.168.1.0/24 lookup main suppress_prefixlength 0 priority 100",
        "ip -4 rule del from 192.168.1.0/24 lookup 100 priority 101",
        "ip -4 route flush table 100",
        "ip -4 route replace default dev sluice-vpn table 100",
        "ip -4 rule add from 192.168.1.0/24 lookup main suppress_prefixlength 0 priority 100",
        "ip -4 rule add from 192.168.1.0/24 lookup 100 priority 101",
    ]
    assert [" ".join(c) for c in ip_commands(p, "sluice-vpn", "down")] == up[:3]
    with pytest.raises(LanRouteError):
        ip_commands(p, "sluice-vpn; reboot", "up")


def test_nothing_configured_is_harmless():
    p = plan("vpn", {})
    assert [c[3] for c in ip_commands(p, "sluice-vpn", "up")] == ["flush"]
    assert render_nft(p, "sluice-vpn") == "table inet sluice_ks_vpn {}\ndelete table inet sluice_ks_vpn\n"


@pytest.mark.skipif(NFT is None, reason="nft not installed (apt nftables)")
def test_killswitch_ruleset_passes_nft_check(tmp_path):
    p = plan("vpn", {"route_lan": "1", "route_src": ["192.168.2.0/24", "192.168.2.9"], "killswitch": "1"},
             ["192.168.1.1/24"])
    text = render_nft(p, "sluice-vpn")
    assert 'ip saddr @sources oifname "sluice-vpn" accept' in text
    assert "192.168.1.0/24, 192.168.2.0/24, 192.168.2.9/32" in text
    r = nft_check(text, tmp_path)
    if r.returncode != 0 and "Operation not permitted" in r.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert r.returncode == 0, r.stderr
    # and the check is able to fail: a broken rule is refused
    assert nft_check(text.replace("oifname", "oifnam"), tmp_path).returncode != 0
    off = render_nft(plan("vpn", {"route_src": ["192.168.2.0/24"]}), "sluice-vpn")
    assert nft_check(off, tmp_path).returncode == 0


@pytest.fixture
def netns():
    if not shutil.which("ip"):
        pytest.skip("iproute2 missing")
    name = "sluicet-" + uuid.uuid4().hex[:8]
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot create a network namespace: " + r.stderr.strip())
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_ip_commands_in_namespace(netns):
    def sh(*cmd, check=True):
        return subprocess.run(["ip", "netns", "exec", netns] + list(cmd), capture_output=True, text=True,
                              check=check, timeout=20)

    # a persistent TUN device of the daemon's name (the rules only need its name and link state)
    sh("ip", "tuntap", "add", "dev", "sluice-vpn", "mode", "tun")
    sh("ip", "link", "set", "sluice-vpn", "up")
    p = plan("vpn", {"route_src": ["192.0.2.0/24", "198.51.100.7"], "route_table": "1701", "killswitch": "1"})
    for _ in range(2):  # twice: 'up' must be idempotent
        for c in ip_commands(p, "sluice-vpn", "up"):
            sh(*c, check=(c[3] not in ("del", "flush")))
    rules = sh("ip", "-4", "rule", "show").stdout
    assert "from 192.0.2.0/24 lookup main suppress_prefixlength 0" in rules
    assert rules.count("from 192.0.2.0/24 lookup 1701") == 1
    assert rules.count("from 198.51.100.7 lookup 1701") == 1
    assert "default dev sluice-vpn" in sh("ip", "-4", "route", "show", "table", "1701").stdout
    # a packet from a chosen source to the Internet is routed into the tunnel; the router's own is not
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "addr", "add", "192.0.2.10/24", "dev", "lo")
    sh("ip", "addr", "add", "203.0.113.1/32", "dev", "lo")
    assert "dev sluice-vpn" in sh("ip", "-4", "route", "get", "198.51.100.77", "from", "192.0.2.10").stdout
    # a source not chosen finds no way into the tunnel (no default route in main here: unreachable)
    other = sh("ip", "-4", "route", "get", "198.51.100.77", "from", "203.0.113.1", check=False)
    assert "sluice-vpn" not in other.stdout
    for c in ip_commands(p, "sluice-vpn", "down"):
        sh(*c, check=(c[3] not in ("del", "flush")))
    assert "1701" not in sh("ip", "-4", "rule", "show").stdout
    if NFT:
        r = subprocess.run(["ip", "netns", "exec", netns, NFT, "-f", "-"], input=render_nft(p, "sluice-vpn"),
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        listed = sh(NFT, "list", "table", "inet", "sluice_ks_vpn").stdout
        assert "192.0.2.0/24" in listed and "hook forward" in listed


def test_main_prints_from_uci(tmp_path, capsys):
    cfg = tmp_path / "network"
    cfg.write_text("config interface 'vpn'\n\toption proto 'sluice'\n\tlist route_src '192.0.2.0/24'\n"
                   "\toption killswitch '1'\n")
    assert main([str(cfg), "vpn", "sluice-vpn", "up", "--print"]) == 0
    assert "ip -4 rule add from 192.0.2.0/24 lookup 1701 priority 1702" in capsys.readouterr().out
    assert main([str(cfg), "vpn", "sluice-vpn", "nft"]) == 0
    assert "table inet sluice_ks_vpn {\n" in capsys.readouterr().out
    assert main([str(cfg), "nope", "sluice-vpn", "nft"]) == 2


def test_arm_loads_only_the_kill_switch():
    from sluice.hal.platform import lanroute as L

    ran = []
    p = L.plan("vpn", {"killswitch": "1", "route_src": ["192.168.1.0/24"]}, [])
    L.apply(p, "sluice-vpn", "arm", run=lambda cmd, **kw: ran.append((cmd, kw.get("input", ""))))
    assert [c for c, _ in ran] == [["nft", "-f", "-"]] and "sluice-vpn" in ran[0][1]
    ran.clear()
    L.apply(L.plan("vpn", {"route_src": ["192.168.1.0/24"]}, []), "sluice-vpn", "arm", run=lambda c, **k: ran.append(c))
    assert ran == []
