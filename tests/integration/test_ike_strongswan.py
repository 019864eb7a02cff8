"""Our IKEv1 machines against a real peer: strongSwan's charon (IKEv1 PSK, transport mode, UDP/1701 selectors)
in one network namespace, an IkeTable driven over real UDP sockets in another (192.0.2.0/24 only).

Both directions: charon initiates to our responder, our initiator dials charon as responder. charon logs its
Quick Mode keys at level 4 (keymat_v1.c); they must be exactly the ones in our ChildSaUp events, crosswise: an
outside check of the whole derivation chain (DH, SKEYID, KEYMAT, key order, SPI direction) by an
implementation that shares no code with ours. Where the kernel has no XFRM ESP (charon cannot install its SAs
and then refuses Quick Mode message 3), the responder direction checks how far charon got.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

import netns

CHARON = "/usr/lib/ipsec/charon"
ok, why = netns.can_use_netns()
if ok and not (os.path.exists(CHARON) and shutil.which("swanctl")):
    ok, why = False, "needs strongSwan (apt-get install strongswan-charon strongswan-swanctl)"
pytestmark = [pytest.mark.netns, pytest.mark.skipif(not ok, reason=why)]

PSK = "Vq3vX0Jq0sW2kz8lq1bS6yHc4pN7tR5e"
OURS, THEIRS = "192.0.2.1", "192.0.2.2"

# Runs inside our namespace: binds UDP 500/4500, drives an IkeTable, prints events as JSON lines.
DRIVER = r'''
import json, os, select, socket, sys, time
from sluice.ike.table import IkeTable, IkeConfig
from sluice.ike.proposals import ProposalSet
from sluice.ike import events as ev
role, ike, esp, limit, ours, theirs = sys.argv[1:7]
limit = float(limit)
certs = {}
if os.environ.get("CERT"):
    import datetime
    for k in ("cert", "key", "ca"):
        with open(os.environ[k.upper()], "rb") as f:
            certs[k] = f.read()
    certs["server_name"] = os.environ["SERVER_NAME"]
    certs["utc_now"] = lambda: datetime.datetime.now(datetime.timezone.utc)
cfg = IkeConfig(role=role, psk=None if certs else os.environ["PSK"].encode(), ike=ProposalSet.parse(ike, "ike"),
                esp=ProposalSet.parse(esp, "esp"), local_ip=ours, dpd_delay=0, **certs)
t = IkeTable(cfg, os.urandom)
socks = {}
for port in (500, 4500):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ours, port))
    socks[port] = s
start = time.monotonic()
if role == "initiator":
    t.initiate((theirs, 500), 0.0)
done = 0
while time.monotonic() - start < limit and done < 1:
    for port, peer, data in t.datagrams_to_send():
        socks[port].sendto((b"\0\0\0\0" + data) if port == 4500 else data, peer)
    e = t.next_event()
    while e is not None:
        d = {"type": type(e).__name__}
        for k in e.__slots__:
            v = getattr(e, k)
            d[k] = v.hex() if isinstance(v, bytes) else v
        print(json.dumps(d), flush=True)
        done += d["type"] in ("ChildSaUp", "NegotiationFailed")
        e = t.next_event()
    now = time.monotonic() - start
    deadline = t.get_timer()
    r, _, _ = select.select(list(socks.values()), [], [], 0.1)
    for s in r:
        data, peer = s.recvfrom(65535)
        port = s.getsockname()[1]
        if port == 4500:
            if data[:4] != b"\0\0\0\0":
                continue
            data = data[4:]
        t.datagram_received(data, (ours, port), peer, time.monotonic() - start)
    if deadline is not None and time.monotonic() - start >= deadline:
        t.handle_timer(time.monotonic() - start)
for port, peer, data in t.datagrams_to_send():
    socks[port].sendto((b"\0\0\0\0" + data) if port == 4500 else data, peer)
print(json.dumps({"type": "stats", "stats": t.stats}), flush=True)
'''

STRONGSWAN_CONF = """
charon {
    load = random nonce aes sha1 sha2 md5 hmac gmp openssl gcm pem pkcs1 pkcs8 x509 pubkey kdf kernel-netlink socket-default vici
    port = 500
    port_nat_t = 4500
    install_routes = no
    retransmit_tries = 2
    plugins {
        vici { socket = unix://%(tmp)s/charon.vici }
    }
    filelog {
        log { path = %(tmp)s/charon.log
              flush_line = yes
              default = 1
              ike = 4
              chd = 4
              cfg = 1 }
    }
}
"""

SWANCTL_CONF = """
connections {
    l2tp {
        version = 1
        local_addrs = %(theirs)s
        remote_addrs = %(ours)s
        proposals = %(ike)s
        encap = no
        local { auth = psk }
        remote { auth = psk }
        children {
            l2tp {
                mode = transport
                local_ts = dynamic[udp/1701]
                remote_ts = dynamic[udp/1701]
                esp_proposals = %(esp)s
            }
        }
    }
}
secrets {
    ike-1 { secret = "%(psk)s" }
}
"""


def _charon_keys(lab):
    """What charon logged at level 4 (keymat_v1.c): the Quick Mode keys per direction and the SPIs."""
    with open(os.path.join(lab.tmp, "charon.log")) as f:
        lines = f.read().splitlines()
    dumps, name = {}, None
    for line in lines:
        m = re.search(r"\[CHD\] (.+?) => \d+ bytes", line)
        if m:
            name = m.group(1)
            dumps[name] = ""
            continue
        m = re.search(r"\[CHD\]\s+\d+: ((?:[0-9A-F]{2} )+)", line)
        if m and name is not None:
            dumps[name] += m.group(1).replace(" ", "").lower()
        else:
            name = None
    return dumps, "\n".join(lines)


@pytest.fixture
def pair():
    with netns.Lab(prefix="sw") as lab:
        ours = lab.ns("ours")
        theirs = lab.ns("theirs")
        lab.link(ours, OURS + "/24", theirs, THEIRS + "/24")
        yield lab, ours, theirs


def _charon(lab, ns, ike, esp, ours=OURS, theirs=THEIRS):
    swan = lab.write("swanctl.conf", SWANCTL_CONF % {"ours": ours, "theirs": theirs, "ike": ike, "esp": esp,
                                                      "psk": PSK})
    return _start_charon(lab, ns, swan)


def _start_charon(lab, ns, swan, **env_extra):
    """charon in namespace ns with swanctl.conf `swan` loaded; returns (vici uri, env for swanctl)."""
    conf = lab.write("strongswan.conf", STRONGSWAN_CONF % {"tmp": lab.tmp})
    env = dict(os.environ, STRONGSWAN_CONF=conf, **env_extra)
    log = open(os.path.join(lab.tmp, "charon.out"), "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns, CHARON], stdout=log, stderr=subprocess.STDOUT, env=env)
    lab.procs.append(p)
    uri = "unix://%s/charon.vici" % lab.tmp
    lab.wait_for("charon's vici socket", lambda: os.path.exists(os.path.join(lab.tmp, "charon.vici")), 15)
    netns.sh("swanctl", "--load-all", "--file", swan, "--uri", uri, env=env)
    return uri, env


def _driver(lab, ns, role, ike, esp, limit=20, ours=OURS, theirs=THEIRS, **env_extra):
    """DRIVER in namespace ns; env_extra CERT, KEY, CA, SERVER_NAME (paths) switch it from the PSK to them."""
    path = lab.write("driver.py", DRIVER)
    env = dict(lab.env(), PSK=PSK, **env_extra)
    return subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, path, role, ike, esp, str(limit), ours,
                             theirs],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=netns.ROOT)


def _events(proc):
    out, _ = proc.communicate(timeout=40)
    evs = []
    for line in out.splitlines():
        try:
            evs.append(json.loads(line))
        except ValueError:
            pass
    assert evs, out
    return evs, out


def _log(lab):
    try:
        with open(os.path.join(lab.tmp, "charon.log")) as f:
            return "\ncharon.log:\n" + "\n".join(l for l in f.read().splitlines() if "[CFG]" not in l and "[LIB]" not in l)[-6000:]
    except OSError:
        return ""


def _check_keys(lab, child, we_initiated):
    """Our ChildSaUp keys against charon's: its "initiator" keys protect initiator-to-responder packets."""
    keys, log = _charon_keys(lab)
    assert "encryption initiator key" in keys, log[-3000:]
    out, inn = ("initiator", "responder") if we_initiated else ("responder", "initiator")
    assert child["enc_out"] + child["salt_out"] == keys["encryption %s key" % out]
    assert child["enc_in"] + child["salt_in"] == keys["encryption %s key" % inn]
    assert child["auth_out"] == keys.get("integrity %s key" % out, "")
    assert child["auth_in"] == keys.get("integrity %s key" % inn, "")
    # RFC 2409 5.5: the KEYMAT seed is [g(qm)^xy |] protocol | SPI | Ni_b | Nr_b; the initiator-to-responder
    # SPI is the one the responder chose, i.e. our outbound SPI when we initiated.
    spi_ir = child["spi_out"] if we_initiated else child["spi_in"]
    assert "03%08x" % spi_ir in keys["initiator SA seed"]


@pytest.mark.parametrize("ike, esp, transform", [
    ("aes256-sha1-modp2048", "aes128-sha1", "aes128-sha1"),
    ("aes128-sha256-ecp256", "aes256gcm16", "aes256gcm16"),
    ("3des-sha1-modp1024", "aes256-sha256-modp2048", "aes256-sha256"),   # PFS, SHA-256 truncated to 128
])
def test_strongswan_initiates_to_our_responder(pair, ike, esp, transform):
    lab, ours, theirs = pair
    uri, env = _charon(lab, theirs, ike, esp)
    drv = _driver(lab, ours, "responder", ike, esp)
    time.sleep(0.5)
    netns.sh("swanctl", "--initiate", "--child", "l2tp", "--uri", uri, "--timeout", "15", env=env, check=False,
             timeout=30)
    evs, out = _events(drv)
    names = [e["type"] for e in evs]
    keys, log = _charon_keys(lab)
    # charon verified HASH_R (phase 1 established) and HASH(2) of our Quick Mode answer, then derived keys.
    assert "state change: CONNECTING => ESTABLISHED" in log, out + log[-3000:]
    assert "CREATED => INSTALLING" in log, out + log[-3000:]
    assert names[0] == "IkeSaUp"
    assert evs[-1]["stats"]["internal_error"] == 0 and evs[-1]["stats"]["malformed"] == 0
    if "unable to add SAD entry" in log:
        # This kernel has no ESP (XFRM esp4): charon cannot install its SAs, refuses Quick Mode message 3
        # with NO-PROPOSAL-CHOSEN, and we report that in words.
        assert names[1] == "NegotiationFailed" and "NO-PROPOSAL-CHOSEN" in evs[1]["reason"]
        return
    assert names[1] == "ChildSaUp", out
    assert evs[1]["transform"] == transform and not evs[1]["encap"]
    _check_keys(lab, evs[1], we_initiated=False)


@pytest.mark.parametrize("ike, esp, transform", [
    ("aes256-sha1-modp2048", "aes128-sha1", "aes128-sha1"),
    ("aes128-sha256-ecp256", "aes256gcm16", "aes256gcm16"),
    ("3des-sha1-modp1024", "aes256-sha256-modp2048", "aes256-sha256"),   # PFS, SHA-256 truncated to 128
    ("aes256-sha384-ecp384", "aes128-sha512", "aes128-sha512"),
])
def test_our_initiator_dials_strongswan(pair, ike, esp, transform):
    lab, ours, theirs = pair
    _charon(lab, theirs, ike, esp)
    drv = _driver(lab, ours, "initiator", ike, esp)
    evs, out = _events(drv)
    names = [e["type"] for e in evs]
    assert names[:2] == ["IkeSaUp", "ChildSaUp"], out + _log(lab)
    assert evs[1]["transform"] == transform
    # charon derives its keys on Quick Mode message 3, after our ChildSaUp: wait for its log.
    lab.wait_for("charon's Quick Mode keys", lambda: "encryption initiator key" in _charon_keys(lab)[0], 10)
    _check_keys(lab, evs[1], we_initiated=True)
    assert evs[-1]["stats"]["internal_error"] == 0 and evs[-1]["stats"]["malformed"] == 0


def test_our_initiator_behind_nat_floats_and_encapsulates():
    """ours 198.51.100.2 -- 198.51.100.1 NAT (masquerade) 192.0.2.254 -- 192.0.2.2 charon (RFC 3947)."""
    with netns.Lab(prefix="sn") as lab:
        ours = lab.ns("ours")
        nat = lab.ns("nat")
        theirs = lab.ns("theirs")
        lab.link(ours, "198.51.100.2/24", nat, "198.51.100.1/24")
        _, wan = lab.link(theirs, THEIRS + "/24", nat, "192.0.2.254/24")
        lab.run(ours, "ip", "route", "add", "default", "via", "198.51.100.1")
        lab.forward(nat)
        netns.masquerade(lab, nat, wan)
        _charon(lab, theirs, "aes256-sha1-modp2048", "aes256-sha1", ours="192.0.2.254")
        drv = _driver(lab, ours, "initiator", "aes256-sha1-modp2048", "aes256-sha1", ours="198.51.100.2")
        evs, out = _events(drv)
        names = [e["type"] for e in evs]
        assert names[:2] == ["IkeSaUp", "ChildSaUp"], out + _log(lab)
        up, child = evs[0], evs[1]
        assert up["nat_local"] and not up["nat_remote"] and up["peer"] == [THEIRS, 4500]
        assert child["encap"] and child["peer"] == [THEIRS, 4500]
        lab.wait_for("charon's Quick Mode keys", lambda: "encryption initiator key" in _charon_keys(lab)[0], 10)
        _check_keys(lab, child, we_initiated=True)
        log = _charon_keys(lab)[1]
        assert "local host is behind NAT" not in log and "remote host is behind NAT" in log
        assert "[ HASH SA No ID ID NAT-OA NAT-OA ]" in log       # RFC 3947 5.2, as charon parsed it


def test_strongswan_behind_nat_to_our_responder():
    """charon 198.51.100.2 -- NAT 192.0.2.254 -- 192.0.2.1 ours: the Windows-behind-NAT situation."""
    with netns.Lab(prefix="sr") as lab:
        ours = lab.ns("ours")
        nat = lab.ns("nat")
        theirs = lab.ns("theirs")
        lab.link(theirs, "198.51.100.2/24", nat, "198.51.100.1/24")
        _, wan = lab.link(ours, OURS + "/24", nat, "192.0.2.254/24")
        lab.run(theirs, "ip", "route", "add", "default", "via", "198.51.100.1")
        lab.forward(nat)
        netns.masquerade(lab, nat, wan)
        uri, env = _charon(lab, theirs, "aes256-sha1-modp2048", "aes256-sha1", ours=OURS, theirs="198.51.100.2")
        drv = _driver(lab, ours, "responder", "aes256-sha1-modp2048", "aes256-sha1")
        time.sleep(0.5)
        netns.sh("swanctl", "--initiate", "--child", "l2tp", "--uri", uri, "--timeout", "15", env=env,
                 check=False, timeout=30)
        evs, out = _events(drv)
        keys, log = _charon_keys(lab)
        up = evs[0]
        assert up["type"] == "IkeSaUp" and up["nat_remote"] and not up["nat_local"], out
        assert up["peer"][0] == "192.0.2.254" and up["peer"][1] != 500      # floated: the NAT's 4500 mapping
        assert "local host is behind NAT" in log
        # charon verified our HASH(2) over SA (UDP-encapsulated transport), nonce, IDs and both NAT-OAs.
        assert "[ HASH SA No ID ID NAT-OA NAT-OA ]" in log and "CREATED => INSTALLING" in log, log[-3000:]
        if "unable to add SAD entry" not in log:
            assert evs[1]["type"] == "ChildSaUp" and evs[1]["encap"]
            _check_keys(lab, evs[1], we_initiated=False)


SWANCTL_CERTS_CONF = """
connections {
    l2tp {
        version = 1
        local_addrs = %(theirs)s
        remote_addrs = %(ours)s
        proposals = aes256-sha256-modp2048
        encap = no
        local {
            auth = pubkey
            certs = server.pem
            id = "%(server_dn)s"
        }
        remote {
            auth = pubkey
            cacerts = ca.pem
        }
        children {
            l2tp {
                mode = transport
                local_ts = dynamic[udp/1701]
                remote_ts = dynamic[udp/1701]
                esp_proposals = aes128-sha1
            }
        }
    }
}
"""


def _pki(lab, server_ip):
    """CA, server (SAN DNS + IP, EKU serverAuth) and client certificates, made with `cryptography`, which
    encodes O and CN as UTF8String; strongSwan encodes an `id` DN written as text with PrintableString."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sluice Test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def issue(subject, key, issuer, ikey, ca=False, san=(), eku=None):
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(list(san)), critical=False)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
        return b.sign(ikey, hashes.SHA256())

    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    ca = issue(name("Sluice Test CA"), keys[0], name("Sluice Test CA"), keys[0], ca=True)
    srv = issue(name("vpn.example.net"), keys[1], ca.subject, keys[0],
                san=[x509.DNSName("vpn.example.net"), x509.IPAddress(ipaddress.ip_address(server_ip))],
                eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    cli = issue(name("router-7"), keys[2], ca.subject, keys[0], eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    pem = lambda c: c.public_bytes(serialization.Encoding.PEM).decode()
    key = lambda k: k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    return {n: lab.write(n, t) for n, t in (("ca.pem", pem(ca)), ("server.pem", pem(srv)), ("server.key", key(keys[1])),
                                             ("client.pem", pem(cli)), ("client.key", key(keys[2])))}


def test_our_initiator_with_certificates_dials_strongswan(pair):
    """Main Mode with RSA signatures against charon at its defaults: it sends its certificate only when asked
    (send_cert = ifasked), so our message 3 must carry a CERTREQ; and its ID is the DN typed as text, which
    charon encodes with other ASN.1 string types than the certificate's subject (RFC 5280 7.1: DNs compare by
    value, not by bytes)."""
    lab, ours, theirs = pair
    paths = _pki(lab, THEIRS)
    # swanctl reads keys and certificates from its own tree (SWANCTL_DIR), not from paths in swanctl.conf.
    sdir = os.path.join(lab.tmp, "swanctl")
    for sub, name in (("x509", "server.pem"), ("x509ca", "ca.pem"), ("private", "server.key")):
        os.makedirs(os.path.join(sdir, sub), exist_ok=True)
        shutil.copy(paths[name], os.path.join(sdir, sub, name))
    swan = os.path.join(sdir, "swanctl.conf")
    with open(swan, "w") as f:
        f.write(SWANCTL_CERTS_CONF % {"ours": OURS, "theirs": THEIRS, "server_dn": "O=Sluice Test, CN=vpn.example.net"})
    _start_charon(lab, theirs, swan, SWANCTL_DIR=sdir)
    drv = _driver(lab, ours, "initiator", "aes256-sha256-modp2048", "aes128-sha1", CERT=paths["client.pem"],
                  KEY=paths["client.key"], CA=paths["ca.pem"], SERVER_NAME="vpn.example.net")
    evs, out = _events(drv)
    log = _charon_keys(lab)[1]
    assert re.search(r"parsed ID_PROT request 0 \[ KE No CERTREQ", log), log
    assert "sending end entity cert" in log, log
    names = [e["type"] for e in evs]
    assert names[:2] == ["IkeSaUp", "ChildSaUp"], out + _log(lab)
    assert "authentication of 'O=Sluice Test, CN=router-7' with RSA" in log and "successful" in log, log
    assert evs[-1]["stats"]["internal_error"] == 0 and evs[-1]["stats"]["malformed"] == 0
