"""The connect/disconnect hook (/lib/netifd/sluice-script) under dash with the netifd stand-ins: the
environment of the CLI contract (docs/design.md) must become one proto_send_update with address, DNS, routes.
The LAN-routing helper is replaced by a recorder (SLUICE_LANROUTE) here; it is tested in test_lanroute.py."""

from shellrun import run_sh

BASE = {
    "NETIFD_PROTO_SH": "%(stubs)s/netifd-proto.sh",
    "SLUICE_LANROUTE": "lanroute-rec",
    "INTERFACE": "vpn",
    "TUNDEV": "sluice-vpn",
}
TOOLS = {"lanroute-rec": 'printf "lanroute\\t%s\\t%s\\t%s\\t%s\\n" "$@" >> "$CALLS"\n',
         "logger": 'printf "logger\\t%s\\n" "$*" >> "$CALLS"\n'}


def env(**kw):
    from shellrun import STUBS
    e = dict(BASE, **kw)
    e["NETIFD_PROTO_SH"] = e["NETIFD_PROTO_SH"] % {"stubs": STUBS}
    return e


def test_connect(tmp_path):
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS, env=env(
        reason="connect", INTERNAL_IP4_ADDRESS="10.77.0.23", INTERNAL_IP4_PEER="10.77.0.1",
        INTERNAL_IP4_DNS="10.77.0.1 192.0.2.53", INTERNAL_IP4_MTU="1400",
        ROUTES="10.77.0.0/24 198.51.100.0/24 192.0.2.9"))
    assert r.returncode == 0, r.stderr
    assert calls == [
        ("proto_init_update", "sluice-vpn", "1"),
        ("proto_add_ipv4_address", "10.77.0.23", "32", "", "10.77.0.1"),
        ("proto_add_dns_server", "10.77.0.1"),
        ("proto_add_dns_server", "192.0.2.53"),
        ("proto_add_ipv4_route", "10.77.0.0", "24"),
        ("proto_add_ipv4_route", "198.51.100.0", "24"),
        ("proto_add_ipv4_route", "192.0.2.9", "32"),
        ("proto_send_update", "vpn"),
        ("lanroute", "/etc/config/network", "vpn", "sluice-vpn", "up"),
    ]


def test_connect_minimal(tmp_path):
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS,
                      env=env(reason="connect", INTERNAL_IP4_ADDRESS="10.77.0.23"))
    assert r.returncode == 0, r.stderr
    assert calls[:3] == [("proto_init_update", "sluice-vpn", "1"), ("proto_add_ipv4_address", "10.77.0.23", "32"),
                         ("proto_send_update", "vpn")]


def test_disconnect(tmp_path):
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS, env=env(reason="disconnect"))
    assert r.returncode == 0, r.stderr
    assert calls == [("lanroute", "/etc/config/network", "vpn", "sluice-vpn", "down"),
                     ("proto_init_update", "sluice-vpn", "0"), ("proto_send_update", "vpn")]


def test_connect_without_address_is_refused(tmp_path):
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS, env=env(reason="connect"))
    assert r.returncode == 1
    assert [c[0] for c in calls] == ["logger"]


def test_unknown_reason_and_missing_interface(tmp_path):
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS, env=env(reason="reconnect"))
    assert r.returncode == 1 and [c[0] for c in calls] == ["logger"]
    e = env(reason="connect", INTERNAL_IP4_ADDRESS="10.77.0.23")
    del e["INTERFACE"]
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS, env=e)
    assert r.returncode == 1 and "proto_send_update" not in [c[0] for c in calls]


def test_defaultroute_reports_a_default_route(tmp_path):
    """Regression (issue 11): option defaultroute '1' added no default route. netifd's defaultroute option only
    filters default routes a protocol reports (interface-ip.c: `no_defaultroute && !route->mask` is skipped);
    so with DEFAULTROUTE=1 (the daemon passes it) the hook must report 0.0.0.0/0, and without it must not."""
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS, env=env(
        reason="connect", INTERNAL_IP4_ADDRESS="10.77.0.23", DEFAULTROUTE="1", ROUTES="198.51.100.0/24"))
    assert r.returncode == 0, r.stderr
    routes = [c for c in calls if c[0] == "proto_add_ipv4_route"]
    assert routes == [("proto_add_ipv4_route", "0.0.0.0", "0"), ("proto_add_ipv4_route", "198.51.100.0", "24")]
    assert calls.index(routes[0]) < calls.index(("proto_send_update", "vpn"))
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS, env=env(
        reason="connect", INTERNAL_IP4_ADDRESS="10.77.0.23", DEFAULTROUTE="0"))
    assert not [c for c in calls if c[0] == "proto_add_ipv4_route"]


def test_daemon_passes_defaultroute_to_the_hook():
    """The other half of the contract: the client's hook environment carries DEFAULTROUTE from the interface's
    option defaultroute (read by the real config model from netifd's section)."""
    from sluice.config import loads
    from sluice.endpoint.client import ClientEndpoint
    from sluice.l2tp.tunnel import TunnelConfig

    cfg = loads("config interface 'vpn'\n\toption proto 'sluice'\n\toption server '192.0.2.1'\n"
                "\toption username 'alice'\n\toption password 'correct horse battery'\n\toption ipsec '0'\n"
                "\toption defaultroute '1'\n", name="network")
    c = ClientEndpoint(cfg.clients[0], lambda n: bytes(n), TunnelConfig())
    assert c._hook_env("connect")["DEFAULTROUTE"] == "1"
    assert c._hook_env("connect")["TUNDEV"] == cfg.clients[0].ifname


def test_connect_with_ipv6(tmp_path):
    # The second `connect`, once the RA gave the client its address (issue 12 part 1).
    r, calls = run_sh(tmp_path, "sh \"$FILES/sluice-script\"", bin_tools=TOOLS, env=env(
        reason="connect", INTERNAL_IP4_ADDRESS="10.77.0.23", INTERNAL_IP6_ADDRESS="2001:db8:77:1:a:b:c:d",
        INTERNAL_IP6_NETMASK="2001:db8:77:1:a:b:c:d/64", INTERNAL_IP6_DNS="2001:db8::53",
        ROUTES6="2001:db8:100::/48 ::/0"))
    assert r.returncode == 0, r.stderr
    assert calls == [
        ("proto_init_update", "sluice-vpn", "1"),
        ("proto_add_ipv4_address", "10.77.0.23", "32"),
        ("proto_add_ipv6_address", "2001:db8:77:1:a:b:c:d", "64"),
        ("proto_add_dns_server", "2001:db8::53"),
        ("proto_add_ipv6_route", "2001:db8:100::", "48"),
        ("proto_add_ipv6_route", "::", "0"),
        ("proto_send_update", "vpn"),
        ("lanroute", "/etc/config/network", "vpn", "sluice-vpn", "up"),
    ]
