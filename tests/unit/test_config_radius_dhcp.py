"""The server options for RADIUS and for DHCPINFORM answers: defaults, values, and the messages users see."""

from tests.unit.test_config_model import server_errors, server_with


def test_defaults_are_off():
    s = server_with("").servers[0]
    assert s.client_routes == [] and s.domain is None
    assert s.radius_auth == [] and s.radius_acct == [] and s.radius_secret is None
    assert s.radius_nas_id is None and s.radius_dae_port == 0


def test_client_routes_and_domain():
    s = server_with("    list client_routes '198.51.100.0/24'\n    list client_routes '203.0.113.7'\n"
                    "    option domain 'corp.example.org'\n").servers[0]
    assert s.client_routes == ["198.51.100.0/24", "203.0.113.7/32"]
    assert s.domain == "corp.example.org"


def test_client_routes_error_names_the_option():
    errs = server_errors("    list client_routes '198.51.100.1/24'\n")
    assert errs == ["sluice.conf: server 'main': list client_routes '198.51.100.1/24': has host bits set: did you "
                    "mean 198.51.100.0/24?"]


def test_domain_error_names_the_option():
    errs = server_errors("    option domain 'bad domain'\n")
    assert errs == ["sluice.conf: server 'main': option domain 'bad domain': must be a domain name like "
                    "example.org (letters, digits, hyphens and dots)"]


def test_radius_servers_with_ports_and_failover_order():
    s = server_with("    list radius_auth '192.0.2.1'\n    list radius_auth 'radius2.example.org:11812'\n"
                    "    list radius_acct '192.0.2.1'\n    option radius_secret 'a-long-shared-secret-1'\n"
                    "    option radius_nas_id 'gw1'\n    option radius_dae_port '3799'\n").servers[0]
    assert s.radius_auth == [("192.0.2.1", 1812), ("radius2.example.org", 11812)]
    assert s.radius_acct == [("192.0.2.1", 1813)]
    assert s.radius_nas_id == "gw1" and s.radius_dae_port == 3799
    assert "a-long-shared" not in repr(s) and "a-long-shared" not in repr(s.as_dict())


def test_radius_needs_a_secret():
    errs = server_errors("    list radius_auth '192.0.2.1'\n")
    assert errs == ["sluice.conf: server 'main': option radius_secret must be set when radius_auth or radius_acct "
                    "is given (the secret shared with the RADIUS servers)"]


def test_radius_bad_port_and_dae_without_servers():
    errs = server_errors("    list radius_auth '192.0.2.1:0'\n    option radius_secret 'a-long-shared-secret-1'\n")
    assert errs == ["sluice.conf: server 'main': list radius_auth '192.0.2.1:0': must be HOST or HOST:PORT with a "
                    "port 1 to 65535"]
    errs = server_errors("    option radius_dae_port '3799'\n")
    assert errs == ["sluice.conf: server 'main': option radius_dae_port '3799': needs radius_auth or radius_acct: "
                    "only those servers may send Disconnect-Request and CoA"]


def test_short_radius_secret_is_warned_without_showing_it():
    c = server_with("    list radius_auth '192.0.2.1'\n    option radius_secret 'short'\n")
    w = [x for x in c.warnings if "radius_secret" in x]
    assert len(w) == 1 and "'short'" not in w[0] and "16" in w[0]


def test_radius_secret_is_kept_out_of_parse_errors_and_reprs():
    from sluice.config.uci import Section
    assert "radius_secret" in Section.SECRET_OPTIONS
    s = Section("server", "main", {"radius_secret": "a-long-shared-secret-1"})
    assert "a-long-shared" not in repr(s)
