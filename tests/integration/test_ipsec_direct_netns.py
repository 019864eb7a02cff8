"""L2TP/IPsec without NAT (raw ESP, IP protocol 50), with a pre-shared key and with X.509 certificates.

    client 192.0.2.2 -- 192.0.2.1 server

Certificates are made here with `cryptography`: a CA, a server certificate for vpn.example.net with the
serverAuth extended key usage, a client certificate. The client checks the server's name and usage the way
Windows does; a name mismatch must fail in plain words and never come up.
"""

import datetime
import shutil
import sys

import pytest

import netns

ok, why = netns.can_use_netns()
if ok and not shutil.which("tcpdump"):
    ok, why = False, "needs tcpdump"
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

PSK = "p0M4kq7vZr2xT8sB5nW1cY6dH3jL9fQa"

SERVER = """
config server 'main'
    option listen '192.0.2.1'
    option local_ip '10.77.0.1'
    option pool_start '10.77.0.10'
    option pool_end '10.77.0.250'
    option ipsec '1'
    option ifname 'sls0'
%(auth)s
config user
    option username 'alice'
    option password 'correct horse battery'
"""

CLIENT = """
config client 'office'
    option server '192.0.2.1'
    option username 'alice'
    option password 'correct horse battery'
    option ipsec '1'
    option ifname 'slc0'
    option redial '0'
    list routes '10.77.0.0/24'
%(auth)s
"""


GARBAGE = r"""
import random, socket, struct
r = random.Random(11)
spi = %d
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
for i in range(300):
    junk = bytes(r.getrandbits(8) for _ in range(r.randrange(0, 200)))
    u.sendto(junk, ("192.0.2.1", 500))
    u.sendto(b"\0\0\0\0" + junk, ("192.0.2.1", 4500))
    u.sendto(struct.pack("!II", spi, i + 1) + junk, ("192.0.2.1", 4500))
    raw.sendto(struct.pack("!II", spi, i + 1) + junk, ("192.0.2.1", 0))
    raw.sendto(junk, ("192.0.2.1", 0))
"""


