"""The validated model: each check, with the exact message the user sees."""

import pytest

from sluice.config import ConfigError, loads
from sluice.config.model import ClientConfig, ServerConfig

# The example from the configuration contract (docs: the option list), with a strong psk and ipsec on.
PSK = "Vq3h0zL8-w2sXr_7NcYe5tBk"
EXAMPLE = """
config server 'main'
    option enabled '1'
    option listen '0.0.0.0'        # address to listen on
    option port '1701'
    option local_ip '10.77.0.1'    # the server's PPP address
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    list dns '10.77.0.1'
    list auth 'mschapv2'
    option ipsec '1'
    option ifname 'sls0'
    option mtu '1400'
    option hello_interval '60'
    option max_sessions '64'
    option tunnel_secret ''
    option psk '%(psk)s' ; option legacy '0'
    list ike 'aes256-sha1-modp2048'
    list esp 'aes256-sha1'
    option allow_weak_psk '0'
    option lcp_echo_interval '30' ; option lcp_echo_failure '4'
    option ipv6 '0'

config user
    option username 'alice'
    option password 'correct horse'
    option ip '10.77.0.20'

config client 'office'
    option enabled '1'
    option server '198.51.100.1'
    option port '1701'
    option username 'alice'
    option password 'correct horse'
    list auth 'mschapv2'
    option ipsec '1'
    option psk '%(psk)s'
    option defaultroute '0'
    list routes '10.77.0.0/24'
    option ifname 'slc0'
    option mtu '1400'
    option peerdns '1'
    option redial '1' ; option redial_delay '10s'
""" % {"psk": PSK}

PLAIN_SERVER = """
config server 'main'
    option ipsec '0'
%s
config user
    option username 'alice'
    option password 'pw'
"""


def errors_of(text, name="sluice.conf"):
    with pytest.raises(ConfigError) as ei:
        loads(text, name)
    assert str(ei.value) == "\n".join(ei.value.errors)
    return ei.value.errors


def server_errors(lines):
    return errors_of(PLAIN_SERVER % lines)


def server_with(lines):
    return loads(PLAIN_SERVER % lines, "sluice.conf")


def test_full_example_loads():
    c = loads(EXAMPLE, "sluice.conf")
    (s,) = c.servers
    assert isinstance(s, ServerConfig)
    assert (s.name, s.enabled, s.listen, s.port, s.local_ip, s.pool_start, s.pool_end) == (
        "main", True, "0.0.0.0", 1701, "10.77.0.1", "10.77.0.10", "10.77.0.250")
    assert (s.dns, s.auth, s.ipsec, s.ifname, s.mtu, s.hello_interval, s.max_sessions) == (
        ["10.77.0.1"], ["mschapv2"], True, "sls0", 1400, 60, 64)
    assert (s.tunnel_secret, s.psk, s.legacy, s.ike, s.esp, s.allow_weak_psk) == (
        None, PSK, False, ["aes256-sha1-modp2048"], ["aes256-sha1"], False)
    assert (s.lcp_echo_interval, s.lcp_echo_failure, s.ipv6) == (30, 4, False)
    (u,) = c.users
    assert (u.username, u.password, u.ip, u.ref) == ("alice", "correct horse", "10.77.0.20", "@user[0]")
    (cl,) = c.clients
    assert isinstance(cl, ClientConfig)
    assert (cl.name, cl.server, cl.port, cl.username, cl.password, cl.auth, cl.ipsec, cl.psk) == (
        "office", "198.51.100.1", 1701, "alice", "correct horse", ["mschapv2"], True, PSK)
    assert (cl.defaultroute, cl.routes, cl.ifname, cl.mtu, cl.peerdns, cl.redial, cl.redial_delay) == (
        False, ["10.77.0.0/24"], "slc0", 1400, True, True, 10)
    assert c.warnings == []
    assert c.globals.log_level == "info"


def test_defaults():
    c = server_with("")
    s = c.servers[0]
    assert (s.listen, s.port, s.auth, s.ifname, s.mtu, s.hello_interval, s.max_sessions, s.dns) == (
        "0.0.0.0", 1701, ["mschapv2", "chap"], "sls0", 1400, 60, 64, [])
    c = loads("config client\n option server vpn.example.com\n option username u\n option password p\n"
              " option ipsec 0\n")
    cl = c.clients[0]
    assert (cl.name, cl.ref, cl.auth, cl.ifname, cl.port, cl.peerdns, cl.redial, cl.redial_delay) == (
        None, "@client[0]", ["mschapv2", "chap", "pap"], "slc0", 1701, True, True, 10)


def test_spec_message_for_pool_end_below_start():
    errs = server_errors("    option pool_start '10.77.0.10'\n    option pool_end '10.77.0.5'\n")
    assert errs == ["sluice.conf: server 'main': option pool_end '10.77.0.5': must not be below pool_start "
                    "'10.77.0.10'"]


@pytest.mark.parametrize("value,message", [
    ("10.77.0.300", "must be an IPv4 address: four numbers from 0 to 255 like 192.0.2.1"),
    ("10.77.0", "must be an IPv4 address: four numbers from 0 to 255 like 192.0.2.1"),
    ("10.77.0.1 ", "must be an IPv4 address: four numbers from 0 to 255 like 192.0.2.1"),
    ("10.077.0.1", "is ambiguous: a number with a leading zero may be read as octal; write it without leading "
                   "zeros"),
    ("127.0.0.1", "must be a unicast IPv4 address (not 0.x.x.x, 127.x.x.x, multicast or broadcast)"),
    ("224.0.0.1", "must be a unicast IPv4 address (not 0.x.x.x, 127.x.x.x, multicast or broadcast)"),
])
def test_ipv4_syntax(value, message):
    errs = server_errors("    option local_ip '%s'\n" % value)
    assert errs == ["sluice.conf: server 'main': option local_ip '%s': %s" % (value, message)]


def test_list_element_errors_name_the_list():
    errs = server_errors("    list dns '10.77.0.1'\n    list dns '1.2.3'\n")
    assert errs == ["sluice.conf: server 'main': list dns '1.2.3': must be an IPv4 address: four numbers from 0 "
                    "to 255 like 192.0.2.1"]


def test_list_may_be_space_separated_option():
    assert server_with("    option dns '192.0.2.53 198.51.100.53'\n").servers[0].dns == [
        "192.0.2.53", "198.51.100.53"]


def test_single_option_given_as_list():
    errs = server_errors("    list port '1701'\n")
    assert errs == ["sluice.conf: server 'main': list port '1701': must be given once, as option port, not as a "
                    "list"]


@pytest.mark.parametrize("route,message", [
    ("10.77.0.5/24", "has host bits set: did you mean 10.77.0.0/24?"),
    ("10.77.0.0/33", "must be an IPv4 prefix like 192.0.2.0/24 (prefix length 0 to 32)"),
    ("10.77.0/24", "must be an IPv4 prefix like 192.0.2.0/24"),
])
def test_cidr_routes(route, message):
    text = ("config client 'c'\n option server 192.0.2.1\n option username u\n option password p\n"
            " option ipsec 0\n list routes '%s'\n" % route)
    assert errors_of(text) == ["sluice.conf: client 'c': list routes '%s': %s" % (route, message)]


def test_routes_normalised():
    text = ("config client 'c'\n option server 192.0.2.1\n option username u\n option password p\n"
            " option ipsec 0\n list routes 203.0.113.7\n list routes 0.0.0.0/0\n")
    assert loads(text).clients[0].routes == ["203.0.113.7/32", "0.0.0.0/0"]


def test_local_ip_inside_pool_is_said():
    c = server_with("    option local_ip '10.77.0.20'\n")
    assert ("sluice.conf: server 'main': option local_ip '10.77.0.20': is inside the pool 10.77.0.10-10.77.0.250; "
            "it will not be handed out to clients") in c.warnings
    assert c.servers[0].max_sessions == 64


def test_pool_too_large():
    errs = server_errors("    option pool_start '10.0.0.1'\n    option pool_end '10.2.0.0'\n")
    assert errs == ["sluice.conf: server 'main': option pool_end '10.2.0.0': makes a pool of 131072 addresses from "
                    "pool_start '10.0.0.1'; at most 65536 are allowed"]


def test_pool_size_against_max_sessions():
    errs = server_errors("    option pool_start '10.77.0.10'\n    option pool_end '10.77.0.19'\n"
                         "    option max_sessions '64'\n")
    assert errs == ["sluice.conf: server 'main': option max_sessions '64': is more than the 10 addresses clients can "
                    "get (pool_start '10.77.0.10' to pool_end '10.77.0.19'): widen the pool or lower max_sessions"]
    # Without an explicit max_sessions the default shrinks to the pool.
    c = server_with("    option pool_start '10.77.0.10'\n    option pool_end '10.77.0.19'\n")
    assert c.servers[0].max_sessions == 10