def make_pki(lab):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(key, cn, ca_key, ca_name, ca=False, san=None, eku=None):
        b = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca_name).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
             .not_valid_after(now + datetime.timedelta(days=30))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        return b.sign(ca_key, hashes.SHA256())

    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    ca = issue(keys[0], "Sluice Test CA", keys[0], name("Sluice Test CA"), ca=True)
    srv = issue(keys[1], "vpn.example.net", keys[0], ca.subject, san=["vpn.example.net"],
                eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    cli = issue(keys[2], "alice laptop", keys[0], ca.subject, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    paths = {}
    for label, obj in (("ca", ca), ("srv", srv), ("cli", cli)):
        paths[label] = lab.write(label + ".pem", obj.public_bytes(serialization.Encoding.PEM).decode(), 0o644)
    for label, key in (("srv_key", keys[1]), ("cli_key", keys[2])):
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        paths[label] = lab.write(label + ".pem", pem.decode())
    return paths


def start(lab, server_auth, client_auth):
    srv = lab.ns("srv")
    cli = lab.ns("cli")
    _, wan = lab.link(cli, "192.0.2.2/24", srv, "192.0.2.1/24")
    sconf = lab.write("server.conf", SERVER % {"auth": server_auth})
    cconf = lab.write("client.conf", CLIENT % {"auth": client_auth})
    server = lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
    lab.wait_for("server", lambda: "error" not in lab.status("srv"), 10)
    client = lab.start(cli, ["client", "--config", cconf, "--name", "cli"], "client.log")
    return srv, cli, wan, server, client


def test_psk_raw_esp_without_nat():
    with netns.Lab() as lab:
        auth = "    option psk '%s'\n" % PSK
        srv, cli, wan, server, client = start(lab, auth, auth)
        try:
            lab.wait_for("tunnel", lambda: netns.session_up(lab, "cli"), 40)
        except TimeoutError:
            pytest.fail("--- server\n%s\n--- client\n%s" % (lab.log(server), lab.log(client)))
        lab.run(cli, "ping", "-c", "3", "-W", "3", "10.77.0.1")
        sent, got = netns.transfer(lab, srv, "10.77.0.1", cli, 2 * 1024 * 1024, 5301)
        assert sent == got
        sas = lab.status("srv")["transport"]["sas"]
        assert sas and not any(sa["encap"] for sa in sas)  # raw ESP: no NAT between them
        assert lab.status("srv")["transport"]["esp_in"] > 100
        # Garbage at IKE (500, 4500), at NAT-T ESP and at raw ESP, including our live SPI with junk after it.
        spi = int(sas[0]["spi_in"], 16)
        lab.run(cli, sys.executable, "-c", GARBAGE % spi)
        assert server.poll() is None and client.poll() is None
        lab.run(cli, "ping", "-c", "2", "-W", "3", "10.77.0.1")
        tr = lab.status("srv")["transport"]
        assert tr["esp_errors"] + tr["unknown_spi"] > 0
        for p in (client, server):
            assert lab.stop(p) == 0
        assert lab.tracebacks() == []


def test_certificates_with_name_and_usage_checked():
    with netns.Lab() as lab:
        pki = make_pki(lab)
        sauth = "    option cert '%(srv)s'\n    option key '%(srv_key)s'\n    option ca '%(ca)s'\n" % pki
        cauth = ("    option cert '%(cli)s'\n    option key '%(cli_key)s'\n    option ca '%(ca)s'\n"
                 "    option server_name 'vpn.example.net'\n" % pki)
        srv, cli, wan, server, client = start(lab, sauth, cauth)
        try:
            st = lab.wait_for("tunnel", lambda: netns.session_up(lab, "cli"), 40)
        except TimeoutError:
            pytest.fail("--- server\n%s\n--- client\n%s" % (lab.log(server), lab.log(client)))
        assert st["tunnels"][0]["sessions"][0]["ip"] == "10.77.0.10"
        lab.run(cli, "ping", "-c", "2", "-W", "3", "10.77.0.1")
        assert "(rsa" in lab.log(server).lower() or "rsa" in lab.log(server).lower()
        assert lab.tracebacks() == []


def test_certificate_name_mismatch_is_refused_in_plain_words():
    with netns.Lab() as lab:
        pki = make_pki(lab)
        sauth = "    option cert '%(srv)s'\n    option key '%(srv_key)s'\n    option ca '%(ca)s'\n" % pki
        cauth = ("    option cert '%(cli)s'\n    option key '%(cli_key)s'\n    option ca '%(ca)s'\n"
                 "    option server_name 'other.example.org'\n" % pki)
        srv, cli, wan, server, client = start(lab, sauth, cauth)
        st = lab.wait_for("the client gives up", lambda: (lambda s: s if s.get("last_error") else None)(
            lab.status("cli")), 30)
        assert st["state"] != "up"
        assert "other.example.org" in st["last_error"] or "name" in st["last_error"]
        assert lab.tracebacks() == []


def test_wildcard_listen_does_not_pretend_to_be_behind_nat():
    # Review finding: with listen '0.0.0.0' the server hashed 0.0.0.0 into NAT-D, so every client thought
    # the server was behind NAT and fell back to UDP 4500 (Windows refuses that without a registry change).
    with netns.Lab() as lab:
        auth = "    option psk '%s'\n" % PSK
        srv = lab.ns("srv")
        cli = lab.ns("cli")
        lab.link(cli, "192.0.2.2/24", srv, "192.0.2.1/24")
        sconf = lab.write("server.conf", (SERVER % {"auth": auth}).replace("'192.0.2.1'", "'0.0.0.0'"))
        cconf = lab.write("client.conf", CLIENT % {"auth": auth})
        lab.start(srv, ["server", "--config", sconf, "--name", "srv"], "server.log")
        lab.wait_for("server", lambda: "error" not in lab.status("srv"), 10)
        lab.start(cli, ["client", "--config", cconf, "--name", "cli"], "client.log")
        lab.wait_for("tunnel", lambda: netns.session_up(lab, "cli"), 40)
        sas = lab.status("srv")["transport"]["sas"]
        assert sas and not any(sa["encap"] for sa in sas)
        assert not any("behind NAT" in lab.log(p) for p in lab.procs)
        assert lab.tracebacks() == []