def test_duplicate_usernames_and_static_ips():
    text = PLAIN_SERVER % "" + """
config user 'bob'
    option username 'bob'
    option password 'pw'
    option ip '10.77.1.5'
config user
    option username 'alice'
    option password 'pw2'
    option ip '10.77.1.5'
config user
    option username 'carol'
    option password 'pw3'
    option ip '10.77.0.1'
"""
    assert errors_of(text) == [
        "sluice.conf: @user[2]: option username 'alice': is a duplicate: @user[0] has the same username",
        "sluice.conf: @user[2]: option ip '10.77.1.5': is a duplicate: user 'bob' has the same static address",
        "sluice.conf: @user[3]: option ip '10.77.0.1': is the local_ip of server 'main'; choose another address",
    ]


def test_user_required_options():
    assert errors_of(PLAIN_SERVER % "" + "config user\n option ip 10.77.1.1\n") == [
        "sluice.conf: @user[1]: option username is required",
        "sluice.conf: @user[1]: option password is required",
    ]


def test_static_addresses_count_towards_capacity():
    # The engine reserves users' static addresses in the pool; they still carry sessions of their own.
    users = "".join("config user\n option username u%d\n option password pw-long-enough\n option ip 10.77.0.%d\n"
                    % (i, 10 + i)
                    for i in range(3))
    conf = ("config server 'main'\n option ipsec 0\n option pool_start 10.77.0.10\n option pool_end 10.77.0.14\n"
            "%s" + users)
    assert loads(conf % "").servers[0].max_sessions == 5  # 2 pool addresses left + 3 static
    assert loads(conf % "", "sluice.conf").warnings[1:] == []
    assert errors_of(conf % " option max_sessions 6\n") == [
        "sluice.conf: server 'main': option max_sessions '6': is more than the 5 addresses clients can get "
        "(pool_start '10.77.0.10' to pool_end '10.77.0.14', with static addresses): widen the pool or lower "
        "max_sessions"]
    full = conf.replace("10.77.0.14", "10.77.0.12") % ""
    assert errors_of(full) == [
        "sluice.conf: server 'main': option pool_end '10.77.0.12': leaves no pool address for clients: every "
        "address from pool_start '10.77.0.10' is local_ip or a user's static address"]


@pytest.mark.parametrize("word,value", [
    ("1", True), ("0", False), ("yes", True), ("no", False), ("on", True), ("off", False), ("true", True),
    ("false", False), ("TRUE", True), ("Off", False),
])
def test_booleans(word, value):
    assert server_with("    option ipv6 '%s'\n    option ip6prefix '2001:db8:77::/48'\n" % word).servers[0].ipv6 \
        is value


def test_bad_boolean():
    assert server_errors("    option enabled 'maybe'\n") == [
        "sluice.conf: server 'main': option enabled 'maybe': must be a boolean: 1/0, yes/no, on/off or true/false"]


@pytest.mark.parametrize("opt,value,message", [
    ("port", "0", "must be an integer from 1 to 65535"),
    ("port", "65536", "must be an integer from 1 to 65535"),
    ("port", "17o1", "must be an integer from 1 to 65535"),
    ("port", "-1", "must be an integer from 1 to 65535"),
    ("mtu", "9000", "must be an integer from 576 to 1500"),
    ("lcp_echo_failure", "101", "must be an integer from 0 to 100"),
])
def test_integer_ranges(opt, value, message):
    assert server_errors("    option %s '%s'\n" % (opt, value)) == [
        "sluice.conf: server 'main': option %s '%s': %s" % (opt, value, message)]


@pytest.mark.parametrize("value,secs", [("45", 45), ("30s", 30), ("5m", 300), ("1h", 3600), ("0", 0)])
def test_durations(value, secs):
    assert server_with("    option hello_interval '%s'\n" % value).servers[0].hello_interval == secs


@pytest.mark.parametrize("value", ["5x", "m", "1.5m", "2h", ""])
def test_bad_durations(value):
    if value == "":
        return  # uci ignores an empty option
    assert server_errors("    option hello_interval '%s'\n" % value) == [
        "sluice.conf: server 'main': option hello_interval '%s': must be a duration from 0s to 1h, written like "
        "30s, 5m, 2h or 1d" % value]


def test_client_redial_delay_day():
    text = ("config client 'c'\n option server 192.0.2.1\n option username u\n option password p\n"
            " option ipsec 0\n option redial_delay 1d\n")
    assert loads(text).clients[0].redial_delay == 86400


@pytest.mark.parametrize("value,message", [
    ("sluice-vpn-office", "is 17 characters long; interface names have at most 15"),
    ("a/b", "must be an interface name of 1 to 15 characters from A-Z a-z 0-9 _ . -"),
    ("..", "must be an interface name of 1 to 15 characters from A-Z a-z 0-9 _ . -"),
])
def test_ifname(value, message):
    assert server_errors("    option ifname '%s'\n" % value) == [
        "sluice.conf: server 'main': option ifname '%s': %s" % (value, message)]


def test_duplicate_ifname_and_overlapping_servers():
    text = PLAIN_SERVER % "    option ifname 'vpn0'\n" + """
config server 'second'
    option ipsec '0'
    option ifname 'vpn0'
    option pool_start '10.77.0.100'
    option pool_end '10.77.0.110'
"""
    assert errors_of(text) == [
        "sluice.conf: server 'second': option ifname 'vpn0': is already used by server 'main'",
        "sluice.conf: server 'second': option listen '0.0.0.0': with port 1701 overlaps server 'main'",
        "sluice.conf: server 'second': option pool_start '10.77.0.100': pool 10.77.0.100-10.77.0.110 overlaps the "
        "pool of server 'main'",
    ]


def test_unknown_options_and_sections_warn():
    c = loads(PLAIN_SERVER % "    option pool_stat '10.77.0.10'\n" + "config frobnicate 'x'\nconfig gadget\n",
              "sluice.conf")
    assert "sluice.conf: server 'main': unknown option pool_stat ignored (did you mean pool_start?)" in c.warnings
    assert ("sluice.conf: frobnicate 'x': unknown section type 'frobnicate' ignored (expected server, client, user "
            "or globals)") in c.warnings
    assert ("sluice.conf: @gadget[0]: unknown section type 'gadget' ignored (expected server, client, user or "
            "globals)") in c.warnings


def test_plain_l2tp_warns():
    c = server_with("    option psk 'x'\n")
    assert any("ipsec is '0': plain L2TP is not encrypted" in w for w in c.warnings)
    assert "sluice.conf: server 'main': option psk ignored because ipsec is '0'" in c.warnings


def test_ipsec_needs_psk_or_cert():
    text = "config server 'main'\n" + PLAIN_SERVER.split("\n", 3)[3] % ""
    assert errors_of(text) == [
        "sluice.conf: server 'main': ipsec is '1' and there is no option psk or cert: set option psk to a pre-shared "
        "key (`sluice genpsk` makes a strong one) or option cert and key, or set ipsec '0' for plain L2TP"]


def test_ipsec_defaults_on():
    c = loads("config server 's'\n option psk '%s'\nconfig user\n option username a\n option password b-long-enough\n"
              % PSK)
    assert c.servers[0].ipsec is True
    assert c.warnings == []


def test_cert_needs_key():
    text = PLAIN_SERVER.replace("'0'", "'1'") % "    option cert '/etc/sluice/server.pem'\n"
    assert errors_of(text) == [
        "sluice.conf: server 'main': option cert '/etc/sluice/server.pem': needs option key (the certificate's "
        "private key)"]
    ok = loads(PLAIN_SERVER.replace("'0'", "'1'") % (
        "    option cert '/etc/sluice/server.pem'\n    option key '/etc/sluice/server.key'\n"))
    assert ok.servers[0].cert == "/etc/sluice/server.pem"


@pytest.mark.parametrize("psk,reason", [
    ("short-Key-1", "it is shorter than 16 characters"),
    ("secret", "it is a well-known example key"),
    ("Pass-Word", "it is a well-known example key"),
    ("your_ipsec_pre_shared_key", "it is a well-known example key"),
    ("aaaaaaaaaaaaaaaaaaaa", "it uses fewer than 8 different characters"),
    ("abcdefgh" * 3, "it repeats a short pattern"),
    ("83920174659201837465", "it has only digits"),
])
def test_weak_psk_refused_with_reason(psk, reason):
    text = PLAIN_SERVER.replace("'0'", "'1'") % ("    option psk '%s'\n" % psk)
    assert errors_of(text) == [
        "sluice.conf: server 'main': option psk <hidden>: weak pre-shared key refused (%s): use `sluice genpsk` to "
        "make a strong one, or set option allow_weak_psk '1' to accept it" % reason]
    c = loads(text.replace("option psk", "option allow_weak_psk '1'\n    option psk"), "sluice.conf")
    assert ("sluice.conf: server 'main': option psk <hidden>: weak pre-shared key (%s); accepted because "
            "allow_weak_psk is '1'" % reason) in c.warnings


def test_legacy_algorithms_need_legacy():
    body = "    option psk '%s'\n    list ike 'aes256-sha1-modp1024'\n    list esp '3des-md5'\n" % PSK
    text = PLAIN_SERVER.replace("'0'", "'1'") % body
    assert errors_of(text) == [
        "sluice.conf: server 'main': list ike 'aes256-sha1-modp1024': uses modp1024, which needs option legacy '1' "
        "(for old clients only)",
        "sluice.conf: server 'main': list esp '3des-md5': uses 3des and md5, which needs option legacy '1' (for old "
        "clients only)",
    ]
    c = loads(text.replace("option psk", "option legacy '1'\n    option psk"))
    assert c.servers[0].ike == ["aes256-sha1-modp1024"]


def test_proposal_syntax():
    text = PLAIN_SERVER.replace("'0'", "'1'") % (
        "    option psk '%s'\n    list ike 'aes256-sha2_256-ecp256'\n    list esp 'AES128GCM16'\n"
        "    list esp 'aes256-sha1-modp2048'\n    list ike 'aes256-sha1'\n    list esp 'chacha-sha1'\n" % PSK)
    errs = errors_of(text)
    assert len(errs) == 2
    assert errs[0].startswith("sluice.conf: server 'main': list ike 'aes256-sha1': ")
    assert "modp2048" in errs[0]  # says which DH groups are allowed
    assert errs[1].startswith("sluice.conf: server 'main': list esp 'chacha-sha1': ")
    assert "chacha" in errs[1][len("sluice.conf: server 'main': list esp 'chacha-sha1': "):]
    ok = loads(text.replace("    list ike 'aes256-sha1'\n", "").replace("    list esp 'chacha-sha1'\n", ""))
    assert ok.servers[0].ike == ["aes256-sha2_256-ecp256"]
    assert ok.servers[0].esp == ["AES128GCM16", "aes256-sha1-modp2048"]


def test_proposals_agree_with_the_ike_parser():
    # The configuration accepts exactly what sluice.ike.proposals accepts (strongSwan's grammar).
    proposals = pytest.importorskip("sluice.ike.proposals")
    for kind, values in (
        ("ike", ["aes256-sha1-modp2048", "aes256-aes128-sha256-sha1-ecp256", "aes256-sha1-modp2048,aes128-sha1-ecp256",
                 "aes128gcm16-modp2048", "aes256-sha1", "aes256-modp2048", "sha1-modp2048", "x-y-z", ""]),
        ("esp", ["aes256-sha1", "aes128gcm16", "aes256-sha1-modp2048", "aes256gcm16-sha1", "aes256", "3des-md5",
                 "aes256-sha1,aes128-sha1", "bogus"]),
    ):
        for v in values:
            try:
                proposals.ProposalSet.parse(v, kind)
                theirs = True
            except ValueError:
                theirs = False
            text = PLAIN_SERVER.replace("'0'", "'1'") % (
                "    option psk '%s'\n    option legacy '1'\n    list %s '%s'\n" % (PSK, kind, v))
            if v == "":
                continue  # uci drops an empty value before validation
            try:
                loads(text)
                ours = True
            except ConfigError:
                ours = False
            assert ours == theirs, (kind, v)


def test_proposal_fallback_without_ike_package(monkeypatch):
    from sluice.config import values

    monkeypatch.setattr(values, "_ike_parser", lambda: None)
    assert values.parse_ike("aes256-sha1-modp2048") == "aes256-sha1-modp2048"
    assert values.parse_esp("aes128gcm16") == "aes128gcm16"
    assert values.parse_esp("aes256-sha256-modp2048") == "aes256-sha256-modp2048"
    for bad in ("aes256-sha1", "aes128gcm16-modp2048", "x-y-z"):
        with pytest.raises(values.Invalid):
            values.parse_ike(bad)
    for bad in ("aes256", "aes128gcm16-sha1", "chacha-sha1"):
        with pytest.raises(values.Invalid):
            values.parse_esp(bad)


def test_ipv6_needs_mtu_1280():
    assert server_errors("    option ipv6 '1'\n    option ip6prefix 'fd00:77::/48'\n    option mtu '1200'\n") == [
        "sluice.conf: server 'main': option mtu '1200': must be at least 1280 when ipv6 is '1' (RFC 8200 5)"]


def test_auth_methods():
    c = server_with("    list auth 'pap'\n    list auth 'MSCHAPv2'\n")
    assert c.servers[0].auth == ["pap", "mschapv2"]
    assert server_errors("    list auth 'eap'\n") == [
        "sluice.conf: server 'main': list auth 'eap': must be one of pap, chap, mschapv2"]


def test_client_required_options_and_host():
    assert errors_of("config client 'c'\n option ipsec 0\n option server 'bad_host!'\n") == [
        "sluice.conf: client 'c': option server 'bad_host!': must be an IPv4 address or a host name (letters, "
        "digits, hyphens and dots)",
        "sluice.conf: client 'c': option username is required: the PPP user name",
        "sluice.conf: client 'c': option password is required: the PPP password",
    ]


def test_netifd_interface_client():
    network = """
config interface 'loopback'
    option device 'lo'
    option proto 'static'
    option ipaddr '127.0.0.1'

config globals 'globals'
    option ula_prefix 'fd12:3456:789a::/48'

config device
    option name 'br-lan'

config interface 'wan'
    option proto 'pppoe'
    option username 'isp'
    option password 'isp-pass'

config interface 'vpn'
    option proto 'sluice'
    option server 'vpn.example.net'
    option username 'alice'
    option password 'correct horse'
    option ipsec '0'
    option auto '1'
    option metric '20'
    list routes '10.77.0.0/24'

config interface 'vpn2'
    option proto 'sluice'
    option disabled '1'
    option server '203.0.113.9'
    option username 'bob'
    option password 'x'
    option ipsec '0'
"""
    c = loads(network, "/etc/config/network")
    assert [x.name for x in c.clients] == ["vpn", "vpn2"]
    vpn, vpn2 = c.clients
    assert (vpn.interface, vpn.ifname, vpn.server, vpn.metric, vpn.enabled) == (
        "vpn", "sluice-vpn", "vpn.example.net", 20, True)
    assert vpn2.enabled is False
    assert not any("unknown" in w for w in c.warnings)
    assert c.servers == [] and c.users == []
    sel = loads(network, "/etc/config/network", section="vpn2")
    assert [x.name for x in sel.clients] == ["vpn2"]
    with pytest.raises(ConfigError) as ei:
        loads(network, "/etc/config/network", section="wan")
    assert ei.value.errors == ["/etc/config/network: no server, client or interface (proto 'sluice') section named "
                               "'wan' (have: interface 'vpn', interface 'vpn2')"]


def test_select_server_by_name():
    text = EXAMPLE + "config server 'broken'\n option port 'x'\n"
    errs = errors_of(text)
    assert errs and all(e.startswith("sluice.conf: server 'broken': ") for e in errs)
    c = loads(text, "sluice.conf", section="main")
    assert [s.name for s in c.servers] == ["main"] and c.clients == [] and len(c.users) == 1


def test_all_errors_are_collected():
    errs = server_errors("    option port 'x'\n    option mtu 'y'\n    option local_ip 'z'\n")
    assert len(errs) == 3


def test_globals_section():
    c = loads(PLAIN_SERVER % "" + "config globals\n option log_level debug\n option crypto pure\n")
    assert (c.globals.log_level, c.globals.crypto) == ("debug", "pure")
    assert errors_of("config globals\n option crypto fast\n") == [
        "sluice.conf: @globals[0]: option crypto 'fast': must be one of auto, openssl, afalg, pure"]


def test_model_objects_can_be_built_without_a_file():
    s = ServerConfig(name="t", pool_start="10.0.0.2")
    assert (s.port, s.mtu, s.pool_start, s.auth, s.ifname) == (1701, 1400, "10.0.0.2", ["mschapv2", "chap"], None)
    s.mtu = 1300  # the engine's reload sets fields
    assert s.mtu == 1300


# -- malformed values: ConfigError (or a Config), never another exception -------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from sluice.config.model import CLIENT_OPTIONS, SERVER_OPTIONS, USER_OPTIONS  # noqa: E402
from sluice.config.uci import quote  # noqa: E402

VALUES = st.one_of(
    st.sampled_from(["0", "1", "-1", "65536", "10.77.0.1", "10.77.0.0/24", "0.0.0.0", "01.2.3.4", "5m", "1d",
                     "aes256-sha1-modp2048", "3des-md5", "pap", "x" * 300, "/etc/x", "a b", "255.255.255.255"]),
    st.text(max_size=20).filter(lambda s: "\0" not in s),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from(["server", "client", "user", "interface"]), st.data())
def test_random_option_values_never_crash(stype, data):
    table = {"server": SERVER_OPTIONS, "client": CLIENT_OPTIONS, "user": USER_OPTIONS,
             "interface": CLIENT_OPTIONS}[stype]
    names = data.draw(st.lists(st.sampled_from(sorted(table)), max_size=6, unique=True))
    lines = ["config %s 'x'" % stype]
    if stype == "interface":
        lines.append("option proto sluice")
    for n in names:
        kw = data.draw(st.sampled_from(["option", "list"]))
        lines.append("%s %s %s" % (kw, n, quote(data.draw(VALUES))))
    try:
        c = loads("\n".join(lines) + "\n", "fuzz.conf")
    except ConfigError as e:
        assert e.errors and all(m.startswith("fuzz.conf: ") for m in e.errors)
    else:
        assert all(w.startswith("fuzz.conf") for w in c.warnings)


# -- IPv6 in the tunnel (issue 12 part 1) ---------------------------------------------------------------------

def test_ipv6_server_options():
    s = server_with("    option ipv6 '1'\n    option ip6prefix '2001:DB8:77::/48'\n"
                    "    list dns6 '2001:db8:0:0::53'\n").servers[0]
    assert (s.ipv6, s.ip6prefix, s.dns6) == (True, "2001:db8:77::/48", ["2001:db8::53"])


@pytest.mark.parametrize("lines,message", [
    ("    option ipv6 '1'\n",
     "option ip6prefix is required with ipv6 '1': the prefix each session gets a /64 from (e.g. '2001:db8:77::/48', "
     "a /56 delegated to this router, or a ULA /48)"),
    ("    option ipv6 '1'\n    option ip6prefix '2001:db8:77:1::/64'\n",
     "option ip6prefix '2001:db8:77:1::/64': must be /16 to /63: each session gets a /64 of its own, so a /64 cannot "
     "be shared out (use a /56 or /60 delegated to this router, or a ULA prefix like fd12:3456:789a::/48)"),
    ("    option ipv6 '1'\n    option ip6prefix '2001:db8:77::1/48'\n",
     "option ip6prefix '2001:db8:77::1/48': must be an IPv6 prefix like 2001:db8:77::/48 or a /56 (host bits set "
     "past /48)"),
    ("    option ipv6 '1'\n    option ip6prefix 'fd00::/48'\n    list dns6 'ff02::1'\n",
     "list dns6 'ff02::1': must be a global or ULA unicast IPv6 address (not ::, multicast or link-local)"),
    ("    option ipv6 '1'\n    option ip6prefix '2001:db8:77:ff00::/60'\n    option max_sessions '20'\n",
     "option ip6prefix '2001:db8:77:ff00::/60': holds 15 /64s for sessions but max_sessions is 20: use a shorter "
     "prefix or lower max_sessions"),
])
def test_ipv6_server_errors(lines, message):
    assert server_errors(lines) == ["sluice.conf: server 'main': " + message]


def test_small_ip6prefix_lowers_the_default_max_sessions():
    c = server_with("    option ipv6 '1'\n    option ip6prefix '2001:db8:77:ff00::/60'\n")
    assert c.servers[0].max_sessions == 15
    assert any("holds 15 /64s for sessions: max_sessions lowered from 64 to 15" in w for w in c.warnings)


def test_client_routes6():
    c = loads("""
config client 'office'
    option server 'vpn.example.net'
    option username 'alice'
    option password 'pw'
    option ipsec '0'
    option ipv6 '1'
    list routes6 '2001:db8:100::/48'
    list routes6 '2001:DB8:200::1'
""", "sluice.conf").clients[0]
    assert (c.ipv6, c.routes6) == (True, ["2001:db8:100::/48", "2001:db8:200::1/128"])
